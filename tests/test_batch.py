"""Batches: finding submissions, parallel grading, resuming after kill -9, and the files it writes."""

from __future__ import annotations

import contextlib
import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest
from PIL import Image

from autograder.batch import BatchItem
from autograder.exports import write_canvas_gradebook, write_gradebook
from autograder.results import QuestionScore, SubmissionResult
from autograder.submissions import Entry, collect, read_roster
from tests.conftest import write_notebook

COMMAND = Path(sys.executable).parent / "autograder"
CHECK = """
import pytest

@pytest.mark.question("q1")
@pytest.mark.points(2)
def test_x(student):
    assert student.fetch("x") == 1, "`x` should be 1"
"""


@pytest.fixture(scope="module")
def light_course(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A one-question assignment whose notebooks import nothing heavy."""
    root = tmp_path_factory.mktemp("light")
    (root / "assignments" / "light" / "public_checks").mkdir(parents=True)
    (root / "solutions" / "light" / "hidden_checks").mkdir(parents=True)
    write_notebook(root / "assignments" / "light" / "light.ipynb", "x = None")
    (root / "assignments" / "light" / "assignment.toml").write_text('title = "Light"\n[questions]\nq1 = "One"\n')
    (root / "solutions" / "light" / "hidden_checks" / "test_light.py").write_text(CHECK)
    return root


def autograder(*args: str, course: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(COMMAND), "--course", str(course), *args], capture_output=True, text=True, timeout=600)


def make_class(folder: Path, count: int) -> Path:
    folder.mkdir()
    for index in range(count):
        student = folder / f"student{index:02d}" / "assignments_04"
        student.mkdir(parents=True)
        write_notebook(student / "light.ipynb", f"x = {index % 2}")
    return folder


def test_collect_finds_students_files_and_canvas_zips(tmp_path: Path) -> None:
    loose = tmp_path / "loose"
    loose.mkdir()
    write_notebook(loose / "ann.ipynb", "x = 1")
    make_class(tmp_path / "repos", 2)
    (tmp_path / "repos" / "student00" / ".ipynb_checkpoints").mkdir()
    write_notebook(tmp_path / "repos" / "student00" / ".ipynb_checkpoints" / "light-checkpoint.ipynb", "x = 9")
    archive = tmp_path / "canvas.zip"
    with zipfile.ZipFile(archive, "w") as bundle:
        bundle.writestr("smithjane_12345_67890_light.ipynb", (loose / "ann.ipynb").read_text())
        bundle.writestr("../escape.ipynb", "{}")
    roster = tmp_path / "roster.csv"
    roster.write_text("match,name,id\nsmithjane,Jane Smith,S-1\nstudent01,Bo Li,S-2\n")
    entries = collect([loose, tmp_path / "repos", archive], unpack_to=tmp_path / "unpacked", roster=read_roster(roster))
    (escaped,) = [e for e in entries if e.refusal]  # a row saying why, never unpacked
    assert escaped.refusal.startswith("a path outside the archive")
    entries = [e for e in entries if not e.refusal]
    assert sorted((e.student, e.path.name, e.name, e.lms_id) for e in entries) == [
        ("ann", "ann.ipynb", "", ""),
        ("smithjane", "smithjane_12345_67890_light.ipynb", "Jane Smith", "S-1"),
        ("student00", "light.ipynb", "", ""),
        ("student01", "light.ipynb", "Bo Li", "S-2"),
    ]
    assert not (tmp_path / "escape.ipynb").exists()
    assert len({e.label for e in entries}) == 4


@pytest.mark.slow
def test_kill_minus_9_then_resume_grades_each_submission_once(light_course: Path, tmp_path: Path) -> None:
    submissions = make_class(tmp_path / "class", 6)
    out = tmp_path / "out"
    command = [
        str(COMMAND),
        "--course",
        str(light_course),
        "grade",
        str(submissions),
        "-a",
        "light",
        "--out",
        str(out),
        "-j",
        "2",
    ]
    grader = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 300
    while len(list((out / "results").glob("*.json"))) < 2:
        assert time.monotonic() < deadline and grader.poll() is None, "the grader never wrote two results"
        time.sleep(0.05)
    os.kill(grader.pid, signal.SIGKILL)
    grader.wait()
    _wait_for_group_to_end(grader.pid)
    first = {p.name: p.read_text() for p in (out / "results").glob("*.json")}
    assert 2 <= len(first) < 6
    done = autograder("grade", str(submissions), "-a", "light", "--out", str(out), "-j", "2", course=light_course)
    assert done.returncode == 0, done.stderr
    results = {p.name: p.read_text() for p in (out / "results").glob("*.json")}
    assert len(results) == 6
    assert all(results[name] == text for name, text in first.items()), "a finished result was graded again"
    assert f"({len(first)} already graded, reused)" in done.stderr
    assert not list((out / "results").glob("*.tmp"))
    rows = list(csv.DictReader((out / "gradebook.csv").read_text().splitlines()))
    assert sorted(r["student"] for r in rows) == [f"student{i:02d}" for i in range(6)]
    assert [r["q1"] for r in sorted(rows, key=lambda r: r["student"])] == ["0", "2"] * 3


NAPPING_CHECK = """
import pytest

@pytest.mark.question("q1")
@pytest.mark.points(1)
def test_nap(student):
    student.call("nap")
"""
NAP = "import time\n\ndef nap():\n    open('napping', 'w').close()\n    time.sleep(3600)"


@pytest.mark.slow
@pytest.mark.sandbox  # the sandbox is what must not outlive the grader
def test_kill_minus_9_during_the_checks_stops_the_kernel_and_writes_no_result(
    light_course: Path, tmp_path: Path
) -> None:
    course = tmp_path / "course"
    shutil.copytree(light_course, course)
    (course / "solutions" / "light" / "hidden_checks" / "test_light.py").write_text(NAPPING_CHECK)
    submissions = tmp_path / "class"
    submissions.mkdir()
    write_notebook(submissions / "napper.ipynb", NAP)
    sandboxes = Path(os.environ.get("AUTOGRADER_SANDBOX_DIR", "/var/lib/autograder/sandboxes"))
    command = [str(COMMAND), "--course", str(course), "grade", str(submissions), "-a", "light"]
    command += ["--out", str(tmp_path / "out"), "-j", "1"]
    grader = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 300
    while not list(sandboxes.glob("*/work/napping")):  # a check is waiting on the student's code
        assert time.monotonic() < deadline and grader.poll() is None, "the check never called nap()"
        time.sleep(0.05)
    assert _sandboxed_processes(grader.pid)
    os.kill(grader.pid, signal.SIGKILL)
    grader.wait()
    _wait_for_group_to_end(grader.pid)  # the napping kernel included
    assert not list((tmp_path / "out" / "results").glob("*.json")), "a submission cut short got a result"


def _sandboxed_processes(group: int) -> list[int]:
    """Processes of this group that run as some other user than root."""
    found = []
    for status in Path("/proc").glob("[0-9]*/status"):
        with contextlib.suppress(OSError, ValueError):
            if os.getpgid(int(status.parent.name)) != group:
                continue
            uid = next(line.split()[1] for line in status.read_text().splitlines() if line.startswith("Uid:"))
            if uid != "0":
                found.append(int(status.parent.name))
    return found


def _wait_for_group_to_end(group: int) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            os.killpg(group, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)
    raise AssertionError("orphaned workers did not finish")


@pytest.fixture(scope="module")
def graded_class(light_course: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("graded")
    submissions = make_class(root / "class", 2)
    (submissions / "broken.ipynb").write_text("{not json")
    roster = root / "roster.csv"
    roster.write_text("match,name,id\nstudent01,Bo Li,S-2\n")
    out = root / "out"
    done = autograder(
        "grade", str(submissions), "-a", "light", "--out", str(out), "--roster", str(roster), course=light_course
    )
    assert done.returncode == 0, done.stderr
    assert "3 submissions: 2 graded, 1 rejected, 0 errors" in done.stderr
    return out


@pytest.mark.slow
def test_gradebooks(graded_class: Path) -> None:
    rows = {r["student"]: r for r in csv.DictReader((graded_class / "gradebook.csv").read_text().splitlines())}
    assert (rows["student01"]["name"], rows["student01"]["q1"], rows["student01"]["score"]) == ("Bo Li", "2", "2")
    assert rows["student00"]["score"] == "0" and rows["broken"]["status"] == "rejected"
    canvas = list(csv.reader((graded_class / "gradebook-canvas.csv").read_text().splitlines()))
    assert canvas[:2] == [
        ["Student", "ID", "SIS User ID", "SIS Login ID", "Section", "Light"],
        ["Points Possible", "", "", "", "", "2"],
    ]
    assert ["Bo Li", "S-2", "", "", "", "2"] in canvas


@pytest.mark.slow
def test_feedback_and_gradescope_files(graded_class: Path) -> None:
    markdown = _labelled(graded_class / "feedback", "student00__light", ".md").read_text()
    assert "Score: 0 / 2" in markdown and "`x` should be 1" in markdown
    html = _labelled(graded_class / "feedback", "student01__light", ".html").read_text()
    assert "Bo Li" in html and "Score: 2 / 2" in html
    assert "could not be graded" in _labelled(graded_class / "feedback", "broken__broken", ".md").read_text()
    gradescope = json.loads(
        (_labelled(graded_class / "gradescope", "student00__light", "") / "results.json").read_text()
    )
    assert gradescope["score"] == 0
    assert gradescope["tests"] == [
        {
            "name": "q1: test_x",
            "score": 0.0,
            "max_score": 2.0,
            "output": "`x` should be 1",
            "visibility": "after_published",
            "name_format": "text",
            "output_format": "text",
        }
    ]


def _labelled(folder: Path, readable: str, suffix: str) -> Path:
    """The one file of `folder` whose label starts with `readable` (a label is `readable-hash`)."""
    (found,) = folder.glob(f"{readable}-*{suffix}")
    return found


@pytest.mark.slow
def test_force_and_one_student(graded_class: Path, light_course: Path) -> None:
    submissions = graded_class.parent / "class"
    before = {p.name: p.stat().st_mtime_ns for p in (graded_class / "results").glob("*.json")}
    done = autograder(
        "grade",
        str(submissions),
        "-a",
        "light",
        "--out",
        str(graded_class),
        "--student",
        "student01",
        "--force",
        course=light_course,
    )
    assert done.returncode == 0, done.stderr
    assert "1 submissions: 1 graded" in done.stderr
    after = {p.name: p.stat().st_mtime_ns for p in (graded_class / "results").glob("*.json")}
    changed = [name for name in before if before[name] != after.get(name)]
    assert [name.split(".")[0].rsplit("-", 1)[0] for name in changed] == ["student01__light"]


CHROMIUM = shutil.which("chromium")
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--enable-logging=stderr",
    "--v=0",
]


@pytest.mark.slow
@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (.ci/run installs it)")
def test_summary_page_renders_in_a_real_browser(graded_class: Path, tmp_path: Path) -> None:
    page = graded_class / "summary.html"
    html = page.read_text()
    assert "http://" not in html and "https://" not in html and "<script" not in html, "self-contained"
    shot = tmp_path / "summary.png"
    done = subprocess.run(
        [
            str(CHROMIUM),
            *CHROMIUM_FLAGS,
            f"--user-data-dir={tmp_path / 'profile'}",
            f"--screenshot={shot}",
            "--window-size=1200,1400",
            page.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert shot.is_file(), done.stderr[-2000:]
    console = [line for line in done.stderr.splitlines() if "CONSOLE" in line or "Uncaught" in line]
    assert console == []
    image = Image.open(shot).convert("RGB")
    colours = image.getcolors(maxcolors=1_000_000) or []
    assert len(colours) > 50, "the screenshot is (nearly) blank"
    bluish = sum(count for count, (r, g, b) in colours if b > 150 and r < 120)
    greenish = sum(count for count, (r, g, b) in colours if g > 150 and r < 150 and b < 120)
    assert bluish > 500 and greenish > 500, "the histogram and pass-rate bars are drawn"


@pytest.mark.slow
def test_dask_local_cluster_gives_the_same_results_as_the_local_pool(light_course: Path, tmp_path: Path) -> None:
    submissions = make_class(tmp_path / "class", 3)
    outcomes = {}
    for backend in ("pool", "dask"):
        out = tmp_path / backend
        extra = ["--dask", "local"] if backend == "dask" else []
        done = autograder(
            "grade", str(submissions), "-a", "light", "--out", str(out), "-j", "2", *extra, course=light_course
        )
        assert done.returncode == 0, done.stderr[-3000:]
        outcomes[backend] = {
            p.name: [(c["name"], c["status"], c["score"]) for c in json.loads(p.read_text())["checks"]]
            for p in (out / "results").glob("*.json")
        }
    assert outcomes["pool"] == outcomes["dask"] and len(outcomes["pool"]) == 3


def test_gradebook_has_one_row_per_student_across_notebooks(tmp_path: Path) -> None:
    def item(student: str, notebook: str, assignment: str, score: float, status: str = "graded") -> BatchItem:
        questions = (QuestionScore("q1", "One", score, 2),) if status == "graded" else ()
        result = SubmissionResult(
            submission=notebook,
            assignment=assignment,
            status=status,
            score=score,  # type: ignore[arg-type]
            max_score=2 if status == "graded" else 0,
            questions=questions,
            reason="" if status == "graded" else "bad",
        )
        return BatchItem(Entry(student, tmp_path / notebook, name="Ann Lee", lms_id="7"), result, cached=False)

    items = [
        item("ann", "warmup.ipynb", "warmup", 2),
        item("ann", "project.ipynb", "project", 1),
        item("bob", "warmup.ipynb", "warmup", 0, status="rejected"),
    ]
    write_gradebook(items, tmp_path / "g.csv")
    rows = list(csv.DictReader((tmp_path / "g.csv").read_text().splitlines()))
    assert [r["student"] for r in rows] == ["ann", "bob"]
    ann, bob = rows
    assert (ann["warmup:q1"], ann["project:q1"], ann["score"], ann["max_score"]) == ("2", "1", "3", "4")
    assert ann["notebooks"] == "warmup.ipynb; project.ipynb" and ann["status"] == "graded"
    assert bob["status"] == "rejected" and bob["reason"] == "warmup.ipynb: bad"
    write_canvas_gradebook(items, tmp_path / "c.csv", titles={"warmup": "Warm-up"})
    assert (tmp_path / "c.csv").read_text().splitlines() == [  # a column per assignment, never one sum
        "Student,ID,SIS User ID,SIS Login ID,Section,project,Warm-up",
        "Points Possible,,,,,2,2",
        "Ann Lee,7,,,,1,2",
        "Ann Lee,7,,,,,",
    ]


def test_feedback_draws_the_notebooks_own_curves(tmp_path: Path) -> None:
    from autograder.exports import write_batch_reports

    result = SubmissionResult(
        submission="ann.ipynb",
        assignment="03_first_network",
        status="graded",
        score=1,
        max_score=2,
        questions=(QuestionScore("q1", "One", 1, 2),),
        curves={"Training loss": [0.7, 0.5, 0.2, 0.1]},
    )
    item = BatchItem(Entry("ann", tmp_path / "ann.ipynb"), result, cached=False)
    write_batch_reports([item], tmp_path, title="Week 4", titles={"03_first_network": "First network"})
    label = item.entry.label
    markdown = (tmp_path / "feedback" / f"{label}.md").read_text(encoding="utf-8")
    assert markdown.startswith("# First network: feedback for ann")  # its own assignment's, in a mixed batch
    assert "## Training loss" in markdown and f"({label}.curve0.png)" in markdown
    with Image.open(tmp_path / "feedback" / f"{label}.curve0.png") as image:
        assert image.width > 200
    assert "data:image/png;base64," in (tmp_path / "feedback" / f"{label}.html").read_text(encoding="utf-8")


@pytest.mark.slow
def test_a_graded_training_notebook_carries_its_loss_curve(graded_solutions: dict[str, SubmissionResult]) -> None:
    loss = graded_solutions["03_first_network"].curves["Training loss"]
    assert len(loss) == 500 and loss[-1] < loss[0] / 2


KILLING_CHECK = """
import os
import signal
from pathlib import Path

import pytest

ATTEMPTS = Path({attempts!r})


@pytest.mark.question("q1")
@pytest.mark.points(2)
def test_x(student):
    x = student.fetch("x")
    tries = ATTEMPTS / str(x)
    with tries.open("a") as log:
        log.write("try\\n")
    if x == 666 or (x == 667 and len(tries.read_text().splitlines()) == 1):
        os.kill(os.getpid(), signal.SIGKILL)  # the grading worker dies here, as the out-of-memory killer kills it
    assert x % 10 == 1, "`x` should end in 1"
"""


@pytest.mark.slow
def test_a_worker_that_dies_costs_only_its_own_submission(light_course: Path, tmp_path: Path) -> None:
    """The check SIGKILLs its own worker process for two notebooks: one every time
    (a poison notebook), one only the first time. Student code cannot reach the
    worker from the sandbox, so the check plays the out-of-memory killer."""
    course = tmp_path / "course"
    shutil.copytree(light_course, course)
    attempts = tmp_path / "attempts"
    attempts.mkdir()
    check = KILLING_CHECK.format(attempts=str(attempts))
    (course / "solutions" / "light" / "hidden_checks" / "test_light.py").write_text(check)
    submissions = tmp_path / "class"
    submissions.mkdir()
    values = {"ann": 1, "bob": 11, "cy": 20, "dee": 31, "poison": 666, "flaky": 667}
    for student, x in values.items():
        write_notebook(submissions / f"{student}.ipynb", f"x = {x}")
    out = tmp_path / "out"
    done = autograder("grade", str(submissions), "-a", "light", "--out", str(out), "-j", "2", course=course)
    assert done.returncode == 1, done.stderr[-3000:]  # one error, nothing rejected
    assert "6 submissions: 5 graded, 0 rejected, 1 errors" in done.stderr
    rows = {r["student"]: r for r in csv.DictReader((out / "gradebook.csv").read_text().splitlines())}
    assert {s: (rows[s]["status"], rows[s]["q1"]) for s in ("ann", "bob", "cy", "dee", "flaky")} == {
        "ann": ("graded", "2"),
        "bob": ("graded", "2"),
        "cy": ("graded", "0"),
        "dee": ("graded", "2"),
        "flaky": ("graded", "0"),  # its retry ran on a fresh worker
    }
    assert rows["poison"]["status"] == "error"
    assert "killed by SIGKILL" in rows["poison"]["reason"] and "2 times" in rows["poison"]["reason"]
    tries = {p.name: len(p.read_text().splitlines()) for p in attempts.iterdir()}
    assert tries == {"1": 1, "11": 1, "20": 1, "31": 1, "666": 2, "667": 2}, "classmates graded once, the dead twice"
    stored = {p.name.split("__")[0] for p in (out / "results").glob("*.json")}
    assert stored == {"ann", "bob", "cy", "dee", "flaky"}, "the poison notebook is tried again on the next run"
