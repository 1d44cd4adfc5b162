"""Figure records: what matplotlib drew, recorded in the kernel, rebuilt safely here.

The recorder's hooks patch matplotlib and PIL, so the hand-built figures are
drawn in a Python of their own (one per module) and come back through the wire
codec, as a kernel's would; one real kernel shows the whole path: the hook
installed before the first cell, records fetched by `student.figures`, and a
record dropped once its file no longer holds what was saved.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import nbformat
import numpy as np
import pytest

from autograder import wire
from autograder.bridge import Student
from autograder.config import AssignmentConfig
from autograder.execution import executed_notebook
from autograder.figure_records import LIMITS
from autograder.figures import FigureRecord, Figures, decode, figures_of
from autograder.isolation import Workspace, open_workspace
from autograder.results import ExecutionRecord
from tests.conftest import ROOT

# Drawn in a fresh Python with the recorder installed first, as the grader installs it.
HAND_BUILT = """
import os, sys
sys.path.insert(0, {root!r})
os.chdir({workdir!r})
from autograder import figure_records, wire
figure_records.install()
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from PIL import Image

rng = np.random.default_rng(0)
os.makedirs("pictures", exist_ok=True)
for name in ("a", "b"):
    Image.fromarray(rng.integers(0, 255, (150, 120, 3), dtype=np.uint8)).save(f"pictures/{{name}}.jpg")
with open("pictures/b.jpg", "rb") as handle:  # a file object, as torchvision's loader passes
    picture = Image.open(handle).convert("RGB")
first = Image.open("pictures/a.jpg")

# 1: a picture beside horizontal bars, best at the top (categorical, reversed lists)
fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
left.imshow(picture); left.axis("off"); left.set_title("Input")
right.barh(["c", "b", "a"], [0.1, 0.2, 0.7]); right.set_title("Top-3")
fig.suptitle("whole")
os.makedirs("outputs", exist_ok=True)
fig.savefig("outputs/bars.png", dpi=50)

# 2: numbered bars with inverted axis, tick labels set by hand; and vertical bars
fig, (left, right) = plt.subplots(1, 2)
left.barh(range(3), [0.7, 0.2, 0.1]); left.set_yticks(range(3)); left.set_yticklabels(["a", "b", "c"])
left.invert_yaxis()
right.bar(["x", "y"], [3, 5])
fig.savefig("outputs/inverted")  # no suffix: matplotlib writes outputs/inverted.png

# 3: box plots (patch_artist), scatter coloured by a colour map, a line, a text, a legend
fig, (boxes, points) = plt.subplots(1, 2)
boxes.boxplot([[1, 2, 3, 4], [2, 3, 4, 30]], tick_labels=["p", "q"], patch_artist=True)
points.scatter([1, 2, 3], [4, 5, 6], c=[0, 1, 1], label="pts")
points.plot([0, 1], [0, 1], color="red", label="diagonal")
points.text(0.5, 0.5, "note"); points.legend()
fig.savefig("outputs/mixed.png")

# 3b: saved through a file object the notebook opened (`with open(...) as f: fig.savefig(f)`)
fig, ax = plt.subplots(); ax.bar(["u", "v"], [2, 1])
with open("outputs/handle.png", "wb") as handle:
    fig.savefig(handle, format="png")

import io
# 4: more figures than are kept (the saved ones stay)
for index in range(LIMIT + 5):
    small = plt.figure(); small.gca().plot([index]); small.canvas.print_figure(io.BytesIO(), format="png")
    plt.close(small)
# 5: a float tensor-like picture out of range, a 2-D picture, a huge one; displayed, not saved
fig, axes = plt.subplots(2, 2)
axes[0, 0].imshow(rng.normal(size=(40, 30, 3)))
axes[0, 1].imshow(rng.random((20, 20)), cmap="gray")
axes[1, 0].imshow(np.zeros((2000, 1000, 3), dtype=np.uint8))
fig.canvas.print_figure(io.BytesIO(), format="png")

