"""Offline assets: the files that torchvision's own loading code looks for.

No network exists while grading, so notebooks keep their real calls
(`resnet18(weights=ResNet18_Weights.DEFAULT)`, `FashionMNIST(root=...)`,
`ImageFolder(...)`) and find the files on disk. The asset folder
(`$AUTOGRADER_ASSETS`, else `.assets/` in a checkout, else the user's cache)
holds two parts, one folder per asset in each::

    manifest.json        which set this is: "real", "stand-in" or "mixed", and its id
    public/NAME/         what the student's kernel sees, read-only, at /assets/NAME
    hidden/NAME/         the grader's alone (never mounted): each asset's held-out split
    hidden/stand-in-secret   stand-ins only: what the hidden parts are drawn from

Which assets exist is course data, not the engine's: the course registers each
in `assignments/assets.toml` with a module beside the assignments (what it is,
where its real files come from, how its stand-in is made; it ships to
students) and, where part of it is held out, a module beside the solutions
(how it splits, and its held-out stand-in). `Dataset` describes that
interface. The engine keeps the mechanism: `fetch` (the real files),
`autograder.standins.synth` (stand-ins, the hidden part from a secret the
shipped code does not hold), `status`, the fixed mount path, and the set id
that results and batch caches carry.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import importlib.util
import json
import os
import sys
import tomllib
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from autograder.errors import AssetError

MANIFEST = "manifest.json"
REGISTRY = "assets.toml"  # in the course's assignments/ folder


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
    """The default weights of torchvision's builder `model` (e.g. "resnet18")."""
    import torchvision.models

    return torchvision.models.get_model_weights(model).DEFAULT


# --- the course's assets: one small interface ---


@dataclass(frozen=True)
class Dataset:
    """One asset a course registers in `assignments/assets.toml`.

    `module` (beside the assignments; it ships, and students' machines run it)
    defines:

    * `TITLE`: what the asset is, one line; `VERSION`: of its stand-in
      generator (a new version changes the stand-in set id, so caches of
      results graded on the old files are not reused);
    * `synth(folder, assets)`: write the stand-in public part into `folder`
      (`public/NAME`), the same on every machine (a fixed seed); `assets` is
      the public root, to read assets registered before this one. It may
      return a dict of figures for `autograder assets synth` to print;
    * `fetch(folder, source, download)`: put the real public files there,
      from the instructor's `source` (a folder or zip, or None) or, if
      `download`, from the network; return one line saying what was done, or
      None when there was nothing to do;
    * `status(folder)`: `(part, count, unit)` rows, a count of 0 meaning missing.

    `hidden` (beside the solutions; only instructors have it) defines, where
    part of the asset is held out:

    * `synth(folder, rng, public)`: write the held-out stand-in part into
      `folder` (`hidden/NAME`), drawing only from `rng` (seeded by the store's
      secret), with the public module `public` for its drawing code;
    * `split(public_folder, hidden_folder)`: after a real fetch, move the
      held-out part out of the public folder;
    * `status(folder)`: as above; and whatever readers its checks use.
    """

    name: str
    module: ModuleType
    hidden: ModuleType | None = None  # None also where the course's solutions/ is absent
    holds_out: bool = False  # the registry names a hidden module

    @property
    def title(self) -> str:
        return str(getattr(self.module, "TITLE", self.name))

    @property
    def version(self) -> str:
        return str(getattr(self.module, "VERSION", "1"))

    def public_folder(self, store: AssetStore) -> Path:
        return store.public / self.name

    def hidden_folder(self, store: AssetStore) -> Path:
        return store.hidden / self.name


@dataclass(frozen=True)
class CourseAsset:
    """A registered asset bound to one asset folder: what checks get (the
    `data` fixture) to find its files and its module's readers."""

    dataset: Dataset
    public: Path
    hidden: Path

    @property
    def module(self) -> ModuleType:
        return self.dataset.module

    @property
    def hidden_module(self) -> ModuleType:
        if self.dataset.hidden is None:
            raise AssetError(f"asset `{self.dataset.name}` has no hidden part in this course")
        return self.dataset.hidden


def bound(datasets: dict[str, Dataset], store: AssetStore) -> dict[str, CourseAsset]:
    return {
        name: CourseAsset(dataset, dataset.public_folder(store), dataset.hidden_folder(store))
        for name, dataset in datasets.items()
    }


def course_datasets(course_root: Path) -> dict[str, Dataset]:
    """The assets `course_root` registers, in their order, with their modules
    loaded (the hidden ones only where the course's solutions are present)."""
    registry = course_root / "assignments" / REGISTRY
    try:
        stamp = registry.stat().st_mtime_ns
    except FileNotFoundError:
        return {}
    return dict(_load_registry(str(registry.resolve()), stamp))


