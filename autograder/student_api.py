"""What a check may ask of a student: the `student` fixture's API, whatever runs the notebook.

`StudentAPI` is one protocol with two ends. In grading the student's code
runs in a sandboxed kernel and `bridge.Student` carries each request there
and its reply back; in a self-check the code is the student's own, in the
student's own kernel, and `in_process.NamespaceStudent` answers the same
requests against that kernel's live namespace. Either way the request is
answered by `wire.answer` and the reply decoded here, through the same codec
and the same bounds, so a check gives the same verdict on both ends: values
come back as data (tensors, arrays, `ModuleSnapshot`, `Opaque`), never as the
student's objects.
"""

from __future__ import annotations

import contextlib
import json
import secrets
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from autograder import wire
from autograder.errors import (
    BridgeTimeoutError,
    KernelUnavailableError,
    StudentCodeError,
    StudentNameError,
    UnsafeValueError,
)
from autograder.figures import FigureRecord, Figures, figures_of
from autograder.figures import decode as decode_figures

_REDACTED = "[the check's code]"


def redact(text: str, request: Mapping[str, Any]) -> str:
    """`text` (from the kernel) with every piece of the request's code cut out:
    the probe's source, each of its lines, and the request's JSON."""
    pieces: list[str] = [json.dumps(request), str(request.get("args", ""))]
    code = str(request.get("code", ""))
    for piece in [code, *(line.strip() for line in code.splitlines())] if code else []:
        pieces += [piece, json.dumps(piece)[1:-1]]  # as written, and as escaped inside the request's JSON
    for piece in sorted({p for p in pieces if len(p) >= 6}, key=len, reverse=True):
        text = text.replace(piece, _REDACTED)
    return text


@dataclass(frozen=True)
class ModuleSnapshot:
    """An `nn.Module` as data: its type, mode, parameters and state dict."""

    type: str
    training: bool
    parameters: tuple[tuple[str, tuple[int, ...], bool], ...]
    state: dict[str, Any] = field(repr=False)
    devices: tuple[str, ...]
    children: tuple[tuple[str, str], ...]
    text: str = field(repr=False)

    @property
    def parameter_count(self) -> int:
        return sum(_numel(shape) for _, shape, _ in self.parameters)

    @property
    def trainable_count(self) -> int:
        return sum(_numel(shape) for _, shape, trainable in self.parameters if trainable)


@dataclass(frozen=True)
class Opaque:
    """A value that is not plain data (a function, a file, a custom object)."""

    type: str
    repr: str


def _numel(shape: tuple[int, ...]) -> int:
    count = 1
    for size in shape:
        count *= size
    return count


def _module_from(fields: dict[str, Any]) -> ModuleSnapshot:
    return ModuleSnapshot(
        type=str(fields["type"]),
        training=bool(fields["training"]),
        parameters=tuple((str(n), tuple(int(s) for s in shape), bool(t)) for n, shape, t in fields["parameters"]),
        state=fields["state"],
        devices=tuple(str(d) for d in fields["devices"]),
        children=tuple((str(n), str(t)) for n, t in fields["children"]),
        text=str(fields["repr"]),
    )


def _opaque_from(fields: dict[str, Any]) -> Opaque:
    return Opaque(type=str(fields["type"]), repr=str(fields["repr"]))


_REBUILD: dict[str, Callable[..., Any]] = {"module": _module_from, "object": _opaque_from}


