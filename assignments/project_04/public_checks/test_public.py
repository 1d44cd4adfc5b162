"""Public checks for project_04: the names, shapes and files the tasks ask for.

Students run these with `autograder check`; grading runs them too, together
with hidden checks that compare the models and their outputs with the
grader's own runs of the pretrained networks, and what each figure shows with
the notebook's own values (hidden_checks/test_figures.py).
"""

import itertools
import math

import pytest

from autograder.checkkit import ModuleSnapshot, Opaque
from autograder.reference import as_number, figure_has_content, read_figure

question, points = pytest.mark.question, pytest.mark.points

SCENES = ["buildings", "forest", "glacier", "mountain", "sea", "street"]
RESULT_KEYS = {"true_label", "top1_class", "top1_prob", "top5_classes", "top5_probs"}
MAX_LATENCY_MS = 60_000  # a minute per image: past this the number is not a latency

# For each entry of image_set: is it an (image, label) pair, and which label (data only, no images).
ENTRY_KINDS = """
from PIL import Image as _Image
def _kind(_item):
    if isinstance(_item, (tuple, list)) and len(_item) == 2 and isinstance(_item[0], _Image.Image):
        return ("pair", _item[1] if isinstance(_item[1], str) else repr(_item[1]))
    return (type(_item).__name__, None)
result = [_kind(_item) for _item in image_set] if isinstance(image_set, (list, tuple)) else type(image_set).__name__
"""


def kind_of(value):
    """The type name a student would recognise, also for values that came back as descriptions."""
    if isinstance(value, (Opaque, ModuleSnapshot)):
        return value.type.rsplit(".", 1)[-1]
    return type(value).__name__


def assert_results_layout(results, name):
    assert isinstance(results, list), f"`{name}` should be a list of dicts, not {kind_of(results)}"
    assert len(results) == 60, f"`{name}` should hold 60 results, one per image of `image_set`, not {len(results)}"
    for index, entry in enumerate(results):
        where = f"`{name}[{index}]`"
        assert isinstance(entry, dict), f"{where} should be a dict, not {kind_of(entry)}"
        missing = sorted(RESULT_KEYS - set(entry))
        assert not missing, f"{where} has no key(s) {', '.join(repr(k) for k in missing)}"
        assert entry["true_label"] in SCENES, f"{where}['true_label'] should be one of the six scene labels"
        classes, probabilities = entry["top5_classes"], entry["top5_probs"]
        assert isinstance(classes, (list, tuple)) and len(classes) == 5, f"{where}['top5_classes'] should list 5 names"
        assert all(isinstance(c, str) for c in classes), f"{where}['top5_classes'] should hold class names (strings)"
        assert isinstance(probabilities, (list, tuple)) and len(probabilities) == 5, (
            f"{where}['top5_probs'] should list 5 probabilities"
        )
        numbers = [as_number(p) for p in probabilities]
        assert all(n is not None and 0.0 <= n <= 1.0 for n in numbers), (
            f"{where}['top5_probs'] should hold probabilities between 0 and 1"
        )
        assert all(a >= b - 1e-6 for a, b in itertools.pairwise(numbers)), f"{where}['top5_probs'] should be best first"
        assert entry["top1_class"] == classes[0], f"{where}['top1_class'] should be the first of its top 5"
        top1 = as_number(entry["top1_prob"])
        assert top1 is not None and abs(top1 - numbers[0]) < 1e-6, (
            f"{where}['top1_prob'] should be the first of its top-5 probabilities"
        )


def assert_figure(workdir, relative):
    figure = read_figure(workdir, relative)
    assert figure.width > 0 and figure.height > 0, f"`{relative}` is an empty image"
    return figure


@question("task1")
@points(1)
def test_labels_are_the_six_scenes(student):
    labels = student.fetch("LABELS")
    assert isinstance(labels, (list, tuple)), "`LABELS` should be a list of the six scene names"
    assert list(labels) == SCENES, "`LABELS` should be the six scene classes in alphabetical order"


@question("task1")
@points(1)
def test_image_set_holds_ten_of_each(student):
    kinds = student.probe(ENTRY_KINDS)
    assert isinstance(kinds, list), f"`image_set` should be a list of (image, label) pairs, not {kinds}"
    assert len(kinds) == 60, f"`image_set` should hold 60 (image, label) pairs, not {len(kinds)}"
    odd = [index for index, (kind, _) in enumerate(kinds) if kind != "pair"]
    assert not odd, f"`image_set[{odd[0]}]` is not a (PIL image, label) pair"
    labels = [label for _, label in kinds]
    counts = {scene: labels.count(scene) for scene in SCENES}
    assert sum(counts.values()) == 60, "every label in `image_set` should be one of the six scene names"
    assert set(counts.values()) == {10}, f"`image_set` should hold 10 images of each class, not {counts}"


@question("task1")
@points(1)
def test_dataset_sample_figure(workdir):
    figure = assert_figure(workdir, "outputs/dataset_sample.png")
    assert figure_has_content(figure), "`outputs/dataset_sample.png` is blank"
    assert figure.width > figure.height, "`outputs/dataset_sample.png` should be a 2x3 grid (wider than tall)"


@question("task2")
@points(1)
def test_resnet_results_layout(student):
    assert_results_layout(student.fetch("resnet_results"), "resnet_results")


@question("task2")
@points(1)
def test_confidence_figure(workdir):
    assert_figure(workdir, "outputs/resnet18_confidence_by_class.png")


@question("task3")
@points(1)
def test_mobilenet_and_effnet_results_layout(student):
    assert_results_layout(student.fetch("mobilenet_results"), "mobilenet_results")
    assert_results_layout(student.fetch("effnet_results"), "effnet_results")


@question("task3")
@points(1)
def test_comparison_grid_figure(workdir):
    assert_figure(workdir, "outputs/model_comparison_grid.png")


@question("task4")
@points(1)
def test_latencies_are_positive_numbers(student):
    for name in ("resnet_ms", "mobile_ms", "effnet_ms"):
        fetched = student.fetch(name)
        value = as_number(fetched)
        assert value is not None, f"`{name}` should be a number (milliseconds per image), not {kind_of(fetched)}"
        assert math.isfinite(value) and 0 < value < MAX_LATENCY_MS, (
            f"`{name}` should be a positive number of milliseconds per image, not {value:g}"
        )


@question("task4")
@points(1)
def test_speed_figure(workdir):
    assert_figure(workdir, "outputs/inference_speed.png")


@question("task5")
@points(1)
def test_feature_matrix_shape(student):
    matrix = student.fetch("feature_matrix")
    shape = tuple(getattr(matrix, "shape", ()))
    assert shape, f"`feature_matrix` should be a NumPy array or tensor, not {kind_of(matrix)}"
    assert shape == (60, 512), f"`feature_matrix` should have shape (60, 512), one row per image, not {shape}"


@question("task5")
@points(1)
def test_feature_embeddings_figure(workdir):
    assert_figure(workdir, "outputs/feature_embeddings.png")
