"""03_first_network: the reference scores full marks, the blank template zero,
and each hand-written wrong answer loses exactly its points. The decisive
check measures the trained model on fresh circles the grader draws itself."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pytest

from autograder.course import Course
from autograder.results import SubmissionResult
from tests.conftest import grade

pytestmark = pytest.mark.slow

FIRST_NETWORK = "03_first_network"


@dataclass(frozen=True)
class Variant:
    id: str
    edits: tuple[tuple[str, str], ...]  # (old, new): each old occurs exactly once in the reference
    lost: dict[str, float]  # question -> points lost
    says: str  # a piece of the failing message the student reads


VARIANTS = [
    Variant("zero-epochs", (("EPOCHS = 500", "EPOCHS = 0"),), {"q4": 4, "q5": 4}, "should hold 500 numbers"),
    Variant(
        "fabricated-loss-list",
        (
            (
                "fig, (loss_axes, acc_axes)",
                "train_loss_history = [0.7 * 0.99**epoch for epoch in range(EPOCHS)]\nfig, (loss_axes, acc_axes)",
            ),
        ),
        {"q4": 1},
        "is not the loss of the trained `model`",
    ),
    Variant(
        "shuffled-labels",
        (
            (
                "y_test = torch.tensor(y_test_np, dtype=torch.long, device=device)\n",
                "y_test = torch.tensor(y_test_np, dtype=torch.long, device=device)\n"
                "y_train = y_train[torch.randperm(len(y_train), device=device)]  # the labels no longer match\n",
            ),
        ),
        {"q1": 1, "q4": 1, "q5": 4},
        "fresh circles",
    ),
    Variant(
        "four-hidden-units",
        (("nn.Linear(2, 8)", "nn.Linear(2, 4)"), ("nn.Linear(8, 2)", "nn.Linear(4, 2)")),
        {"q2": 3},
        "Linear(2, 8)",
    ),
    Variant("unstratified-split", ((", stratify=labels", ""),), {"q1": 1}, "is not the lesson's split"),
]


def variant_notebook(course: Course, path: Path, edits: tuple[tuple[str, str], ...]) -> Path:
    """The reference notebook with each `old` replaced by its `new` (code cells only)."""
    document = json.loads(course.get(FIRST_NETWORK).solution.read_text(encoding="utf-8"))
    code = [cell for cell in document["cells"] if cell["cell_type"] == "code"]
    for old, new in edits:
        sources = ["".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"] for cell in code]
        hits = [i for i, source in enumerate(sources) if old in source]
        assert len(hits) == 1 and sources[hits[0]].count(old) == 1, f"{old!r} should occur exactly once"
        code[hits[0]]["source"] = sources[hits[0]].replace(old, new)
    path.write_text(json.dumps(document), encoding="utf-8")
    return path


@pytest.fixture(scope="module", params=VARIANTS, ids=lambda v: v.id)
def variant_result(
    request: pytest.FixtureRequest, course: Course, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Variant, SubmissionResult]:
    variant: Variant = request.param
    path = variant_notebook(course, tmp_path_factory.mktemp(variant.id) / f"{FIRST_NETWORK}.ipynb", variant.edits)
    return variant, grade(course, path, FIRST_NETWORK)


def test_reference_scores_full_marks(graded_solutions: dict[str, SubmissionResult]) -> None:
    result = graded_solutions[FIRST_NETWORK]
    assert result.status == "graded", result.reason
    assert result.score == result.max_score == 18, [(c.name, c.message) for c in result.checks if c.status != "passed"]
    assert result.execution is not None and not result.execution.cell_errors


def test_template_scores_zero(graded_templates: dict[str, SubmissionResult]) -> None:
    result = graded_templates[FIRST_NETWORK]
    assert result.status == "graded", result.reason
    assert result.score == 0 and result.max_score == 18
    assert all(c.status == "failed" and c.message for c in result.checks), [(c.name, c.status) for c in result.checks]


def test_variant_loses_exactly_its_points(variant_result: tuple[Variant, SubmissionResult]) -> None:
    variant, result = variant_result
    assert result.status == "graded", result.reason
    assert result.execution is not None and not result.execution.cell_errors
    lost = {q.question: q.max_score - q.score for q in result.questions if q.score < q.max_score}
    assert lost == variant.lost, [(c.name, c.message) for c in result.checks if c.status != "passed"]


def test_variant_message_names_the_problem(variant_result: tuple[Variant, SubmissionResult]) -> None:
    variant, result = variant_result
    messages = [c.message for c in result.checks if c.status != "passed"]
    assert any(variant.says in m for m in messages), messages


def test_hidden_messages_do_not_reveal_expected_values(variant_result: tuple[Variant, SubmissionResult]) -> None:
    _, result = variant_result
    for check in result.checks:
        if check.visibility == "hidden" and check.status != "passed":
            assert "tensor(" not in check.message and "\nassert" not in check.message, check.message


def test_grading_twice_gives_the_same_result(course: Course, graded_solutions: dict[str, SubmissionResult]) -> None:
    """Seeds are fixed before the first cell: the same notebook trains the same
    network again, to the last recorded loss, and earns the same points."""
    first = graded_solutions[FIRST_NETWORK]
    again = grade(course, course.get(FIRST_NETWORK).solution, FIRST_NETWORK)
    assert [(c.name, c.status, c.score) for c in again.checks] == [(c.name, c.status, c.score) for c in first.checks]
    assert again.curves == first.curves and again.curves["Training loss"]
