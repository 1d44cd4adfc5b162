"""05_transfer_learning: the reference scores full marks, the blank template
zero, and each hand-written wrong answer loses exactly its points. The
decisive checks measure the trained model on FashionMNIST pictures the
notebook never sees and compare its frozen layers with the pretrained weights."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from autograder.course import Course
from autograder.results import SubmissionResult
from tests.conftest import grade

pytestmark = pytest.mark.slow

TRANSFER_LEARNING = "05_transfer_learning"
MAX_SCORE = 13

FREEZE = "for parameter in model.parameters():\n    parameter.requires_grad = False\n"
HEAD_OPTIMIZER = "torch.optim.Adam(model.fc.parameters(), lr=0.01)"
STEP = "        loss = loss_fn(model(images), labels)\n"


@dataclass(frozen=True)
class Variant:
    id: str
    edits: tuple[tuple[str, str], ...]  # (old, new): each old occurs exactly once in the reference's code
    lost: dict[str, float]  # question -> points lost
    says: str  # a piece of the failing message the student reads
    cell_errors: tuple[str, ...] = field(default=())  # exceptions the edited notebook raises


VARIANTS = [
    Variant(
        "head-not-replaced",
        (("model.fc = nn.Linear(model.fc.in_features, 10)\n", ""),),
        {"q2": 1, "q3": 3, "q4": 4},
        "`model.fc` should map 512 features to 10 classes",
        cell_errors=("RuntimeError", "ValueError"),  # backward() finds nothing to train; the plot, no losses
    ),
    Variant(
        "trained-end-to-end",
        ((FREEZE, ""), (HEAD_OPTIMIZER, "torch.optim.Adam(model.parameters(), lr=0.01)")),
        {"q2": 3},
        "should be frozen",
    ),
    Variant(
        "shuffled-labels",
        ((STEP, "        labels = labels[torch.randperm(len(labels), device=labels.device)]\n" + STEP),),
        {"q3": 1, "q4": 4},
        "never saw correctly",
    ),
    Variant("never-trained", (("EPOCHS = 3", "EPOCHS = 0"),), {"q3": 3, "q4": 4}, "one per epoch"),
    Variant(
        "normalized-with-half",
        (
            (
                "v2.Normalize(mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225])",
                "v2.Normalize(mean=[0.5, 0.5, 0.5], std=[0.5, 0.5, 0.5])",
            ),
        ),
        {"q1": 1},
        "`preprocess` does not give what the ImageNet weights expect",
    ),
]


def variant_notebook(course: Course, path: Path, edits: tuple[tuple[str, str], ...]) -> Path:
    """The reference notebook with each `old` replaced by its `new` (code cells only)."""
    document = json.loads(course.get(TRANSFER_LEARNING).solution.read_text(encoding="utf-8"))
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
    path = variant_notebook(course, tmp_path_factory.mktemp(variant.id) / f"{TRANSFER_LEARNING}.ipynb", variant.edits)
    return variant, grade(course, path, TRANSFER_LEARNING)


def failing(result: SubmissionResult) -> list[tuple[str, str]]:
    return [(c.name, c.message) for c in result.checks if c.status != "passed"]


def test_reference_scores_full_marks(graded_solutions: dict[str, SubmissionResult]) -> None:
    result = graded_solutions[TRANSFER_LEARNING]
    assert result.status == "graded", result.reason
    assert result.score == result.max_score == MAX_SCORE, failing(result)
    assert result.execution is not None and not result.execution.cell_errors


def test_template_scores_zero(graded_templates: dict[str, SubmissionResult]) -> None:
    result = graded_templates[TRANSFER_LEARNING]
    assert result.status == "graded", result.reason
    assert result.score == 0 and result.max_score == MAX_SCORE
    assert all(c.status == "failed" and c.message for c in result.checks), [(c.name, c.status) for c in result.checks]


def test_variant_loses_exactly_its_points(variant_result: tuple[Variant, SubmissionResult]) -> None:
    variant, result = variant_result
    assert result.status == "graded", result.reason
    assert result.execution is not None
    assert tuple(e.exception for e in result.execution.cell_errors) == variant.cell_errors
    lost = {q.question: q.max_score - q.score for q in result.questions if q.score < q.max_score}
    assert lost == variant.lost, failing(result)


def test_variant_message_names_the_problem(variant_result: tuple[Variant, SubmissionResult]) -> None:
    variant, result = variant_result
    messages = [c.message for c in result.checks if c.status != "passed"]
    assert any(variant.says in m for m in messages), messages


def test_hidden_messages_do_not_reveal_expected_values(variant_result: tuple[Variant, SubmissionResult]) -> None:
    _, result = variant_result
    for check in result.checks:
        if check.visibility == "hidden" and check.status != "passed":
            assert "tensor(" not in check.message and "\nassert" not in check.message, check.message
