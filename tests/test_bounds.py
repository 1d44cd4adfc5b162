"""The grader's own resources are bounded, and nothing of a check's code reaches
the student: the message protocol's tolerance, the checks' time budget, and
the bridge's redaction of what the kernel says back."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from autograder import wire
from autograder.bridge import DROPPED, KernelSession, redact
from autograder.course import Course
from autograder.results import SubmissionResult
from tests.conftest import grade, write_notebook

# ---- the grader's end of the message protocol (no kernel needed)


def signed(session: KernelSession, *parts: bytes) -> list[bytes]:
    return [session.sign(list(parts)), *parts]


def header(kind: str = "stream") -> bytes:
    return json.dumps({"msg_id": "m1", "msg_type": kind, "session": "s", "username": "u", "version": "5.3"}).encode()


PARENT = json.dumps({"msg_id": "request-1", "msg_type": "execute_request"}).encode()


@pytest.mark.parametrize(
    "parts, says",
    [
        ([header(), PARENT, b"{}", b"{not json"], "JSONDecodeError"),
        ([header(), PARENT, b"{}", b"[1, 2]"], "wrong types"),
        ([json.dumps({"msg_type": "stream"}).encode(), PARENT, b"{}", b"{}"], "KeyError"),
        ([header(), PARENT, b"{}", b"[" + b"[]," * (wire.MAX_CONTAINERS + 1) + b"[]]"], "ValueTooLarge"),
        ([header(), PARENT, b"{}", b"[" * 100_000 + b"]" * 100_000], "ValueTooLarge"),
        ([json.dumps({"msg_id": "m", "msg_type": 5}).encode(), PARENT, b"{}", b"{}"], ""),
    ],
    ids=["not-json", "content-a-list", "header-without-id", "container-bomb", "deep", "type-not-a-string"],
)
def test_an_unreadable_message_becomes_a_dropped_one_with_its_parent(parts: list[bytes], says: str) -> None:
    session = KernelSession(key=b"secret")
    message = session.deserialize(signed(session, *parts))
    assert message["msg_type"] == DROPPED and says in message["content"]["reason"], message["content"]
    assert message["parent_header"]["msg_id"] == "request-1", "recorded with the request it answered"


def test_a_replayed_or_unsigned_message_is_dropped() -> None:
    session = KernelSession(key=b"secret")
    parts = signed(session, header(), PARENT, b"{}", json.dumps({"name": "stdout", "text": "hi"}).encode())
    assert session.deserialize(list(parts))["content"]["text"] == "hi"
    assert session.deserialize(list(parts))["msg_type"] == DROPPED, "the same signature twice"
    assert session.deserialize([b"forged", *parts[1:]])["msg_type"] == DROPPED


def test_redaction_cuts_the_probe_and_the_request_out() -> None:
    request = {"op": "probe", "code": "hidden = inputs['t'] * 3\nresult = hidden", "nonce": "n", "args": "ARGS-TEXT"}
    echoed = f"boom: {request['code']} / {json.dumps(request)} / line: result = hidden / ARGS-TEXT"
    cleaned = redact(echoed, request)
    assert "hidden" not in cleaned and "ARGS-TEXT" not in cleaned and "inputs" not in cleaned, cleaned
    assert cleaned.startswith("boom: ")


# ---- a real kernel: the checks' budget, and what a student's exception carries back

NOTEBOOK = (
    "import sys, time, traceback\n"
    "def fine():\n    return 1\n"
    "def nap():\n    time.sleep(30)\n    return 1\n"
    "def show_stack():\n    raise ValueError(''.join(traceback.format_stack()))\n"
    "def show_request():\n"
    "    frame = sys._getframe()\n"
    "    while frame is not None and 'REQUEST' not in frame.f_globals:\n"
    "        frame = frame.f_back\n"
    "    raise ValueError(frame.f_globals['REQUEST'] if frame else 'no request found')\n"
)
MARKER = "PROBE-MARKER-7f3a"
CHECKS = f"""
import pytest

@pytest.mark.question("q1")
def test_fine_first(student):
    assert student.call("fine") == 1

@pytest.mark.question("q1")
def test_stack_of_a_probe(student):
    student.probe("result = show_stack()  # {MARKER}")

@pytest.mark.question("q1")
def test_request_of_a_probe(student):
    student.probe("value = inputs['x']  # {MARKER}\\nresult = show_request()", x=3)

@pytest.mark.question("q2")
def test_nap_one(student):
    assert student.call("nap") == 1

@pytest.mark.question("q2")
def test_nap_two(student):
    assert student.call("nap") == 1

@pytest.mark.question("q2")
def test_fine_last(student):
    assert student.call("fine") == 1
