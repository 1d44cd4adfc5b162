"""Gradescope: the autograder zip an instructor uploads (`setup.sh`,
`run_autograder`, the grader as a wheel, and this assignment's public and
hidden material), which grades `/autograder/submission/` into
`/autograder/results/results.json` with this engine.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from autograder.course import Course

_PROJECT = Path(__file__).resolve().parent.parent

_SETUP = """#!/usr/bin/env bash
# Gradescope runs this once when it builds the autograder image.
set -euo pipefail
apt-get update && apt-get install -y python3 python3-venv
python3 -m venv /autograder/venv
/autograder/venv/bin/pip install -c /autograder/source/constraints.txt /autograder/source/wheels/*.whl
"""

_RUN = """#!/usr/bin/env bash
# Gradescope runs this for each submission. AUTOGRADER_ROOT and AUTOGRADER_BIN
# exist so the script can be tried outside Gradescope.
set -uo pipefail
root="${{AUTOGRADER_ROOT:-/autograder}}"
bin="${{AUTOGRADER_BIN:-/autograder/venv/bin/autograder}}"
mkdir -p "$root/results"
notebook=$(find "$root/submission" -name '*.ipynb' -not -path '*/.ipynb_checkpoints/*' | sort | head -n 1)
if [ -z "$notebook" ]; then
    echo '{{"score": 0, "output": "No .ipynb file was submitted.", "tests": []}}' > "$root/results/results.json"
    exit 0
fi
"$bin" --course "$root/source/course" grade "$notebook" -a {name} --gradescope "$root/results/results.json"
exit 0
"""


def export_gradescope(course: Course, name: str, target: Path) -> Path:
    """Write the autograder zip for assignment `name` to `target`."""
    assignment = course.get(name)
    with tempfile.TemporaryDirectory(prefix="autograder-gradescope-") as scratch:
        wheel = build_wheel(Path(scratch))
        target.parent.mkdir(parents=True, exist_ok=True)
        with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as bundle:
            _add_script(bundle, "setup.sh", _SETUP)
            _add_script(bundle, "run_autograder", _RUN.format(name=name))
            bundle.write(_PROJECT / "constraints.txt", "constraints.txt")
            bundle.write(wheel, f"wheels/{wheel.name}")
            for folder, prefix in ((assignment.public_dir, "assignments"), (assignment.solution_dir, "solutions")):
                for path in sorted(folder.rglob("*")):
                    if path.is_file() and "__pycache__" not in path.parts:
                        bundle.write(path, f"course/{prefix}/{name}/{path.relative_to(folder)}")
    return target


def build_wheel(folder: Path) -> Path:
    """The grader's own wheel (engine and public material, never solutions), built offline."""
    command = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(folder)]
    subprocess.run([*command, str(_PROJECT)], check=True, timeout=300)
    (wheel,) = folder.glob("autograder-*.whl")
    return wheel


def unpack_for_trial(archive: Path, root: Path) -> Path:
    """Lay `archive` out as Gradescope does: `root/source/...`, scripts executable."""
    source = root / "source"
    shutil.unpack_archive(archive, source)
    for script in ("setup.sh", "run_autograder"):
        (source / script).chmod(0o755)
    return source


def _add_script(bundle: zipfile.ZipFile, name: str, text: str) -> None:
    info = zipfile.ZipInfo(name)
    info.external_attr = 0o755 << 16
    bundle.writestr(info, text)
