"""Scoring: check outcomes in, points out. Pure, no I/O."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from autograder.results import CheckOutcome, QuestionScore


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
