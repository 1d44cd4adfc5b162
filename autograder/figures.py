"""Figure records as checks read them: `student.figures(path=None)`.

The kernel keeps a record of every figure the notebook saved or displayed
with matplotlib (`autograder.figure_records`, which lists what is kept and its
bounds). Those records are the student's data, like every fetched value, so
they are rebuilt here field by field into frozen dataclasses, anything of the
wrong type or size dropped, and a record of a saved file counts only while
the file in the working folder still holds the bytes that were hashed when it
was saved: a file changed or replaced afterwards (by PIL, OpenCV, a copy) has
no record, and a check says the figure was not drawn with matplotlib.

Checks compare what a record shows with trusted computation (the reference
model's predictions, the student's own fetched values); a record the student
forges consistently is one that shows the right thing.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np

from autograder.errors import NotANotebookError
from autograder.figure_records import LIMITS
from autograder.staging import read_inside

MAX_FILE_BYTES = 20 * 1024 * 1024


@dataclass(frozen=True)
class Picture:
    """An `imshow`: its RGB pixels, downsized to at most LIMITS['side'] a side,
    and the shape of the array the notebook passed."""

    pixels: np.ndarray
    shape: tuple[int, ...]


@dataclass(frozen=True)
class Bar:
    length: float  # height of a vertical bar, width of a horizontal one
    position: float  # its centre along the other axis
    label: str  # the tick label at that position ("" if none)
    horizontal: bool


@dataclass(frozen=True)
class Box:
    """One box of a box plot, as `Axes.bxp` was given it."""

    label: str
    position: float
    med: float
    q1: float
    q3: float
    whislo: float
    whishi: float
    mean: float | None
    horizontal: bool
    fliers: tuple[float, ...]


@dataclass(frozen=True)
class Patch:
    kind: str  # the matplotlib class: Rectangle, Wedge, PathPatch, ...
    extent: tuple[float, float, float, float]  # x0, y0, x1, y1 in data units


@dataclass(frozen=True)
class Line:
    x: np.ndarray
    y: np.ndarray
    color: str  # "#rrggbb"
    label: str


@dataclass(frozen=True)
class Scatter:
    offsets: np.ndarray  # (n, 2) float64
    colors: np.ndarray  # (n, 3) uint8, each point's face colour as drawn
    values: np.ndarray | None  # the `c=` numbers, where a colour map drew them
    label: str


@dataclass(frozen=True)
class AxesRecord:
    grid: tuple[int, int, int, int, int, int] | None  # rows, columns, row span, column span; None: no grid
    bounds: tuple[float, float, float, float]  # left, bottom, width, height, as figure fractions
    visible: bool  # False for axes hidden or drawn with `axis("off")`
    titles: tuple[str, str, str]  # left, centre, right
    xlabel: str
    ylabel: str
    xticklabels: tuple[str, ...]
    yticklabels: tuple[str, ...]
    texts: tuple[str, ...]  # `text`, `annotate`, `bar_label`
    legend: tuple[str, ...]
    images: tuple[Picture, ...]
    bars: tuple[Bar, ...]  # in displayed order: left to right, top to bottom for horizontal bars
    patches: tuple[Patch, ...]
    boxes: tuple[Box, ...]
    lines: tuple[Line, ...]
    scatters: tuple[Scatter, ...]

    @property
    def title(self) -> str:
        return " ".join(t for t in self.titles if t)

    @property
    def words(self) -> str:
        """All text attached to these axes, one string: titles, labels, annotations, legend."""
        return "\n".join([*self.titles, self.xlabel, self.ylabel, *self.texts, *self.legend])

    @property
    def cell(self) -> tuple[int, int] | None:
        """(row, column) of the grid cell where these axes start."""
        return None if self.grid is None else (self.grid[2], self.grid[4])


@dataclass(frozen=True)
class FigureRecord:
    file: str | None  # the file saved, relative to the working folder; None: displayed only
    size: tuple[float, float]  # pixels, at the dpi it was saved with
    suptitle: str
    texts: tuple[str, ...]
    axes: tuple[AxesRecord, ...]
    opened: tuple[Path, ...]  # image files (in the assets or the working folder) opened before it was drawn
    sequence: int  # the order records were made in
    error: str | None  # a figure the recorder could not read

    @property
    def grid(self) -> tuple[int, int] | None:
        """(rows, columns) of the figure's subplot grid."""
        shapes = [a.grid[:2] for a in self.axes if a.grid is not None]
        return shapes[0] if shapes else None

    @property
    def pictures(self) -> list[AxesRecord]:
        """The axes that show a picture, in the order the notebook made them."""
        return [a for a in self.axes if a.images]


