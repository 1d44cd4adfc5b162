"""Hand-written wrong answers to 02_tensors: each loses exactly its points."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from autograder.course import Course
from autograder.results import SubmissionResult
from tests.conftest import TENSORS, edited_solution, grade

pytestmark = pytest.mark.slow


@dataclass(frozen=True)
class Variant:
    id: str
    old: str
    new: str
    question: str
    lost: float
    says: str  # a piece of the failing message the student reads
    cell_timeout_s: float | None = None


VARIANTS = [
    Variant("wrong-dtype", "torch.ones(3, 4, dtype=torch.float64)", "torch.ones(3, 4)", "q1", 1, "float64"),
    Variant("wrong-shape", "return t.unsqueeze(0)", "return t.unsqueeze(-1)", "q2", 1, "wrong shape"),
    Variant(
        "hard-coded-printed-answer",
        "return m.mean(dim=0)",
        "return torch.tensor([4.0, 5.0, 6.0])  # what the example printed",
        "q4",
        1,
        "`column_means`",
    ),
    Variant(
        "cell-raises",
        "def center_columns(m):",
        "raise ValueError('not finished')\n\n\ndef center_columns(m):",
        "q5",
        3,
        "is not defined",
    ),
    Variant(
        "infinite-loop",
        "def double_in_place(t):",
        "while True:\n    pass\n\n\ndef double_in_place(t):",
        "q6",
        2,
        "is not defined",
        cell_timeout_s=3,
    ),
    Variant(
        "missing-name",
        "def gradient_at(fn, x):",
        "def grad_at(fn, x):",
        "q9",
        3,
        "`gradient_at` is not defined",
    ),
    Variant(
        "not-in-place",
        "return t.mul_(2)",
        "return t * 2",
        "q6",
        2,
        "`double_in_place`",
    ),
    Variant("copy-not-view", "return torch.from_numpy(a)", "return torch.tensor(a)", "q7", 1, "should change"),
]


@pytest.fixture(scope="module", params=VARIANTS, ids=lambda v: v.id)
def variant_result(
    request: pytest.FixtureRequest, course: Course, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Variant, SubmissionResult]:
    variant: Variant = request.param
    path = edited_solution(
        course, TENSORS, tmp_path_factory.mktemp(variant.id) / "02_tensors.ipynb", variant.old, variant.new
    )
    return variant, grade(course, path, cell_timeout_s=variant.cell_timeout_s)


def test_variant_loses_exactly_its_points(variant_result: tuple[Variant, SubmissionResult]) -> None:
    variant, result = variant_result
    assert result.status == "graded", result.reason
    assert result.score == result.max_score - variant.lost
    lost_in = {c.question for c in result.checks if c.status != "passed"}
    assert lost_in == {variant.question}


def test_variant_message_names_the_problem(variant_result: tuple[Variant, SubmissionResult]) -> None:
    variant, result = variant_result
    messages = [c.message for c in result.checks if c.status != "passed"]
    assert any(variant.says in m for m in messages), messages


def test_later_cells_still_run_after_an_error_or_timeout(
    variant_result: tuple[Variant, SubmissionResult],
) -> None:
    variant, result = variant_result
    assert result.execution is not None
    assert result.execution.cells_run == result.execution.code_cells
    if variant.id == "cell-raises":
        assert [(e.kind, e.exception) for e in result.execution.cell_errors] == [("error", "ValueError")]
    if variant.id == "infinite-loop":
        assert [e.kind for e in result.execution.cell_errors][:1] == ["timeout"]


def test_hidden_messages_do_not_reveal_expected_values(
    variant_result: tuple[Variant, SubmissionResult],
) -> None:
    _, result = variant_result
    for check in result.checks:
        if check.visibility == "hidden" and check.status != "passed":
            assert "tensor(" not in check.message and "\nassert" not in check.message, check.message


def test_solution_file_untouched(course: Course) -> None:
    assert "torch.ones(3, 4, dtype=torch.float64)" in course.get(TENSORS).solution.read_text()
    assert Path(course.get(TENSORS).solution).is_file()
