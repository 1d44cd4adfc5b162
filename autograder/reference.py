"""Trusted references for checks: the pretrained models loaded from the asset
folder, run in the grader's process on data the student never saw, and the
figures a notebook wrote, read safely. (The held-out pictures themselves are
course data: each asset's hidden module has its readers, reached through the
checks' `data` fixture.)

Checks import these (`from autograder.reference import ...`); nothing here
runs student code. Models are loaded once per grader process and shared;
their outputs are computed once per picture through `predictions.py`.
"""

from __future__ import annotations

import functools
import io
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from autograder import predictions as trusted_predictions
from autograder.assets import AssetStore, default_course_datasets, warn_moved, weights_enum, weights_file
from autograder.errors import AssetError, NotANotebookError
from autograder.figures import AxesRecord, Bar, FigureRecord, Picture, figures_of
from autograder.staging import LINK, read_inside, read_regular

MAX_FIGURE_BYTES = 20 * 1024 * 1024
MAX_FIGURE_PIXELS = 40_000_000
# What a figure is decoded as: matplotlib's raster formats but TIFF (whose codecs
# include a JPEG per tile) and the usual photo ones. Every other decoder Pillow
# has is attack surface no figure needs (EPS would run Ghostscript on the file).
FIGURE_FORMATS = ("PNG", "JPEG", "WEBP", "GIF", "BMP")
# libjpeg walks every block of the picture once per scan and accepts any number
# of scans: a 20 MiB figure of one repeated 59-byte scan decodes for hours. A
# progressive JPEG of its own has about ten.
MAX_JPEG_SCANS = 100
# Which file a drawn picture shows: grayscale at MATCH_SIDE x MATCH_SIDE,
# mean-centred, compared by correlation. A picture drawn from its file scores
# at least 0.979 on the stand-ins (whole, resized to 224 x 224, or as the
# weights' centre crop); two different stand-in pictures of one class at most
# 0.954. A picture shown after normalisation (clipped colours) may not match. A
# file within MATCH_MARGIN of the best is a candidate too, so near-duplicates
# are never decided against the student.
MATCH_SIDE = 32
MATCH_MIN = 0.97
MATCH_MARGIN = 0.02


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
    labels, cache = categories(name), trusted_predictions.cache_for()
    probabilities = cache.probabilities(assets, name, images, preprocessing=preprocessing(name))
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
    at most the size limit read; and decoded only as `_decoded` allows (a few
    formats, a bound on pixels and on a JPEG's scans): it is decoded here, in the
    grader's process, where no time limit stops a decoder."""
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
        image = _decoded(data)
    except _TooLarge as error:
        raise FigureProblem(relative, f"`{relative}` is {error}") from None
    except (OSError, ValueError, EOFError, Image.DecompressionBombError) as error:
        said = str(error) if isinstance(error, _Refused) else type(error).__name__
        raise FigureProblem(relative, f"`{relative}` is not an image that can be read ({said})") from error
    return Figure(relative, image.width, image.height, image)


class _Refused(ValueError):
    """An image file refused before it is decoded, with the grader's words why."""


class _TooLarge(_Refused):
    pass


def _decoded(data: bytes) -> Any:
    """The picture in a file's bytes as RGB, decoded only where nothing about it
    could cost the grader more than the pixels themselves: one of FIGURE_FORMATS,
    at most MAX_FIGURE_PIXELS, a JPEG of at most MAX_JPEG_SCANS scans (in a JPEG
    an FF DA pair is only ever a scan's start: its coded data stuffs every FF)."""
    from PIL import Image

    with Image.open(io.BytesIO(data), formats=FIGURE_FORMATS) as image:
        if image.width * image.height > MAX_FIGURE_PIXELS:
            raise _TooLarge(f"too many pixels ({image.width}x{image.height})")
        if image.format in ("JPEG", "MPO") and data.count(b"\xff\xda") > MAX_JPEG_SCANS:
            raise _Refused(f"a JPEG of more than {MAX_JPEG_SCANS} scans")
        image.load()
        return image.convert("RGB")


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
    if not records and getattr(student, "late_recorder", False):
        raise FigureProblem(
            relative,
            f"`{relative}` has no record: it may have been drawn before `autograder.selfcheck` was imported; "
            "import selfcheck at the top of the notebook and run every cell again",
        )
    if not records:
        raise FigureProblem(
            relative,
            f"`{relative}` was not drawn with matplotlib, or was changed after it was saved: "
            "draw it with matplotlib and save it with `savefig`",
        )
    return records[0]


def pictures_matching(picture: Picture, files: Sequence[Path], *, within: Path) -> list[Path]:
    """The files under `within` (the public assets) that a figure record's
    `picture` may show, best first: compared whole and as the weights' centre
    crop (224 of 256), the best match if it correlates at least MATCH_MIN, and
    those within MATCH_MARGIN of it. [] when none does."""
    from PIL import Image

    target = _signature(Image.fromarray(picture.pixels))
    scored = []
    for path in dict.fromkeys(files):
        if within not in path.parents:
            continue
        signatures = _file_signatures(str(path))
        if signatures:
            scored.append((max(float(target @ s) for s in signatures), path))
    best = max((score for score, _ in scored), default=0.0)
    if best < MATCH_MIN:
        return []
    return [path for score, path in sorted(scored, key=lambda item: -item[0]) if score >= best - MATCH_MARGIN]


def open_picture(path: Path) -> Any:
    """A picture file of the assets as RGB, read without following a link, or None if it cannot be read."""
    from PIL import Image

    try:
        return _decoded(read_regular(path, limit=MAX_FIGURE_BYTES))
    except (NotANotebookError, OSError, ValueError, EOFError, Image.DecompressionBombError):
        return None


@functools.lru_cache(maxsize=4096)
def _file_signatures(path: str) -> tuple[Any, ...]:
    image = open_picture(Path(path))
    if image is None:
        return ()
    from torchvision.transforms import v2

    return (_signature(image), _signature(v2.CenterCrop(224)(v2.Resize(256)(image))))


def _signature(image: Any) -> Any:
    import numpy as np
    from PIL import Image

    gray = image.convert("L").resize((MATCH_SIDE, MATCH_SIDE), Image.Resampling.BOX)
    values = np.asarray(gray, dtype=np.float64).ravel()
    values -= values.mean()
    return values / (np.linalg.norm(values) or 1.0)


def picture_and_chart(record: FigureRecord, relative: str) -> tuple[AxesRecord, AxesRecord]:
    """The first axes showing a picture and the first bar chart, wherever they
    sit; a `FigureProblem` if the figure lacks either."""
    shown = [axes for axes in record.axes if axes.images]
    charts = [axes for axes in record.axes if axes.bars]
    if not shown or not charts:
        raise FigureProblem(relative, f"`{relative}` should show the picture beside a bar chart of its predictions")
    return shown[0], charts[0]


def picture_beside_chart(record: FigureRecord, relative: str) -> tuple[AxesRecord, AxesRecord]:
    """`picture_and_chart`, in one row (a 1x2 figure, whatever grid made it);
    a `FigureProblem` if the figure is not that."""
    shown, chart = picture_and_chart(record, relative)
    (x0, y0, _, h0), (x1, y1, _, h1) = shown.bounds, chart.bounds
    if not (y0 < y1 + h1 and y1 < y0 + h0 and x0 != x1):
        raise FigureProblem(relative, f"`{relative}`: the picture and the bar chart should sit side by side (1x2)")
    return shown, chart


def bars_show_top_k(bars: Sequence[Bar], probabilities: Any, labels: Sequence[str], *, tolerance: float) -> bool:
    """Whether chart bars, best first as displayed (a figure record's), are the
    top len(bars) of `probabilities` (one picture's, over `labels`): each bar's
    tick label names its class and its length is the probability, as a
    fraction or a percentage, within `tolerance` (as a fraction)."""
    if not bars:
        return False
    scale = 100.0 if max(bar.length for bar in bars) > 1.5 else 1.0
    top = probabilities.topk(len(bars))
    for bar, value, index in zip(bars, top.values.tolist(), top.indices.tolist(), strict=True):
        if abs(bar.length / scale - value) > tolerance:
            return False
        if labels[index].lower() not in bar.label.lower().replace("_", " "):
            return False
    return True


def chart_is_top_k_of_picture(
    record: FigureRecord,
    relative: str,
    *,
    assets: AssetStore,
    model: str,
    pipelines: Sequence[Any],
    tolerance: float,
    predictions: trusted_predictions.Predictions | None = None,
) -> None:
    """The check of a "picture beside its top-k" figure, raising `FigureProblem`
    with the student's message: the picture is one of the data set's files the
    notebook opened before drawing (`pictures_matching`), and the bars beside
    it are the trusted `model`'s top k for that file under one of `pipelines`
    (`bars_show_top_k`), from `predictions` (the checks' fixture; else this
    process's memory). The message never names a class or a probability."""
    shown, chart = picture_and_chart(record, relative)  # where they sit is the public check's to judge
    sources = pictures_matching(shown.images[0], record.opened, within=assets.public)
    if not sources:
        raise FigureProblem(relative, f"the picture in `{relative}` is none of the data set's pictures opened before")
    labels = categories(model)
    if not any(
        bars_show_top_k(chart.bars, probabilities, labels, tolerance=tolerance)
        for source in sources
        for probabilities in _file_probabilities(assets, model, source, pipelines, predictions)
    ):
        raise FigureProblem(
            relative,
            "the bars are not the predictions for the picture shown beside them: predict on this picture in this cell",
        )


def _file_probabilities(
    assets: AssetStore,
    model: str,
    path: Path,
    pipelines: Sequence[Any],
    predictions: trusted_predictions.Predictions | None,
) -> list[Any]:
    """The trusted model's softmax for one picture file, per pipeline ([] where it cannot be read)."""
    image = open_picture(path)
    if image is None:
        return []
    cache = predictions or trusted_predictions.cache_for()
    return [cache.probabilities(assets, model, [image], preprocessing=p)[0] for p in pipelines]


def as_number(value: Any) -> float | None:
    """A fetched value as a Python float, for a plain, NumPy or one-element
    tensor number (never a bool); None otherwise."""
    import torch

    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        return float(value)
    if type(value).__module__ == "numpy" and getattr(value, "size", 0) == 1:
        item = value.item()
        return float(item) if isinstance(item, (int, float)) and not isinstance(item, bool) else None
    return None
