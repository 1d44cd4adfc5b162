"""The bridge: how trusted checks see the student's live kernel, as data only.

Checks receive a `Student` (the `student` fixture). Every request sends the
source of `autograder.wire` into the kernel together with the request; the
reply is a JSON text published as display data, decoded here without running
anything the student made. Each call has a timeout and a size bound, and a
kernel that stops answering is interrupted, then given up on.

The request travels as a user expression, not as cell code: IPython keeps a
cell's code where tracebacks show it, and a traceback the student's code
formats would then carry the check's probe. Whatever the kernel says back
(an exception's message, a name) has the request's code cut out of it, as
a courtesy for public checks: the student's code can read the probe and
encode it, so a hidden check shows none of that text (the errors'
`without_kernel_text`).

Every message from the kernel may be forged by the student's code, so the
grader's end of the protocol (`KernelSession`) bounds each message part
before parsing it and turns a malformed message into a harmless
`autograder_dropped` one; the bridge listens on the kernel's output only
while it waits for an answer, so output it does not read never piles up in
the grader's memory.
"""

from __future__ import annotations

import contextlib
import json
import secrets
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from queue import Empty
from typing import Any

import zmq
from jupyter_client.blocking.client import BlockingKernelClient
from jupyter_client.session import Session

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

_WIRE_SOURCE = Path(wire.__file__).read_text(encoding="utf-8")
_RECOVERY_S = 5.0
DROPPED = "autograder_dropped"  # the type given to a message from the kernel that could not be read
_REDACTED = "[the check's code]"
_DRAIN_MAX = 10_000  # messages read and dropped at most before a request, if the kernel floods
_SHELL_PART_BYTES = 1 << 20
_SHELL_QUEUE = 16  # messages
_OUTPUT_QUEUE = 64  # messages the output channel queues while it is read: each may be a whole reply


def message_limit(max_bytes: int) -> int:
    """The largest message part the bridge accepts: a reply of `max_bytes` of
    tensors, escaped twice (once in the reply, once in the message)."""
    return 2 * wire.text_limit(max_bytes) + (8 << 20)


def limit_messages(context: zmq.Context[Any], max_part_bytes: int) -> None:
    """Make every socket later opened from `context` drop a connection that
    sends a message part larger than `max_part_bytes`, before it is read into
    memory. zmq applies the option when a socket connects, so this must come
    before the client's channels start."""
    context.setsockopt(zmq.MAXMSGSIZE, max_part_bytes)


