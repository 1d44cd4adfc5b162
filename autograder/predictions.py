"""The trusted models' outputs, computed once per picture: students draw from
the same data set with the same seed, so a batch would otherwise run the
reference networks on the same pictures for every notebook.

An output is kept under a key naming everything it depends on: the picture's
content (its pixels, or the input tensor's values), the model and its weights
(the asset set's id and the checkpoint file's size and time), the
preprocessing (its torchvision class and settings), the layer read, the device,
and the torch, torchvision and Pillow versions. A preprocessing that cannot be
described so (a function, a class of the course's own) is run uncached.

Where it is kept: by the grader only, never inside a sandbox. In memory, one
store per grader process (per batch worker), shared by every submission it
grades and bounded in bytes; and, for a batch, on disk under
`<results folder>/cache/predictions/` (`folder_for`), so that a resumed batch
reuses what the interrupted one computed. The disk layer is used only where
the kernel cannot reach it (`grading` decides), in a folder of the grader's
own (0700, owned by this user), bounded in bytes too. Each entry is a torch
file read with `torch.load(weights_only=True)`, never pickle, holding its full
key and a digest of its values: a file that cannot be read, or is not the
entry asked for, is ignored and the output computed again.
"""

from __future__ import annotations

import contextlib
import enum
import hashlib
import io
import json
import os
import stat
import tempfile
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from autograder import reference
from autograder.assets import AssetStore, weights_file
from autograder.errors import NotANotebookError
from autograder.staging import read_regular

if TYPE_CHECKING:  # torch is imported where it is used: the command line starts without it
    import torch

LAYERS = ("logits", "pooled")  # the network's output; the input of its last layer (ResNet18's 512 features)
MEMORY_BYTES = 64 * 1024 * 1024  # per grader process: about 16,000 sets of 1000 logits
DISK_BYTES = 512 * 1024 * 1024  # per results folder: about 90,000 entries
BATCH = 20  # pictures per forward pass
_ENTRY_BYTES = 1024 * 1024  # the most one entry file is read for
_FORMAT = 1
_TRUSTED_MODULES = ("torchvision.", "torch.")  # preprocessing classes whose code the versions in the key pin


@dataclass
class PredictionCounts:
    """Where this process's outputs came from, per picture."""

    memory: int = 0
    disk: int = 0
    computed: int = 0
    uncached: int = 0  # computed with a preprocessing that has no key


class _Memory:
    """A least-recently-used store of outputs, bounded by their bytes."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._entries: OrderedDict[str, torch.Tensor] = OrderedDict()
        self._bytes = 0

    def get(self, digest: str) -> torch.Tensor | None:
        value = self._entries.get(digest)
        if value is not None:
            self._entries.move_to_end(digest)
        return value

    def put(self, digest: str, value: torch.Tensor) -> None:
        size = value.numel() * value.element_size()
        if size > self.limit:
            return
        previous = self._entries.pop(digest, None)
        if previous is not None:
            self._bytes -= previous.numel() * previous.element_size()
        self._entries[digest] = value
        self._bytes += size
        while self._bytes > self.limit:
            _, dropped = self._entries.popitem(last=False)
            self._bytes -= dropped.numel() * dropped.element_size()

    def clear(self) -> None:
        self._entries.clear()
        self._bytes = 0


class _Disk:
    """Entries as files under a folder of the grader's own. Once the folder holds
    `limit` bytes nothing more is written (reads go on); its size is counted
    when first used and again after every limit/16 bytes this process wrote, so
    several workers overshoot by at most that much each."""

    def __init__(self, folder: Path, limit: int) -> None:
        self.folder = folder
        self.limit = limit
        self._usable: bool | None = None
        self._used = 0
        self._written_since_count = 0

    def get(self, digest: str, key: str) -> torch.Tensor | None:
        if not self._ready():
            return None
        try:
            data = read_regular(self._path(digest), limit=_ENTRY_BYTES)
        except (OSError, NotANotebookError):
            return None
        return _entry_value(data, key)

    def put(self, digest: str, key: str, value: torch.Tensor) -> None:
        import torch

        if not self._ready() or self._used >= self.limit:
            return
        buffer = io.BytesIO()
        torch.save({"format": _FORMAT, "key": key, "sha256": _values_digest(value), "value": value}, buffer)
        path = self._path(digest)
        try:
            path.parent.mkdir(mode=0o700, exist_ok=True)
            with tempfile.NamedTemporaryFile(dir=path.parent, suffix=".tmp", delete=False) as handle:
                handle.write(buffer.getvalue())
            os.replace(handle.name, path)
        except OSError:
            return  # a full or read-only disk: the output is still in memory
        self._used += len(buffer.getvalue())
        self._written_since_count += len(buffer.getvalue())
        if self._written_since_count > self.limit // 16:
            self._used, self._written_since_count = self._count(), 0

    def _path(self, digest: str) -> Path:
        return self.folder / digest[:2] / f"{digest}.pt"

    def _ready(self) -> bool:
        """Whether the folder is the grader's alone (made so here): otherwise it is not used."""
        if self._usable is None:
            self._usable = _own_folder(self.folder)
            self._used = self._count() if self._usable else 0
        return self._usable

    def _count(self) -> int:
        total = 0
        with contextlib.suppress(OSError):
            for part in os.scandir(self.folder):
                if part.is_dir(follow_symlinks=False):
                    with os.scandir(part.path) as files:
                        total += sum(f.stat(follow_symlinks=False).st_size for f in files)
        return total


