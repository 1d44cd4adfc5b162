"""The held-out split of the Intel scenes: pictures no student has, for
hidden checks (`held_out`).

Real files: up to `HOLDOUT_PER_CLASS` pictures of each class of Kaggle's
`seg_test` (at most half) move to the hidden folder. Kaggle's test split is
public, so real held-out pictures prove less than stand-ins do (SECURITY.md,
"What held-out accuracy proves"). Stand-in: drawn like the public ones, from
the store's secret.
"""

from __future__ import annotations

import random
import shutil
from pathlib import Path
from types import ModuleType
from typing import Any

HOLDOUT_PER_CLASS = 100


def synth(folder: Path, rng: Any, public: ModuleType) -> None:
    public.write_scenes({"holdout": folder / "holdout"}, rng)


def split(public_folder: Path, hidden_folder: Path) -> None:
    holdout = hidden_folder / "holdout"
    shutil.rmtree(holdout, ignore_errors=True)
    test = public_folder / "seg_test" / "seg_test"
    for scene_folder in sorted(p for p in test.iterdir() if p.is_dir()):
        images = sorted(scene_folder.glob("*.jpg"))
        keep = max(len(images) - HOLDOUT_PER_CLASS, len(images) // 2)
        (holdout / scene_folder.name).mkdir(parents=True, exist_ok=True)
        for path in images[keep:]:
            shutil.move(path, holdout / scene_folder.name / path.name)


def status(folder: Path) -> list[tuple[str, int, str]]:
    return [("intel holdout", sum(1 for _ in (folder / "holdout").glob("*/*.jpg")), "images")]


def held_out(folder: Path, scenes: tuple[str, ...], per_class: int = 2, *, seed: int = 0) -> list[tuple[Any, str]]:
    """(PIL image, scene) pairs, `per_class` of each scene, drawn with `seed`."""
    from PIL import Image

    from autograder.errors import AssetError

    chooser = random.Random(seed)
    chosen = []
    for scene in scenes:
        files = sorted((folder / "holdout" / scene).glob("*.jpg"))
        if not files:
            raise AssetError(f"no held-out images of `{scene}`: run `autograder assets status`")
        for path in chooser.sample(files, min(per_class, len(files))):
            with Image.open(path) as image:
                chosen.append((image.convert("RGB"), scene))
    return chosen
