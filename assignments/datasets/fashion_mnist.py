"""FashionMNIST: 28x28 grey pictures of ten garment classes, in the IDX files
torchvision's `FashionMNIST(root=...)` reads (`FashionMNIST/raw/`).

Real files: downloaded by torchvision's own code (`autograder assets fetch`,
with a network). Stand-in: silhouettes of the ten classes drawn with jitter
and noise. Half of the test split is held out
(solutions/datasets/fashion_mnist.py).

A course asset module: see `autograder.assets.Dataset` for what it defines.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

TITLE = "FashionMNIST (28x28 IDX files, ten garment classes)"
VERSION = "1"
SEED = 20261129
FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)
COUNTS = {"train": 2000, "test-public": 500, "test-hidden": 1000}  # stand-in pictures


def raw(folder: Path) -> Path:
    return folder / "FashionMNIST" / "raw"


def synth(folder: Path, assets: Path) -> None:
    import numpy as np

    rng = np.random.default_rng(SEED)
    write_garments(raw(folder) / "train", COUNTS["train"], rng)
    write_garments(raw(folder) / "t10k", COUNTS["test-public"], rng)


def fetch(folder: Path, source: Path | None, download: bool) -> str | None:
    if not download:
        return None
    import torchvision.datasets

    from autograder.errors import AssetError

    with tempfile.TemporaryDirectory() as staging:
        try:
            torchvision.datasets.FashionMNIST(root=staging, train=True, download=True)
            torchvision.datasets.FashionMNIST(root=staging, train=False, download=True)
        except (OSError, RuntimeError) as error:
            raise AssetError(f"cannot download FashionMNIST (no network?): {error}") from error
        raw(folder).mkdir(parents=True, exist_ok=True)
        for name in FILES:
            shutil.copyfile(Path(staging) / "FashionMNIST" / "raw" / name, raw(folder) / name)
    return "train and test splits (the hidden module holds part of the test split out)"


def status(folder: Path) -> list[tuple[str, int, str]]:
    return [("fashion-mnist", sum(1 for name in FILES if (raw(folder) / name).is_file()), "IDX files")]


# --- drawing the stand-in garments (the hidden module draws its own with these) ---


def _garment(label: int, rng: Any) -> Any:
    """One 28x28 silhouette of class `label`, drawn at 56x56 and shrunk."""
    import numpy as np
    from PIL import Image, ImageDraw

    canvas = Image.new("L", (56, 56), 0)
    draw = ImageDraw.Draw(canvas)
    shade = int(rng.integers(120, 256))
    x0 = float(rng.uniform(-3, 3))
    y0 = float(rng.uniform(-3, 3))
    s = float(rng.uniform(0.85, 1.1))

    def box(a: float, b: float, c: float, d: float, fill: int = shade) -> None:
        draw.rectangle([28 + x0 + s * a, 28 + y0 + s * b, 28 + x0 + s * c, 28 + y0 + s * d], fill=fill)

    def poly(*points: tuple[float, float]) -> None:
        draw.polygon([(28 + x0 + s * x, 28 + y0 + s * y) for x, y in points], fill=shade)

    if label in (0, 2, 4, 6):  # tops: torso, then sleeves of some length
        box(-11, -16, 11, 18 if label == 4 else 16)
        sleeve = {0: 6, 2: 24, 4: 26, 6: 24}[label]
        poly((-11, -16), (-11 - 8, -16 + sleeve), (-11 - 3, -14 + sleeve), (-11, -6))
        poly((11, -16), (11 + 8, -16 + sleeve), (11 + 3, -14 + sleeve), (11, -6))
        if label == 4:
            box(-1, -14, 1, 18, fill=shade // 3)
        if label == 6:
            poly((-5, -16), (0, -9), (5, -16))
            for y in (-6, 0, 6, 12):
                box(-1, y, 1, y + 1, fill=shade // 2)
    elif label == 1:  # trousers
        box(-10, -18, 10, -10)
        poly((-10, -10), (-1, -10), (-3, 20), (-11, 20))
        poly((1, -10), (10, -10), (11, 20), (3, 20))
    elif label == 3:  # dress
        poly((-6, -18), (6, -18), (15, 20), (-15, 20))
    elif label == 5:  # sandal: straps and a sole
        box(-18, 8, 18, 11)
        for x in (-12, -2, 8):
            poly((x, 8), (x + 4, -2), (x + 7, -2), (x + 3, 8))
    elif label == 7:  # sneaker
        poly((-18, 2), (-4, -4), (6, 0), (18, 4), (18, 10), (-18, 10))
        box(-18, 10, 18, 12, fill=min(255, shade + 40))
    elif label == 8:  # bag with a handle
        box(-15, -6, 15, 18)
        draw.arc([28 + x0 - 9 * s, 28 + y0 - 20 * s, 28 + x0 + 9 * s, 28 + y0 + 4 * s], 180, 360, fill=shade, width=3)
    else:  # ankle boot
        poly((-10, -18), (2, -18), (4, 2), (18, 6), (18, 14), (-12, 14))
    angle = float(rng.uniform(-8, 8))
    small = canvas.rotate(angle, resample=Image.Resampling.BILINEAR).resize((28, 28), Image.Resampling.BILINEAR)
    pixels = np.asarray(small, dtype=np.float32)
    texture = rng.normal(0, 12, size=pixels.shape) * (pixels > 0)
    return np.clip(pixels + texture, 0, 255).astype(np.uint8)


def write_garments(prefix: Path, count: int, rng: Any) -> None:
    """`count` balanced, shuffled garments as `<prefix>-images-idx3-ubyte` and `-labels-idx1-ubyte`."""
    import numpy as np

    from autograder.assets import write_idx

    labels = np.arange(count) % 10
    rng.shuffle(labels)
    images = np.stack([_garment(int(label), rng) for label in labels])
    write_idx(prefix.with_name(f"{prefix.name}-images-idx3-ubyte"), images)
    write_idx(prefix.with_name(f"{prefix.name}-labels-idx1-ubyte"), labels.astype(np.uint8))