def _own_folder(folder: Path) -> bool:
    for path in (folder.parent, folder):
        with contextlib.suppress(OSError):
            path.mkdir(mode=0o700, parents=path == folder.parent)
    for path in (folder.parent, folder):
        try:
            found = os.lstat(path)
        except OSError:
            return False
        if not stat.S_ISDIR(found.st_mode) or found.st_uid != os.geteuid() or found.st_mode & 0o077:
            return False
    return True


def _entry_value(data: bytes, key: str) -> torch.Tensor | None:
    """The output an entry file holds, if it is a whole entry for exactly `key`."""
    import torch

    try:
        entry = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception:  # any corrupt or foreign file: recomputed, never an error that changes a score
        return None
    if not isinstance(entry, dict) or entry.get("format") != _FORMAT or entry.get("key") != key:
        return None
    value = entry.get("value")
    if not isinstance(value, torch.Tensor) or value.dtype != torch.float32 or value.dim() != 1:
        return None
    return value if entry.get("sha256") == _values_digest(value) else None


def _values_digest(value: torch.Tensor) -> str:
    return hashlib.sha256(value.contiguous().numpy().tobytes()).hexdigest()


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


class Predictions:
    """The trusted models' outputs for pictures, through the process's memory
    and, where given, a disk folder. Get one with `cache_for`."""

    def __init__(self, folder: Path | None = None, *, memory: _Memory | None = None) -> None:
        self._memory = memory if memory is not None else _PROCESS_MEMORY
        self._disk = _Disk(folder, DISK_BYTES) if folder is not None else None
        self.counts = PredictionCounts()

    def outputs(
        self,
        assets: AssetStore,
        model: str,
        pictures: Sequence[Any],
        *,
        preprocessing: Any,
        layer: str = "logits",
    ) -> torch.Tensor:
        """The reference `model`'s `layer` for each picture (N x width): PIL
        images through `preprocessing`, or, with `preprocessing=None`, input
        tensors (3 x H x W) as they are."""
        import torch

        if layer not in LAYERS:
            raise ValueError(f"no layer `{layer}`: one of {', '.join(LAYERS)}")
        if not pictures:
            raise ValueError("no pictures to predict on")
        common = _common_key(assets, model, preprocessing, layer)
        contents = [_picture_key(picture) for picture in pictures] if common is not None else []
        if common is None or None in contents:
            self.counts.uncached += len(pictures)
            return torch.stack(_computed(assets, model, list(pictures), preprocessing, layer))
        keys = [json.dumps([*common, content]) for content in contents]
        rows = [self._kept(key) for key in keys]
        missing = [index for index, row in enumerate(rows) if row is None]
        if missing:
            fresh = _computed(assets, model, [pictures[i] for i in missing], preprocessing, layer)
            for index, row in zip(missing, fresh, strict=True):
                rows[index] = row
                self._keep(keys[index], row)
        found = [row for row in rows if row is not None]
        if len({row.shape for row in found}) > 1:  # a stored entry of another width: all computed again
            found = _computed(assets, model, list(pictures), preprocessing, layer)
            for key, row in zip(keys, found, strict=True):
                self._keep(key, row)
        return torch.stack(found)  # a copy: the caller may change it

    def probabilities(
        self, assets: AssetStore, model: str, pictures: Sequence[Any], *, preprocessing: Any
    ) -> torch.Tensor:
        """The softmax of the reference `model`'s logits for each picture (N x classes)."""
        import torch

        return torch.softmax(self.outputs(assets, model, pictures, preprocessing=preprocessing), dim=1)

    def _kept(self, key: str) -> torch.Tensor | None:
        digest = _digest(key)
        value = self._memory.get(digest)
        if value is not None:
            self.counts.memory += 1
            return value
        value = self._disk.get(digest, key) if self._disk is not None else None
        if value is not None:
            self.counts.disk += 1
            self._memory.put(digest, value)
        return value

    def _keep(self, key: str, value: torch.Tensor) -> None:
        self.counts.computed += 1
        digest = _digest(key)
        self._memory.put(digest, value)
        if self._disk is not None:
            self._disk.put(digest, key, value)


