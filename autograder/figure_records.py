"""Figure records: what the notebook's figures show, kept as plain data in its kernel.

This module runs in the student's kernel. The grader sends its source before
the first cell (`install_code`), as the bridge sends wire.py's; a student's
self-check imports it. So it must stay self-contained: standard library at
load, matplotlib, numpy and PIL only once the notebook has imported them,
nothing from the `autograder` package.

`install()` only adds an import hook: a kernel that never draws pays nothing.
When the notebook imports matplotlib, every canvas print (`savefig`, and the
inline backend's display, which prints to memory) makes one record after the
figure is drawn, as does `plt.show()` where it displays nothing (the grader's
Agg backend): the file written and a hash of its bytes, the grid, and per
axes the pictures (downsized), bars in displayed order, box plot statistics,
patches, lines, scatter points with their colours, and the text. When PIL is
imported, `Image.open` notes each path it opens, so a check can tell which file
a drawn picture came from.

Every record is the student's data: their code can rewrite this module, the
records, or the files. Checks verify records against trusted computation and
never trust them; a record counts only while its file still holds the bytes
that were hashed (the grader's `autograder.figures`). Everything kept is
bounded (`LIMITS`), and nothing here may break the student's own call: a
figure that cannot be read is recorded with what could be, and an error.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import importlib.abc
import os
import sys
import weakref
from typing import Any

LIMITS = {
    "figures": 32,  # records kept per kernel: the oldest displayed-only ones go first
    "axes": 24,  # per figure
    "images": 16,  # per figure
    "side": 64,  # pixels: each picture is downsized to fit this square
    "bars": 64,  # per axes, as many patches, boxes, lines, scatters and texts
    "points": 2000,  # per line or scatter
    "text": 300,  # characters per string
    "opened": 1000,  # image files noted
    "bytes": 8 << 20,  # all records together, roughly as the wire will carry them
    "hash_bytes": 64 << 20,  # a saved file larger than this is recorded without a hash
}

_state: dict[str, Any] = {
    "records": [],
    "opened": [],
    "seen": set(),
    "sequence": 0,
    "cwd": "",
    "drawn": False,
    "paused": False,  # a self-check's own code is running (autograder.selfcheck): what it opens is not the notebook's
    "shown": weakref.WeakSet(),  # figures recorded at a `plt.show()` (kept alive by pyplot, not by this)
}


def install() -> None:
    """Record figures from now on: patch what is already imported, hook the rest."""
    _state["cwd"] = _state["cwd"] or os.getcwd()
    if not any(isinstance(finder, _Finder) for finder in sys.meta_path):
        sys.meta_path.insert(0, _Finder())
    for name, patch in _PATCHES.items():
        if name in sys.modules:
            patch(sys.modules[name])


def snapshot() -> dict[str, Any]:
    """What the bridge's `figures` request sends back."""
    return {
        "installed": True,
        "drawn": _state["drawn"],
        "cwd": _state["cwd"],
        "records": list(_state["records"]),
        "opened": list(_state["opened"]),
    }


def install_code(source: str, module: str) -> str:
    """Kernel code that runs `source` (this module's) as the module named `module`
    (where the bridge looks for it: `wire.FIGURES_MODULE`) and installs it."""
    return (
        "import sys as _s, types as _t\n"
        f"_m = _t.ModuleType({module!r})\n"
        f"exec(compile({source!r}, '<autograder figures>', 'exec'), _m.__dict__)\n"
        f"_s.modules[{module!r}] = _m\n"
        "_m.install()\n"
        "del _s, _t, _m\n"
    )


# ---- the import hook ---------------------------------------------------------


class _Finder(importlib.abc.MetaPathFinder):
    """Lets the other finders find the modules to patch, and patches them once loaded."""

    def find_spec(self, name: str, path: Any, target: Any = None) -> Any:
        if name not in _PATCHES:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(name, path, target)
            if spec is not None:
                if spec.loader is not None and hasattr(spec.loader, "exec_module"):
                    spec.loader = _PatchingLoader(spec.loader, _PATCHES[name])
                return spec
        return None


