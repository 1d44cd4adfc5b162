"""The bridge: how trusted checks see the student's live kernel, as data only.

Checks receive a `Student` (the `student` fixture; its API and the decoding of
replies are `student_api.StudentAPI`'s). Every request sends the source of
`autograder.wire` into the kernel together with the request; the reply is a
JSON text published as display data, decoded without running anything the
student made. Each call has a timeout and a size bound, and a
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
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from queue import Empty
from typing import Any

import zmq
from jupyter_client.blocking.client import BlockingKernelClient
from jupyter_client.session import Session

from autograder import wire
from autograder.errors import KernelUnavailableError, StudentCodeError
from autograder.student_api import ModuleSnapshot, Opaque, StudentAPI, redact

__all__ = ["DROPPED", "KernelSession", "ModuleSnapshot", "Opaque", "Student", "limit_messages", "redact"]

_WIRE_SOURCE = Path(wire.__file__).read_text(encoding="utf-8")
_RECOVERY_S = 5.0
DROPPED = "autograder_dropped"  # the type given to a message from the kernel that could not be read
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


class Student(StudentAPI):
    """The student's sandboxed kernel as the checks see it: each request travels
    to the kernel as a user expression and its reply comes back as display data."""

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
        super().__init__(
            timeout_s=timeout_s, max_bytes=max_bytes, workdir=workdir, shown=shown, unavailable=unavailable
        )
        self._interrupt = interrupt
        self._kill = kill
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

    def _exchange(self, request: dict[str, Any], *, seconds: float, by_budget: bool) -> dict[str, Any]:
        """Send the request as a user expression (its source is never a cell's,
        so no traceback shows it) and wait for the reply with its nonce."""
        expression = (
            f"exec(compile({_WIRE_SOURCE + chr(10) + 'serve(REQUEST)'!r}, '<autograder bridge>', 'exec'), "
            f"{{'__name__': '__autograder_bridge__', 'REQUEST': {json.dumps(request)!r}}})"
        )
        deadline = time.monotonic() + seconds
        reply: dict[str, Any] | None = None
        finished = False
        with self._listening(seconds) as listening:
            if listening:
                msg_id = self._client.execute(
                    "", silent=False, store_history=False, user_expressions={"bridge": expression}, allow_stdin=False
                )
                reply, finished = self._await_reply(msg_id, request["nonce"], deadline)
        if not finished:
            self._recover()
            raise self._timed_out(by_budget=by_budget)
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
