"""project_04 (The Model Lineup): the reference scores full marks and the whole
bonus, the blank template and an empty notebook score zero, and hand-written
wrong answers lose exactly their points (tests/harness.py).

Each grading runs three CNNs over 60 images and a fine-tune on 300 on the CPU
(one to three minutes on two cores), so the wrong variant carries four
independent mistakes, each in a different question: the per-question losses
still show exactly what each one costs. The notebooks read the data at
/kaggle/input/..., which only the sandbox provides, so the grading tests need
root (`sandbox`)."""

from __future__ import annotations

from pathlib import Path

import pytest

from autograder.course import Course
from tests.conftest import grade, write_notebook
from tests.harness import AssignmentTests, Variant, points_by_question

PROJECT = "project_04"
FEATURE_PLOT_TITLE = 'axis.set_title("ResNet18 features of the 60 scenes (PCA)")'  # the end of Task 5's cell
MOBILENET_RESULTS = "mobilenet_results = predict_all(mobilenet, mobile_preproc)"
FREEZE = "for parameter in ft_model.parameters():\n    parameter.requires_grad = False\n"


class TestProject04(AssignmentTests):
    assignment = PROJECT
    variants = (
        # Four mistakes, each in its own question; the per-question losses show what each one costs.
        Variant(
            "four-mistakes",
            (
                # switched to training mode after its results were taken: inference on new images is then wrong
                (FEATURE_PLOT_TITLE, FEATURE_PLOT_TITLE + "\nresnet.train()"),
                (MOBILENET_RESULTS, MOBILENET_RESULTS + "[:59]"),  # one result short
                ("feature_extractor.fc = nn.Identity()\n", ""),  # 1000 ImageNet logits, not 512 features
                (FREEZE, ""),  # nothing frozen
            ),
            {"task2": 4, "task3": 3, "task5": 3},
            (
                "is in training mode",
                "should hold 60 results",
                "should have shape (60, 512)",
                "backbone should be frozen",
            ),
            bonus_lost={"stretch": 2},
        ),
    )


@pytest.mark.slow
@pytest.mark.sandbox
def test_empty_notebook_scores_zero(course: Course, tmp_path: Path) -> None:
    result = grade(course, write_notebook(tmp_path / "empty.ipynb"), PROJECT)
    assert result.status == "graded", result.reason
    scored = sum(points for points, _ in points_by_question(course.get(PROJECT)).values())
    assert result.score == 0 and result.bonus == 0 and result.max_score == scored
    assert all(c.status == "failed" and c.message for c in result.checks), [(c.name, c.status) for c in result.checks]
    assert any("`image_set` is not defined in the notebook" in c.message for c in result.checks)
