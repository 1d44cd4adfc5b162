"""What carries over between submissions a grader process grades: a check
module is imported once and reused (its module-level state and caches with
it), while `submission_state` and pytest's session scope start afresh for
each submission. No kernel: these checks never ask the student anything."""

from __future__ import annotations

from pathlib import Path

from autograder.checks import CheckFile, run_checks

CHECKS = """
import pytest

SEEN = []  # module-level: shared by every submission this process grades

@pytest.fixture(scope="session")
def per_run():
    return []

@pytest.mark.question("q1")
def test_module_state(student):
    SEEN.append(1)
    assert len(SEEN) == 1, f"module state carried over: {len(SEEN)}"

@pytest.mark.question("q1")
def test_submission_state(student, submission_state, per_run):
    submission_state.setdefault("calls", 0)
    submission_state["calls"] += 1
    per_run.append(1)
    assert submission_state["calls"] == 1 and len(per_run) == 1, "carried over"
"""


def test_check_modules_are_reused_and_submission_state_is_not(tmp_path: Path) -> None:
    path = tmp_path / "test_scope.py"
    path.write_text(CHECKS, encoding="utf-8")
    files = [CheckFile(path, "hidden")]
    first = {o.name: o.status for o in run_checks(files, student=None)}  # type: ignore[arg-type]
    second = {o.name: o.status for o in run_checks(files, student=None)}  # type: ignore[arg-type]
    assert first == {"test_module_state": "passed", "test_submission_state": "passed"}
    assert second == {"test_module_state": "failed", "test_submission_state": "passed"}


def test_a_threshold_the_config_does_not_set_is_the_courses_error(tmp_path: Path) -> None:
    from autograder.checks import CheckContext

    path = tmp_path / "test_threshold.py"
    path.write_text(
        "import pytest\n\n@pytest.mark.question('q1')\ndef test_uses(student, thresholds):\n"
        "    assert thresholds == {'loss': 0.5} and 'accuracy' not in thresholds\n"
        "    assert thresholds['accuracy'] < 1\n",
        encoding="utf-8",
    )
    (outcome,) = run_checks([CheckFile(path, "public")], None, context=CheckContext(thresholds={"loss": 0.5}))  # type: ignore[arg-type]
    assert outcome.status == "error", outcome
    assert "no `accuracy` threshold is set for these assets in assignment.toml" in outcome.message, outcome.message
