"""The `autograder` command: as users run it (a real process, real exit codes), and
in this process with click's `CliRunner` where a process is not the point (option
parsing, usage errors, `--help`, exit codes), and its library as a script calls it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from autograder.api import grade_batch_into, grade_one
from autograder.cli import cli, run
from autograder.contract import hidden_check_names
from autograder.course import Course
from autograder.errors import UnknownAssignmentError, UsageError
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


# In this process: click's CliRunner, and `run` (what the console script runs, less its signal handlers).


def run_here(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """The command line run in this process as `main` runs it: exit code, stdout, stderr."""
    code = run(args)
    captured = capsys.readouterr()
    return code, captured.out, " ".join(captured.err.split())  # rich wraps long lines


@pytest.fixture
def two_assignments(tmp_path: Path) -> Path:
    """A course of two assignments that need no kernel to refuse a notebook."""
    course = tmp_path / "course"
    for name in ("alpha", "beta"):
        (course / "assignments" / name / "public_checks").mkdir(parents=True)
        (course / "solutions" / name / "hidden_checks").mkdir(parents=True)
        (course / "assignments" / name / "assignment.toml").write_text(f'title = "{name.title()}"\n')
        write_notebook(course / "assignments" / name / f"{name}.ipynb", "x = None")
    return course


def disagreeing(folder: Path) -> Path:
    """A notebook whose file name says alpha and whose metadata says beta: refused unread."""
    folder.mkdir(parents=True, exist_ok=True)
    return write_notebook(folder / "alpha.ipynb", "x = 1", autograder={"assignment": "beta"})


def test_help_names_every_command_and_exits_0() -> None:
    done = CliRunner().invoke(cli, ["--help"])
    assert done.exit_code == 0
    for command in ("grade", "check", "list", "verify", "export", "assets"):
        assert f"  {command}" in done.output
    done = CliRunner().invoke(cli, ["grade", "-h"])
    assert done.exit_code == 0 and "--out" in done.output and "Exit 0 when every notebook was graded" in done.output
    assert "--public-only" not in done.output  # the container's own option stays hidden


@pytest.mark.parametrize(
    "args, message",
    [
        (["-j", "2"], "go with --out DIR"),
        (["--force"], "go with --out DIR"),
        (["--student", "ann"], "go with --out DIR"),
        (["--dask", "local"], "go with --out DIR"),
        (["--gpus", "all"], "go with --docker IMAGE"),
        (["--memory", "4g", "--out", "results"], "go with --docker IMAGE"),
        (["--json", "r.json", "second.ipynb"], "--json takes one notebook"),
        (["--gradescope", "g.json", "--out", "results"], "--json takes one notebook"),
    ],
)
def test_options_that_go_with_another_are_usage_errors(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, args: list[str], message: str
) -> None:
    code, out, err = run_here(capsys, "grade", str(tmp_path / "first.ipynb"), *args)
    assert (code, out) == (2, "")
    assert err.startswith("error: ") and message in err and "Traceback" not in err
    assert not (tmp_path / "results").exists() and not list(tmp_path.iterdir()), "nothing done"


@pytest.mark.parametrize(
    "args, message",
    [
        (["grade"], "Missing argument 'PATHS...'"),
        (["grade", "a.ipynb", "-j", "0"], "Invalid value for '-j'"),
        (["grade", "a.ipynb", "--out", "o", "--roster", "no-such.csv"], "'no-such.csv' does not exist"),
        (["--course", "no-such-course", "list"], "'no-such-course' does not exist"),
        (["grade", "a.ipynb", "--no-such-option"], "No such option"),
    ],
)
def test_what_click_refuses_exits_2(capsys: pytest.CaptureFixture[str], args: list[str], message: str) -> None:
    code, _, err = run_here(capsys, *args)
    assert code == 2 and message in err
    assert CliRunner().invoke(cli, args).exit_code == 2


def test_an_unknown_assignment_is_a_usage_error_before_any_work(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    notebook = write_notebook(tmp_path / "mine.ipynb", "x = 1")
    for extra in ([], ["--out", str(tmp_path / "results")], ["--json", "-"]):
        code, out, err = run_here(capsys, "grade", str(notebook), "-a", TENSORS, "-a", "no_such", *extra)
        assert (code, out) == (2, "") and "no assignment 'no_such'" in err, extra
    assert not (tmp_path / "results").exists()
    done = CliRunner().invoke(cli, ["grade", str(notebook), "-a", "no_such"], standalone_mode=False)
    assert isinstance(done.exception, UnknownAssignmentError) and done.exception.exit_code == 2


def test_a_missing_notebook_is_rejected_with_exit_2(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    result_path = tmp_path / "r.json"
    code, out, _ = run_here(capsys, "grade", str(tmp_path / "gone.ipynb"), "-a", TENSORS, "--json", str(result_path))
    assert code == 2 and "rejected" in out
    result = json.loads(result_path.read_text())
    assert result["status"] == "rejected" and result["reason"]
    code, _, err = run_here(capsys, "grade", str(tmp_path / "gone"), "-a", TENSORS, "--out", str(tmp_path / "o"))
    assert code == 2 and "no such file or folder" in err  # a batch refuses a path that is not there
    code, _, err = run_here(capsys, "grade", str(tmp_path), "-a", TENSORS, "--json", str(result_path))
    assert code == 2 and "--json and --gradescope take one notebook" in err


def test_a_refused_notebook_is_a_row_of_the_batch_and_exit_0(
    capsys: pytest.CaptureFixture[str], two_assignments: Path, tmp_path: Path
) -> None:
    disagreeing(tmp_path / "class")
    out = tmp_path / "results"
    code, stdout, err = run_here(
        capsys, "--course", str(two_assignments), "grade", str(tmp_path / "class"), "--out", str(out)
    )
    assert code == 0, err
    assert "1 submissions: 0 graded, 1 rejected, 0 errors (0 already graded, reused)" in err
    assert "grading" in err and "1/1" in err, "the progress bar, drawn from the library's callbacks"
    assert "rejected" in stdout and "summary.html" in stdout
    assert {"gradebook.csv", "gradebook-canvas.csv", "summary.html"} <= {p.name for p in out.iterdir()}
    code, _, err = run_here(
        capsys, "--course", str(two_assignments), "grade", str(tmp_path / "class"), "--out", str(out)
    )
    assert code == 0 and "(1 already graded, reused)" in err
    code, _, err = run_here(
        capsys,
        "--course",
        str(two_assignments),
        "grade",
        str(tmp_path / "class"),
        "--out",
        str(out),
        "--student",
        "zed",
    )
    assert code == 2 and "no submission of 'zed'" in err


def test_one_refused_notebook_exits_2_and_says_why(
    capsys: pytest.CaptureFixture[str], two_assignments: Path, tmp_path: Path
) -> None:
    notebook = disagreeing(tmp_path)
    code, out, err = run_here(capsys, "--course", str(two_assignments), "grade", str(notebook))
    assert code == 2
    assert "not graded: its file name 'alpha.ipynb' is assignment alpha's but its metadata says beta" in err
    assert "rejected" in out


def test_a_script_calls_the_library_without_the_cli(two_assignments: Path, tmp_path: Path) -> None:
    course = Course(two_assignments)
    notebook = disagreeing(tmp_path / "class")
    warnings: list[str] = []
    result = grade_one(notebook, course=course, student="ann", on_warning=warnings.append)
    assert (result.status, result.student) == ("rejected", "ann") and "metadata says beta" in result.reason
    assert len(warnings) == 1 and "not graded" in warnings[0]
    with pytest.raises(UnknownAssignmentError):
        grade_one(notebook, course=course, assignments=["gamma"])

    started: list[tuple[int, int]] = []
    summary = grade_batch_into(
        [tmp_path / "class"], out=tmp_path / "results", course=course, on_start=lambda *n: started.append(n)
    )
    assert [total for total, _ in started] == [1] and summary.counts == {"graded": 0, "rejected": 1, "error": 0}
    assert (
        summary.cached == 0 and summary.workers >= 1 and summary.unmatched == ("class",)
    )  # a folder of one notebook is its student's
    assert (summary.items[0].entry.path.name, summary.items[0].result.status) == ("alpha.ipynb", "rejected")
    assert (tmp_path / "results" / "gradebook.csv").is_file()
    with pytest.raises(UsageError, match="no such file or folder"):
        grade_batch_into([tmp_path / "gone"], out=tmp_path / "results", course=course)
    with pytest.raises(UnknownAssignmentError):
        grade_batch_into([tmp_path / "class"], out=tmp_path / "results", course=course, assignments=["gamma"])


def test_the_warm_start_knows_which_options_take_a_value() -> None:
    """warm.py reads the command line before click does (it must not import
    the grader): its table of options that take a value is cli.py's."""
    from autograder.warm import VALUED

    for name, valued in VALUED.items():
        command = cli.commands[name]
        declared = {o for p in command.params if isinstance(p, click.Option) and not p.is_flag for o in p.opts}
        assert declared == valued, name


