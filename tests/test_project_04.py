"""project_04 (The Model Lineup): the reference scores full marks and the whole
bonus, the blank template and an empty notebook score zero, and hand-written
wrong answers lose exactly their points (tests/harness.py).

Each grading runs three CNNs over 60 images and a fine-tune on 300 on the CPU
(one to three minutes on two cores), so each wrong variant carries several
independent mistakes, each in a different question: the per-question losses
still show exactly what each one costs. One variant's mistakes are in the
values, the other's in the figures only (each figure shows something other
than the values it should). The notebooks read the data at /kaggle/input/...,
which only the sandbox provides, so the grading tests need root (`sandbox`)."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

from autograder.course import Course
from autograder.figures import Bar
from tests.conftest import ROOT, grade, write_notebook
from tests.harness import AssignmentTests, Variant, points_by_question

PROJECT = "project_04"
FEATURE_PLOT_TITLE = 'axis.set_title("ResNet18 features of the 60 scenes (PCA)")'  # the end of Task 5's cell
MOBILENET_RESULTS = "mobilenet_results = predict_all(mobilenet, mobile_preproc)"
FREEZE = "for parameter in ft_model.parameters():\n    parameter.requires_grad = False\n"
BOXES = "axis.boxplot([top1[label] for label in LABELS], tick_labels=LABELS)"
SECOND_BEST = '[[r["top5_probs"][1] for r in resnet_results if r["true_label"] == label] for label in LABELS]'
GRID_TOP3 = 'zip(results[index]["top5_classes"][:3], results[index]["top5_probs"][:3])'
LATENCY_BARS = "axis.bar(list(latencies), list(latencies.values()),"
PCA_POINTS = "points = PCA(n_components=2).fit_transform(feature_matrix)"


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
            {"task2": 3, "task3": 3, "task5": 2},
            (
                "is in training mode",
                "should hold 60 results",
                "should have shape (60, 512)",
                "backbone should be frozen",
            ),
            bonus_lost={"stretch": 2},
        ),
        # Five figures that show something other than the notebook's values (which stay right).
        Variant(
            "five-wrong-figures",
            (
                ("axis.set_title(label)\n", "axis.set_title(LABELS[LABELS.index(label) - 1])\n"),  # titles shifted
                (BOXES, BOXES.replace("[top1[label] for label in LABELS]", SECOND_BEST)),  # runner-up probabilities
                (GRID_TOP3, GRID_TOP3.replace("[:3]", "[:1]")),  # each model's top 1 only
                (LATENCY_BARS, "axis.bar(list(latencies), [0.5, 0.25, 0.75],"),  # made-up latencies
                (PCA_POINTS, "points = np.random.default_rng(0).normal(size=(len(feature_matrix), 2))"),
            ),
            {"task1": 1, "task2": 1, "task3": 1, "task4": 1, "task5": 1},
            (
                "should name the class of its image",
                "is not the top-1 probabilities of that class",
                "should name the top 3 classes of each of the three models",
                "are not the latencies your notebook measured",
                "are not the PCA of `feature_matrix`",
            ),
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


# ---- the figure checks' rules, without a kernel --------------------------------


@pytest.fixture(scope="module")
def figure_checks(request: pytest.FixtureRequest) -> ModuleType:
    """solutions/project_04/hidden_checks/test_figures.py, loaded as the grader loads a check file
    (with the two marks the grader registers for check files)."""
    request.config.addinivalue_line("markers", "question(id): the question this check belongs to")
    request.config.addinivalue_line("markers", "points(n, bonus=False): points this check is worth")
    path = ROOT / "solutions" / PROJECT / "hidden_checks" / "test_figures.py"
    spec = importlib.util.spec_from_file_location("project_04_figure_checks", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_scatter_is_the_pca_whatever_its_signs_and_scale(figure_checks: ModuleType) -> None:
    rng = np.random.default_rng(0)
    features = rng.normal(size=(60, 512)) + np.repeat(rng.normal(scale=3, size=(6, 512)), 10, axis=0)
    expected = figure_checks.standardised(figure_checks.principal_components(features))
    order = rng.permutation(60)
    plotted = figure_checks.principal_components(features.astype(np.float32))[order] * [-1.0, 40.0]
    distance, rows = figure_checks.nearest_rows(figure_checks.standardised(plotted), expected)
    assert distance <= figure_checks.SCATTER_TOLERANCE and list(rows) == list(order)
    distance, _ = figure_checks.nearest_rows(figure_checks.standardised(rng.normal(size=(60, 2))), expected)
    assert distance > 5 * figure_checks.SCATTER_TOLERANCE


def test_latency_bars_are_matched_by_their_labels_or_as_three_numbers(figure_checks: ModuleType) -> None:
    measured = {"resnet_ms": 41.37, "mobile_ms": 9.82, "effnet_ms": 55.04}

    def bars(labels: list[str], lengths: list[float]) -> list[Bar]:
        return [
            Bar(length, float(i), label, False) for i, (label, length) in enumerate(zip(labels, lengths, strict=True))
        ]

    named = ["ResNet18", "MobileNetV3-Small", "EfficientNet-B0"]
    assert figure_checks.bars_match(bars(named, [41.0, 10.0, 55.0]), measured)  # rounded to whole ms
    assert not figure_checks.bars_match(bars(named, [9.82, 41.37, 55.04]), measured)  # under the wrong names
    assert figure_checks.bars_match(bars(["a", "b", "c"], [55.04, 9.82, 41.37]), measured)
    assert not figure_checks.bars_match(bars(named, [0.5, 0.25, 0.75]), measured)
