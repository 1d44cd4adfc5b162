"""04_cnn_inference: the reference scores full marks, the blank template zero,
the weights' own preprocessing is as right as the lesson's chain, and each
hand-written wrong answer loses exactly its points. The hidden checks compare
with a trusted run of the same weights on pictures the notebook never sees."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pytest

from autograder.course import Course
from autograder.results import SubmissionResult
from tests.conftest import grade

pytestmark = pytest.mark.slow

CNN_INFERENCE = "04_cnn_inference"
MAX_SCORE = 15

LESSON_NORMALIZE = "v2.Normalize(mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225])"
PREDICT_LOOP = 'for image, scene in sample_images:\n    print(f"{scene:10s}"'


@dataclass(frozen=True)
class Variant:
    id: str
    edits: tuple[tuple[str, str], ...]  # (old, new): each old occurs exactly once in the reference's code
    lost: dict[str, float]  # question -> points lost
    says: str = ""  # a piece of the failing message the student reads


VARIANTS = [
    Variant(
        "weights-own-transforms",  # right: the other documented pipeline
        (
            ("# The lesson's chain; `preprocess = weights.transforms()` would be equally right.\n", ""),
            ("preprocess = v2.Compose(", "preprocess = weights.transforms()\n_unused = v2.Compose("),
        ),
        {},
    ),
    Variant(
        "normalized-with-half",
        ((LESSON_NORMALIZE, "v2.Normalize(mean=[0.5, 0.5, 0.5], std=[0.5, 0.5, 0.5])"),),
        {"q2": 2, "q4": 3},
        "`preprocess` does not give what the ImageNet weights expect",
    ),
    Variant(
        "answers-kept-for-the-samples",
        (
            (
                PREDICT_LOOP,
                "_kept = {image.tobytes(): predict_topk(image) for image, _ in sample_images}\n\n\n"
                "def predict_topk(image, k=5):\n"
                "    return _kept.get(image.tobytes(), _kept[sample_images[0][0].tobytes()])[:k]\n\n\n" + PREDICT_LOOP,
            ),
        ),
        {"q4": 4},
        "pictures it never saw",
    ),
    Variant(
        "returns-logits",
        (("probabilities = torch.softmax(logits[0], dim=0)", "probabilities = logits[0]"),),
        {"q4": 2},
        "not raw logits",
    ),
    Variant(
        "left-in-training-mode",
        (("model.eval()", "model.train()"),),
        {"q1": 1, "q4": 5},
        "evaluation mode",
    ),
    Variant(
        "best-last",
        (("for probability, index in pairs]", "for probability, index in pairs][::-1]"),),
        {"q4": 1},
        "best first",
    ),
]


def variant_notebook(course: Course, path: Path, edits: tuple[tuple[str, str], ...]) -> Path:
    """The reference notebook with each `old` replaced by its `new` (code cells only)."""
    document = json.loads(course.get(CNN_INFERENCE).solution.read_text(encoding="utf-8"))
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
    path = variant_notebook(course, tmp_path_factory.mktemp(variant.id) / f"{CNN_INFERENCE}.ipynb", variant.edits)
    return variant, grade(course, path, CNN_INFERENCE)


def failing(result: SubmissionResult) -> list[tuple[str, str]]:
    return [(c.name, c.message) for c in result.checks if c.status != "passed"]


def test_reference_scores_full_marks(graded_solutions: dict[str, SubmissionResult]) -> None:
    result = graded_solutions[CNN_INFERENCE]
    assert result.status == "graded", result.reason
    assert result.score == result.max_score == MAX_SCORE, failing(result)
    assert result.execution is not None and not result.execution.cell_errors


def test_template_scores_zero(graded_templates: dict[str, SubmissionResult]) -> None:
    result = graded_templates[CNN_INFERENCE]
    assert result.status == "graded", result.reason
    assert result.score == 0 and result.max_score == MAX_SCORE
    assert all(c.status == "failed" and c.message for c in result.checks), [(c.name, c.status) for c in result.checks]


def test_variant_loses_exactly_its_points(variant_result: tuple[Variant, SubmissionResult]) -> None:
    variant, result = variant_result
    assert result.status == "graded", result.reason
    assert result.execution is not None and not result.execution.cell_errors
    lost = {q.question: q.max_score - q.score for q in result.questions if q.score < q.max_score}
    assert lost == variant.lost, failing(result)


def test_variant_message_names_the_problem(variant_result: tuple[Variant, SubmissionResult]) -> None:
    variant, result = variant_result
    messages = [c.message for c in result.checks if c.status != "passed"]
    assert not variant.lost or any(variant.says in m for m in messages), messages


def test_hidden_messages_do_not_reveal_expected_values(variant_result: tuple[Variant, SubmissionResult]) -> None:
    _, result = variant_result
    for check in result.checks:
        if check.visibility == "hidden" and check.status != "passed":
            assert "tensor(" not in check.message and "\nassert" not in check.message, check.message
