"""Offline assets: the files that torchvision's own loading code looks for.

No network exists while grading, so notebooks keep their real calls
(`resnet18(weights=ResNet18_Weights.DEFAULT)`, `FashionMNIST(root=...)`,
`ImageFolder(...)`) and find the files on disk. The asset folder
(`$AUTOGRADER_ASSETS`, else `.assets/` in a checkout, else the user's cache)
holds two parts::

    manifest.json                    which set this is: "real" or "stand-in"
    public/                          what the student's kernel sees, read-only
      torch/hub/checkpoints/*.pth    TORCH_HOME for the kernel and the checks
      fashion-mnist/FashionMNIST/raw/   train split + part of the test split
      intel-image-classification/seg_train/seg_train/<class>/*.jpg
      intel-image-classification/seg_test/seg_test/<class>/*.jpg
    hidden/                          the grader's alone (never mounted)
      fashion-mnist/FashionMNIST/raw/   the rest of the test split
      intel-image-classification/holdout/<class>/*.jpg
      stand-in-secret                stand-ins only: what the hidden part is drawn from

`fetch` downloads the real files (where a network exists, e.g. the Docker
build); `autograder.standins` generates small look-alikes for tests, the
hidden part from a secret made in `hidden/`, so the shipped code cannot
regenerate it.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from autograder.errors import AssetError

MANIFEST = "manifest.json"
INTEL = "intel-image-classification"
FASHION = "fashion-mnist"
SCENES = ("buildings", "forest", "glacier", "mountain", "sea", "street")
FASHION_FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)
# torchvision builder name -> weights enum name, for every model an assignment uses
MODELS = {
    "resnet18": "ResNet18_Weights",
    "mobilenet_v3_small": "MobileNet_V3_Small_Weights",
    "efficientnet_b0": "EfficientNet_B0_Weights",
}
_HELD_OUT_SHARE = 0.5  # of the real FashionMNIST test split; the grader keeps the rest
_INTEL_HOLDOUT_PER_CLASS = 100


@dataclass(frozen=True)
class AssetStore:
    """One asset folder: where its parts are and what kind of set it holds."""

    root: Path

    @property
    def public(self) -> Path:
        return self.root / "public"

    @property
    def hidden(self) -> Path:
        return self.root / "hidden"

    @property
    def torch_home(self) -> Path:
        return self.public / "torch"

    @property
    def checkpoints(self) -> Path:
        return self.torch_home / "hub" / "checkpoints"

    def manifest(self) -> dict[str, Any]:
        try:
            data = json.loads((self.root / MANIFEST).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    @property
    def kind(self) -> str:
        """ "real", "stand-in", or "none" where nothing was made yet."""
        return str(self.manifest().get("kind", "none"))

    @property
    def set_id(self) -> str:
        """Names the exact set, for results and batch cache keys."""
        return str(self.manifest().get("id", "none"))

    def require(self) -> None:
        if self.kind == "none":
            raise AssetError(
                f"no assets in {self.root}: run `autograder assets synth` (stand-ins) or `autograder assets fetch`"
            )

    def public_folder(self, name: str) -> Path:
        """A named public asset folder (`fashion-mnist`, `intel-image-classification`, `torch`)."""
        folder = self.public / name
        if not folder.is_dir():
            raise AssetError(f"asset `{name}` is missing from {self.public}: run `autograder assets status`")
        return folder


def default_store() -> AssetStore:
    """`$AUTOGRADER_ASSETS`, else `.assets/` in this checkout, else the user's cache."""
    given = os.environ.get("AUTOGRADER_ASSETS")
    if given:
        return AssetStore(Path(given).expanduser().resolve())
    checkout = Path(__file__).resolve().parents[1]
    if (checkout / "pyproject.toml").is_file():
        return AssetStore(checkout / ".assets")
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return AssetStore(cache / "autograder" / "assets")


def weights_file(model: str) -> str:
    """The file name torchvision looks for in `hub/checkpoints/` (from the weights' URL)."""
    url: str = weights_enum(model).url
    return url.rsplit("/", 1)[-1]


