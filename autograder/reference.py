"""Trusted references for checks: the pretrained models loaded from the asset
folder, run in the grader's process on data the student never saw, and the
figures a notebook wrote, read safely. (The held-out pictures themselves are
course data: each asset's hidden module has its readers, reached through the
checks' `data` fixture.)

Checks import these (`from autograder.reference import ...`); nothing here
runs student code. Models are loaded once per grader process and shared.
"""

from __future__ import annotations

import functools
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from autograder.assets import AssetStore, default_course_datasets, warn_moved, weights_enum, weights_file
from autograder.errors import AssetError, NotANotebookError
from autograder.figures import FigureRecord, figures_of
from autograder.staging import LINK, read_inside

MAX_FIGURE_BYTES = 20 * 1024 * 1024
MAX_FIGURE_PIXELS = 40_000_000


def load_model(assets: AssetStore, name: str) -> Any:
    """The pretrained model `name` (e.g. "resnet18") from the asset folder, in eval mode, on CPU."""
    path = assets.checkpoints / weights_file(name)
    if not path.is_file():
        raise AssetError(f"{path} is missing: run `autograder assets status`")
    return _load_model(str(path), name, path.stat().st_mtime_ns)


@functools.lru_cache(maxsize=4)
def _load_model(path: str, name: str, _modified: int) -> Any:
    import torch
    import torchvision.models

    model = getattr(torchvision.models, name)(weights=None)
    model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    return model.eval()


def categories(name: str) -> list[str]:
    """The 1000 ImageNet class names, as the weights' metadata gives them."""
    return list(weights_enum(name).meta["categories"])


def preprocessing(name: str) -> Any:
    """The weights' own preprocessing (`weights.transforms()`)."""
    return weights_enum(name).transforms()


def predict(assets: AssetStore, name: str, images: list[Any], *, k: int = 5) -> list[list[tuple[str, float]]]:
    """The reference top-k (label, probability) for each PIL image."""
    import torch

    model, transform, labels = load_model(assets, name), preprocessing(name), categories(name)
    with torch.no_grad():
        probabilities = torch.softmax(model(torch.stack([transform(image) for image in images])), dim=1)
    top = probabilities.topk(k, dim=1)
    return [
        [(labels[int(i)], float(p)) for p, i in zip(values, indices, strict=True)]
        for values, indices in zip(top.values, top.indices, strict=True)
    ]


def held_out_scenes(assets: AssetStore, per_class: int = 2, *, seed: int = 0) -> list[tuple[Any, str]]:
    """Deprecated: the default course's held-out Intel scenes; checks use
    `data["intel-image-classification"].hidden_module.held_out(...)`."""
    warn_moved("autograder.reference.held_out_scenes", "the `data` fixture's intel-image-classification hidden module")
    scenes = _default_course_asset("intel-image-classification")
    folder = assets.hidden / "intel-image-classification"
    return list(scenes.hidden.held_out(folder, tuple(scenes.module.SCENES), per_class, seed=seed))


def held_out_fashion(assets: AssetStore) -> tuple[Any, Any]:
    """Deprecated: the default course's held-out FashionMNIST part; checks use
    `data["fashion-mnist"].hidden_module.held_out(...)`."""
    warn_moved("autograder.reference.held_out_fashion", "the `data` fixture's fashion-mnist hidden module")
    fashion = _default_course_asset("fashion-mnist")
    return fashion.hidden.held_out(assets.hidden / "fashion-mnist")  # type: ignore[no-any-return]


def _default_course_asset(name: str) -> Any:
    dataset = default_course_datasets().get(name)
    if dataset is None or dataset.hidden is None:
        raise AssetError(f"the default course has no hidden part of `{name}`")
    return dataset


@dataclass(frozen=True)
class Figure:
    """A figure file the student's notebook wrote, decoded."""

    path: str
    width: int
    height: int
    image: Any  # PIL image, RGB


class FigureProblem(AssertionError):
    """The figure is missing, not a regular file, too large, or not an image: a
    failed check, with this message for the student."""

    def __init__(self, relative: str, message: str) -> None:
        self.relative = relative
        super().__init__(message)


def read_figure(workdir: Path, relative: str) -> Figure:
    """Open a file the notebook wrote, inside `workdir`, under staging's rule:
    no symbolic link followed (student code could point one at the grader's
    files), no FIFO or device waited on (it is `fstat`ed before it is read),
    at most the size limit read; and a limit on the decoded image."""
    from PIL import Image

    parts = Path(relative).parts
    if not parts or any(part in ("..", "/") for part in parts):
        raise FigureProblem(relative, f"`{relative}` is not a path inside the working folder")
    try:
        data = read_inside(workdir, relative, limit=MAX_FIGURE_BYTES)
    except NotANotebookError as error:
        if "no such file" in error.reason or LINK in error.reason:  # nothing the notebook wrote is there
            said = "" if error.reason == "no such file" else f" ({error.reason})"
            raise FigureProblem(relative, f"`{relative}` was not written by the notebook{said}") from None
        raise FigureProblem(relative, f"`{relative}` is {error.reason}") from None
    try:
        with Image.open(io.BytesIO(data)) as image:
            if image.width * image.height > MAX_FIGURE_PIXELS:
                raise FigureProblem(relative, f"`{relative}` is too many pixels ({image.width}x{image.height})")
            image.load()
            return Figure(relative, image.width, image.height, image.convert("RGB"))
    except (OSError, ValueError, Image.DecompressionBombError) as error:
        raise FigureProblem(
            relative, f"`{relative}` is not an image that can be read ({type(error).__name__})"
        ) from error


def figure_has_content(figure: Figure) -> bool:
    """False for a blank canvas (a figure saved before anything was drawn)."""
    extrema = figure.image.getextrema()
    return any(high - low > 30 for low, high in extrema)


def figure_record(student: Any, workdir: Path, relative: str) -> FigureRecord:
    """The record of the figure the notebook saved to `relative` with matplotlib
    (`student.figures`), or a `FigureProblem` saying, for the student, why there
    is none: not written, not an image, or not drawn with matplotlib (written
    by PIL or OpenCV, or changed after it was saved)."""
    read_figure(workdir, relative)
    figures = student.recorded_figures()
    if not figures.installed:
        raise FigureProblem(
            relative, "no figure was recorded in this kernel: import `autograder.selfcheck` before drawing"
        )
    records = figures_of(figures, relative)
    if not records:
        raise FigureProblem(
            relative,
            f"`{relative}` was not drawn with matplotlib, or was changed after it was saved: "
            "draw it with matplotlib and save it with `savefig`",
        )
    return records[0]
