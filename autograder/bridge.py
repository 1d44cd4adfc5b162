"""The bridge: how trusted checks see the student's live kernel, as data only.

Checks receive a `Student` (the `student` fixture). Every request sends the
source of `autograder.wire` into the kernel together with the request; the
reply is a JSON text published as display data, decoded here without running
anything the student made. Each call has a timeout and a size bound, and a
kernel that stops answering is interrupted, then given up on.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from queue import Empty
from typing import Any

from jupyter_client.blocking.client import BlockingKernelClient

from autograder import wire
from autograder.errors import (
    BridgeTimeoutError,
    KernelUnavailableError,
    StudentCodeError,
    StudentNameError,
    UnsafeValueError,
)

_WIRE_SOURCE = Path(wire.__file__).read_text(encoding="utf-8")
_RECOVERY_S = 5.0


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


class Student:
    """The student's kernel as the checks see it: names to fetch, functions to call."""

    def __init__(
        self,
        connection_info: Mapping[str, Any],
        *,
        timeout_s: float,
        max_bytes: int,
        interrupt: Callable[[], None],
        kill: Callable[[], None],
        unavailable: str | None = None,
    ) -> None:
        self._timeout_s = timeout_s
        self._max_bytes = max_bytes
        self._interrupt = interrupt
        self._kill = kill
        self.unavailable = unavailable
        self._client = BlockingKernelClient()
        self._client.load_connection_info(dict(connection_info))  # type: ignore[arg-type]
        self._client.start_channels()
        self._await_subscription()

    def fetch(self, name: str, *, module_state: bool = True) -> Any:
        """The value the notebook bound to `name`, as data."""
        return self._request({"op": "fetch", "name": name, "module_state": module_state}, name)

    def call(self, name: str, *args: Any, **kwargs: Any) -> Any:
        """Call the student's function `name` inside the kernel; the result comes back as data."""
        return self._request({"op": "call", "name": name, "args": self._pack((args, kwargs))}, f"`{name}(...)`")

    def probe(self, code: str, **inputs: Any) -> Any:
        """Run check-written `code` in a copy of the student's namespace, with `inputs`
        bound to a dict of the given values, and return what it binds to `result`."""
        return self._request({"op": "probe", "code": code, "args": self._pack(((), inputs))}, "the notebook's code")

    def has(self, name: str) -> bool:
        try:
            self.fetch(name, module_state=False)
        except StudentNameError:
            return False
        return True

    def run_internal(self, code: str, *, timeout_s: float) -> bool:
        """Run grader-written code (seeding, a liveness probe); True if the kernel went idle in time."""
        msg_id = self._client.execute(code, silent=True, store_history=False, allow_stdin=False)
        return self._wait_idle(msg_id, timeout_s)

    def interrupt_and_wait(self) -> bool:
        """Interrupt a busy kernel; True if it answers again, else it is stopped."""
        self._interrupt()
        if self.run_internal("pass", timeout_s=_RECOVERY_S):
            return True
        self._kill()
        self.unavailable = "the kernel ignored an interrupt after a cell ran past its time limit"
        return False

    def _await_subscription(self, timeout_s: float = 30.0) -> None:
        """A new subscriber misses what the kernel publishes before it has joined;
        ask for kernel info until one of its status messages reaches us."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            msg_id = self._client.kernel_info()
            if self._wait_idle(msg_id, 0.5):
                return
        self.unavailable = "the kernel never answered on its output channel"

    def close(self) -> None:
        self._client.stop_channels()

    def _pack(self, value: Any) -> str:
        return wire.pack(value, max_bytes=self._max_bytes)

    def _request(self, request: dict[str, Any], target: str) -> Any:
        if self.unavailable:
            raise KernelUnavailableError(self.unavailable)
        request.update(nonce=secrets.token_hex(16), max_bytes=self._max_bytes)
        code = (
            f"exec(compile({_WIRE_SOURCE + chr(10) + 'serve(REQUEST)'!r}, '<autograder bridge>', 'exec'), "
            f"{{'__name__': '__autograder_bridge__', 'REQUEST': {json.dumps(request)!r}}})"
        )
        reply = self._exchange(code, request["nonce"])
        if reply.get("ok"):
            try:
                return wire.unpack(str(reply["value"]), max_bytes=self._max_bytes, rebuild=_REBUILD)
            except (ValueError, KeyError, TypeError, wire.ValueTooLarge) as error:
                raise UnsafeValueError(f"{target} gave a value that cannot be read as data: {error}") from None
        kind = reply.get("kind")
        if kind == "missing":
            raise StudentNameError(str(reply.get("name")))
        if kind == "too-large":
            raise UnsafeValueError(f"{target} gave a value too large to check: {reply.get('message')}")
        raise StudentCodeError(target, str(reply.get("exception")), str(reply.get("message", "")))

    def _exchange(self, code: str, nonce: str) -> dict[str, Any]:
        msg_id = self._client.execute(code, silent=False, store_history=False, allow_stdin=False)
        deadline = time.monotonic() + self._timeout_s
        reply: dict[str, Any] | None = None
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                self._recover(msg_id)
                raise BridgeTimeoutError(f"the notebook's code did not answer within {self._timeout_s:g} s")
            try:
                message = self._client.get_iopub_msg(timeout=min(remaining, 1.0))
            except Empty:
                if not self._client.is_alive():
                    self.unavailable = "the kernel died while a check was running"
                    raise KernelUnavailableError(self.unavailable) from None
                continue
            if message["parent_header"].get("msg_id") != msg_id:
                continue
            kind, content = message["header"]["msg_type"], message["content"]
            if kind == "display_data" and reply is None:
                reply = self._parse_reply(content.get("data", {}).get(wire.MIME), nonce)
            elif kind == "status" and content.get("execution_state") == "idle":
                break
        if reply is None:
            raise StudentCodeError("the bridge", "NoReply", "the kernel answered nothing (was IPython patched?)")
        return reply

    def _parse_reply(self, text: Any, nonce: str) -> dict[str, Any] | None:
        if not isinstance(text, str) or len(text) > self._max_bytes * 4 // 3 + 1_000_000:
            return None
        try:
            reply = json.loads(text)
        except ValueError:
            return None
        if not isinstance(reply, dict) or reply.get("nonce") != nonce:
            return None
        return reply

    def _recover(self, msg_id: str) -> None:
        """After a timeout: interrupt the kernel; if it stays busy, give up on it."""
        self._interrupt()
        if not self._wait_idle(msg_id, _RECOVERY_S):
            self._kill()
            self.unavailable = "the kernel stopped answering after a check's call timed out"

    def _wait_idle(self, msg_id: str, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        while (remaining := deadline - time.monotonic()) > 0:
            try:
                message = self._client.get_iopub_msg(timeout=min(remaining, 0.5))
            except Empty:
                if not self._client.is_alive():
                    return False
                continue
            if (
                message["parent_header"].get("msg_id") == msg_id
                and message["header"]["msg_type"] == "status"
                and message["content"].get("execution_state") == "idle"
            ):
                return True
        return False