"""


@pytest.fixture(scope="module")
def graded(tmp_path_factory: pytest.TempPathFactory) -> tuple[SubmissionResult, float]:
    root = tmp_path_factory.mktemp("course")
    (root / "assignments" / "demo" / "public_checks").mkdir(parents=True)
    (root / "solutions" / "demo" / "hidden_checks").mkdir(parents=True)
    (root / "assignments" / "demo" / "assignment.toml").write_text("bridge_timeout_s = 20\nchecks_timeout_s = 6\n")
    write_notebook(root / "assignments" / "demo" / "demo.ipynb", NOTEBOOK)
    (root / "solutions" / "demo" / "hidden_checks" / "test_demo.py").write_text(CHECKS)
    parts = CHECKS.split("@pytest.mark.question")
    public = [parts[0], parts[2], parts[3]]  # the two probes again, as public checks
    (root / "assignments" / "demo" / "public_checks" / "test_public.py").write_text(
        "@pytest.mark.question".join(public).replace("def test_", "def test_public_")
    )
    started = time.monotonic()
    result = grade(Course(root), root / "assignments" / "demo" / "demo.ipynb", name="demo")
    return result, time.monotonic() - started


def outcome(result: SubmissionResult, name: str) -> Any:
    return next(c for c in result.checks if c.name == name)


@pytest.mark.slow
def test_the_checks_budget_stops_sleeping_functions(graded: tuple[SubmissionResult, float]) -> None:
    result, seconds = graded
    assert result.status == "graded", result.reason
    assert outcome(result, "test_fine_first").status == "passed"
    napping = outcome(result, "test_nap_one")
    assert napping.status == "failed" and "checks_timeout_s" in napping.message, napping.message
    for name in ("test_nap_two", "test_fine_last"):
        late = outcome(result, name)
        assert late.status == "not-run" and late.score == 0 and "checks_timeout_s" in late.message, late.message
    assert result.timings["checks_s"] < 20, "the budget, not the 20 s bridge timeout, ended the nap"
    assert seconds < 120


@pytest.mark.slow
@pytest.mark.parametrize(
    "name",
    [
        "test_stack_of_a_probe",
        "test_request_of_a_probe",
        "test_public_stack_of_a_probe",
        "test_public_request_of_a_probe",
    ],
)
def test_nothing_of_a_probe_reaches_the_student(graded: tuple[SubmissionResult, float], name: str) -> None:
    result, _ = graded
    check = outcome(result, name)
    assert check.status == "failed" and "ValueError" in check.message, check.message
    assert MARKER not in result.to_json() and "inputs[" not in check.message, check.message
    if name == "test_public_stack_of_a_probe":  # a public check shows the student's own message, the probe cut out
        assert 'File "' in check.message, "the student's own message (a stack) still comes back"
    if check.visibility == "hidden":  # a hidden one shows no text the kernel made
        assert 'File "' not in check.message and "show_stack" not in check.message, check.message


def test_the_budget_has_a_default_tied_to_the_bridge_timeout() -> None:
    from autograder.config import AssignmentConfig

    assert AssignmentConfig(bridge_timeout_s=20).checks_budget_s == 200
    assert AssignmentConfig(bridge_timeout_s=20, checks_timeout_s=50).checks_budget_s == 50
    assert "checks_timeout_s" in AssignmentConfig.describe()


def test_a_hidden_check_shows_only_shapes_of_a_courses_size() -> None:
    """A zero-element tensor may have 64 dimensions of any size: shown in full,
    its shape would carry some 480 bytes the student chose into the feedback."""
    from autograder.errors import shape_for_hidden

    assert shape_for_hidden((3, 224, 224)) == "(3, 224, 224)"
    assert shape_for_hidden([]) == "()"
    assert shape_for_hidden([0] + [2**60] * 63) == "a shape of 64 dimensions"
    assert shape_for_hidden((1, 2, 3, 4, 5)) == "a shape of 5 dimensions"
    assert shape_for_hidden((2**40,)) == "a shape of 1 dimension"
    assert shape_for_hidden(object()) == "an unreadable shape"


def test_a_hidden_check_shows_only_counts_of_a_courses_size() -> None:
    """A parameter count is summed from shapes the kernel sent, any integers:
    shown in full, 4,300 digits of it would carry a hidden probe's code whole
    (some 1,780 bytes) into the feedback."""
    from autograder.errors import count_for_hidden

    assert count_for_hidden(11_689_512) == "11,689,512"
    assert count_for_hidden(0) == "0"
    assert count_for_hidden(10**10) == "10,000,000,000"
    assert count_for_hidden(10**4000 + 7) == count_for_hidden(10**10 + 1) == "over 10,000,000,000"
    assert count_for_hidden(-5) == count_for_hidden(2.5) == count_for_hidden(True) == "an unreadable number"