class _PatchingLoader(importlib.abc.Loader):
    def __init__(self, loader: Any, patch: Any) -> None:
        self._loader, self._patch = loader, patch

    def __getattr__(self, name: str) -> Any:  # get_source, get_resource_reader, ...
        return getattr(self._loader, name)

    def create_module(self, spec: Any) -> Any:
        return self._loader.create_module(spec)

    def exec_module(self, module: Any) -> None:
        self._loader.exec_module(module)
        self._patch(module)


def _patched(owner: Any, name: str, wrapper: Any) -> None:
    original = getattr(owner, name)
    if getattr(original, "_autograder_recorder", False):
        return
    wrapped: Any = functools.wraps(original)(wrapper(original))
    wrapped._autograder_recorder = True
    setattr(owner, name, wrapped)


def _patch_canvas(module: Any) -> None:
    def wrapper(original: Any) -> Any:
        def print_figure(canvas: Any, filename: Any, *args: Any, **kwargs: Any) -> Any:
            result = original(canvas, filename, *args, **kwargs)
            _state["drawn"] = True
            try:
                _keep(_record(canvas.figure, filename, kwargs))
            except Exception as error:  # a figure this cannot read is still the student's to save
                _keep({"file": None, "sha256": None, "error": type(error).__name__[:100], "axes": []})
            return result

        return print_figure

    _patched(module.FigureCanvasBase, "print_figure", wrapper)


def _patch_axes(module: Any) -> None:
    def wrapper(original: Any) -> Any:
        def bxp(axes: Any, bxpstats: Any, positions: Any = None, *args: Any, **kwargs: Any) -> Any:
            artists = original(axes, bxpstats, positions, *args, **kwargs)
            with contextlib.suppress(Exception):
                horizontal = kwargs.get("vert") is False or kwargs.get("orientation") == "horizontal"
                drawn = axes.__dict__.setdefault("_autograder_boxes", [])
                drawn.append((list(bxpstats), None if positions is None else list(positions), horizontal, artists))
            return artists

        return bxp

    _patched(module.Axes, "bxp", wrapper)


def _patch_pil(module: Any) -> None:
    def wrapper(original: Any) -> Any:
        def open_image(fp: Any, *args: Any, **kwargs: Any) -> Any:
            image = original(fp, *args, **kwargs)
            with contextlib.suppress(Exception):
                _note_opened(fp)
            return image

        return open_image

    _patched(module, "open", wrapper)


def _patch_pyplot(module: Any) -> None:
    """`plt.show()` where nothing displays (the grader's Agg backend): recorded as
    the inline backend would have printed it. The inline backend's own display
    prints through the canvas, recorded there.

    The inline backend shows each open figure and closes it; Agg closes nothing,
    so a notebook showing one figure per loop turn keeps them all open. Each is
    drawn and recorded at the first `show()` that finds it, and again only once
    it changed (matplotlib marks it stale): redrawing every open figure at every
    call made such a loop quadratic, and recorded the oldest over the newest."""

    def wrapper(original: Any) -> Any:
        def show(*args: Any, **kwargs: Any) -> Any:
            with contextlib.suppress(Exception):
                if "inline" not in str(module.get_backend()).lower():
                    from matplotlib._pylab_helpers import Gcf

                    shown = _state["shown"]
                    figures = [manager.canvas.figure for manager in Gcf.get_all_fig_managers()]
                    fresh = [f for f in figures if f not in shown or f.stale]
                    for figure in fresh[-LIMITS["figures"] :]:  # the most recently active last
                        with contextlib.suppress(Exception):  # one that cannot be drawn stops no other
                            figure.draw_without_rendering()
                            _state["drawn"] = True
                            _keep(_record(figure, None, {}))
                            figure.stale = False  # drawn just now: the record's own reads (positions, ticks) mark it
                            shown.add(figure)
            return original(*args, **kwargs)

        return show

    _patched(module, "show", wrapper)


_PATCHES = {
    "matplotlib.backend_bases": _patch_canvas,
    "matplotlib.pyplot": _patch_pyplot,
    "matplotlib.axes._axes": _patch_axes,
    "PIL.Image": _patch_pil,
}