def test_the_warm_start_serves_notebooks_and_leaves_the_rest_cold(tmp_path: Path) -> None:
    from autograder.warm import wanted

    good = ROOT / "solutions" / TENSORS / f"{TENSORS}.ipynb"
    bad = tmp_path / "bad.ipynb"
    bad.write_text("{not json")
    deep = tmp_path / "deep.ipynb"
    deep.write_text("[" * 200_000)  # json.loads raises RecursionError
    link = tmp_path / "link.ipynb"
    link.symlink_to(good)
    report = tmp_path / "old.json"
    report.write_text("{}")
    assert wanted(["grade", str(good), "--json", str(report)])
    assert wanted(["--course", str(ROOT), "check", "--json", str(good), "-a", TENSORS])
    assert wanted(["--course=" + str(ROOT), "grade", str(good), "-a=" + TENSORS, "--cell-timeout", "5"])
    for cold in (
        ["grade", str(good), "--out", str(tmp_path)],
        ["grade", str(good), "--docker=img"],
        ["grade", str(good), "-a", "no_such"],
        ["grade", str(bad)],
        ["grade", str(good), str(bad)],
        ["grade", str(deep), str(good)],
        ["grade", str(link)],
        ["grade", str(tmp_path)],
        ["grade", str(good), "-h"],
        ["list"],
        [],
        ["check", str(good), "-a"],
    ):
        assert not wanted(cold), cold
