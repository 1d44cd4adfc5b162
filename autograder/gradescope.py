"""Gradescope: the autograder zip an instructor uploads (`setup.sh`,
`run_autograder`, the grader as a wheel, this assignment's public material,
the course's asset registry and modules, and of its `solutions/` folder only
the hidden checks, grader config and held-out asset modules, made root's
alone), which grades `/autograder/submission/` into
`/autograder/results/results.json` with this engine.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import stat
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path
from typing import Any

from autograder.assets import REGISTRY
from autograder.course import CONFIG_FILE, HIDDEN_CHECKS, Assignment, Course
from autograder.environment import DISTRIBUTION
from autograder.exports import gradescope_results
from autograder.grading import grade_notebook
from autograder.safe_text import plain_text
from autograder.staging import stage

_PROJECT = Path(__file__).resolve().parent.parent

_SETUP = """#!/usr/bin/env bash
# Gradescope runs this once when it builds the autograder image.
set -euo pipefail
apt-get update && apt-get install -y python3 python3-venv
python3 -m venv /autograder/venv
/autograder/venv/bin/pip install -c /autograder/source/constraints.txt /autograder/source/wheels/*.whl
# The hidden checks are root's alone: the student's kernel runs as another uid.
if [ -d /autograder/source/course/solutions ]; then
    chown -R root:root /autograder/source/course/solutions
    chmod -R go-rwx /autograder/source/course/solutions
fi
"""

_RUN = """#!/usr/bin/env bash
# Gradescope runs this for each submission. AUTOGRADER_ROOT and AUTOGRADER_BIN
# exist so the script can be tried outside Gradescope.
set -uo pipefail
root="${{AUTOGRADER_ROOT:-/autograder}}"
bin="${{AUTOGRADER_BIN:-/autograder/venv/bin/autograder}}"
mkdir -p "$root/results"
# again, per submission: an unzip or a copy may have widened the modes
[ -d "$root/source/course/solutions" ] && chmod -R go-rwx "$root/source/course/solutions"
# the submission folder is staged by the grader (links and FIFOs refused, never followed)
python="${{AUTOGRADER_PYTHON:-$(dirname "$bin")/python}}"
"$python" -m autograder.gradescope "$root" {name}
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
            for path in [*_files(assignment.public_dir), *_course_data(course.root / "assignments")]:
                bundle.write(path, f"course/{path.relative_to(course.root)}")
            for path in [*_grader_material(assignment), *_course_data(course.root / "solutions")]:
                info = zipfile.ZipInfo.from_file(path, f"course/{path.relative_to(course.root)}")
                info.external_attr = (stat.S_IFREG | 0o600) << 16  # unzip applies it: root's alone
                info.compress_type = zipfile.ZIP_DEFLATED
                bundle.writestr(info, path.read_bytes())
    return target


def _grader_material(assignment: Assignment) -> list[Path]:
    """What the grader needs of `solutions/NAME/`: the hidden checks and the
    grader-only config. Never the reference notebook or the instructor's
    calibration scripts: the zip lives on Gradescope beside students' code."""
    config = assignment.solution_dir / CONFIG_FILE
    return [*_files(assignment.solution_dir / HIDDEN_CHECKS), *([config] if config.is_file() else [])]


def _course_data(folder: Path) -> list[Path]:
    """The course's asset registry and modules under `folder` (assignments/ or
    solutions/): the hidden checks read held-out data through them."""
    registry = folder / REGISTRY
    return [*([registry] if registry.is_file() else []), *_files(folder / "datasets")]


def _files(folder: Path) -> list[Path]:
    return [
        path
        for path in sorted(folder.rglob("*"))
        if path.is_file() and not path.is_symlink() and "__pycache__" not in path.parts
    ]


def build_wheel(folder: Path) -> Path:
    """The grader's own wheel (engine and public material, never solutions), built offline."""
    command = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(folder)]
    subprocess.run([*command, str(_PROJECT)], check=True, timeout=300)
    (wheel,) = folder.glob(f"{DISTRIBUTION.replace('-', '_')}-*.whl")
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


def grade_gradescope_submission(*, root: Path, assignment: str, course: Course) -> Path:
    """Grade Gradescope's `root/submission/` into `root/results/results.json`:
    the folder is staged as a batch's is (the grader's copy; links, FIFOs and
    oversized files refused), its first notebook graded, every refused file
    named in the output."""
    results = root / "results" / "results.json"
    results.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="autograder-gradescope-") as scratch:
        staged = stage(root / "submission", into=Path(scratch))
        notebooks = sorted(staged.root.rglob("*.ipynb")) if staged.root is not None else []
        refused = [plain_text(f"{r.relative or 'submission'}: {r.reason}", one_line=True) for r in staged.refused]
        payload: dict[str, Any]
        if staged.root is None or not notebooks:
            said = ["No notebook could be read:", *refused] if refused else ["No .ipynb file was submitted."]
            payload = {"score": 0, "output": "\n".join(said), "output_format": "text", "tests": []}
        else:
            result = grade_notebook(notebooks[0], course=course, assignment_name=assignment)
            shown = notebooks[0].relative_to(staged.root).as_posix()
            payload = gradescope_results(dataclasses.replace(result, submission=shown))
            if refused:
                notes = ["Not read:", *refused]
                payload["output"] = "\n".join([*notes, payload["output"]] if "output" in payload else notes)
    results.write_text(json.dumps(payload, indent=2), encoding="utf-8")
    return results


def _main(arguments: list[str]) -> int:
    """`python -m autograder.gradescope ROOT NAME`, as run_autograder runs it;
    0 whatever happened, which the results file says."""
    root, name = Path(arguments[0]), arguments[1]
    grade_gradescope_submission(root=root, assignment=name, course=Course(root / "source" / "course"))
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
