"""The `autograder` command as users run it: a real process, real exit codes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from autograder.contract import hidden_check_names
from autograder.course import Course
from tests.conftest import ROOT, TENSORS, write_notebook

COMMAND = Path(sys.executable).parent / "autograder"


def autograder(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(COMMAND), *args], cwd=cwd, capture_output=True, text=True, timeout=300)


def test_list_names_each_assignment_first() -> None:
    done = autograder("list")
    assert done.returncode == 0
    names = [line.split("\t")[0] for line in done.stdout.splitlines()]
    assert names == sorted(names) and TENSORS in names


@pytest.mark.slow
def test_grade_solution_to_json(tmp_path: Path) -> None:
    out = tmp_path / "r.json"
    done = autograder("grade", "solutions/02_tensors/02_tensors.ipynb", "-a", TENSORS, "--json", str(out))
    assert done.returncode == 0, done.stderr
    result = json.loads(out.read_text())
    assert result["status"] == "graded" and result["score"] == result["max_score"] > 0
    assert result["schema_version"] == 1
    assert "q9" in done.stdout and "score" in done.stdout


@pytest.mark.slow
def test_grade_recognises_the_assignment_and_says_so(tmp_path: Path) -> None:
    done = autograder("grade", "demo/submissions/ben_carter.ipynb")
    assert done.returncode == 0, done.stderr
    assert "assignment 02_tensors (from the notebook's metadata)" in done.stderr


@pytest.mark.parametrize(
    "name, content",
    [
        ("bad.ipynb", "{not json"),
        ("empty.ipynb", ""),
        ("old.ipynb", '{"nbformat": 3, "worksheets": []}'),
        ("run.py", "print(1)\n"),
    ],
)
def test_bad_input_exits_2_with_one_line_and_rejected_json(tmp_path: Path, name: str, content: str) -> None:
    path = tmp_path / name
    path.write_text(content)
    out = tmp_path / "r.json"
    done = autograder("grade", str(path), "-a", TENSORS, "--json", str(out))
    assert done.returncode == 2
    assert "Traceback" not in done.stdout + done.stderr
    assert len((done.stdout + done.stderr).strip().splitlines()) <= 3
    result = json.loads(out.read_text())
    assert result["status"] == "rejected" and result["reason"]


def test_empty_folder_and_unknown_assignment_are_usage_errors(tmp_path: Path) -> None:
    done = autograder("grade", str(tmp_path), "-a", TENSORS)
    assert done.returncode == 2 and "no notebooks in this folder" in " ".join(done.stderr.split())
    done = autograder("grade", "demo/submissions/ada_lovelace.ipynb", "-a", "no_such")
    assert done.returncode == 2 and "no assignment 'no_such'" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.slow
def test_check_shows_public_checks_only() -> None:
    done = autograder("check", "solutions/02_tensors/02_tensors.ipynb")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "guess" in done.stderr or "from the notebook's metadata" in done.stderr
    assert "9/9 public checks pass" in done.stdout
    hidden = hidden_check_names(Course(ROOT).get(TENSORS))
    assert not [name for name in hidden if name in done.stdout + done.stderr]


@pytest.mark.slow
def test_check_on_the_template_fails_with_hints() -> None:
    done = autograder("check", "assignments/02_tensors/02_tensors.ipynb")
    assert done.returncode == 1
    assert "hint:" in done.stdout and "0/9 public checks pass" in done.stdout


@pytest.mark.slow
def test_verify_lists_every_setting_with_its_meaning(tmp_path: Path) -> None:
    """What each assignment.toml's first comment promises."""
    from click.testing import CliRunner

    from autograder.cli import cli
    from autograder.config import AssignmentConfig

    course = tmp_path / "course"
    public, solution = course / "assignments" / "tiny", course / "solutions" / "tiny"
    (public / "public_checks").mkdir(parents=True)
    (solution / "hidden_checks").mkdir(parents=True)
    (public / "assignment.toml").write_text('title = "Tiny [one]"\ncell_timeout_s = 7\n')
    check = "def test_x(student):\n    assert student.fetch('x') == 1\n"
    (public / "public_checks" / "test_public.py").write_text(check)
    (solution / "hidden_checks" / "test_hidden.py").write_text(check.replace("test_x", "test_hidden_x"))
    write_notebook(public / "tiny.ipynb", "x = None  # your answer")
    write_notebook(solution / "tiny.ipynb", "x = 1")
    done = CliRunner().invoke(cli, ["--course", str(course), "verify", "tiny"])
    lines = done.output.splitlines()
    for key, meaning in AssignmentConfig.describe().items():
        assert any(line.strip().startswith(f"{key} = ") and meaning in line for line in lines), key
    assert "title = 'Tiny [one]'" in done.output and "cell_timeout_s = 7.0" in done.output
