"""Per-assignment settings, read from TOML into a frozen dataclass.

`assignments/NAME/assignment.toml` is public (students receive it); an optional
`solutions/NAME/assignment.toml` overlays grader-only settings. Every field has
a default, so an empty file is a valid config.
"""

from __future__ import annotations

import dataclasses
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from autograder.errors import ConfigError


def _setting(default: Any, help: str) -> Any:
    if isinstance(default, dict):
        return field(default_factory=lambda: dict(default), metadata={"help": help})
    return field(default=default, metadata={"help": help})


@dataclass(frozen=True)
class AssignmentConfig:
    """What an instructor tunes for one assignment."""

    title: str = _setting("", "Human title shown in reports.")
    canvas_id: int = _setting(
        0,
        "Canvas's id of this assignment (the number in its URL): the Canvas gradebook column is then "
        "'Title (id)', which Canvas matches by id; unset, it matches the exact title.",
    )
    aliases: tuple[str, ...] = _setting(
        (), "Other notebook file stems that identify this assignment (e.g. 'warmup_04')."
    )
    files: tuple[str, ...] = _setting((), "Files beside the template, relative to it, copied into the working folder.")
    cell_timeout_s: float = _setting(60.0, "Longest any one cell may run, in seconds.")
    notebook_timeout_s: float = _setting(600.0, "Longest the whole notebook may run, in seconds.")
    bridge_timeout_s: float = _setting(30.0, "Longest one call from a check into the kernel.")
    checks_timeout_s: float = _setting(
        0.0, "Longest all of one submission's checks may wait on its kernel, in seconds (unset: 10 x bridge_timeout_s)."
    )
    max_value_mb: float = _setting(64.0, "Largest value a check may fetch from the kernel (MiB).")
    seed: int = _setting(0, "Seed for random, numpy and torch before the first cell.")
    memory_mb: int = _setting(4096, "Sandbox: memory for the kernel and all it starts (MiB).")
    processes: int = _setting(256, "Sandbox: most processes and threads at once.")
    scratch_mb: int = _setting(1024, "Sandbox: size of the working folder and of /tmp (MiB).")
    questions: dict[str, str] = _setting({}, "Question id -> title, in the order reports use.")
    links: dict[str, str] = _setting(
        {}, "Working-folder path -> public asset folder it shows, read-only (e.g. data = 'fashion-mnist')."
    )
    kaggle_inputs: dict[str, str] = _setting(
        {}, "Path under /kaggle/input -> public asset folder it shows, read-only (in the sandbox and the image)."
    )
    thresholds: dict[str, dict[str, float]] = _setting(
        {}, "Asset kind ('stand-in', 'real') -> named thresholds the checks read (e.g. accuracy = 0.8)."
    )
    curves: dict[str, str] = _setting(
        {},
        "Plot title -> the notebook's list of numbers drawn in feedback (e.g. 'Training loss' = 'train_loss_history').",
    )
    answers: dict[str, str] = _setting(
        {}, "Question id -> regular expression of its heading, to report whether a written answer is present."
    )
    fail_on_failed_check: bool = _setting(
        False,
        "`check --format github` (the homework repositories' workflow) exits 1 when a public check fails, so the "
        "run shows red; unset, it exits 0 whenever the notebook was checked.",
    )

    @property
    def checks_budget_s(self) -> float:
        """The checks phase's budget: `checks_timeout_s`, or ten bridge calls' worth when unset."""
        return self.checks_timeout_s or 10 * self.bridge_timeout_s

    @classmethod
    def describe(cls) -> dict[str, str]:
        """Field name -> one-line description, for docs and `verify`."""
        return {f.name: f.metadata["help"] for f in dataclasses.fields(cls)}

    def with_overrides(self, **overrides: Any) -> AssignmentConfig:
        """A copy with the given fields replaced; `None` values are ignored (unset CLI flags)."""
        given = {name: value for name, value in overrides.items() if value is not None}
        return _build({**dataclasses.asdict(self), **given}, source="command-line options")


def load_config(*paths: Path) -> AssignmentConfig:
    """Read and merge TOML files, later ones overriding earlier; missing files are
    skipped, as is one in a folder this user may not enter (the solutions, root's
    alone on a grading machine, seen by a user checking the public checks)."""
    merged: dict[str, Any] = {}
    sources = []
    for path in paths:
        try:
            if not path.is_file():
                continue
        except PermissionError:
            continue
        try:
            merged.update(tomllib.loads(path.read_text(encoding="utf-8")))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
            raise ConfigError(f"{path}: invalid TOML: {error}") from error
        sources.append(str(path))
    return _build(merged, source=" + ".join(sources) or "defaults")


def _build(values: Mapping[str, Any], *, source: str) -> AssignmentConfig:
    fields = {f.name: f for f in dataclasses.fields(AssignmentConfig)}
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise ConfigError(f"{source}: unknown setting(s) {', '.join(unknown)}")
    checked: dict[str, Any] = {}
    for name, value in values.items():
        checked[name] = _coerce(name, value, fields[name].type, source)
    return AssignmentConfig(**checked)


def _coerce(name: str, value: Any, declared: Any, source: str) -> Any:
    wrong = ConfigError(f"{source}: `{name}` should be {declared}, got {value!r}")
    if declared == "float":
        unset = name == "checks_timeout_s" and value == 0  # 0: the default budget (checks_budget_s)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or (value <= 0 and not unset):
            raise ConfigError(f"{source}: `{name}` should be a positive number, got {value!r}")
        return float(value)
    if declared == "int":
        if (
            isinstance(value, bool)
            or not isinstance(value, int)
            or (value <= 0 and name != "seed" and not (name == "canvas_id" and value == 0))
        ):
            raise wrong
        return value
    if declared == "bool":
        if not isinstance(value, bool):
            raise wrong
        return value
    if declared == "str":
        if not isinstance(value, str):
            raise wrong
        return value
    if declared == "tuple[str, ...]":
        if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
            raise wrong
        return tuple(value)
    if declared == "dict[str, dict[str, float]]":
        if not isinstance(value, dict) or not all(
            isinstance(v, dict) and all(isinstance(n, (int, float)) and not isinstance(n, bool) for n in v.values())
            for v in value.values()
        ):
            raise wrong
        return {kind: {k: float(n) for k, n in v.items()} for kind, v in value.items()}
    if declared == "dict[str, str]":
        if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
            raise wrong
        return dict(value)
    raise wrong  # pragma: no cover - every declared type is handled above
