"""The Gradescope autograder zip, run against a folder laid out like /autograder."""

from __future__ import annotations

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
    assert any(n.startswith("wheels/autograder-") for n in names)
    assert f"course/solutions/{TENSORS}/hidden_checks/test_hidden.py" in names
    assert f"course/assignments/{TENSORS}/{TENSORS}.ipynb" in names


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
    results = json.loads((root / "results" / "results.json").read_text())
    assert results["score"] == score
    if submitted is None:
        assert "No .ipynb" in results["output"]
    else:
        assert len(results["tests"]) == 22
        assert {t["visibility"] for t in results["tests"]} == {"visible", "after_published"}
