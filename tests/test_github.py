"""`autograder check --format github`: the job summary, GitHub Classroom's
notices and the exit code a homework repository's workflow sees, and the
workflow file itself (linted with actionlint).

Most tests render results made here (no kernel); one grades a tiny course's
notebooks, one of them hostile, through the command as the workflow runs it.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from markdown_it import MarkdownIt

from autograder.course import Course
from autograder.github import (
    SUMMARY_LIMIT_BYTES,
    append_job_summary,
    classroom_notices,
    commands_stopped,
    exit_code,
    job_summary,
    workflow_command,
)
from autograder.results import CellError, CheckOutcome, ExecutionRecord, QuestionScore, SubmissionResult
from tests.conftest import ROOT, write_notebook
from tests.test_cli import run_here
from tests.test_output_safety import ACTIVE, HOSTILE, _Elements, assert_inert_html

WORKFLOW = ROOT / "assignments" / "github" / "autograder-selfcheck.yml"
# what a student's value may carry into a message: table pipes, code, HTML, links of every
# kind GitHub makes by itself, workflow commands, and the toolkit's escape character
STUDENT = (
    "a | b `c` ``` <img src=x onerror=alert(1)> [l](javascript:alert(1)) www.evil.example "
    "https://evil.example/x a@evil.example @octocat #1 ::error::pwned ::add-mask::x 100% %0A\r\nnext"
)
SUMMARY_TAGS = {"h2", "h3", "p", "em", "code", "table", "thead", "tbody", "tr", "th", "td", "br", "ul", "li"}


def check(question: str, status: str, score: float, most: float, message: str = "") -> CheckOutcome:
    return CheckOutcome(question, f"test_{question}", "public", status, score, most, message=message)  # type: ignore[arg-type]


def graded(path: str, *checks: CheckOutcome, assignment: str = "tiny", **fields: object) -> SubmissionResult:
    titles = {"q1": "One", "q2": "Two", "q3": "Three"}
    questions = tuple(QuestionScore(q, titles[q], 0, 0) for q in dict.fromkeys(c.question for c in checks))
    return SubmissionResult(path, assignment, "graded", questions=questions, checks=checks, **fields)  # type: ignore[arg-type]


def rendered(markdown: str) -> str:
    """The summary as GitHub renders it: tables, raw HTML on, links made from bare addresses."""
    renderer = MarkdownIt("gfm-like", {"html": True})
    renderer.linkify.set({"fuzzy_link": False})  # GitHub links www., scheme:// and addresses, not bare domains
    return renderer.render(markdown)


def assert_one_table_row_per_question(html: str) -> None:
    """Only Markdown's own elements, no attribute at all (no link, no handler), and
    four cells in every row: no pipe split a cell and no line break ended a row."""
    elements = _Elements(html)
    assert {tag for tag, _ in elements.tags} <= SUMMARY_TAGS
    assert not [attributes for _, attributes in elements.tags if attributes]
    for row in re.findall(r"<tr>(.*?)</tr>", html, flags=re.S):
        assert len(re.findall(r"<t[dh]>", row)) == 4, row


def test_the_summary_is_a_table_per_notebook_with_hints() -> None:
    results = [
        graded(
            "hw/tiny.ipynb",
            check("q1", "passed", 1, 1),
            check("q2", "failed", 0, 2, "y should be 2"),
            check("q2", "failed", 0, 0, "y should be 2"),  # the same hint once
            check("q3", "environment", 0, 1, "needs /kaggle/input"),
            execution=ExecutionRecord("timed-out", 4, 3, (CellError(2, "error", "NameError", "name 'z'"),)),
        ),
        SubmissionResult("hw/broken.ipynb", None, "rejected", reason="not a notebook: invalid JSON"),
    ]
    assert job_summary(results) == (
        "## Self-check: 1/4 points\n"
        "\n"
        "_Self-check: the public checks only, run by a workflow in your own repository, so these points are "
        "self-reported. Your grade is the instructor's grading, which adds hidden checks on new inputs._\n"
        "\n"
        "### `hw/tiny.ipynb` (tiny): 1/4\n"
        "\n"
        "| question | result | points | hint |\n"
        "| --- | --- | --- | --- |\n"
        "| q1 One | ✅ passed | 1/1 |  |\n"
        "| q2 Two | ❌ failed | 0/2 | y should be 2 |\n"
        "| q3 Three | ⚙️ not checkable here | 0/1 | needs /kaggle/input |\n"
        "\n"
        "- cell 2 error: NameError: name 'z'\n"
        "- the notebook stopped (timed-out) after 3/4 code cells\n"
        "\n"
        "### `hw/broken.ipynb`: not checked\n"
        "\n"
        "not a notebook: invalid JSON\n"
        "\n"
    )


def test_student_text_cannot_break_the_table_or_make_html_or_links() -> None:
    hostile = f"{HOSTILE}{STUDENT}"
    result = graded(
        f"{hostile}/tiny.ipynb",
        check("q1", "failed", 0, 1, hostile),
        check("q2", "passed", 2, 2),
        execution=ExecutionRecord("completed", 2, 2, (CellError(1, "error", hostile, hostile),)),
    )
    rejected = SubmissionResult(f"{hostile}.ipynb", None, "rejected", reason=hostile)
    markdown = job_summary([result, rejected])
    assert not ACTIVE.search(markdown) and "\r" not in markdown
    assert "www." not in markdown and "://" not in markdown and "@" not in markdown.replace("&#64;", "")
    html = rendered(markdown)
    assert_inert_html(html, allowed=SUMMARY_TAGS)
    assert_one_table_row_per_question(html)
    text = "".join(_Elements(html).text)
    assert "a | b" in text and "::error::pwned" in text and "100% %0A" in text and "https://evil.example/x" in text


def test_the_summary_stays_under_the_limit_and_says_it_was_cut(tmp_path: Path) -> None:
    long_hint = "é" * 900  # two bytes each: the limit is GitHub's, in bytes
    many = [graded(f"hw{n}/tiny.ipynb", check("q1", "failed", 0, 1, long_hint)) for n in range(1200)]
    summary = job_summary(many)
    assert len(summary.encode("utf-8")) <= SUMMARY_LIMIT_BYTES
    assert summary.endswith(
        "GitHub shows at most 1 MiB of a step's summary. The step's log has every notebook's result._\n"
    )
    assert summary.startswith("## Self-check: 0/1200 points")
    path = tmp_path / "step_summary.md"
    path.write_text("x" * (SUMMARY_LIMIT_BYTES - 5000), encoding="utf-8")  # an earlier command's, same step
    append_job_summary(path, many)
    assert path.stat().st_size <= SUMMARY_LIMIT_BYTES
    assert path.read_text(encoding="utf-8").startswith("x" * 100)  # appended, never replaced


def test_the_notices_are_the_classroom_reporters() -> None:
    results = [
        graded("a/tiny.ipynb", check("q1", "passed", 1.5, 2), check("q2", "failed", 0, 3)),
        graded("b/tiny.ipynb", check("q1", "passed", 2, 2)),
        SubmissionResult("c/tiny.ipynb", "tiny", "rejected", reason="not a notebook"),
    ]
    assert classroom_notices(results) == [
        "::notice title=Autograding complete::Points 3.5/7",
        '::notice title=Autograding report::{"totalPoints":3.5,"maxPoints":7}',
    ]
    assert classroom_notices(results[2:]) == []  # no points to report: the reporter prints nothing either


def test_workflow_commands_are_escaped_as_the_toolkit_escapes_them() -> None:
    assert workflow_command("notice", "100%\r\n::error::x", title="a:b,c%") == (
        "::notice title=a%3Ab%2Cc%25::100%25%0D%0A::error::x"
    )
    assert workflow_command("notice", "plain") == "::notice::plain"


def test_student_text_is_logged_with_commands_stopped(capsys: pytest.CaptureFixture[str]) -> None:
    with commands_stopped(sys.stdout):
        print("::error::from a notebook")
    first, inside, last = capsys.readouterr().out.splitlines()
    token = first.removeprefix("::stop-commands::")
    assert re.fullmatch("[0-9a-f]{32}", token) and inside == "::error::from a notebook" and last == f"::{token}::"
    with commands_stopped(sys.stdout):
        pass
    assert token not in capsys.readouterr().out, "a fresh token each time"


@pytest.fixture
def tiny_course(tmp_path: Path) -> Path:
    """One assignment of three public points; `strict` is the same, failing the run on a failed check."""
    course = tmp_path / "course"
    checks = (
        "import pytest\n\n"
        "@pytest.mark.question('q1')\n@pytest.mark.points(1)\n"
        "def test_x(student):\n    x = student.fetch('x')\n    assert x == 1, f'x is {x!r}, not 1'\n\n"
        "@pytest.mark.question('q2')\n@pytest.mark.points(2)\n"
        "def test_y(student):\n    assert student.fetch('y') == 2, 'y should be 2'\n"
    )
    for name, extra in (("tiny", ""), ("strict", "fail_on_failed_check = true\n")):
        public = course / "assignments" / name
        (public / "public_checks").mkdir(parents=True)
        (course / "solutions" / name / "hidden_checks").mkdir(parents=True)
        (public / "assignment.toml").write_text(f'title = "Tiny"\n{extra}[questions]\nq1 = "One"\nq2 = "Two"\n')
        (public / "public_checks" / "test_public.py").write_text(checks)
        write_notebook(public / f"{name}.ipynb", "x = None\ny = None")
    return course


def test_the_exit_code_is_0_unless_the_grader_failed_or_the_course_asks(tiny_course: Path) -> None:
    course = Course(tiny_course)
    failing = check("q1", "failed", 0, 1)
    assert exit_code([graded("t.ipynb", failing)], course=course) == 0
    assert exit_code([SubmissionResult("t.ipynb", "tiny", "rejected", reason="no")], course=course) == 0
    assert exit_code([SubmissionResult("t.ipynb", "tiny", "error", reason="grader")], course=course) == 1
    assert exit_code([graded("s.ipynb", failing, assignment="strict")], course=course) == 1
    assert exit_code([graded("s.ipynb", check("q1", "environment", 0, 1), assignment="strict")], course=course) == 0
    assert course.get("strict").config.fail_on_failed_check and not course.get("tiny").config.fail_on_failed_check


def lines_outside_stopped_commands(stdout: str) -> list[str]:
    """The log lines the runner would act on: all but what `stop-commands` covered."""
    acted, stopped_by = [], ""
    for line in stdout.splitlines():
        if stopped_by:
            stopped_by = "" if line == f"::{stopped_by}::" else stopped_by
        elif line.startswith("::stop-commands::"):
            stopped_by = line.removeprefix("::stop-commands::")
        else:
            acted.append(line)
    assert not stopped_by, "commands resumed"
    return acted


def test_a_notebook_that_cannot_be_read_is_said_in_the_summary_and_exits_0(
    capsys: pytest.CaptureFixture[str], tiny_course: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "::error::x|`<b>`"
    folder.mkdir()
    (folder / "tiny.ipynb").write_text("{not json")
    summary = tmp_path / "summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    code, out, _ = run_here(
        capsys, "--course", str(tiny_course), "check", "--format", "github", str(folder / "tiny.ipynb")
    )
    assert code == 0
    assert lines_outside_stopped_commands(out) == []  # no points: no notices, and the file name logged as text
    assert "::error::x" in out
    markdown = summary.read_text(encoding="utf-8")
    assert markdown.startswith("## Self-check: 0/0 points\n")
    assert "::error::x\\|\\`&lt;b&gt;\\`/tiny.ipynb: not checked\n\nnot valid JSON: Expecting property" in markdown
    code, _, err = run_here(
        capsys, "--course", str(tiny_course), "check", "--format", "github", "x.ipynb", "-a", "nope"
    )
    assert code == 2 and "no assignment 'nope'" in err


@pytest.mark.slow
def test_check_format_github_writes_the_summary_and_the_notices(
    capsys: pytest.CaptureFixture[str], tiny_course: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two notebooks as the workflow passes them: one right, one whose value is hostile text."""
    (tmp_path / "right").mkdir()
    write_notebook(tmp_path / "right" / "tiny.ipynb", "x = 1\ny = 2")
    hostile_folder = tmp_path / "a|b ::error::pwned"
    hostile_folder.mkdir()
    hostile = write_notebook(hostile_folder / "tiny.ipynb", f"x = {STUDENT!r}\ny = 2")
    summary = tmp_path / "step_summary.md"
    summary.write_text("earlier\n", encoding="utf-8")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    monkeypatch.chdir(tmp_path)
    code, out, err = run_here(
        capsys,
        "--course",
        str(tiny_course),
        "check",
        "--format",
        "github",
        "--",
        "right/tiny.ipynb",
        str(hostile.relative_to(tmp_path)),
    )
    assert code == 0, err
    assert lines_outside_stopped_commands(out) == [
        "::notice title=Autograding complete::Points 5/6",
        '::notice title=Autograding report::{"totalPoints":5,"maxPoints":6}',
    ]
    markdown = summary.read_text(encoding="utf-8")
    assert markdown.startswith("earlier\n## Self-check: 5/6 points\n")
    assert "### `right/tiny.ipynb` (tiny): 3/3\n" in markdown
    assert "| q1 One | ✅ passed | 1/1 |  |\n| q2 Two | ✅ passed | 2/2 |  |\n" in markdown
    assert "### a\\|b ::error::pwned/tiny.ipynb (tiny): 2/3\n" in markdown
    hostile_row = (
        r"| q1 One | ❌ failed | 0/1 | x is 'a \| b `c` \`\`\` &lt;img src=x onerror=alert(1)&gt; "
        r"\[l\](javascript:alert(1)) www&#46;evil.example https&#58;//evil.example/x a&#64;evil.example "
        r"&#64;octocat &#35;1 ::error::pwned ::add-mask::x 100% %0A\\r\\nnext', not 1 |"
    )
    assert f"\n{hostile_row}\n| q2 Two | ✅ passed | 2/2 |  |\n" in markdown
    assert_one_table_row_per_question(rendered(markdown))


def test_the_workflow_passes_actionlint() -> None:
    actionlint = Path(sys.executable).parent / "actionlint"
    done = subprocess.run([str(actionlint), "-no-color", str(WORKFLOW)], capture_output=True, text=True, check=False)
    assert (done.returncode, done.stdout + done.stderr) == (0, "")


def test_the_workflow_runs_the_github_format_on_the_changed_notebooks() -> None:
    text = WORKFLOW.read_text(encoding="utf-8")
    assert "autograder check --format github --" in text and "autograder assets synth" in text
    assert "download.pytorch.org/whl/cpu" in text and "torch==2.14.1" in text and "torchvision==0.29.1" in text
    assert "pull_request:" in text and "push:" in text and '"**.ipynb"' in text
