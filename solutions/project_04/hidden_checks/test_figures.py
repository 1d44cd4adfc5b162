"""Hidden checks for project_04's figures: what each saved figure shows, read
from the kernel's figure records (`student.figures`, README "Writing
checks"), against the files the notebook opened and the notebook's own values.

A figure is compared with the student's own numbers (`resnet_results`, the
`*_ms` latencies, `feature_matrix`), never with a new model run: whether those
numbers are right is judged by the checks of test_hidden.py. A figure not
drawn with matplotlib has no record and loses these points
(`reference.figure_record` says so).

Which picture is which: `reference.pictures_matching` finds the Intel files
(opened by the notebook before it drew the figure) that a drawn picture may
show, by pixels (its tolerances are written there). Task 1: a picture's class
is its file's class folder. Task 3: an image of `image_set` is matched to its
file the same way, and a picture's results are those at the position of an
image with the same file. A picture that matches no file is reported, never
guessed; when near-duplicates make several files candidates, the class must
be the same for all (Task 1), or the text may fit any of them (Task 3).

Tolerances, and why:
- BOX_TOLERANCE (0.02): median and quartiles of each box against NumPy's
  percentiles of that class's top-1 probabilities (the method matplotlib and
  seaborn use); boxes in percent are accepted.
- LATENCY_TOLERANCE (5 %, at least LATENCY_ROUNDING_MS 0.51 ms): a bar drawn
  from a rounded latency (to whole milliseconds, or two significant digits).
- SCATTER_TOLERANCE (0.05 standard deviations): after each axis of the
  scatter and of the PCA is centred and scaled to unit spread (a sign flip or
  whitening changes nothing), every point lies this close to one of the other
  set's, in both directions. The same matrix in float32 or float64 agrees to
  1e-5; random points miss by more than 0.5.
"""

import re

import numpy as np
import pytest
import torch

from autograder.figures import Picture
from autograder.reference import as_number, figure_record, pictures_matching

question, points = pytest.mark.question, pytest.mark.points

SCENES = ["buildings", "forest", "glacier", "mountain", "sea", "street"]
SCENES_ASSET = "intel-image-classification"  # registered in assignments/assets.toml
LATENCIES = {"resnet_ms": ("resnet",), "mobile_ms": ("mobile",), "effnet_ms": ("efficient", "effnet")}
RESULTS = ("resnet_results", "mobilenet_results", "effnet_results")
IMAGES = 60
PICTURE_SIDE = 64  # as the kernel's recorder keeps a drawn picture
BOX_TOLERANCE = 0.02
LATENCY_TOLERANCE = 0.05
LATENCY_ROUNDING_MS = 0.51
SCATTER_TOLERANCE = 0.05

_PER_RUN = pytest.StashKey[dict]()

# The pixels and label of every (PIL image, label) pair of image_set, in order, at most 64 a side.
IMAGE_SET_PICTURES = """
import numpy as _np
from PIL import Image as _Image
def _picture(_item):
    if isinstance(_item, (tuple, list)) and len(_item) == 2 and isinstance(_item[0], _Image.Image):
        _small = _item[0].convert("RGB")
        _small.thumbnail((inputs["side"], inputs["side"]), _Image.Resampling.BOX)
        return (_np.asarray(_small), _item[1] if isinstance(_item[1], str) else repr(_item[1]))
    return (None, None)
result = [_picture(_item) for _item in image_set] if isinstance(image_set, (list, tuple)) else None
"""


@pytest.fixture
def per_run(request):
    """Values shared by the figure checks of one grading run (one notebook)."""
    return request.config.stash.setdefault(_PER_RUN, {})


def image_set(student, per_run):
    """[(Picture or None, label)] of image_set, in its order, as a figure would record each image."""
    if "image_set" not in per_run:
        entries = student.probe(IMAGE_SET_PICTURES, side=PICTURE_SIDE)
        assert isinstance(entries, list) and entries, "`image_set` should be a list of (PIL image, label) pairs"
        pairs = [e if isinstance(e, (list, tuple)) and len(e) == 2 else (None, None) for e in entries]
        per_run["image_set"] = [(as_picture(pixels), label) for pixels, label in pairs]
    return per_run["image_set"]