def _note_opened(fp: Any) -> None:
    # paused: a self-check's own code; past the cap: a data loader opens thousands, no path to resolve for them
    if _state["paused"] or len(_state["opened"]) >= LIMITS["opened"]:
        return
    name = fp if isinstance(fp, (str, os.PathLike)) else getattr(fp, "name", None)
    if not isinstance(name, (str, os.PathLike)):
        return
    path = os.path.realpath(os.fspath(name))
    if path not in _state["seen"] and len(_state["opened"]) < LIMITS["opened"]:
        _state["seen"].add(path)
        _state["opened"].append(path[: 4 * LIMITS["text"]])


# ---- one record --------------------------------------------------------------


def _keep(record: dict[str, Any]) -> None:
    _state["sequence"] += 1
    record.update(sequence=_state["sequence"], opened=len(_state["opened"]))
    records = _state["records"]
    if record.get("file"):  # a file saved again: only the last record of it can match its bytes
        records[:] = [r for r in records if r.get("file") != record["file"]]
    records.append(record)
    while len(records) > 1 and (len(records) > LIMITS["figures"] or sum(_cost(r) for r in records) > LIMITS["bytes"]):
        displayed = [r for r in records if not r.get("file")]
        records.remove(displayed[0] if displayed else records[0])


def _cost(record: dict[str, Any]) -> int:
    if "cost" not in record:
        record["cost"] = 2000 + sum(_axes_cost(axes) for axes in record.get("axes", []))
    return int(record["cost"])


def _axes_cost(axes: dict[str, Any]) -> int:
    pictures = sum(int(image["pixels"].nbytes) for image in axes.get("images", []))
    points = sum(len(line["x"]) * 32 for line in axes.get("lines", []))
    points += sum(len(scatter["offsets"]) * 40 for scatter in axes.get("scatters", []))
    return 4 * pictures + points + 200 * len(axes.get("bars", [])) + 2000


def _record(figure: Any, filename: Any, options: dict[str, Any]) -> dict[str, Any]:
    path, digest = _saved_file(filename, options)
    dpi = options.get("dpi")
    width, height = figure.get_size_inches() * (dpi if isinstance(dpi, (int, float)) and dpi > 0 else figure.dpi)
    axes = []
    for each in figure.get_axes()[: LIMITS["axes"]]:
        try:
            axes.append(_axes(each))
        except Exception as error:  # the others are still worth recording
            axes.append({"error": type(error).__name__[:100]})
    images = 0
    for entry in axes:  # the bound on pictures is per figure
        entry["images"] = entry.get("images", [])[: max(0, LIMITS["images"] - images)]
        images += len(entry["images"])
    suptitle = getattr(figure, "_suptitle", None)
    return {
        "file": path,
        "sha256": digest,
        "size": [float(width), float(height)],
        "suptitle": _text(suptitle.get_text()) if suptitle is not None else "",
        "texts": [_text(t.get_text()) for t in figure.texts[: LIMITS["bars"]]],
        "axes": axes,
        "error": None,
    }


def _saved_file(filename: Any, options: dict[str, Any]) -> tuple[str | None, str | None]:
    """The file written, relative to the notebook's first working folder where it
    lies below it, and the SHA-256 of its bytes; (None, None) for a print to memory.
    A file object the notebook opened by name (`with open(...) as f: fig.savefig(f)`)
    is that file, its buffer flushed first so the bytes hashed are those written."""
    if not isinstance(filename, (str, os.PathLike)):
        name = getattr(filename, "name", None)
        if not isinstance(name, str) or getattr(filename, "closed", True):  # BytesIO, a descriptor, a pipe
            return None, None
        filename.flush()
        filename = name
    name = os.fspath(filename)
    candidates = [name]
    if not os.path.splitext(name)[1]:  # savefig("x") writes x.png
        candidates.append(name.rstrip(".") + "." + str(options.get("format") or "png"))
    existing = [c for c in candidates if os.path.isfile(c)]
    if not existing:
        return None, None
    path = os.path.realpath(max(existing, key=os.path.getmtime))
    digest = None
    if os.path.getsize(path) <= LIMITS["hash_bytes"]:
        with open(path, "rb") as file:
            digest = hashlib.sha256(file.read()).hexdigest()
    base = os.path.realpath(_state["cwd"] or os.getcwd())
    if path.startswith(base + os.sep):
        path = os.path.relpath(path, base)
    return path, digest