def _computed(
    assets: AssetStore, model: str, pictures: list[Any], preprocessing: Any, layer: str
) -> list[torch.Tensor]:
    """The output of each picture, BATCH pictures per forward pass, on the
    model's device; each its own copy (a view would keep, and save, the whole batch)."""
    import torch

    network = reference.load_model(assets, model)
    device = _device_of(network)
    if layer == "pooled":
        network = torch.nn.Sequential(*list(network.children())[:-1])
    rows: list[torch.Tensor] = []
    with torch.no_grad():
        for start in range(0, len(pictures), BATCH):
            chunk = pictures[start : start + BATCH]
            inputs = torch.stack([p if preprocessing is None else preprocessing(p) for p in chunk]).float()
            outputs = network(inputs.to(device)).flatten(1).float().cpu()
            rows.extend(row.clone() for row in outputs)
    return rows


def _device_of(network: Any) -> torch.device:
    return next(iter(network.parameters())).device  # type: ignore[no-any-return]


def _common_key(assets: AssetStore, model: str, preprocessing: Any, layer: str) -> list[Any] | None:
    """What every picture's key shares, or None where the preprocessing has no description."""
    import PIL
    import torch
    import torchvision

    try:
        described = "none" if preprocessing is None else _digest(_described(preprocessing, depth=0))
        weights = os.stat(assets.checkpoints / weights_file(model))
    except (_Undescribed, OSError):
        return None
    device = str(_device_of(reference.load_model(assets, model)))
    versions = [torch.__version__, torchvision.__version__, PIL.__version__]
    return [_FORMAT, model, assets.set_id, weights.st_size, weights.st_mtime_ns, described, layer, device, versions]


def _picture_key(picture: Any) -> str | None:
    """The picture's content: a PIL image's mode, size, palette and pixels, or a
    tensor's dtype, shape and bytes; None for anything else (run uncached)."""
    import torch
    from PIL import Image

    digest = hashlib.sha256()
    if isinstance(picture, torch.Tensor):
        value = picture.detach().cpu().contiguous().flatten()
        digest.update(f"tensor|{value.dtype}|{tuple(picture.shape)}|".encode())
        digest.update(value.view(torch.uint8).numpy().tobytes())
    elif isinstance(picture, Image.Image):
        digest.update(f"image|{picture.mode}|{picture.size}|{picture.getpalette()}|".encode())
        digest.update(picture.tobytes())
    else:
        return None
    return digest.hexdigest()


class _Undescribed(Exception):
    """A preprocessing whose settings cannot be written down completely."""


def _described(value: Any, *, depth: int) -> str:
    """A text that changes whenever the preprocessing's behaviour could: its
    torchvision classes and every attribute they hold, nested."""
    import torch

    if depth > 12:
        raise _Undescribed
    if value is None or isinstance(value, (bool, int, float, str, bytes, enum.Enum)):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return f"{type(value).__name__}[{','.join(_described(v, depth=depth + 1) for v in value)}]"
    if isinstance(value, (set, frozenset)):
        return f"set[{','.join(sorted(_described(v, depth=depth + 1) for v in value))}]"
    if isinstance(value, dict):
        items = (f"{_described(k, depth=depth + 1)}:{_described(v, depth=depth + 1)}" for k, v in value.items())
        return "{" + ",".join(items) + "}"
    if isinstance(value, torch.Tensor):
        return f"tensor({_picture_key(value)})"
    if isinstance(value, (torch.dtype, torch.device)):
        return str(value)
    kind = type(value)
    if not kind.__module__.startswith(_TRUSTED_MODULES) or not hasattr(value, "__dict__"):
        raise _Undescribed  # a function, a lambda, a class of the course's own: its code is not in the key
    return f"{kind.__module__}.{kind.__qualname__}({_described(vars(value), depth=depth + 1)})"


_PROCESS_MEMORY = _Memory(MEMORY_BYTES)  # one per grader process: every submission a worker grades shares it
_BY_FOLDER: dict[Path | None, Predictions] = {}


def cache_for(folder: Path | None = None) -> Predictions:
    """This process's `Predictions` for a disk folder (None: memory only), the
    same object for every submission graded with it."""
    found = _BY_FOLDER.get(folder)
    if found is None:
        if len(_BY_FOLDER) >= 8:  # a long-lived process that graded many batches: forget the oldest
            del _BY_FOLDER[next(iter(_BY_FOLDER))]
        found = _BY_FOLDER[folder] = Predictions(folder)
    return found


def folder_for(results: Path) -> Path:
    """Where a batch writing to `results` (its `--out` folder) keeps the predictions."""
    return results / "cache" / "predictions"