def as_picture(pixels):
    side = PICTURE_SIDE
    if not (isinstance(pixels, np.ndarray) and pixels.dtype == np.uint8 and pixels.ndim == 3):
        return None
    if pixels.shape[2] != 3 or not (0 < pixels.shape[0] <= side and 0 < pixels.shape[1] <= side):
        return None
    return Picture(pixels, tuple(pixels.shape))


def where(axes, position):
    cell = axes.cell  # the student's numbers: shown only where they are a grid's
    shown = cell is not None and max(cell) < 24
    return f"picture {position + 1}" + (f" (row {cell[0] + 1}, column {cell[1] + 1})" if shown else "")


# --- text ---


def scenes_named(text):
    return {scene for scene in SCENES if re.search(rf"(?<![a-z]){scene}s?(?![a-z])", text.lower())}


def names(text, name):
    """Whether `text` names an ImageNet class (any case, spaces or underscores)."""
    pattern = re.escape(name.lower()).replace(r"\ ", "[ _]")
    return re.search(rf"(?<![a-z0-9]){pattern}(?![a-z0-9])", text.lower()) is not None


def text_of(record, axes):
    """The words of a picture's axes and of the axes without a picture that sit
    beside it: in its grid row when it is the row's only picture, else in its
    column when it is the column's only picture (a picture with its
    predictions in the next cells)."""
    pictures = record.pictures
    words = [axes.words]
    for other in record.axes:
        if other.images or other.grid is None or axes.grid is None:
            continue
        for start, stop in ((2, 3), (4, 5)):  # the rows, then the columns, each axes spans
            beside = [
                p for p in pictures if p.grid and p.grid[start] < other.grid[stop] and other.grid[start] < p.grid[stop]
            ]
            if beside:
                if len(beside) == 1 and beside[0] is axes:
                    words.append(other.words)
                break
    return "\n".join(words)


# --- Task 1 ---


@question("task1")
@points(1)
def test_dataset_sample_shows_each_class_titled(student, workdir, data):
    relative = "outputs/dataset_sample.png"
    record = figure_record(student, workdir, relative)
    pictures = record.pictures
    assert len(pictures) == len(SCENES), f"`{relative}` should show six pictures, not {len(pictures)}"
    folder = data[SCENES_ASSET].public
    classes = []
    for position, axes in enumerate(pictures):
        files = pictures_matching(axes.images[0], record.opened, within=folder)
        assert files, (
            f"{where(axes, position)} of `{relative}` is not one of the Intel images the notebook opened "
            "before drawing it (show the image as `load_images` opened it)"
        )
        found = {path.parent.name for path in files}
        assert len(found) == 1 and found <= set(SCENES), (
            f"the class of {where(axes, position)} of `{relative}` cannot be told from the files it looks like"
        )
        classes.append(found.pop())
    assert sorted(classes) == SCENES, f"the six pictures of `{relative}` should be one of each class"
    for position, (axes, scene) in enumerate(zip(pictures, classes, strict=True)):
        assert scenes_named(axes.words) == {scene}, (
            f"the title of {where(axes, position)} of `{relative}` should name the class of its image, and only that"
        )


# --- Task 2 ---


def labelled_boxes(axes):
    """(label, box) per box, by position; a box without a label takes its tick's."""
    boxes = sorted(axes.boxes, key=lambda box: box.position)
    ticks = axes.yticklabels if boxes and boxes[0].horizontal else axes.xticklabels
    ticks = [t for t in ticks if t]
    return [(box.label or (ticks[i] if len(ticks) == len(boxes) else ""), box) for i, box in enumerate(boxes)]


def top1_by_class(results):
    """{class: [top-1 probability]} from `resnet_results`; None where its layout is not the one asked for."""
    if not isinstance(results, list):
        return None
    grouped = {}
    for entry in results:
        if not isinstance(entry, dict) or not isinstance(entry.get("true_label"), str):
            return None
        probability = as_number(entry.get("top1_prob"))
        if probability is None:
            return None
        grouped.setdefault(entry["true_label"], []).append(probability)
    return grouped