def _axes(axes: Any) -> dict[str, Any]:
    spec = axes.get_subplotspec() if hasattr(axes, "get_subplotspec") else None
    grid = None
    if spec is not None:
        rows, columns = spec.get_gridspec().get_geometry()
        grid = [rows, columns, spec.rowspan.start, spec.rowspan.stop, spec.colspan.start, spec.colspan.stop]
    legend = axes.get_legend()
    return {
        "grid": grid,
        "bounds": [float(v) for v in axes.get_position().bounds],
        "visible": bool(axes.get_visible() and axes.axison),
        "titles": [_text(axes.get_title(loc=where)) for where in ("left", "center", "right")],
        "xlabel": _text(axes.get_xlabel()),
        "ylabel": _text(axes.get_ylabel()),
        "xticklabels": [_text(t.get_text()) for t in axes.get_xticklabels()[: LIMITS["bars"]]],
        "yticklabels": [_text(t.get_text()) for t in axes.get_yticklabels()[: LIMITS["bars"]]],
        "texts": [[_text(t.get_text()), *_position(t)] for t in axes.texts[: LIMITS["bars"]]],
        "legend": [_text(t.get_text()) for t in legend.get_texts()[: LIMITS["bars"]]] if legend else [],
        "images": [_picture(image) for image in axes.get_images()[: LIMITS["images"]]],
        "bars": _bars(axes),
        "patches": _patches(axes),
        "boxes": _boxes(axes),
        "lines": [_line(line) for line in axes.get_lines()[: LIMITS["bars"]]],
        "scatters": _scatters(axes),
    }


def _text(value: Any) -> str:
    return str(value)[: LIMITS["text"]]


def _position(text: Any) -> list[float]:
    try:
        x, y = text.get_position()
        return [float(x), float(y)]
    except (TypeError, ValueError):
        return [float("nan"), float("nan")]


def _picture(image: Any) -> dict[str, Any]:
    """What an `imshow` shows, as RGB bytes no larger than LIMITS['side'] a side."""
    import numpy as np
    from PIL import Image

    data = np.ma.getdata(image.get_array())
    shape = [int(n) for n in data.shape]
    if data.ndim == 2:
        rgb = np.asarray(image.to_rgba(data, bytes=True))[..., :3]
    else:
        values = data[..., :3] if data.shape[-1] >= 3 else np.repeat(data[..., :1], 3, axis=-1)
        if values.dtype.kind == "f":
            values = np.nan_to_num(np.clip(values, 0.0, 1.0)) * 255.0
        rgb = np.clip(values, 0, 255).round().astype(np.uint8)
    picture = Image.fromarray(np.ascontiguousarray(rgb, dtype=np.uint8))
    picture.thumbnail((LIMITS["side"], LIMITS["side"]), Image.Resampling.BOX)
    return {"pixels": np.asarray(picture, dtype=np.uint8), "shape": shape}


def _bars(axes: Any) -> list[dict[str, Any]]:
    """Bars of `bar`/`barh` (and the libraries drawing through them), in the
    order they are seen: left to right, or top to bottom for horizontal ones."""
    from matplotlib.container import BarContainer

    bars = []
    for container in axes.containers:
        if not isinstance(container, BarContainer):
            continue
        horizontal = getattr(container, "orientation", "vertical") == "horizontal"
        for patch in container.patches:
            if horizontal:
                length, position = patch.get_width(), patch.get_y() + patch.get_height() / 2
            else:
                length, position = patch.get_height(), patch.get_x() + patch.get_width() / 2
            bars.append({"length": float(length), "position": float(position), "horizontal": horizontal})
    if not bars:
        return []
    horizontal = bars[0]["horizontal"]
    ticks = axes.yaxis if horizontal else axes.xaxis
    ticks.get_majorticklabels()  # brings the ticks up to date, for a figure never drawn
    labels = {float(t.get_loc()): _text(t.label1.get_text()) for t in ticks.get_major_ticks()}
    for bar in bars:
        near = [text for loc, text in labels.items() if abs(loc - bar["position"]) <= 1e-6 * (1 + abs(loc))]
        bar["label"] = near[0] if near else ""
    top_first = horizontal and not bool(axes.yaxis_inverted())
    right_first = not horizontal and bool(axes.xaxis_inverted())
    bars.sort(key=lambda bar: bar["position"], reverse=top_first or right_first)
    return bars[: LIMITS["bars"]]