@functools.lru_cache(maxsize=8)
def _load_registry(registry: str, _stamp: int) -> tuple[tuple[str, Dataset], ...]:
    path = Path(registry)
    try:
        entries = tomllib.loads(path.read_text(encoding="utf-8")).get("asset", [])
    except (OSError, tomllib.TOMLDecodeError) as error:
        raise AssetError(f"{path}: {error}") from error
    course = path.parent.parent
    loaded = []
    for entry in entries:
        name = entry.get("name")
        if not isinstance(name, str) or not name or "/" in name or name.startswith("."):
            raise AssetError(f"{path}: every [[asset]] needs a plain `name` (a folder name)")
        if "module" not in entry:
            raise AssetError(f"{path}: asset `{name}` names no `module`")
        module = _load_module(course / "assignments" / entry["module"], f"{name} public")
        hidden_file = course / "solutions" / entry["hidden"] if "hidden" in entry else None
        hidden = _load_module(hidden_file, f"{name} hidden") if hidden_file and _within_reach(hidden_file) else None
        loaded.append((name, Dataset(name, module, hidden, holds_out="hidden" in entry)))
    return tuple(loaded)


def _within_reach(path: Path) -> bool:
    """A file that is there and this user may read: the solutions are root's
    alone on a grading machine, and a user checking public checks has none."""
    try:
        return path.is_file() and os.access(path, os.R_OK)
    except PermissionError:
        return False


def _load_module(path: Path, role: str) -> ModuleType:
    """A course module, by path, under a name of its own (two courses' modules never mix)."""
    digest = hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:10]
    name = f"autograder_course_{digest}_{path.stem}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None or not path.is_file():
        raise AssetError(f"the {role} module {path} is missing")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as error:
        del sys.modules[name]
        raise AssetError(f"the {role} module {path} failed to load: {type(error).__name__}: {error}") from error
    return module


def status(store: AssetStore, datasets: dict[str, Dataset]) -> list[tuple[str, str, str]]:
    """(part, state, detail) rows for `autograder assets status`."""
    kinds: dict[str, str] = store.manifest().get("parts", {})
    rows = []
    for name, dataset in datasets.items():
        parts = [(dataset.module, dataset.public_folder(store), "")]
        if dataset.hidden is not None:
            parts.append((dataset.hidden, dataset.hidden_folder(store), " (hidden)"))
        for module, folder, suffix in parts:
            for part, count, unit in module.status(folder):
                state = kinds.get(name, "?") if count else "missing"
                rows.append((f"{part}{suffix}", state, f"{count} {unit}"))
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


def fetch(
    store: AssetStore, datasets: dict[str, Dataset], *, sources: dict[str, Path], download: bool = True
) -> list[str]:
    """The real files of every registered asset: each module's `fetch`, from the
    instructor's `sources` (asset name -> folder or zip) or the network (unless
    `download` is false); then each hidden module's `split` holds its part out.
    Returns what was done, one line each."""
    unknown = sorted(set(sources) - set(datasets))
    if unknown:
        raise AssetError(f"no asset {', '.join(unknown)} in this course (known: {', '.join(datasets) or 'none'})")
    done = []
    parts: dict[str, str] = dict(store.manifest().get("parts", {}))
    for name, dataset in datasets.items():
        folder = dataset.public_folder(store)
        folder.mkdir(parents=True, exist_ok=True)
        line = dataset.module.fetch(folder, sources.get(name), download)
        if line is None:
            continue
        if dataset.hidden is not None:
            dataset.hidden.split(folder, dataset.hidden_folder(store))
        parts[name] = "real"
        done.append(f"{name}: {line}")
    if not done:
        raise AssetError("nothing to fetch: give a source, or leave downloads on")
    kind = "real" if all(parts.get(name) == "real" for name in datasets) else "mixed"
    write_manifest(store, kind=kind, set_id=kind, parts=parts)
    seal(store)
    return done


@contextlib.contextmanager
def environment(**values: str) -> Iterator[None]:
    """Environment variables set for a block (e.g. TORCH_HOME while torchvision downloads)."""
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


# --- deprecated: course data the engine used to hold ---

_MOVED = {
    "INTEL": 'the asset name "intel-image-classification"',
    "FASHION": 'the asset name "fashion-mnist"',
    "SCENES": "the `data` fixture's intel-image-classification module (`SCENES`)",
    "FASHION_FILES": "the `data` fixture's fashion-mnist module (`FILES`)",
    "MODELS": "the `data` fixture's torch module (`MODELS`)",
}


def warn_moved(old: str, instead: str) -> None:
    """The DeprecationWarning of a name that moved to the course's asset modules."""
    warnings.warn(f"{old} is deprecated: use {instead}", DeprecationWarning, stacklevel=3)


def default_course_datasets() -> dict[str, Dataset]:
    """The assets the default course registers (what the deprecated names read)."""
    from autograder.course import Course

    return course_datasets(Course.default().root)


def __getattr__(name: str) -> Any:
    """`INTEL`, `FASHION`, `SCENES`, `FASHION_FILES`, `MODELS` (deprecated): the
    default course's values, for private courses written before assets were
    course data."""
    if name not in _MOVED:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    warn_moved(f"autograder.assets.{name}", _MOVED[name])
    if name == "INTEL":
        return "intel-image-classification"
    if name == "FASHION":
        return "fashion-mnist"
    datasets = default_course_datasets()
    if name == "SCENES":
        return tuple(datasets["intel-image-classification"].module.SCENES)
    if name == "FASHION_FILES":
        return tuple(datasets["fashion-mnist"].module.FILES)
    models = datasets["torch"].module.MODELS
    return {model: type(weights_enum(model)).__name__ for model in models}