class KernelSession(Session):
    """The grader's end of the Jupyter message protocol, for a kernel whose
    messages the student can forge (the signing key is in the kernel's memory).

    Each part is refused before it is parsed when its lists and objects would
    cost far more memory than its bytes, and a message that cannot be read
    (bad JSON, a replayed signature, fields of the wrong type) becomes a
    `DROPPED` message with the reason, never an exception in the grader."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.unpack = _load_part

    def deserialize(self, msg_list: Any, content: bool = True, copy: bool = True) -> dict[str, Any]:
        try:
            message = super().deserialize(msg_list, content=content, copy=copy)
        except (ValueError, KeyError, TypeError, IndexError, AttributeError, wire.ValueTooLarge) as error:
            return _dropped(f"{type(error).__name__}: {str(error)[:200]}", _parent_of(msg_list))
        parts = ("header", "parent_header", "metadata", *(("content",) if content else ()))
        if type(message.get("msg_type")) is not str or any(type(message.get(part)) is not dict for part in parts):
            return _dropped("a message whose fields have the wrong types", _parent_of(msg_list))
        return message


def _load_part(data: Any) -> Any:
    return wire.load_json(bytes(data).decode("utf-8", "replace"))


def _parent_of(msg_list: Any) -> dict[str, Any]:
    """The parent header of a message that could not be read, when that part can
    be: the drop is then recorded with the request it answered."""
    try:
        part = msg_list[2]
        parent = _load_part(part if isinstance(part, bytes) else part.bytes)
    except (ValueError, TypeError, IndexError, AttributeError, wire.ValueTooLarge):
        return {}
    return parent if type(parent) is dict and type(parent.get("msg_id")) is str else {}


def _dropped(reason: str, parent: dict[str, Any]) -> dict[str, Any]:
    header = {"msg_id": "", "msg_type": DROPPED}
    return {
        "header": header,
        "msg_id": "",
        "msg_type": DROPPED,
        "parent_header": parent,
        "metadata": {},
        "content": {"reason": reason},
        "buffers": [],
    }


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
        workdir: Path | None = None,
        shown: Mapping[str, Path] | None = None,
    ) -> None:
        self._timeout_s = timeout_s
        self._workdir = workdir
        self._shown = dict(shown or {})
        self._max_bytes = max_bytes
        self._interrupt = interrupt
        self._kill = kill
        self.unavailable = unavailable
        self._deadline: float | None = None  # the checks phase's budget, as a time.monotonic() instant
        self._budget = ""
        self._client = BlockingKernelClient(session=KernelSession())
        self._client.load_connection_info(dict(connection_info))  # type: ignore[arg-type]
        # The shell socket carries only execute replies the bridge never reads (replies come on the
        # output channel): small messages, few queued, so a kernel flooding it holds little of the
        # grader's memory. The stdin and control channels are not opened at all.
        limit_messages(self._client.context, _SHELL_PART_BYTES)
        self._client.context.setsockopt(zmq.RCVHWM, _SHELL_QUEUE)
        self._client.shell_channel  # noqa: B018 (made and connected here, with those limits)
        limit_messages(self._client.context, message_limit(max_bytes))
        self._client.context.setsockopt(zmq.RCVHWM, _OUTPUT_QUEUE)
        self._client.start_channels(stdin=False, control=False)
        self._output = self._client.iopub_channel.socket
        self._output_endpoint = self._output.getsockopt(zmq.LAST_ENDPOINT).decode()
        self._output.disconnect(self._output_endpoint)  # connected only while waiting on the kernel
        with self._listening(30.0) as listening:
            if not listening:
                self.unavailable = "the kernel never answered on its output channel"

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

    def figures(self, path: str | None = None) -> list[FigureRecord]:
        """The records of the figures the notebook saved or displayed with matplotlib
        (`autograder.figures`); with `path`, only the last one saved to that file,
        if the file still holds what was saved: [] if none does."""
        return figures_of(self.recorded_figures(), path)

    def recorded_figures(self) -> Figures:
        """Everything the kernel's figure recorder holds, with whether it was installed at all."""
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

    def run_internal(self, code: str, *, timeout_s: float) -> bool:
        """Run grader-written code (seeding, a liveness probe); True if the kernel went idle in time."""
        deadline = time.monotonic() + timeout_s
        with self._listening(timeout_s) as listening:
            if not listening:
                return False
            msg_id = self._client.execute(code, silent=True, store_history=False, allow_stdin=False)
            return self._wait_idle(msg_id, deadline - time.monotonic())

    def interrupt_and_wait(self) -> bool:
        """Interrupt a busy kernel; True if it answers again, else it is stopped."""
        self._interrupt()
        if self.run_internal("pass", timeout_s=_RECOVERY_S):
            return True
        self._kill()
        self.unavailable = "the kernel ignored an interrupt after a cell ran past its time limit"
        return False

    @contextlib.contextmanager
    def _listening(self, timeout_s: float) -> Iterator[bool]:
        """Connected to the kernel's output only while waiting on it, since a
        subscriber that is not read keeps every message it receives (a
        notebook's 200 MB prints, all of them) in the grader's memory, and an
        unsubscribed one still receives what a forged publisher sends anyway
        (zmq filters on the subscriber's side). A new connection misses what
        the kernel publishes before it has reached the kernel, so ask for
        kernel info until one of its status messages arrives; yields False if
        none did in time."""
        self._drain()
        self._output.connect(self._output_endpoint)
        try:
            deadline = time.monotonic() + timeout_s
            answered = False
            while not answered and (remaining := deadline - time.monotonic()) > 0:
                answered = self._wait_idle(self._client.kernel_info(), min(remaining, 0.25))
            yield answered
        finally:
            self._output.disconnect(self._output_endpoint)

    def _drain(self) -> None:
        """Read and drop what arrived while nobody listened (replies to kernel-info
        requests, output published as the subscription ended)."""
        for channel in (self._client.iopub_channel, self._client.shell_channel):
            for _ in range(_DRAIN_MAX):
                try:
                    channel.get_msg(timeout=0)
                except Empty:
                    break

    def close(self) -> None:
        self._client.stop_channels()

    def _pack(self, value: Any) -> str:
        return wire.pack(value, max_bytes=self._max_bytes)

    def _request(self, request: dict[str, Any], target: str) -> Any:
        if self.unavailable:
            raise KernelUnavailableError(self.unavailable)
        request.update(nonce=secrets.token_hex(16), max_bytes=self._max_bytes)
        expression = (
            f"exec(compile({_WIRE_SOURCE + chr(10) + 'serve(REQUEST)'!r}, '<autograder bridge>', 'exec'), "
            f"{{'__name__': '__autograder_bridge__', 'REQUEST': {json.dumps(request)!r}}})"
        )
        reply = self._exchange(expression, request["nonce"])
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

    def _exchange(self, expression: str, nonce: str) -> dict[str, Any]:
        """Send the request as a user expression (its source is never a cell's,
        so no traceback shows it) and wait for the reply with this nonce."""
        started = time.monotonic()
        deadline = started + self._timeout_s
        if self._deadline is not None and self._deadline <= started:
            raise BridgeTimeoutError(f"{self._budget} ran out before this call")
        by_budget = self._deadline is not None and self._deadline < deadline
        deadline = min(deadline, self._deadline or deadline)
        reply: dict[str, Any] | None = None
        finished = False
        with self._listening(deadline - started) as listening:
            if listening:
                msg_id = self._client.execute(
                    "", silent=False, store_history=False, user_expressions={"bridge": expression}, allow_stdin=False
                )
                reply, finished = self._await_reply(msg_id, nonce, deadline)
        if not finished:
            self._recover()
            if by_budget:
                raise BridgeTimeoutError(f"{self._budget} ran out while the notebook's code ran")
            raise BridgeTimeoutError(f"the notebook's code did not answer within {self._timeout_s:g} s")
        if reply is None:
            raise StudentCodeError("the bridge", "NoReply", "the kernel answered nothing (was IPython patched?)")
        return reply

    def _await_reply(self, msg_id: str, nonce: str, deadline: float) -> tuple[dict[str, Any] | None, bool]:
        """The reply published for `msg_id` (None if none), and whether the kernel went idle before `deadline`."""
        reply: dict[str, Any] | None = None
        while (remaining := deadline - time.monotonic()) > 0:
            try:
                message = self._client.get_iopub_msg(timeout=min(remaining, 1.0))
            except Empty:
                if not self._client.is_alive():
                    self.unavailable = "the kernel died while a check was running"
                    raise KernelUnavailableError(self.unavailable) from None
                continue
            if message["parent_header"].get("msg_id") != msg_id:
                continue
            kind, content = message["msg_type"], message["content"]
            if kind == "display_data" and reply is None and type(content.get("data")) is dict:
                reply = self._parse_reply(content["data"].get(wire.MIME), nonce)
            elif kind == "status" and content.get("execution_state") == "idle":
                return reply, True
        return reply, False

    def _parse_reply(self, text: Any, nonce: str) -> dict[str, Any] | None:
        if not isinstance(text, str) or len(text) > wire.text_limit(self._max_bytes):
            return None
        try:
            reply = wire.load_json(text)
        except (ValueError, wire.ValueTooLarge):
            return None
        if not isinstance(reply, dict) or reply.get("nonce") != nonce:
            return None
        return reply

    def _recover(self) -> None:
        """After a timeout: interrupt the kernel; if it stays busy, give up on it."""
        if not self.interrupt_and_wait():
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
                and message["msg_type"] == "status"
                and message["content"].get("execution_state") == "idle"
            ):
                return True
        return False
