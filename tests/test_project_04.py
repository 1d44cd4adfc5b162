"""project_04 (The Model Lineup): the reference scores full marks and the whole
bonus, an empty notebook scores zero, and hand-written wrong answers lose
exactly their points.

Each grading runs three CNNs over 60 images and a fine-tune on 300 on the CPU
(one to three minutes on two cores), so the wrong variant carries four
independent mistakes, each in a different question: the per-question losses
still show exactly what each one costs. The notebooks read the data at /kaggle/input/..., which only the
sandbox provides, so these tests need root."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pytest

from autograder.course import Course
from autograder.isolation import sandbox_available
from autograder.results import SubmissionResult
from tests.conftest import grade, write_notebook

pytestmark = [
    pytest.mark.slow,
    pytest.mark.sandbox,
    pytest.mark.skipif(not sandbox_available(), reason="the notebook's /kaggle/input paths exist only in the sandbox"),
]

PROJECT = "project_04"
MAX_SCORE = 29
BONUS_MAX = 3
FEATURE_PLOT_TITLE = 'axis.set_title("ResNet18 features of the 60 scenes (PCA)")'  # the end of Task 5's cell


@dataclass(frozen=True)
class Variant:
    id: str
    edits: tuple[tuple[str, str], ...]  # (old, new): each old occurs exactly once in the reference's code
    lost: dict[str, float]  # question -> points lost
    bonus_lost: dict[str, float]  # question -> bonus points lost
    says: tuple[str, ...]  # a piece of a failing message the student reads, per mistake


VARIANTS = [
    # Four mistakes, each in its own question; the per-question losses show what each one costs.
    Variant(
        "four-mistakes",
        (
            # switched to training mode after its results were taken: inference on new images is then wrong
            (FEATURE_PLOT_TITLE, FEATURE_PLOT_TITLE + "\nresnet.train()"),
            # one result short
            (
                "mobilenet_results = predict_all(mobilenet, mobile_preproc)",
                "mobilenet_results = predict_all(mobilenet, mobile_preproc)[:59]",
            ),
            ("feature_extractor.fc = nn.Identity()\n", ""),  # 1000 ImageNet logits, not 512 features
            ("for parameter in ft_model.parameters():\n    parameter.requires_grad = False\n", ""),  # nothing frozen
        ),
        {"task2": 4, "task3": 3, "task5": 3},
        {"stretch": 2},
        ("is in training mode", "should hold 60 results", "should have shape (60, 512)", "backbone should be frozen"),
    ),
]


def variant_notebook(course: Course, path: Path, edits: tuple[tuple[str, str], ...]) -> Path:
    """The reference notebook with each `old` replaced by its `new` (code cells only)."""
    document = json.loads(course.get(PROJECT).solution.read_text(encoding="utf-8"))
    code = [cell for cell in document["cells"] if cell["cell_type"] == "code"]
    for old, new in edits:
        sources = ["".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"] for cell in code]
        hits = [i for i, source in enumerate(sources) if old in source]
        assert len(hits) == 1 and sources[hits[0]].count(old) == 1, f"{old!r} should occur exactly once"
        code[hits[0]]["source"] = sources[hits[0]].replace(old, new)
    path.write_text(json.dumps(document), encoding="utf-8")
    return path


def failing(result: SubmissionResult) -> list[tuple[str, str]]:
    return [(c.name, c.message) for c in result.checks if c.status != "passed"]


@pytest.fixture(scope="module", params=VARIANTS, ids=lambda v: v.id)
def variant_result(
    request: pytest.FixtureRequest, course: Course, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Variant, SubmissionResult]:
    variant: Variant = request.param
    path = variant_notebook(course, tmp_path_factory.mktemp("variant") / f"{PROJECT}.ipynb", variant.edits)
    return variant, grade(course, path, PROJECT)


def test_reference_scores_full_marks_and_bonus(graded_solutions: dict[str, SubmissionResult]) -> None:
    result = graded_solutions[PROJECT]
    assert result.status == "graded", result.reason
    assert result.score == result.max_score == MAX_SCORE, failing(result)
    assert result.bonus == result.bonus_max == BONUS_MAX, failing(result)
    assert result.execution is not None and not result.execution.cell_errors
    assert result.answers == dict.fromkeys(["task1", "task2", "task3", "task4", "task5", "stretch"], True)


def test_template_scores_zero(graded_templates: dict[str, SubmissionResult]) -> None:
    result = graded_templates[PROJECT]
    assert result.status == "graded", result.reason
    assert result.score == 0 and result.max_score == MAX_SCORE and result.bonus == 0
    assert all(c.status == "failed" and c.message for c in result.checks), [(c.name, c.status) for c in result.checks]
    assert not any(result.answers.values()), result.answers


def test_empty_notebook_scores_zero(course: Course, tmp_path: Path) -> None:
    result = grade(course, write_notebook(tmp_path / "empty.ipynb"), PROJECT)
    assert result.status == "graded", result.reason
    assert result.score == 0 and result.bonus == 0 and result.max_score == MAX_SCORE
    assert all(c.status == "failed" and c.message for c in result.checks), [(c.name, c.status) for c in result.checks]
    assert any("`image_set` is not defined in the notebook" in c.message for c in result.checks)


def test_variant_loses_exactly_its_points(variant_result: tuple[Variant, SubmissionResult]) -> None:
    variant, result = variant_result
    assert result.status == "graded", result.reason
    assert result.execution is not None and not result.execution.cell_errors
    lost = {q.question: q.max_score - q.score for q in result.questions if q.score < q.max_score}
    bonus_lost = {q.question: q.bonus_max - q.bonus for q in result.questions if q.bonus < q.bonus_max}
    assert (lost, bonus_lost) == (variant.lost, variant.bonus_lost), failing(result)


def test_variant_messages_name_the_problems(variant_result: tuple[Variant, SubmissionResult]) -> None:
    variant, result = variant_result
    messages = [c.message for c in result.checks if c.status != "passed"]
    for piece in variant.says:
        assert any(piece in m for m in messages), (piece, messages)


def test_hidden_messages_do_not_reveal_expected_values(variant_result: tuple[Variant, SubmissionResult]) -> None:
    _, result = variant_result
    for check in result.checks:
        if check.visibility == "hidden" and check.status != "passed":
            assert "tensor(" not in check.message and "\nassert" not in check.message, check.message
