"""The Gradescope autograder zip, run against a folder laid out like /autograder."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from autograder.course import Course
from autograder.gradescope import export_gradescope, unpack_for_trial
from tests.conftest import ROOT, TENSORS

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return export_gradescope(Course(ROOT), TENSORS, tmp_path_factory.mktemp("export") / "tensors.zip")


def test_zip_layout(archive: Path) -> None:
    names = zipfile.ZipFile(archive).namelist()
    assert {"setup.sh", "run_autograder", "constraints.txt"} <= set(names)
    assert any(n.startswith("wheels/dl_notebook_autograder-") for n in names)
    assert f"course/solutions/{TENSORS}/hidden_checks/test_hidden.py" in names
    assert f"course/assignments/{TENSORS}/{TENSORS}.ipynb" in names


def test_zip_carries_no_reference_solution(tmp_path: Path) -> None:
    """Of `solutions/NAME/` only the hidden checks and the grader config travel:
    the reference notebook and the instructor's scripts stay home."""
    course = tmp_path / "course"
    shutil.copytree(ROOT / "assignments" / TENSORS, course / "assignments" / TENSORS)
    solution = course / "solutions" / TENSORS
    shutil.copytree(ROOT / "solutions" / TENSORS, solution)
    (solution / "calibrate.py").write_text("# instructor's script\n")
    shutil.copy(ROOT / "assignments" / "assets.toml", course / "assignments")
    for part in ("assignments", "solutions"):  # the asset modules: hidden checks read held-out data with them
        shutil.copytree(
            ROOT / part / "datasets", course / part / "datasets", ignore=shutil.ignore_patterns("__pycache__")
        )
    (solution / "assignment.toml").write_text("[thresholds.stand-in]\naccuracy = 0.5\n")
    archive = export_gradescope(Course(course), TENSORS, tmp_path / "tensors.zip")
    with zipfile.ZipFile(archive) as bundle:
        solutions = {info.filename: info for info in bundle.infolist() if info.filename.startswith("course/solutions/")}
    assert set(solutions) == {
        f"course/solutions/{TENSORS}/hidden_checks/test_hidden.py",
        f"course/solutions/{TENSORS}/assignment.toml",
        *(f"course/solutions/datasets/{path.name}" for path in (ROOT / "solutions" / "datasets").glob("*.py")),
    }
    with zipfile.ZipFile(archive) as bundle:
        assert "course/assignments/assets.toml" in bundle.namelist()
    assert all((info.external_attr >> 16) & 0o077 == 0 for info in solutions.values())
    with zipfile.ZipFile(archive) as bundle:
        (wheel,) = [name for name in bundle.namelist() if name.startswith("wheels/")]
        with zipfile.ZipFile(io.BytesIO(bundle.read(wheel))) as packaged:
            shipped = packaged.namelist()
    assert not [name for name in shipped if "hidden_checks" in name or "solutions/" in name or "secret" in name]
    assert "set -euo pipefail" in zipfile.ZipFile(archive).read("setup.sh").decode()
    assert "chmod -R go-rwx /autograder/source/course/solutions" in zipfile.ZipFile(archive).read("setup.sh").decode()


@pytest.mark.parametrize("submitted, score", [("solution", 23), ("template", 0), (None, 0)])
def test_run_autograder_writes_results(archive: Path, tmp_path: Path, submitted: str | None, score: int) -> None:
    root = tmp_path / "autograder"
    unpack_for_trial(archive, root)
    (root / "submission").mkdir()
    if submitted == "solution":
        shutil.copy(ROOT / "solutions" / TENSORS / f"{TENSORS}.ipynb", root / "submission" / "mine.ipynb")
    elif submitted == "template":
        shutil.copy(ROOT / "assignments" / TENSORS / f"{TENSORS}.ipynb", root / "submission" / "mine.ipynb")
    env = {
        **os.environ,
        "AUTOGRADER_ROOT": str(root),
        "AUTOGRADER_BIN": str(Path(sys.executable).parent / "autograder"),
    }
    done = subprocess.run(
        [str(root / "source" / "run_autograder")], env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    hidden = root / "source" / "course" / "solutions"
    for path in [hidden, *hidden.rglob("*")]:  # Gradescope's kernel runs as another uid: nothing for it here
        assert path.stat().st_mode & 0o077 == 0, path
    results = json.loads((root / "results" / "results.json").read_text())
    assert results["score"] == score
    if submitted is None:
        assert "No .ipynb" in results["output"]
    else:
        assert len(results["tests"]) == 22
        assert {t["visibility"] for t in results["tests"]} == {"visible", "after_published"}
