"""Intel Image Classification: 150x150 JPEG photographs of six scene classes,
as Kaggle's `puneet6060/intel-image-classification` lays them out
(`seg_train/seg_train/<class>/*.jpg`, `seg_test/seg_test/<class>/*.jpg`).

Real files: the instructor downloads the set from Kaggle (it needs an
account) and gives its folder or zip to `autograder assets fetch --source
intel-image-classification=PATH`. Stand-in: pictures cut from real
photographs that scikit-image ships (one per scene class, tinted, cropped,
flipped, jittered), so the classes are learnable and thresholds mean
something. Part of `seg_test` is held out (solutions/datasets/intel_scenes.py).

A course asset module: see `autograder.assets.Dataset` for what it defines.
"""

from __future__ import annotations

import contextlib
import io
import shutil
import tempfile
import zipfile
from pathlib import Path
from typing import Any

TITLE = "Intel Image Classification scenes (150x150 JPEGs, six classes)"
VERSION = "1"
SEED = 20261128
SCENES = ("buildings", "forest", "glacier", "mountain", "sea", "street")
SPLITS = ("seg_train", "seg_test")
COUNTS = {"seg_train": 60, "seg_test": 30, "holdout": 12}  # stand-in images per scene class
# scene -> (scikit-image sample photograph, RGB tint)
PHOTOS = {
    "buildings": ("brick", (1.0, 0.62, 0.45)),
    "forest": ("grass", (0.45, 0.95, 0.4)),
    "glacier": ("moon", (0.85, 0.95, 1.0)),
    "mountain": ("gravel", (0.75, 0.68, 0.6)),
    "sea": ("hubble_deep_field", (0.35, 0.55, 1.0)),
    "street": ("stereo_motorcycle", (1.0, 1.0, 1.0)),
}


def split_folder(folder: Path, split: str) -> Path:
    """`seg_train` -> `<folder>/seg_train/seg_train` (Kaggle's doubled folder)."""
    return folder / split / split


def synth(folder: Path, assets: Path) -> None:
    import numpy as np

    rng = np.random.default_rng(SEED)
    write_scenes({split: split_folder(folder, split) for split in SPLITS}, rng)


def fetch(folder: Path, source: Path | None, download: bool) -> str | None:
    """Copy seg_train and seg_test from the instructor's folder or zip."""
    if source is None:
        return None
    from autograder.errors import AssetError

    with contextlib.ExitStack() as stack:
        if source.is_file() and zipfile.is_zipfile(source):
            unpacked = Path(stack.enter_context(tempfile.TemporaryDirectory()))
            with zipfile.ZipFile(source) as archive:
                for member in archive.infolist():  # no absolute paths, no `..`
                    if member.filename.startswith("/") or ".." in Path(member.filename).parts:
                        raise AssetError(f"{source}: unsafe path in zip: {member.filename}")
                archive.extractall(unpacked)
            source = unpacked
        found = {split: next(source.rglob(f"{split}/{split}"), None) for split in SPLITS}
        shutil.rmtree(folder, ignore_errors=True)
        count = 0
        for split, given in found.items():
            if given is None:
                raise AssetError(f"{source}: no {split}/{split} folder (the Kaggle layout)")
            for scene in SCENES:
                images = sorted((given / scene).glob("*.jpg"))
                if not images:
                    raise AssetError(f"{given}: class folder `{scene}` is missing or empty")
                target = split_folder(folder, split) / scene
                target.mkdir(parents=True, exist_ok=True)
                for path in images:
                    shutil.copyfile(path, target / path.name)
                count += len(images)
    return f"{count} images"


def status(folder: Path) -> list[tuple[str, int, str]]:
    return [
        (f"intel {split}", sum(1 for _ in split_folder(folder, split).glob("*/*.jpg")), "images") for split in SPLITS
    ]


# --- drawing the stand-in scenes (the hidden module draws its own with these) ---


def _photo(name: str) -> Any:
    import numpy as np
    import skimage.data

    loaded = getattr(skimage.data, name)()
    image = np.asarray(loaded[0] if isinstance(loaded, tuple) else loaded, dtype=np.float32)  # a stereo pair
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=2)
    return image[..., :3] / (255.0 if image.max() > 1 else 1.0)


def _scene_image(photo: Any, tint: tuple[float, float, float], rng: Any) -> Any:
    import numpy as np
    from PIL import Image

    height, width = photo.shape[:2]
    side = int(min(height, width) * rng.uniform(0.55, 0.75))
    top, left = rng.integers(0, height - side + 1), rng.integers(0, width - side + 1)
    crop = photo[top : top + side, left : left + side]
    if rng.random() < 0.5:
        crop = crop[:, ::-1]
    jitter = np.asarray(tint) * rng.uniform(0.93, 1.07, size=3)
    crop = crop * jitter * rng.uniform(0.9, 1.1) + rng.normal(0, 0.02, size=crop.shape)
    pixels = (np.clip(crop, 0, 1) * 255).astype(np.uint8)
    return Image.fromarray(pixels).resize((150, 150), Image.Resampling.BILINEAR)


def write_scenes(splits: dict[str, Path], rng: Any) -> None:
    """Writes each split (`COUNTS` name -> folder of class folders) afresh, drawing from `rng`."""
    number = 10_000
    for scene in SCENES:
        name, tint = PHOTOS[scene]
        photo = _photo(name)
        for split, root in splits.items():
            target = root / scene
            shutil.rmtree(target, ignore_errors=True)  # no image of an earlier set stays beside the new ones
            target.mkdir(parents=True)
            for _ in range(COUNTS[split]):
                image = _scene_image(photo, tint, rng)
                number += int(rng.integers(1, 40))  # Kaggle's names are sparse numbers
                buffer = io.BytesIO()
                image.save(buffer, format="JPEG", quality=90)
                (target / f"{number}.jpg").write_bytes(buffer.getvalue())
