"""Pure parts: scoring sums, config parsing and validation, result JSON."""

from __future__ import annotations

from pathlib import Path

import pytest

from autograder.config import AssignmentConfig, load_config
from autograder.errors import ConfigError
from autograder.results import CheckOutcome, SubmissionResult
from autograder.scoring import score_outcomes


def outcome(question: str, score: float, max_score: float, bonus: bool = False) -> CheckOutcome:
    status = "passed" if score == max_score else "failed"
    return CheckOutcome(question, f"c{question}{score}", "hidden", status, score, max_score, bonus)  # type: ignore[arg-type]


def test_scores_sum_per_question_in_config_order() -> None:
    sheet = score_outcomes(
        [outcome("q2", 1, 1), outcome("q1", 0, 2), outcome("q1", 1, 1), outcome("q1", 2, 2, bonus=True)],
        {"q1": "First", "q2": "Second"},
    )
    assert [(q.question, q.title, q.score, q.max_score) for q in sheet.questions] == [
        ("q1", "First", 1, 3),
        ("q2", "Second", 1, 1),
    ]
    assert (sheet.score, sheet.max_score, sheet.bonus, sheet.bonus_max) == (2, 4, 2, 2)


def test_config_defaults_and_overrides(tmp_path: Path) -> None:
    public, hidden = tmp_path / "a.toml", tmp_path / "b.toml"
    public.write_text('title = "T"\ncell_timeout_s = 5\n[questions]\nq1 = "One"\n')
    hidden.write_text("cell_timeout_s = 9\n")
    config = load_config(public, hidden, tmp_path / "missing.toml")
    assert (config.title, config.cell_timeout_s, config.questions) == ("T", 9.0, {"q1": "One"})
    assert config.with_overrides(cell_timeout_s=2, notebook_timeout_s=None).cell_timeout_s == 2
    assert set(AssignmentConfig.describe()) >= {"cell_timeout_s", "seed", "questions"}


@pytest.mark.parametrize(
    "text, says",
    [
        ("cell_timeout = 3", "unknown setting"),
        ("cell_timeout_s = -1", "positive"),
        ("seed = 'x'", "seed"),
        ("= broken", "invalid TOML"),
    ],
)
def test_bad_config_is_refused(tmp_path: Path, text: str, says: str) -> None:
    path = tmp_path / "assignment.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=says):
        load_config(path)


def test_result_json_round_trip(graded_solutions: dict[str, SubmissionResult]) -> None:
    result = graded_solutions["02_tensors"]
    assert SubmissionResult.from_json(result.to_json()) == result