class StudentAPI:
    """The student's code as the checks see it: names to fetch, functions to call,
    code to probe, figures drawn. Subclasses say how a request reaches the code
    (`_exchange`); everything a check sees is decided here."""

    def __init__(
        self,
        *,
        timeout_s: float,
        max_bytes: int,
        workdir: Path | None = None,
        shown: Mapping[str, Path] | None = None,
        unavailable: str | None = None,
    ) -> None:
        self._timeout_s = timeout_s
        self._max_bytes = max_bytes
        self._workdir = workdir
        self._shown = dict(shown or {})
        self.unavailable = unavailable
        self._deadline: float | None = None  # the checks phase's budget, as a time.monotonic() instant
        self._budget = ""

    def fetch(self, name: str, *, module_state: bool = True) -> Any:
        """The value the notebook bound to `name`, as data."""
        return self._request({"op": "fetch", "name": name, "module_state": module_state}, name)

    def call(self, name: str, *args: Any, **kwargs: Any) -> Any:
        """Call the student's function `name`; the result comes back as data."""
        return self._request({"op": "call", "name": name, "args": self._pack((args, kwargs))}, f"`{name}(...)`")

    def probe(self, code: str, **inputs: Any) -> Any:
        """Run check-written `code` in a copy of the student's namespace, with `inputs`
        bound to a dict of the given values, and return what it binds to `result`."""
        return self._request({"op": "probe", "code": code, "args": self._pack(((), inputs))}, "the notebook's code")

    def figures(self, path: str | None = None) -> list[FigureRecord]:
        """The records of the figures the notebook saved or displayed with matplotlib
        (`autograder.figures`); with `path`, only the last one saved to that file,
        if the file still holds what was saved: [] if none does."""
        return figures_of(self.recorded_figures(), path)

    def recorded_figures(self) -> Figures:
        """Everything the figure recorder holds, with whether it was installed at all."""
        if self._workdir is None:
            raise KernelUnavailableError("this kernel's working folder is not known, so its figures cannot be read")
        raw = self._request({"op": "figures"}, "the notebook's figure records")
        return decode_figures(raw, workdir=self._workdir, shown=self._shown)

    def has(self, name: str) -> bool:
        try:
            self.fetch(name, module_state=False)
        except StudentNameError:
            return False
        return True

    @contextlib.contextmanager
    def budget(self, seconds: float, name: str) -> Iterator[None]:
        """Within this block every call waits at most until `seconds` from now
        are spent, whatever is left of its own timeout; past that, calls fail
        at once with a message naming the budget `name`."""
        self._deadline, self._budget = time.monotonic() + seconds, f"the {seconds:g} s budget for checks ({name})"
        try:
            yield
        finally:
            self._deadline, self._budget = None, ""

    def _exchange(self, request: dict[str, Any], *, seconds: float, by_budget: bool) -> dict[str, Any]:
        """Send `request` to the student's code and return its reply (`wire.answer`'s,
        decoded from JSON), waiting at most `seconds`: past them raise
        `BridgeTimeoutError`, saying so (`_timed_out`)."""
        raise NotImplementedError

    def _timed_out(self, *, by_budget: bool) -> BridgeTimeoutError:
        if by_budget:
            return BridgeTimeoutError(f"{self._budget} ran out while the notebook's code ran")
        return BridgeTimeoutError(f"the notebook's code did not answer within {self._timeout_s:g} s")

    def _pack(self, value: Any) -> str:
        return wire.pack(value, max_bytes=self._max_bytes)

    def _request(self, request: dict[str, Any], target: str) -> Any:
        if self.unavailable:
            raise KernelUnavailableError(self.unavailable)
        request.update(nonce=secrets.token_hex(16), max_bytes=self._max_bytes)
        started = time.monotonic()
        if self._deadline is not None and self._deadline <= started:
            raise BridgeTimeoutError(f"{self._budget} ran out before this call")
        by_budget = self._deadline is not None and self._deadline < started + self._timeout_s
        seconds = min(self._timeout_s, (self._deadline or started + self._timeout_s) - started)
        reply = self._exchange(request, seconds=seconds, by_budget=by_budget)
        return self._decoded(reply, request, target)

    def _decoded(self, reply: dict[str, Any], request: dict[str, Any], target: str) -> Any:
        """The value a reply carries, or the error it reports, in words a check may show."""
        if reply.get("ok"):
            try:
                return wire.unpack(str(reply["value"]), max_bytes=self._max_bytes, rebuild=_REBUILD)
            except Exception as error:  # the reply is the student's, made to break a decoder: any failure is theirs
                unreadable = f"{target} gave a value that cannot be read as data"
                raise UnsafeValueError(
                    f"{unreadable}: {type(error).__name__}: {redact(str(error), request)[:300]}",
                    without_kernel_text=f"{unreadable} ({type(error).__name__})",
                ) from None
        kind = reply.get("kind")
        if kind == "missing":
            if request["op"] != "probe":  # the name the check asked for, whatever the reply says
                raise StudentNameError(str(request["name"]))
            raise StudentNameError(redact(str(reply.get("name")), request)[:200], asked=False)
        if kind == "too-large":
            raise UnsafeValueError(
                f"{target} gave a value too large to check: {redact(str(reply.get('message')), request)[:300]}",
                without_kernel_text=f"{target} gave a value too large to check",
            )
        exception, message = str(reply.get("exception"))[:200], str(reply.get("message", ""))
        raise StudentCodeError(target, redact(exception, request), redact(message, request))