@dataclass(frozen=True)
class Figures:
    """What the kernel's recorder held when a check asked."""

    installed: bool  # False: no recorder in the kernel (a self-check imported too late)
    drawn: bool  # matplotlib printed at least one figure
    records: tuple[FigureRecord, ...]


def decode(raw: Any, *, workdir: Path, shown: Mapping[str, Path]) -> Figures:
    """Rebuild the kernel's snapshot. `shown` maps a folder as the kernel sees it
    to the same folder here (the assets' view, the working folder); image files
    outside them are dropped from `opened`. Saved records whose file no longer
    holds the hashed bytes are dropped."""
    if not isinstance(raw, dict) or raw.get("installed") is not True:
        return Figures(installed=False, drawn=False, records=())
    opened = [_host_path(p, shown) for p in _items(raw.get("opened"), LIMITS["opened"])]
    records = []
    for item in _items(raw.get("records"), LIMITS["figures"]):
        record = _record(item, opened)
        if record is not None and (record.file is None or _holds(workdir, record.file, item.get("sha256"))):
            records.append(record)
    return Figures(installed=True, drawn=raw.get("drawn") is True, records=tuple(records))


def figures_of(figures: Figures, path: str | None) -> list[FigureRecord]:
    """Every record, or with `path` (relative to the working folder) the last one
    saved to it that its file still holds (at most one)."""
    if path is None:
        return list(figures.records)
    wanted = PurePosixPath(path)
    matching = [r for r in figures.records if r.file is not None and PurePosixPath(r.file) == wanted]
    return [max(matching, key=lambda r: r.sequence)] if matching else []


def _holds(workdir: Path, relative: str, digest: Any) -> bool:
    if not isinstance(digest, str) or PurePosixPath(relative).is_absolute() or ".." in PurePosixPath(relative).parts:
        return False
    try:
        data = read_inside(workdir, relative, limit=MAX_FILE_BYTES)
    except NotANotebookError:  # gone, a link, not a regular file, too large
        return False
    return hashlib.sha256(data).hexdigest() == digest


def _host_path(path: Any, shown: Mapping[str, Path]) -> Path | None:
    if not isinstance(path, str):
        return None
    for seen, here in shown.items():
        seen = seen.rstrip("/")
        if path == seen or path.startswith(seen + "/"):
            rest = PurePosixPath(path[len(seen) :].lstrip("/"))
            if ".." in rest.parts:
                return None
            return here / rest
    return None


def _record(item: Any, opened: list[Path | None]) -> FigureRecord | None:
    if not isinstance(item, dict):
        return None
    file = item.get("file")
    count = _int(item.get("opened"), 0)
    return FigureRecord(
        file=file if isinstance(file, str) and file else None,
        size=_floats(item.get("size"), 2) or (0.0, 0.0),  # type: ignore[arg-type]
        suptitle=_str(item.get("suptitle")),
        texts=_strs(item.get("texts")),
        axes=tuple(a for a in (_axes(x) for x in _items(item.get("axes"), LIMITS["axes"])) if a is not None),
        opened=tuple(p for p in opened[: max(0, count)] if p is not None),
        sequence=_int(item.get("sequence"), 0),
        error=_str(item.get("error")) or None,
    )


def _axes(item: Any) -> AxesRecord | None:
    if not isinstance(item, dict):
        return None
    grid = item.get("grid")
    grid_ints = tuple(_int(v, -1) for v in grid) if isinstance(grid, (list, tuple)) and len(grid) == 6 else None
    titles = _strs(item.get("titles"))
    return AxesRecord(
        grid=grid_ints if grid_ints and min(grid_ints) >= 0 else None,  # type: ignore[arg-type]
        bounds=_floats(item.get("bounds"), 4) or (0.0, 0.0, 0.0, 0.0),  # type: ignore[arg-type]
        visible=item.get("visible") is True,
        titles=(*titles, "", "", "")[:3],  # type: ignore[arg-type]
        xlabel=_str(item.get("xlabel")),
        ylabel=_str(item.get("ylabel")),
        xticklabels=_strs(item.get("xticklabels")),
        yticklabels=_strs(item.get("yticklabels")),
        texts=tuple(_str(t[0]) for t in _items(item.get("texts"), LIMITS["bars"]) if isinstance(t, list) and t),
        legend=_strs(item.get("legend")),
        images=_each(item.get("images"), _picture, LIMITS["images"]),
        bars=_each(item.get("bars"), _bar, LIMITS["bars"]),
        patches=_each(item.get("patches"), _patch, LIMITS["bars"]),
        boxes=_each(item.get("boxes"), _box, LIMITS["bars"]),
        lines=_each(item.get("lines"), _line, LIMITS["bars"]),
        scatters=_each(item.get("scatters"), _scatter, LIMITS["bars"]),
    )