@question("task2")
@points(1)
def test_confidence_boxes_are_resnet_results(student, workdir):
    relative = "outputs/resnet18_confidence_by_class.png"
    record = figure_record(student, workdir, relative)
    boxes = [pair for axes in record.axes for pair in labelled_boxes(axes)]
    assert len(boxes) == len(SCENES), f"`{relative}` should draw one box per class (six), not {len(boxes)}"
    named = [scenes_named(label) for label, _ in boxes]
    assert all(len(n) == 1 for n in named) and {n for found in named for n in found} == set(SCENES), (
        f"each box of `{relative}` should be labelled with its class, one box per class"
    )
    grouped = top1_by_class(student.fetch("resnet_results"))
    assert grouped is not None, "the box plot cannot be compared with `resnet_results`, which is not the list asked for"
    scale = 100.0 if max(box.q3 for _, box in boxes) > 1.5 else 1.0  # drawn in percent
    for found, (_, box) in zip(named, boxes, strict=True):
        scene = next(iter(found))
        values = grouped.get(scene)
        assert values, f"`resnet_results` has no result of class {scene}, which the box plot shows"
        expected = np.percentile(values, [25, 50, 75])
        drawn = np.array([box.q1, box.med, box.q3]) / scale
        assert np.abs(drawn - expected).max() <= BOX_TOLERANCE, (
            f"the box of {scene} is not the top-1 probabilities of that class in `resnet_results`"
            " (its median or quartiles differ)"
        )


# --- Task 3 ---


def top3(results, name, index):
    """The first three class names of `results[index]`, or an assertion naming the problem."""
    entry = results[index] if isinstance(results, list) and index < len(results) else None
    classes = entry.get("top5_classes") if isinstance(entry, dict) else None
    assert isinstance(classes, (list, tuple)) and len(classes) >= 3 and all(isinstance(c, str) for c in classes), (
        f"the comparison grid cannot be compared with `{name}`, which does not hold `top5_classes` for each image"
    )
    return list(classes[:3])


def image_set_files(student, per_run, record, folder):
    """For each image of image_set, the files it may have been opened from."""
    if "files" not in per_run:
        per_run["files"] = [
            set(pictures_matching(picture, record.opened, within=folder)) if picture is not None else set()
            for picture, _ in image_set(student, per_run)
        ]
    return per_run["files"]


@question("task3")
@points(1)
def test_comparison_grid_names_each_models_top3(student, workdir, data, per_run):
    relative = "outputs/model_comparison_grid.png"
    record = figure_record(student, workdir, relative)
    pictures = record.pictures
    assert len(pictures) == len(SCENES), f"`{relative}` should show six pictures, not {len(pictures)}"
    folder = data[SCENES_ASSET].public
    opened_from = image_set_files(student, per_run, record, folder)
    results = {name: student.fetch(name) for name in RESULTS}
    for position, axes in enumerate(pictures):
        files = set(pictures_matching(axes.images[0], record.opened, within=folder))
        found = [index for index, sources in enumerate(opened_from) if files & sources]
        assert found, f"{where(axes, position)} of `{relative}` is not one of the images of `image_set`"
        text = text_of(record, axes)
        for index in found:
            wanted = {c for name in RESULTS for c in top3(results[name], name, index)}
            if all(names(text, c) for c in wanted):
                break
        else:
            raise AssertionError(
                f"the text beside {where(axes, position)} of `{relative}` should name the top 3 classes of each of "
                "the three models for that image (from `resnet_results`, `mobilenet_results`, `effnet_results`)"
            )


# --- Task 4 ---


def close_latency(drawn, measured):
    return abs(drawn - measured) <= max(LATENCY_ROUNDING_MS, LATENCY_TOLERANCE * abs(measured))


def bars_match(bars, measured):
    """Whether three bars are the three latencies: by their labels where these
    name the three models, else as a set of three numbers."""
    owners = [[n for n, words in LATENCIES.items() if any(w in bar.label.lower() for w in words)] for bar in bars]
    if all(len(o) == 1 for o in owners) and len({o[0] for o in owners}) == len(LATENCIES):
        return all(close_latency(bar.length, measured[o[0]]) for bar, o in zip(bars, owners, strict=True))
    drawn = sorted(bar.length for bar in bars)
    return all(close_latency(d, m) for d, m in zip(drawn, sorted(measured.values()), strict=True))


