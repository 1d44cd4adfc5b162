"""The watch behind `-m "not slow"` starting no kernel (tests/kernel_guard.py)
sees a process started below this one, however deep, and only while it watches."""

from __future__ import annotations

import subprocess
import sys

from tests.kernel_guard import KernelWatch

PROBE = "kernel-guard-probe"  # not a pattern of the session's own guard, which would fail this test


def test_the_watch_sees_a_grandchild_started_while_it_watches() -> None:
    # the child's command line holds PROBE, its parent's does not
    child = f"[sys.executable, '-c', 'import time; time.sleep(0.5)', {PROBE[:6]!r} + {PROBE[6:]!r}]"
    command = [sys.executable, "-c", f"import subprocess, sys; subprocess.run({child}, check=True)"]
    with KernelWatch(patterns=(PROBE,)) as watch:
        subprocess.run(command, check=True, timeout=60)
    assert len(watch.started) == 1 and PROBE in next(iter(watch.started.values())), watch.started


def test_the_watch_ignores_what_ran_before_and_what_does_not_match() -> None:
    with subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)", PROBE]) as earlier:
        try:
            with KernelWatch(patterns=(PROBE,)) as watch:
                subprocess.run([sys.executable, "-c", "import time; time.sleep(0.3)"], check=True, timeout=60)
        finally:
            earlier.kill()
    assert watch.started == {}