def _patches(axes: Any) -> list[dict[str, Any]]:
    """Patches that are not bars (wedges, rectangles drawn by hand, box plot boxes), by type and extent."""
    from matplotlib.container import BarContainer

    in_bars = {id(p) for c in axes.containers if isinstance(c, BarContainer) for p in c.patches}
    patches = []
    for patch in axes.patches:
        if id(patch) in in_bars:
            continue
        extent = patch.get_path().get_extents(patch.get_patch_transform())
        patches.append({"type": type(patch).__name__, "extent": [float(v) for v in extent.extents]})
        if len(patches) >= LIMITS["bars"]:
            break
    return patches


_BOX_STATISTICS = ("med", "q1", "q3", "whislo", "whishi", "mean")


def _boxes(axes: Any) -> list[dict[str, Any]]:
    """The statistics each `bxp` call drew (`boxplot`, seaborn's box plots), while its median is still shown."""
    boxes = []
    for stats, positions, horizontal, artists in axes.__dict__.get("_autograder_boxes", []):
        medians = artists.get("medians", []) if isinstance(artists, dict) else []
        for index, entry in enumerate(stats):
            if index < len(medians) and medians[index] not in axes.lines:
                continue  # cleared or removed since
            box: dict[str, Any] = {k: float(entry[k]) for k in _BOX_STATISTICS if k in entry}
            fliers = list(entry.get("fliers", []))[: LIMITS["points"]]
            box.update(
                label=_text(entry.get("label", "")),
                position=float(positions[index]) if positions and index < len(positions) else float(index + 1),
                horizontal=bool(horizontal),
                fliers=[float(f) for f in fliers],
            )
            boxes.append(box)
    return boxes[: LIMITS["bars"]]


def _line(line: Any) -> dict[str, Any]:
    import numpy as np
    from matplotlib.colors import to_hex

    try:
        x = np.asarray(line.get_xdata(), dtype=np.float64).ravel()[: LIMITS["points"]]
        y = np.asarray(line.get_ydata(), dtype=np.float64).ravel()[: LIMITS["points"]]
    except (TypeError, ValueError):  # dates or categories: the text says more than the numbers
        x = y = np.zeros(0)
    return {"x": x, "y": y, "color": to_hex(line.get_color()), "label": _text(line.get_label())}


def _scatters(axes: Any) -> list[dict[str, Any]]:
    import numpy as np
    from matplotlib.collections import PathCollection

    scatters = []
    collection: Any
    for collection in axes.collections:
        if not isinstance(collection, PathCollection):
            continue
        offsets = np.asarray(np.ma.getdata(collection.get_offsets()), dtype=np.float64)[: LIMITS["points"]]
        colors = np.asarray(collection.get_facecolor(), dtype=np.float64)[:, :3]
        if len(colors) == 1:
            colors = np.repeat(colors, len(offsets), axis=0)
        values = collection.get_array()
        scatters.append(
            {
                "offsets": offsets.reshape(-1, 2),
                "colors": (np.clip(colors[: len(offsets)], 0, 1) * 255).round().astype(np.uint8),
                "values": None if values is None else np.asarray(values, dtype=np.float64).ravel()[: LIMITS["points"]],
                "label": _text(collection.get_label()),
            }
        )
        if len(scatters) >= LIMITS["bars"]:
            break
    return scatters
