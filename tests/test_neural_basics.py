"""01_neural_basics: the reference scores full marks, the blank template zero,
and each hand-written wrong answer loses exactly its points."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from autograder.course import Course
from autograder.results import SubmissionResult
from tests.conftest import edited_solution, grade

pytestmark = pytest.mark.slow

NEURAL_BASICS = "01_neural_basics"


@dataclass(frozen=True)
class Variant:
    id: str
    old: str
    new: str
    lost: dict[str, float]  # question -> points lost
    says: str  # a piece of the failing message the student reads


VARIANTS = [
    Variant(
        "sigmoid-sign-flipped",
        "return 1 / (1 + torch.exp(-z))",
        "return 1 / (1 + torch.exp(z))",
        {"q2": 2},
        "`sigmoid` gives wrong values",
    ),
    Variant(
        "no-relu-between-layers",
        "hidden = relu(x @ W1 + b1)",
        "hidden = x @ W1 + b1",
        {"q3": 3},
        "`two_layer_forward` gives wrong values",
    ),
    Variant(
        "mse-divides-by-rows",
        "return ((pred - target) ** 2).mean()",
        "return ((pred - target) ** 2).sum() / len(pred)",
        {"q4": 1},
        "`mse` gives wrong values",
    ),
    Variant(
        "step-ignores-the-gradient",
        "return weights - lr * weights.grad",
        "return (weights - lr * weights).detach()",
        {"q5": 3},
        "`gradient_step` gives wrong values",
    ),
    Variant(
        "step-keeps-tracking-gradients",
        "    with torch.no_grad():\n        return weights - lr * weights.grad",
        "    return weights - lr * weights.grad",
        {"q5": 1},
        "should not track gradients",
    ),
    Variant(
        "step-changes-its-argument",
        "weights = w.detach().clone().requires_grad_(True)\n    loss = mse(x @ weights, y)\n    loss.backward()\n"
        "    with torch.no_grad():\n        return weights - lr * weights.grad",
        "w.requires_grad_(True)\n    mse(x @ w, y).backward()\n    with torch.no_grad():\n        w -= lr * w.grad\n"
        "    return w.detach()",
        {"q5": 1},
        "changed the weights it was given",
    ),
]


@pytest.fixture(scope="module", params=VARIANTS, ids=lambda v: v.id)
def variant_result(
    request: pytest.FixtureRequest, course: Course, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Variant, SubmissionResult]:
    variant: Variant = request.param
    path = tmp_path_factory.mktemp(variant.id) / f"{NEURAL_BASICS}.ipynb"
    edited_solution(course, NEURAL_BASICS, path, variant.old, variant.new)
    return variant, grade(course, path, NEURAL_BASICS)


def test_reference_scores_full_marks(graded_solutions: dict[str, SubmissionResult]) -> None:
    result = graded_solutions[NEURAL_BASICS]
    assert result.status == "graded", result.reason
    assert result.score == result.max_score == 15, [(c.name, c.message) for c in result.checks if c.status != "passed"]


def test_template_scores_zero(graded_templates: dict[str, SubmissionResult]) -> None:
    result = graded_templates[NEURAL_BASICS]
    assert result.status == "graded", result.reason
    assert result.score == 0 and result.max_score == 15
    assert all(c.status == "failed" and c.message for c in result.checks), [(c.name, c.status) for c in result.checks]


def test_variant_loses_exactly_its_points(variant_result: tuple[Variant, SubmissionResult]) -> None:
    variant, result = variant_result
    assert result.status == "graded", result.reason
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
