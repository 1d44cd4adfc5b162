"""Handwritten digits: 8x8 grey pictures of the digits 0 to 9, each pixel the
number of inked pixels (0 to 16) in a 4x4 block of a 32x32 drawing, as in
the UCI set scikit-learn ships (`sklearn.datasets.load_digits`). Files a
notebook reads with plain numpy: `train.npz` and `test.npz`, each holding
`images` (uint8, N x 8 x 8) and `labels` (uint8, N).

Real files: scikit-learn's own copy (`digits.csv.gz`, on disk: no network),
cut into a training and a test part with a fixed seed; `autograder assets
fetch` writes them, or `fetch --no-download --source digits=PATH` from that
file (or a folder holding it). Stand-in: the ten digits drawn as pen strokes
with jitter, slant and noise, counted into 8x8 blocks the same way. Half of
the test part is held out (solutions/datasets/digits.py).

A course asset module: see `autograder.assets.Dataset` for what it defines.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

TITLE = "Handwritten digits (8x8 pictures, 0 to 16 per pixel, as numpy .npz files)"
VERSION = "1"
SEED = 20260615
SPLIT_SEED = 8  # the real set's fixed shuffle before it is cut
REAL_TRAIN = 1200  # of scikit-learn's 1797 pictures; the other 597 are the test part
COUNTS = {"train": 1200, "test-public": 300, "test-hidden": 600}  # stand-in pictures
SOURCE_FILE = "digits.csv.gz"  # scikit-learn's name for its copy
PARTS = ("train.npz", "test.npz")


def synth(folder: Path, assets: Path) -> None:
    import numpy as np

    rng = np.random.default_rng(SEED)
    write_part(folder / "train.npz", *draw_digits(COUNTS["train"], rng))
    write_part(folder / "test.npz", *draw_digits(COUNTS["test-public"], rng))


def fetch(folder: Path, source: Path | None, download: bool) -> str | None:
    if source is None and not download:
        return None
    import numpy as np

    from autograder.errors import AssetError

    if source is None:
        import sklearn.datasets

        source = Path(sklearn.datasets.__file__).parent / "data" / SOURCE_FILE
    elif source.is_dir():
        source = source / SOURCE_FILE
    try:
        table = np.loadtxt(source, delimiter=",")
    except (OSError, ValueError) as error:
        raise AssetError(f"cannot read the digits from {source} (scikit-learn's {SOURCE_FILE}): {error}") from error
    if table.ndim != 2 or table.shape[1] != 65 or not ((table >= 0) & (table <= 16)).all():
        raise AssetError(f"{source} is not scikit-learn's {SOURCE_FILE} (rows of 64 pixels from 0 to 16 and a digit)")
    images, labels = table[:, :64].reshape(-1, 8, 8).astype(np.uint8), table[:, 64].astype(np.uint8)
    order = np.random.default_rng(SPLIT_SEED).permutation(len(labels))
    train, test = order[:REAL_TRAIN], order[REAL_TRAIN:]
    write_part(folder / "train.npz", images[train], labels[train])
    write_part(folder / "test.npz", images[test], labels[test])
    return f"{len(train)} training and {len(test)} test pictures (the hidden module holds part of the test part out)"


def status(folder: Path) -> list[tuple[str, int, str]]:
    return [("digits", sum(1 for name in PARTS if (folder / name).is_file()), ".npz files")]


def read_part(path: Path) -> tuple[Any, Any]:
    """(images uint8 N x 8 x 8, labels uint8 N) of one .npz part."""
    import numpy as np

    with np.load(path) as part:
        return part["images"], part["labels"]


def write_part(path: Path, images: Any, labels: Any) -> None:
    import numpy as np

    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as handle:  # np.savez would add ".npz" to a name without it
        np.savez_compressed(handle, images=images.astype(np.uint8), labels=labels.astype(np.uint8))


# --- drawing the stand-in digits (the hidden module draws its own with these) ---


def _arc(cx: float, cy: float, rx: float, ry: float, start: float, end: float) -> list[tuple[float, float]]:
    """Points along an ellipse in the unit box, from angle `start` to `end` in
    degrees (0 is right, 90 is down: the picture's y grows downwards)."""
    steps = max(2, int(abs(end - start) / 15))
    angles = [math.radians(start + (end - start) * i / steps) for i in range(steps + 1)]
    return [(cx + rx * math.cos(a), cy + ry * math.sin(a)) for a in angles]


# Each digit as pen strokes (lists of points) in a unit box, x to the right, y down.
STROKES: dict[int, list[list[tuple[float, float]]]] = {
    0: [_arc(0.5, 0.5, 0.33, 0.45, 0, 360)],
    1: [[(0.3, 0.22), (0.55, 0.04), (0.55, 0.96)]],
    2: [[*_arc(0.5, 0.3, 0.32, 0.25, 180, 390), (0.14, 0.95), (0.88, 0.95)]],
    3: [_arc(0.5, 0.28, 0.3, 0.23, 200, 450), _arc(0.5, 0.73, 0.34, 0.24, 270, 520)],
    4: [[(0.68, 0.04), (0.1, 0.66), (0.92, 0.66)], [(0.68, 0.04), (0.68, 0.96)]],
    5: [[(0.82, 0.05), (0.26, 0.05), (0.2, 0.46)], _arc(0.5, 0.68, 0.33, 0.28, 215, 500)],
    6: [[(0.78, 0.05), (0.45, 0.14), (0.24, 0.38), (0.17, 0.7)], _arc(0.5, 0.7, 0.32, 0.26, 0, 360)],
    7: [[(0.1, 0.05), (0.9, 0.05), (0.42, 0.96)]],
    8: [_arc(0.5, 0.26, 0.26, 0.22, 0, 360), _arc(0.5, 0.72, 0.33, 0.25, 0, 360)],
    9: [_arc(0.5, 0.3, 0.32, 0.26, 0, 360), [(0.82, 0.3), (0.74, 0.6), (0.62, 0.96)]],
}


def _digit(label: int, rng: Any) -> Any:
    """One 8x8 picture of `label`: strokes slanted, scaled and jittered, drawn
    in a 32x32 bitmap with a few pixels flipped, each 4x4 block counted (0 to 16)."""
    import numpy as np
    from PIL import Image, ImageDraw

    width, height = rng.uniform(12, 20), rng.uniform(24, 29)
    slant, turn = rng.uniform(-0.25, 0.25), math.radians(rng.uniform(-10, 10))
    centre = 16 + rng.normal(0, 0.8, size=2)
    canvas = Image.new("1", (32, 32), 0)
    draw = ImageDraw.Draw(canvas)
    for stroke in STROKES[label]:
        shift = rng.normal(0, 0.03, size=2)
        points = []
        for x, y in stroke:
            u = (x - 0.5 + shift[0] + rng.normal(0, 0.015)) * width
            v = (y - 0.5 + shift[1] + rng.normal(0, 0.015)) * height
            u += slant * -v
            points.append(
                (
                    centre[0] + u * math.cos(turn) - v * math.sin(turn),
                    centre[1] + u * math.sin(turn) + v * math.cos(turn),
                )
            )
        draw.line(points, fill=1, width=int(rng.integers(3, 6)), joint="curve")
    bitmap = np.asarray(canvas, dtype=bool) ^ (rng.random((32, 32)) < 0.015)
    return bitmap.reshape(8, 4, 8, 4).sum(axis=(1, 3)).astype(np.uint8)


def draw_digits(count: int, rng: Any) -> tuple[Any, Any]:
    """`count` balanced, shuffled pictures and their labels."""
    import numpy as np

    labels = np.arange(count) % 10
    rng.shuffle(labels)
    return np.stack([_digit(int(label), rng) for label in labels]), labels.astype(np.uint8)