print(wire.pack(figure_records.snapshot(), max_bytes=64 << 20))
"""


RAW: dict[str, object] = {}  # the snapshot as the kernel sent it, by working folder


@pytest.fixture(scope="module")
def hand_built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Figures, Path]:
    workdir = tmp_path_factory.mktemp("hand-built")
    script = HAND_BUILT.format(root=str(ROOT), workdir=str(workdir)).replace("LIMIT", str(LIMITS["figures"]))
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    raw = wire.unpack(done.stdout.strip().splitlines()[-1], max_bytes=64 << 20)
    RAW[str(workdir)] = raw
    return decode(raw, workdir=workdir, shown={str(workdir.resolve()): workdir}), workdir


def saved(figures: Figures, path: str) -> FigureRecord:
    records = figures_of(figures, path)
    assert len(records) == 1, f"one record of {path}"
    return records[0]


def test_a_picture_beside_bars_is_recorded_with_its_layout_and_order(hand_built: tuple[Figures, Path]) -> None:
    figures, workdir = hand_built
    record = saved(figures, "outputs/bars.png")
    assert record.size == (500.0, 200.0) and record.grid == (1, 2) and record.suptitle == "whole"
    picture_axes, bar_axes = record.axes
    assert picture_axes.cell == (0, 0) and bar_axes.cell == (0, 1)
    assert not picture_axes.visible and picture_axes.title == "Input" and bar_axes.title == "Top-3"
    (picture,) = picture_axes.images
    assert picture.shape == (150, 120, 3) and picture.pixels.shape == (64, 51, 3)
    assert [(b.label, b.length) for b in bar_axes.bars] == [("a", 0.7), ("b", 0.2), ("c", 0.1)], "top to bottom"
    assert all(b.horizontal for b in bar_axes.bars)
    assert record.opened == (workdir / "pictures/b.jpg", workdir / "pictures/a.jpg"), "file objects and paths, in order"


def test_bar_order_follows_an_inverted_axis_and_vertical_bars_go_left_to_right(
    hand_built: tuple[Figures, Path],
) -> None:
    figures, _ = hand_built
    left, right = saved(figures, "outputs/inverted.png").axes
    assert [(b.label, b.length) for b in left.bars] == [("a", 0.7), ("b", 0.2), ("c", 0.1)]
    assert [(b.label, b.length, b.horizontal) for b in right.bars] == [("x", 3, False), ("y", 5, False)]


def test_box_plots_scatters_lines_and_text(hand_built: tuple[Figures, Path]) -> None:
    figures, _ = hand_built
    boxes, points = saved(figures, "outputs/mixed.png").axes
    assert [(b.label, b.position, b.med, b.q1, b.q3) for b in boxes.boxes] == [
        ("p", 1.0, 2.5, 1.75, 3.25),
        ("q", 2.0, 3.5, 2.75, 10.5),
    ]
    assert boxes.boxes[1].fliers == (30.0,) and boxes.boxes[1].whishi == 10.5, "matplotlib: no whisker below q3"
    assert [p.kind for p in boxes.patches] == ["PathPatch", "PathPatch"], "patch_artist boxes are patches, not bars"
    (scatter,) = points.scatters
    assert scatter.offsets.tolist() == [[1, 4], [2, 5], [3, 6]] and scatter.values is not None
    assert (scatter.colors[1] == scatter.colors[2]).all() and not (scatter.colors[0] == scatter.colors[1]).all()
    (line,) = [line for line in points.lines if line.label == "diagonal"]
    assert line.color == "#ff0000" and line.y.tolist() == [0, 1]
    assert "note" in points.texts and points.legend == ("pts", "diagonal") and "note" in points.words


def test_a_figure_saved_through_a_file_object_is_recorded(hand_built: tuple[Figures, Path]) -> None:
    """An honest way to save: without a record its check would say it was not drawn with matplotlib."""
    figures, _ = hand_built
    (axes,) = saved(figures, "outputs/handle.png").axes
    assert [(b.label, b.length) for b in axes.bars] == [("u", 2.0), ("v", 1.0)]


def test_pictures_are_bounded_and_shown_as_drawn(hand_built: tuple[Figures, Path]) -> None:
    figures, _ = hand_built
    shown = [r for r in figures.records if r.file is None and r.grid == (2, 2)]
    assert len(shown) == 1, "a print to memory (the inline backend's display) is a record without a file"
    floats, gray, huge, empty = shown[0].axes
    assert floats.images[0].pixels.max() == 255 and floats.images[0].pixels.min() == 0, "clipped to 0..1 as drawn"
    assert gray.images[0].pixels.shape == (20, 20, 3), "a 2-D array through its colour map"
    assert huge.images[0].shape == (2000, 1000, 3) and huge.images[0].pixels.shape == (64, 32, 3)
    assert not empty.images


def test_the_number_of_records_is_bounded_saved_files_kept_first(hand_built: tuple[Figures, Path]) -> None:
    figures, _ = hand_built
    assert len(figures.records) == LIMITS["figures"]
    saved_files = {"outputs/bars.png", "outputs/inverted.png", "outputs/mixed.png", "outputs/handle.png"}
    assert {r.file for r in figures.records} >= saved_files
    assert figures.installed and figures.drawn


def test_a_record_counts_only_while_its_file_holds_what_was_saved(hand_built: tuple[Figures, Path]) -> None:
    _, workdir = hand_built
    copy = workdir / "copy"
    (copy / "outputs").mkdir(parents=True)
    (copy / "outputs/bars.png").write_bytes((workdir / "outputs/bars.png").read_bytes() + b"changed")
    (copy / "outputs/inverted.png").write_bytes((workdir / "outputs/inverted.png").read_bytes())
    (copy / "outputs/mixed.png").symlink_to(workdir / "outputs/mixed.png")
    figures = decode(RAW[str(workdir)], workdir=copy, shown={})
    assert figures_of(figures, "outputs/bars.png") == [], "changed after it was saved"
    assert figures_of(figures, "outputs/mixed.png") == [], "a link is not the file that was saved"
    assert len(figures_of(figures, "outputs/inverted.png")) == 1


@pytest.mark.parametrize(
    "forged",
    [
        None,
        "records",
        {"installed": True, "records": "x"},
        {"installed": True, "records": [{"file": "../etc/passwd", "sha256": "0" * 64, "axes": []}]},
        {"installed": True, "records": [{"file": None, "axes": [{"images": [{"pixels": np.zeros((999, 2, 3))}]}]}]},
        {"installed": True, "records": [{"file": None, "axes": [{"bars": [{"length": "1", "position": 0}]}]}]},
        {"installed": True, "opened": ["/etc/shadow", "/assets/../etc/x"], "records": [{"opened": 2, "axes": []}]},
        # names no file can have: a NUL byte, a lone surrogate (the wire carries both)
        {"installed": True, "records": [{"file": "a\x00.png", "sha256": "0" * 64, "axes": []}]},
        {"installed": True, "records": [{"file": "\ud800/x.png", "sha256": "0" * 64, "axes": []}]},
        # an integer too large for a float, where a number is expected
        {
            "installed": True,
            "records": [{"size": [10**400, 1], "axes": [{"bars": [{"length": 10**400, "position": 0}]}]}],
        },
    ],
)
def test_forged_snapshots_become_nothing_rather_than_errors(forged: object, tmp_path: Path) -> None:
    figures = decode(forged, workdir=tmp_path, shown={"/assets": tmp_path / "public"})
    for record in figures.records:
        assert record.file is None and not record.opened
        assert all(not a.images and not a.bars for a in record.axes)


@pytest.mark.xfail(strict=True, raises=AssertionError, reason="SECURITY.md, Known limits: the PNG is not checked")
def test_a_record_consistent_with_the_reference_passes_whatever_its_file_shows(tmp_path: Path) -> None:
    """A notebook that knows the reference's top 5 of a picture writes the record of a
    figure showing them and saves a blank PNG under the figure's name: the hidden
    figure check passes on the record. Kept failing until the pixels are checked."""
    from PIL import Image

    from autograder import reference
    from autograder.assets import default_store

    assets = default_store()
    source = sorted((assets.public / "intel-image-classification/seg_test/seg_test/mountain").glob("*.jpg"))[0]
    picture = reference.open_picture(source)
    if picture is None:
        pytest.skip("no stand-in picture to forge a figure of")
    pipeline = reference.preprocessing("resnet18")
    (top,) = reference.predict(assets, "resnet18", [picture], k=5)
    (tmp_path / "outputs").mkdir()
    Image.new("RGB", (1100, 450), "white").save(tmp_path / "outputs/figure.png")  # nothing drawn
    thumbnail = picture.copy()
    thumbnail.thumbnail((64, 64))
    bars = [{"length": p, "position": float(i), "label": label, "horizontal": True} for i, (label, p) in enumerate(top)]
    forged = {
        "installed": True,
        "opened": [str(source)],
        "records": [
            {
                "file": "outputs/figure.png",
                "sha256": hashlib.sha256((tmp_path / "outputs/figure.png").read_bytes()).hexdigest(),
                "opened": 1,
                "axes": [
                    {
                        "bounds": [0.0, 0.0, 0.4, 1.0],
                        "images": [{"pixels": np.asarray(thumbnail), "shape": [150, 150, 3]}],
                    },
                    {"bounds": [0.5, 0.0, 0.4, 1.0], "bars": bars},
                ],
            }
        ],
    }
    figures = decode(forged, workdir=tmp_path, shown={str(assets.public): assets.public})
    (record,) = figures_of(figures, "outputs/figure.png")
    try:
        reference.chart_is_top_k_of_picture(
            record, "outputs/figure.png", assets=assets, model="resnet18", pipelines=[pipeline], tolerance=0.02
        )
    except reference.FigureProblem:
        return  # what a fix makes of it: the figure shows nothing
    raise AssertionError("a blank figure passed the hidden figure check on its forged record")


# The grader's kernels draw with Agg, where `plt.show()` closes nothing: a notebook
# showing one figure per loop turn keeps every one of them open.
SHOWN_IN_A_LOOP = """
import sys
sys.path.insert(0, {root!r})
from autograder import figure_records
figure_records.install()
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt
for index in range(COUNT):
    plt.figure(); plt.plot([0, index]); plt.title(f"figure {{index}}"); plt.show()