def weights_enum(model: str) -> Any:
    import torchvision.models

    return getattr(torchvision.models, MODELS[model]).DEFAULT


def status(store: AssetStore) -> list[tuple[str, str, str]]:
    """(part, state, detail) rows for `autograder assets status`."""
    manifest = store.manifest()
    kinds: dict[str, str] = manifest.get("parts", {})
    rows = []
    for model in MODELS:
        path = store.checkpoints / weights_file(model)
        size = f"{path.stat().st_size / 1e6:.1f} MB" if path.is_file() else ""
        rows.append((f"weights {model}", kinds.get(model, "?") if path.is_file() else "missing", size))
    for part, folder in (("fashion-mnist public", store.public), ("fashion-mnist hidden", store.hidden)):
        raw = folder / FASHION / "FashionMNIST" / "raw"
        present = [name for name in FASHION_FILES if (raw / name).is_file()]
        state = kinds.get(FASHION, "?") if present else "missing"
        rows.append((part, state, f"{len(present)} IDX files"))
    for part, folder in (
        ("intel seg_train", store.public / INTEL / "seg_train" / "seg_train"),
        ("intel seg_test", store.public / INTEL / "seg_test" / "seg_test"),
        ("intel holdout (hidden)", store.hidden / INTEL / "holdout"),
    ):
        count = sum(1 for _ in folder.glob("*/*.jpg")) if folder.is_dir() else 0
        rows.append((part, kinds.get(INTEL, "?") if count else "missing", f"{count} images"))
    return rows


def write_manifest(store: AssetStore, *, kind: str, set_id: str, parts: dict[str, str], **extra: Any) -> None:
    store.root.mkdir(parents=True, exist_ok=True)
    data = {"kind": kind, "id": set_id, "parts": parts, **extra}
    temporary = store.root / f".{MANIFEST}.tmp"
    temporary.write_text(json.dumps(data, indent=2), encoding="utf-8")
    temporary.replace(store.root / MANIFEST)


def seal(store: AssetStore) -> None:
    """Public part readable by every sandbox user; hidden part the grader's (root's) alone."""
    for folder, directory_mode, file_mode in ((store.public, 0o755, 0o644), (store.hidden, 0o700, 0o600)):
        if not folder.is_dir():
            continue
        for path in [folder, *folder.rglob("*")]:
            if path.is_symlink():
                continue
            path.chmod(directory_mode if path.is_dir() else file_mode)
        if folder == store.hidden:  # below a 0700 folder the files need no tighter modes
            folder.chmod(0o700)
    store.root.chmod(0o755)
    store.public.parent.chmod(0o755)


# --- fetching the real files (needs a network, except for the Intel set) ---


def fetch(store: AssetStore, *, intel: Path | None, download: bool = True) -> list[str]:
    """Download the real weights and FashionMNIST with torchvision's own code
    (unless `download` is false), and unpack the Intel Image Classification set
    from a folder or zip the instructor supplies (it needs a Kaggle account).
    Returns what was done, one line each."""
    done = []
    parts: dict[str, str] = dict(store.manifest().get("parts", {}))
    if download:
        store.checkpoints.mkdir(parents=True, exist_ok=True)
        with _environment(TORCH_HOME=str(store.torch_home)):
            for model in MODELS:
                try:
                    weights_enum(model).get_state_dict(progress=False)
                except OSError as error:
                    raise AssetError(f"cannot download the {model} weights (no network?): {error}") from error
                parts[model] = "real"
                done.append(f"weights {model}: {weights_file(model)}")
        _fetch_fashion_mnist(store)
        parts[FASHION] = "real"
        done.append("fashion-mnist: train split public, test split halved into public and hidden")
    if intel is not None:
        count = _unpack_intel(store, intel)
        parts[INTEL] = "real"
        done.append(f"intel-image-classification: {count} images, up to {_INTEL_HOLDOUT_PER_CLASS} per class held out")
    if not done:
        raise AssetError("nothing to fetch: give --intel, or leave downloads on")
    real = all(parts.get(p) == "real" for p in (*MODELS, FASHION, INTEL))
    kind = "real" if real else "mixed"
    write_manifest(store, kind=kind, set_id=kind, parts=parts)
    seal(store)
    return done


