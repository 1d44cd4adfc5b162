"""Scoring: check outcomes in, points out. Pure, no I/O."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from autograder.results import CheckOutcome, QuestionScore, SubmissionResult


@dataclass(frozen=True)
class ScoreSheet:
    score: float
    max_score: float
    bonus: float
    bonus_max: float
    questions: tuple[QuestionScore, ...]


def score_outcomes(outcomes: Iterable[CheckOutcome], titles: Mapping[str, str]) -> ScoreSheet:
    """Sum points per question; bonus points are kept apart so `score <= max_score`.

    Questions come in the order of `titles` (the config), then any others in
    the order their checks ran.
    """
    outcomes = list(outcomes)
    order = list(titles)
    order += [q for q in dict.fromkeys(o.question for o in outcomes) if q not in order]
    questions = []
    for question in order:
        mine = [o for o in outcomes if o.question == question]
        if not mine:
            continue
        regular = [o for o in mine if not o.bonus]
        extra = [o for o in mine if o.bonus]
        questions.append(
            QuestionScore(
                question=question,
                title=titles.get(question, question),
                score=_total(o.score for o in regular),
                max_score=_total(o.max_score for o in regular),
                bonus=_total(o.score for o in extra),
                bonus_max=_total(o.max_score for o in extra),
            )
        )
    return ScoreSheet(
        score=_total(q.score for q in questions),
        max_score=_total(q.max_score for q in questions),
        bonus=_total(q.bonus for q in questions),
        bonus_max=_total(q.bonus_max for q in questions),
        questions=tuple(questions),
    )


def _total(values: Iterable[float]) -> float:
    return round(sum(values), 6)


@dataclass(frozen=True)
class QuestionVerdict:
    """A self-check's line for one question: its public checks only."""

    question: str
    title: str
    verdict: str  # "passed"; "failed"; "environment": only the machine's lack failed it
    score: float
    max_score: float
    hints: tuple[str, ...]  # the failing checks' messages, for the student


def question_verdicts(outcomes: Iterable[CheckOutcome], titles: Mapping[str, str]) -> list[QuestionVerdict]:
    """The public checks' verdict per question, in the order of `titles` (the
    config), then any others: what `autograder check`, its GitHub summary and
    the in-notebook self-check show, so all three agree. A question with no
    public check has no line."""
    public = [o for o in outcomes if o.visibility == "public"]
    sheet = score_outcomes(public, titles)
    verdicts = []
    for question in sheet.questions:
        mine = [o for o in public if o.question == question.question]
        failing = [o for o in mine if o.status != "passed"]
        machines = bool(failing) and all(o.status == "environment" for o in failing)
        verdict = "environment" if machines else "failed" if failing else "passed"
        verdicts.append(
            QuestionVerdict(
                question=question.question,
                title=question.title,
                verdict=verdict,
                score=_total([question.score, question.bonus]),
                max_score=_total([question.max_score, question.bonus_max]),
                hints=tuple(o.message or "not right yet" for o in failing),
            )
        )
    return verdicts


def self_check_summary(result: SubmissionResult) -> dict[str, Any]:
    """A self-check of one notebook as plain data (`autograder check --json`):
    the verdict per question, and why there is none when it was not checked."""
    titles = {question.question: question.title for question in result.questions}
    return {
        "notebook": result.submission,
        "assignment": result.assignment,
        "status": result.status,
        "reason": result.reason,
        "questions": verdict_rows(question_verdicts(result.checks, titles)),
    }


def verdict_rows(lines: Iterable[QuestionVerdict]) -> list[dict[str, Any]]:
    """The verdicts as JSON-ready rows, the same wherever a self-check is shown."""
    return [{**dataclasses.asdict(line), "hints": list(line.hints)} for line in lines]