@question("task4")
@points(1)
def test_speed_bars_are_the_measured_latencies(student, workdir):
    relative = "outputs/inference_speed.png"
    record = figure_record(student, workdir, relative)
    charts = [axes.bars for axes in record.axes if axes.bars]
    assert any(len(bars) == len(LATENCIES) for bars in charts), (
        f"`{relative}` should be a bar chart of three bars, one per model"
    )
    measured = {name: as_number(student.fetch(name)) for name in LATENCIES}
    missing = [name for name, value in measured.items() if value is None]
    assert not missing, f"the bars cannot be compared with `{missing[0]}`, which is not a number"
    assert any(len(bars) == len(LATENCIES) and bars_match(bars, measured) for bars in charts), (
        f"the bars of `{relative}` are not the latencies your notebook measured (`resnet_ms`, `mobile_ms`, `effnet_ms`)"
    )


# --- Task 5 ---


def standardised(points):
    spread = points.std(axis=0)
    return None if (spread <= 1e-12 * (1 + np.abs(points).max())).any() else (points - points.mean(axis=0)) / spread


def principal_components(matrix):
    """The rows' coordinates on their first two principal components, as PCA(n_components=2) gives them."""
    centred = matrix - matrix.mean(axis=0)
    _, _, axes = np.linalg.svd(centred, full_matrices=False)
    return centred @ axes[:2].T


def nearest_rows(drawn, expected):
    """For the best sign of each axis: each drawn point's nearest expected row,
    and the largest distance either way (in standard deviations)."""
    best = (np.inf, None)
    for signs in ((1, 1), (1, -1), (-1, 1), (-1, -1)):
        distances = np.linalg.norm(drawn[:, None, :] * signs - expected[None, :, :], axis=2)
        worst = max(distances.min(axis=1).max(), distances.min(axis=0).max())
        if worst < best[0]:
            best = (worst, distances.argmin(axis=1))
    return best


@question("task5")
@points(1)
def test_feature_scatter_is_the_pca_coloured_by_class(student, workdir, per_run):
    relative = "outputs/feature_embeddings.png"
    record = figure_record(student, workdir, relative)
    plots = [axes.scatters for axes in record.axes if axes.scatters]
    assert plots, f"`{relative}` should be a scatter plot"
    matrix = student.fetch("feature_matrix")
    assert hasattr(matrix, "shape") and len(matrix.shape) == 2 and matrix.shape[0] == IMAGES, (
        "the scatter cannot be compared with `feature_matrix`, which is not one row per image of `image_set`"
    )
    values = torch.as_tensor(matrix).detach().cpu()
    assert not values.is_complex() and bool(torch.isfinite(values).all()), (
        "the scatter cannot be compared with `feature_matrix`, which does not hold finite numbers"
    )
    expected = standardised(principal_components(values.double().numpy()))
    labels = [label for _, label in image_set(student, per_run)]
    assert expected is not None and len(labels) == IMAGES, "`feature_matrix` or `image_set` cannot be plotted"
    counts = [sum(len(s.offsets) for s in scatters) for scatters in plots]
    assert IMAGES in counts, f"`{relative}` should show the {IMAGES} images as {IMAGES} points, not {max(counts)}"
    shown = []
    for scatters in (s for s, n in zip(plots, counts, strict=True) if n == IMAGES):
        drawn = standardised(np.concatenate([s.offsets for s in scatters]))
        if drawn is not None:
            distance, rows = nearest_rows(drawn, expected)
            if distance <= SCATTER_TOLERANCE:
                shown.append((rows, np.concatenate([s.colors for s in scatters])))
    assert shown, f"the points of `{relative}` are not the PCA of `feature_matrix` to two dimensions"
    rows, colors = shown[0]
    colour_of = {}
    for row, colour in zip(rows, map(tuple, colors), strict=True):
        colour_of.setdefault(labels[row], set()).add(colour)
    one_each = all(len(c) == 1 for c in colour_of.values())
    assert one_each and len({c for found in colour_of.values() for c in found}) == len(colour_of), (
        f"the points of `{relative}` should be coloured by class: one colour per class, a different one for each"
    )