def _picture(item: dict[str, Any]) -> Picture | None:
    pixels = item.get("pixels")
    side = LIMITS["side"]
    if not (isinstance(pixels, np.ndarray) and pixels.dtype == np.uint8 and pixels.ndim == 3):
        return None
    if pixels.shape[2] != 3 or not 0 < pixels.shape[0] <= side or not 0 < pixels.shape[1] <= side:
        return None
    shape = item.get("shape")
    return Picture(pixels, tuple(_int(v, 0) for v in shape[:4]) if isinstance(shape, list) else ())


def _bar(item: dict[str, Any]) -> Bar | None:
    length, position = _float(item.get("length")), _float(item.get("position"))
    if length is None or position is None:
        return None
    return Bar(length, position, _str(item.get("label")), item.get("horizontal") is True)


def _box(item: dict[str, Any]) -> Box | None:
    values = {k: _float(item.get(k)) for k in ("med", "q1", "q3", "whislo", "whishi", "position")}
    if any(v is None for v in values.values()):
        return None
    fliers = tuple(f for f in (_float(v) for v in _items(item.get("fliers"), LIMITS["points"])) if f is not None)
    return Box(
        label=_str(item.get("label")),
        mean=_float(item.get("mean")),
        horizontal=item.get("horizontal") is True,
        fliers=fliers,
        **values,  # type: ignore[arg-type]
    )


def _patch(item: dict[str, Any]) -> Patch | None:
    extent = _floats(item.get("extent"), 4)
    return None if extent is None else Patch(_str(item.get("type")), extent)  # type: ignore[arg-type]


def _line(item: dict[str, Any]) -> Line | None:
    x, y = _vector(item.get("x")), _vector(item.get("y"))
    if x is None or y is None or len(x) != len(y):
        return None
    return Line(x, y, _str(item.get("color")), _str(item.get("label")))


def _scatter(item: dict[str, Any]) -> Scatter | None:
    offsets, colors, values = item.get("offsets"), item.get("colors"), item.get("values")
    if not (isinstance(offsets, np.ndarray) and offsets.ndim == 2 and offsets.shape[1] == 2):
        return None
    if len(offsets) > LIMITS["points"] or offsets.dtype.kind not in "iuf":
        return None
    if not (isinstance(colors, np.ndarray) and colors.dtype == np.uint8 and colors.shape == (len(offsets), 3)):
        colors = np.zeros((len(offsets), 3), dtype=np.uint8)
    numbers = _vector(values)
    return Scatter(
        offsets.astype(np.float64),
        colors,
        numbers if numbers is not None and len(numbers) == len(offsets) else None,
        _str(item.get("label")),
    )


def _each(value: Any, build: Any, limit: int) -> tuple[Any, ...]:
    built = (build(item) for item in _items(value, limit) if isinstance(item, dict))
    return tuple(b for b in built if b is not None)


def _items(value: Any, limit: int) -> list[Any]:
    return list(value[:limit]) if isinstance(value, (list, tuple)) else []


def _str(value: Any) -> str:
    return value[: LIMITS["text"]] if isinstance(value, str) else ""


def _strs(value: Any) -> tuple[str, ...]:
    return tuple(_str(v) for v in _items(value, LIMITS["bars"]))


def _int(value: Any, default: int) -> int:
    return value if type(value) is int else default


def _float(value: Any) -> float | None:
    if type(value) in (int, float) or isinstance(value, np.floating):
        try:
            number = float(value)
        except OverflowError:  # an integer of 400 digits: JSON carries it, a float cannot
            return None
        return number if math.isfinite(number) else None
    return None


def _floats(value: Any, count: int) -> tuple[float, ...] | None:
    numbers = [_float(v) for v in _items(value, count)]
    return tuple(numbers) if len(numbers) == count and None not in numbers else None  # type: ignore[arg-type]


def _vector(value: Any) -> np.ndarray | None:
    if isinstance(value, np.ndarray) and value.ndim == 1 and value.dtype.kind in "iuf":
        return value[: LIMITS["points"]].astype(np.float64)
    return None