plt.gca().set_title("changed"); plt.show()
plt.show()
records = figure_records._state["records"]
print(figure_records._state["sequence"], [r["axes"][0]["titles"][1] for r in records[-2:]])
"""


def test_each_figure_shown_is_recorded_once_and_the_newest_are_kept() -> None:
    """An honest notebook showing more figures than are kept, none closed: each is
    drawn and recorded at the first `show()` that finds it, again only once it
    changed; redrawing every open figure at every `show()` made such a loop
    quadratic (44 s for 60 figures) and recorded the oldest 32 over and over."""
    count = LIMITS["figures"] + 2
    script = SHOWN_IN_A_LOOP.format(root=str(ROOT)).replace("COUNT", str(count))
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    made, last = done.stdout.strip().splitlines()[-1].split(" ", 1)
    assert int(made) == count + 1, "one record per figure, one more once it changed, none for a figure shown unchanged"
    assert last == str([f"figure {count - 1}", "changed"])


# ---- the whole path, in a real kernel ------------------------------------------

KERNEL_CELLS = [
    "import os, matplotlib.pyplot as plt\nfrom PIL import Image\nos.makedirs('outputs', exist_ok=True)",
    "fig, ax = plt.subplots(); ax.bar(['a', 'b'], [1, 2]); fig.savefig('outputs/kept.png'); plt.show()",
    "fig, ax = plt.subplots(); ax.plot([1, 2]); fig.savefig('outputs/changed.png'); plt.close(fig)\n"
    "Image.new('RGB', (10, 10)).save('outputs/changed.png')",
    "Image.new('RGB', (64, 48), 'red').save('outputs/pil.png')",
]


@pytest.fixture(scope="module")
def kernel_figures() -> Iterator[tuple[ExecutionRecord, Student, Workspace]]:
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [nbformat.v4.new_code_cell(source) for source in KERNEL_CELLS]
    config = AssignmentConfig(cell_timeout_s=120)
    with open_workspace(config) as workspace, executed_notebook(notebook, workspace=workspace, config=config) as run:
        yield (*run, workspace)


@pytest.mark.slow
def test_the_kernel_records_saved_and_displayed_figures(
    kernel_figures: tuple[ExecutionRecord, Student, Workspace],
) -> None:
    record, student, _ = kernel_figures
    assert record.status == "completed" and not record.cell_errors
    (kept,) = student.figures("outputs/kept.png")
    assert [(b.label, b.length) for b in kept.axes[0].bars] == [("a", 1.0), ("b", 2.0)]
    displayed = [r for r in student.figures() if r.file is None]
    assert len(displayed) == 1 and displayed[0].axes[0].bars == kept.axes[0].bars, "plt.show() is recorded too"


@pytest.mark.slow
def test_a_file_rewritten_after_saving_or_made_without_matplotlib_has_no_record(
    kernel_figures: tuple[ExecutionRecord, Student, Workspace],
) -> None:
    _, student, workspace = kernel_figures
    assert (workspace.workdir / "outputs/changed.png").is_file() and (workspace.workdir / "outputs/pil.png").is_file()
    assert student.figures("outputs/changed.png") == []
    assert student.figures("outputs/pil.png") == []
    assert {r.file for r in student.figures()} == {"outputs/kept.png", None}