def _fetch_fashion_mnist(store: AssetStore) -> None:
    import torchvision.datasets

    with tempfile.TemporaryDirectory() as staging:
        try:
            torchvision.datasets.FashionMNIST(root=staging, train=True, download=True)
            torchvision.datasets.FashionMNIST(root=staging, train=False, download=True)
        except (OSError, RuntimeError) as error:
            raise AssetError(f"cannot download FashionMNIST (no network?): {error}") from error
        raw = Path(staging) / "FashionMNIST" / "raw"
        public = store.public / FASHION / "FashionMNIST" / "raw"
        hidden = store.hidden / FASHION / "FashionMNIST" / "raw"
        for folder in (public, hidden):
            folder.mkdir(parents=True, exist_ok=True)
        for name in FASHION_FILES[:2]:
            shutil.copyfile(raw / name, public / name)
        images, labels = read_idx(raw / FASHION_FILES[2]), read_idx(raw / FASHION_FILES[3])
        cut = int(len(labels) * (1 - _HELD_OUT_SHARE))
        write_idx(public / FASHION_FILES[2], images[:cut])
        write_idx(public / FASHION_FILES[3], labels[:cut])
        write_idx(hidden / FASHION_FILES[2], images[cut:])
        write_idx(hidden / FASHION_FILES[3], labels[cut:])


def _unpack_intel(store: AssetStore, source: Path) -> int:
    """Copy seg_train and seg_test from a folder or zip; hold part of seg_test out."""
    with contextlib.ExitStack() as stack:
        if source.is_file() and zipfile.is_zipfile(source):
            unpacked = Path(stack.enter_context(tempfile.TemporaryDirectory()))
            with zipfile.ZipFile(source) as archive:
                for member in archive.infolist():  # no absolute paths, no `..`
                    if member.filename.startswith("/") or ".." in Path(member.filename).parts:
                        raise AssetError(f"{source}: unsafe path in zip: {member.filename}")
                archive.extractall(unpacked)
            source = unpacked
        found = {split: next(source.rglob(f"{split}/{split}"), None) for split in ("seg_train", "seg_test")}
        if not all(found.values()):
            raise AssetError(f"{source}: no seg_train/seg_train and seg_test/seg_test folders (the Kaggle layout)")
        target = store.public / INTEL
        holdout = store.hidden / INTEL / "holdout"
        shutil.rmtree(target, ignore_errors=True)
        shutil.rmtree(holdout, ignore_errors=True)
        count = 0
        for split, folder in found.items():
            assert folder is not None
            for scene in SCENES:
                images = sorted((folder / scene).glob("*.jpg"))
                if not images:
                    raise AssetError(f"{folder}: class folder `{scene}` is missing or empty")
                kept = images
                if split == "seg_test":
                    keep = max(len(images) - _INTEL_HOLDOUT_PER_CLASS, len(images) // 2)
                    kept, held = images[:keep], images[keep:]
                    _copy_all(held, holdout / scene)
                _copy_all(kept, target / split / split / scene)
                count += len(images)
        return count


def _copy_all(files: list[Path], folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for path in files:
        shutil.copyfile(path, folder / path.name)


@contextlib.contextmanager
def _environment(**values: str) -> Iterator[None]:
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


# --- the IDX format FashionMNIST ships in (big-endian, uncompressed here) ---


def read_idx(path: Path) -> Any:
    import numpy as np

    data = path.read_bytes()
    dimensions = data[3]
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(dimensions))
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * dimensions).reshape(shape)


def write_idx(path: Path, array: Any) -> None:
    """uint8 arrays only: magic 0x0000 08 <dims>, then each size as a big-endian int32."""
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(n).to_bytes(4, "big") for n in array.shape)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(header + array.astype("uint8").tobytes())
