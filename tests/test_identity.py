"""Who is who and what counts in a batch: labels, students' folders, one
notebook per student and assignment, which assignment, and a Canvas file
Canvas's gradebook importer reads."""

from __future__ import annotations

import csv
import json
import os
import re
import subprocess
import sys
import unicodedata
import zipfile
from pathlib import Path

import pytest

from autograder.batch import BatchItem
from autograder.config import load_config
from autograder.course import Course
from autograder.exports import write_canvas_gradebook
from autograder.results import QuestionScore, SubmissionResult
from autograder.selection import AssignmentNames, choose, recognise
from autograder.submissions import Entry, collect, read_roster
from tests.conftest import ROOT, write_notebook

COMMAND = Path(sys.executable).parent / "autograder"
TENSORS, BASICS, NETWORK = "02_tensors", "01_neural_basics", "03_first_network"


def notebook(path: Path, assignment: str | None = None, source: str = "x = 1", mtime: int | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_notebook(path, source, **({"autograder": {"assignment": assignment}} if assignment else {}))
    if mtime is not None:
        os.utime(path, (mtime, mtime))
    return path


# Labels


NEAR_NAMES = [
    "Zoë",  # NFC e-diaeresis
    unicodedata.normalize("NFD", "Zoë"),  # the same letters as macOS zips spell them
    "Zoé",
    "Zoe",
    "zoe",
    "ZOE",
    "bob",
    "+bob",
    "bob+",
    "Bob",
    "b.o.b",
    "b o b",
    "b_o_b",
    "b-o-b",
]


def test_labels_of_names_differing_only_in_accents_punctuation_or_case_are_distinct_and_stable(
    tmp_path: Path,
) -> None:
    entries = [Entry(name, tmp_path / name / "02_tensors.ipynb", within="02_tensors.ipynb") for name in NEAR_NAMES]
    labels = [entry.label for entry in entries]
    assert len({label.casefold() for label in labels}) == len(NEAR_NAMES), "distinct even on a case-blind disk"
    assert all(re.fullmatch(r"[A-Za-z0-9_-]+", label) for label in labels)
    assert labels[0].startswith("Zoe__02_tensors-") and labels[7].startswith("bob__02_tensors-"), "readable"
    again = [
        Entry(name, Path("/elsewhere") / "02_tensors.ipynb", within="02_tensors.ipynb").label for name in NEAR_NAMES
    ]
    assert again == labels, "the same on every run, wherever the class folder is"
    # a fixed value: a per-process hash (Python's hash()) would change it between runs
    assert Entry("bob", Path("x.ipynb"), within="x.ipynb").label == "bob__x-" + _sha("bob\0x.ipynb")


def _sha(text: str) -> str:
    import hashlib

    return hashlib.sha256(text.encode()).hexdigest()[:10]


def test_collected_near_names_and_same_named_notebooks_never_share_a_label(tmp_path: Path) -> None:
    folder = tmp_path / "class"
    for name in NEAR_NAMES[:1] + NEAR_NAMES[2:]:  # one folder per distinct spelling the disk allows
        if not (folder / name).exists():
            notebook(folder / name / "02_tensors.ipynb", TENSORS)
    notebook(folder / "bob" / "backup" / "02_tensors.ipynb", TENSORS)  # the same file name, elsewhere
    notebook(folder / "alice.ipynb", TENSORS)  # loose: student `alice`, file `alice.ipynb`
    notebook(folder / "alice" / "alice.ipynb", TENSORS)  # the same student and file name
    entries = collect([folder], unpack_to=tmp_path / "unpacked", names_assignment=AssignmentNames(Course(ROOT)))
    assert len({entry.label for entry in entries}) == len(entries) == len(list(folder.rglob("*.ipynb")))


# Who is a student


def test_a_student_folder_named_assignment_7_is_one_student_of_the_class(tmp_path: Path) -> None:
    folder = tmp_path / "class"
    for student in ("alice", "assignment_7", "bob"):
        notebook(folder / student / "02_tensors.ipynb", TENSORS)
    names = AssignmentNames(Course(ROOT))
    entries = collect([folder], unpack_to=tmp_path / "unpacked", names_assignment=names)
    assert sorted(entry.student for entry in entries) == ["alice", "assignment_7", "bob"]
    without_course = collect([folder], unpack_to=tmp_path / "unpacked")  # the same notebook name says it too
    assert sorted(entry.student for entry in without_course) == ["alice", "assignment_7", "bob"]


def test_one_students_own_folders_stay_that_students(tmp_path: Path) -> None:
    names = AssignmentNames(Course(ROOT))
    repository = tmp_path / "ana-repo"
    notebook(repository / "assignments_04" / "warmup_04.ipynb")
    notebook(repository / "assignments_04" / "project_04.ipynb")
    notebook(repository / "assignments_05" / "05_transfer_learning.ipynb")
    assert {e.student for e in collect([repository], unpack_to=tmp_path / "u", names_assignment=names)} == {"ana-repo"}
    own = tmp_path / "alice"  # a student's folder handed in alone: its notebooks are the assignments
    notebook(own / "02_tensors.ipynb")
    notebook(own / "02_tensors (copy).ipynb")
    notebook(own / "backup" / "02_tensors-v3.ipynb")
    assert {e.student for e in collect([own], unpack_to=tmp_path / "u", names_assignment=names)} == {"alice"}
    loose = tmp_path / "submissions"  # loose notebooks named after students: one student each
    notebook(loose / "ada_lovelace.ipynb", TENSORS)
    notebook(loose / "ben_carter.ipynb", TENSORS)
    found = collect([loose], unpack_to=tmp_path / "u", names_assignment=names)
    assert sorted(e.student for e in found) == ["ada_lovelace", "ben_carter"]


# One notebook per student and assignment


def test_duplicates_in_a_students_folder_count_once_the_others_listed(tmp_path: Path) -> None:
    folder = tmp_path / "class"
    notebook(folder / "alice" / "02_tensors.ipynb", TENSORS, mtime=1_000)
    notebook(folder / "alice" / "02_tensors (copy).ipynb", TENSORS, mtime=3_000)  # newer, but a copy
    notebook(folder / "alice" / "backup" / "02_tensors-v3.ipynb", TENSORS, mtime=2_000)
    notebook(folder / "bob" / "02_tensors.ipynb", TENSORS, mtime=1_000)
    notebook(folder / "bob" / "old" / "02_tensors.ipynb", TENSORS, mtime=5_000)  # the same name: the latest
    notebook(folder / "bob" / "01_neural_basics.ipynb", BASICS)  # another assignment: counted apart
    course = Course(ROOT)
    entries = collect([folder], unpack_to=tmp_path / "u", names_assignment=AssignmentNames(course))
    chosen = {(e.student, e.assignment): e for e in choose(entries, course=course).entries}
    assert sorted(chosen) == [("alice", TENSORS), ("bob", BASICS), ("bob", TENSORS)]
    alice = chosen[("alice", TENSORS)]
    assert alice.within == "02_tensors.ipynb" and "from the file name" in alice.chosen_by
    assert sorted(alice.duplicates) == ["02_tensors (copy).ipynb", "backup/02_tensors-v3.ipynb"]
    assert chosen[("bob", TENSORS)].within == "old/02_tensors.ipynb"
    assert chosen[("bob", TENSORS)].duplicates == ("02_tensors.ipynb",)
    assert chosen[("bob", BASICS)].duplicates == ()


def test_a_canvas_resubmission_counts_by_the_lms_order_not_the_files_time(tmp_path: Path) -> None:
    first = notebook(tmp_path / "first.ipynb", TENSORS)
    archive = tmp_path / "submissions.zip"
    with zipfile.ZipFile(archive, "w") as bundle:
        # the resubmission (`-1`) carries the older time: Canvas's order decides, not the clock
        bundle.writestr(zipfile.ZipInfo("carol_1001_5001_02_tensors.ipynb", (2024, 3, 2, 0, 0, 0)), first.read_text())
        bundle.writestr(zipfile.ZipInfo("carol_1001_5001_02_tensors-1.ipynb", (2024, 3, 1, 0, 0, 0)), first.read_text())
        bundle.writestr("dave_1002_5002_02_tensors.ipynb", first.read_text())
    course = Course(ROOT)
    entries = collect([archive], unpack_to=tmp_path / "u", names_assignment=AssignmentNames(course))
    assert {(e.student, e.lms_id) for e in entries} == {("carol", "1001"), ("dave", "1002")}
    chosen = {e.student: e for e in choose(entries, course=course).entries}
    assert chosen["carol"].path.name == "carol_1001_5001_02_tensors-1.ipynb"
    assert chosen["carol"].duplicates == ("carol_1001_5001_02_tensors.ipynb",)
    assert chosen["dave"].duplicates == ()


# Which assignment


def test_a_file_name_and_metadata_that_disagree_are_refused_with_the_reason(tmp_path: Path) -> None:
    names = AssignmentNames(Course(ROOT))
    mismatch = notebook(tmp_path / "03_first_network.ipynb", BASICS)
    found = recognise(mismatch, names=names)
    assert found.assignment is None
    assert NETWORK in found.refusal and BASICS in found.refusal and "-a" in found.refusal
    copy = recognise(notebook(tmp_path / "Copy of 03_first_network.ipynb", BASICS), names=names)
    assert (copy.assignment, copy.how) == (BASICS, "from the notebook's metadata"), "no name: the metadata"
    asked = recognise(mismatch, names=names, asked=[NETWORK])
    assert asked.assignment == NETWORK and asked.how.startswith("as asked with -a")
    assert BASICS in asked.warning, "-a wins, with a warning"
    chosen = choose(collect([mismatch], unpack_to=tmp_path / "u", names_assignment=names), course=Course(ROOT)).entries
    assert [(e.assignment, bool(e.refusal)) for e in chosen] == [(None, True)]


def test_a_twice_limits_recognition_to_those_assignments(tmp_path: Path) -> None:
    folder = tmp_path / "class"
    for student in ("ann", "ben"):
        notebook(folder / student / "02_tensors.ipynb", TENSORS)
        notebook(folder / student / "01_neural_basics.ipynb", BASICS)
        notebook(folder / student / "03_first_network.ipynb", NETWORK)  # not asked: left out
    notebook(folder / "ann" / "homework.ipynb")  # nothing says which: grading will say so
    course = Course(ROOT)
    entries = collect([folder], unpack_to=tmp_path / "u", names_assignment=AssignmentNames(course))
    chosen = choose(entries, course=course, asked=[TENSORS, BASICS])
    assert sorted((e.student, e.assignment) for e in chosen.entries if e.assignment) == [
        ("ann", BASICS),
        ("ann", TENSORS),
        ("ben", BASICS),
        ("ben", TENSORS),
    ]
    assert sorted(e.path.name for e in chosen.entries if e.assignment is None) == ["homework.ipynb"]
    assert sorted(e.student for e in chosen.left_out) == ["ann", "ben"]
    assert all(e.path.name == "03_first_network.ipynb" for e in chosen.left_out)


# Canvas

# Canvas's gradebook importer (instructure/canvas-lms, GradebookImporter), as
# this file must satisfy it:
# 1. The first row is the header: cell 0 contains "Student", cell 1 "ID"; with
#    cell 2 "SIS User ID" and cell 3 "SIS Login ID" the student columns are
#    five, and the last of them (cell 4) must contain "Section".
# 2. Every later header cell is an assignment: "Title (digits)" is matched by
#    the id in parentheses; any other text by the exact title (or it becomes a
#    new assignment). Headers such as "Current Score" or "Final Grade" are not
#    assignments, so none may be named so; a title-only column must not end in
#    " (digits)", which Canvas would read as an id.
# 3. A row whose first cell contains "Points Possible" sets each column's
#    points and holds no student: here the second row, identity cells empty.
# 4. Each other row is a student, found by ID (Canvas's user id), else SIS
#    User ID, else SIS Login ID, else by name; its cell per assignment is the
#    grade, empty where there is none.
CANVAS_ID = re.compile(r"\A(.*)\s\((\d+)\)\Z")  # Ruby's \z is Python's \Z
NOT_ASSIGNMENTS = re.compile("Current Score|Current Points|Current Grade|Final Score|Final Points|Final Grade|Override")


def canvas_rows_obey_the_importer(rows: list[list[str]], expected: dict[str, tuple[str, int | None]]) -> None:
    """`expected`: header -> (title, canvas id or None) for each assignment column."""
    header = rows[0]
    assert "Student" in header[0] and "ID" in header[1]
    assert (header[2], header[3]) == ("SIS User ID", "SIS Login ID") and "Section" in header[4]
    assert header[5:] == list(expected), "one column per assignment, in a fixed order"
    for column, (title, canvas_id) in expected.items():
        assert not NOT_ASSIGNMENTS.search(column)
        parsed = CANVAS_ID.match(column)
        if canvas_id is None:
            assert column == title and parsed is None, "a title-only column that Canvas reads as the title"
        else:
            assert parsed is not None and (parsed[1], parsed[2]) == (title, str(canvas_id))
    points = rows[1]
    assert "Points Possible" in points[0] and points[1:5] == ["", "", "", ""]
    assert all(re.fullmatch(r"\d+(\.\d+)?", cell) for cell in points[5:])
    students = rows[2:]
    assert all(len(row) == len(header) for row in rows)
    assert len({tuple(row[:5]) for row in students}) == len(students), "one row per student"
    for row in students:
        assert row[0] and "Points Possible" not in row[0]
        for cell, possible in zip(row[5:], points[5:], strict=True):
            assert cell == "" or 0 <= float(cell) <= float(possible), "a score, never a sum of several notebooks"


def test_the_canvas_file_has_one_importable_column_per_assignment(tmp_path: Path) -> None:
    toml = tmp_path / "assignment.toml"
    toml.write_text('title = "Warm-up"\ncanvas_id = 4821\n')
    assert load_config(toml).canvas_id == 4821 and load_config().with_overrides(seed=1).canvas_id == 0
    roster = tmp_path / "roster.csv"
    roster.write_text(
        "match,name,id,sis_user_id,sis_login_id,section\n"
        "ann,Ann Lee,101,S-1,ann@uni,Lab 1\n"
        "bo,Bo Li,,S-2,,Lab 2\n"
        "cy,Cy Ng,,,,\n"
    )
    people = read_roster(roster)

    def item(student: str, assignment: str, score: float, max_score: float, status: str = "graded") -> BatchItem:
        row = people[student]
        entry = Entry(
            student,
            tmp_path / f"{student}-{assignment}.ipynb",
            name=row.name,
            lms_id=row.lms_id,
            sis_user_id=row.sis_user_id,
            sis_login_id=row.sis_login_id,
            section=row.section,
        )
        result = SubmissionResult(
            submission=str(entry.path),
            assignment=assignment,
            status=status,  # type: ignore[arg-type]
            score=score,
            max_score=max_score,
            questions=(QuestionScore("q1", "One", score, max_score),),
        )
        return BatchItem(entry, result, cached=False)

    items = [
        item("ann", "warmup_04", 20, 23),
        item("ann", "project_04", 40, 46),
        item("bo", "warmup_04", 23, 23),
        item("bo", "project_04", 0, 0, status="rejected"),
        item("cy", "project_04", 46, 46),
    ]
    target = tmp_path / "canvas.csv"
    unmatched = write_canvas_gradebook(
        items,
        target,
        titles={"warmup_04": "Warm-up", "project_04": "Project"},
        canvas_ids={"warmup_04": 4821},
    )
    rows = list(csv.reader(target.read_text(encoding="utf-8").splitlines()))
    canvas_rows_obey_the_importer(rows, {"Project": ("Project", None), "Warm-up (4821)": ("Warm-up", 4821)})
    assert rows[1][5:] == ["46", "23"]
    assert rows[2:] == [
        ["Ann Lee", "101", "S-1", "ann@uni", "Lab 1", "40", "20"],
        ["Bo Li", "", "S-2", "", "Lab 2", "", "23"],
        ["Cy Ng", "", "", "", "", "46", ""],
    ]
    assert unmatched == ["Cy Ng"], "the student Canvas can match only by name is named"


# End to end: a messy class, graded twice


WARMUP_CHECK = """
import pytest

@pytest.mark.question("q1")
@pytest.mark.points(2)
def test_x(student):
    assert student.fetch("x") == 1, "`x` should be 1"
"""
PROJECT_CHECK = WARMUP_CHECK.replace('"x"', '"y"').replace("points(2)", "points(3)").replace("`x`", "`y`")


@pytest.fixture(scope="module")
def two_assignment_course(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A course of two light assignments (nothing heavy imported): a warm-up and a project."""
    root = tmp_path_factory.mktemp("course")
    for name, check, extra in (("warmup", WARMUP_CHECK, "canvas_id = 4821\n"), ("project", PROJECT_CHECK, "")):
        (root / "assignments" / name / "public_checks").mkdir(parents=True)
        (root / "solutions" / name / "hidden_checks").mkdir(parents=True)
        write_notebook(root / "assignments" / name / f"{name}.ipynb", "x = y = None")
        (root / "assignments" / name / "assignment.toml").write_text(
            f'title = "{name.title()}"\n{extra}[questions]\nq1 = "One"\n'
        )
        (root / "solutions" / name / "hidden_checks" / f"test_{name}.py").write_text(check)
    return root


@pytest.mark.slow
def test_a_messy_class_grades_to_one_row_per_student_and_a_rerun_regrades_nothing(
    two_assignment_course: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "class"
    right = {"warmup": "x = 1", "project": "y = 1"}
    for student in ("Zoë", "Zoé", "assignment_7"):
        for name in ("warmup", "project"):
            notebook(folder / student / f"{name}.ipynb", name, right[name] if student != "Zoé" else "x = y = 0")
    notebook(folder / "bob" / "warmup.ipynb", "warmup", right["warmup"], mtime=1_000)
    notebook(folder / "bob" / "warmup (copy).ipynb", "warmup", right["warmup"], mtime=2_000)
    notebook(folder / "bob" / "backup" / "warmup-v3.ipynb", "warmup", right["warmup"], mtime=3_000)
    notebook(folder / "+bob" / "warmup.ipynb", "warmup", "x = 0")
    notebook(folder / "+bob" / "project.ipynb", "warmup")  # a project's name, a warm-up's metadata: refused
    archive = tmp_path / "canvas.zip"
    with zipfile.ZipFile(archive, "w") as bundle:
        bundle.writestr("carol_1001_5001_warmup.ipynb", (folder / "Zoé" / "warmup.ipynb").read_text())
        bundle.writestr("carol_1001_5001_warmup-1.ipynb", (folder / "Zoë" / "warmup.ipynb").read_text())
    out = tmp_path / "out"
    command = [str(COMMAND), "--course", str(two_assignment_course), "grade", str(folder), str(archive)]
    command += ["-a", "warmup", "-a", "project", "--out", str(out), "-j", "2"]
    first = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert first.returncode == 0, first.stderr[-3000:]
    assert "10 submissions: 9 graded, 1 rejected" in first.stderr, first.stderr[-3000:]
    assert "3 duplicate notebook(s) not counted" in first.stderr
    stored = {p.name: p.stat().st_mtime_ns for p in (out / "results").glob("*.json")}
    assert len(stored) == 10

    rows = {r["student"]: r for r in csv.DictReader((out / "gradebook.csv").read_text(encoding="utf-8").splitlines())}
    rows["+bob"] = rows.pop("'+bob")  # a cell starting with + is quoted, so no spreadsheet runs it
    assert sorted(rows) == sorted(["Zoë", "Zoé", "assignment_7", "bob", "+bob", "carol"])
    assert (rows["Zoë"]["warmup:q1"], rows["Zoë"]["project:q1"], rows["Zoë"]["score"]) == ("2", "3", "5")
    assert (rows["Zoé"]["score"], rows["assignment_7"]["score"]) == ("0", "5")
    assert rows["bob"]["warmup:q1"] == "2", "three copies, counted once"
    assert "duplicate: warmup (copy).ipynb" in rows["bob"]["duplicates"]
    assert "duplicate: backup/warmup-v3.ipynb" in rows["bob"]["duplicates"]
    assert "warmup: from the file name 'warmup.ipynb'" in rows["bob"]["chosen_by"]
    assert rows["+bob"]["status"] == "rejected" and "metadata says warmup" in rows["+bob"]["reason"]
    assert rows["carol"]["warmup:q1"] == "2", "the resubmission (-1) counts, not the first upload"

    results = [json.loads(p.read_text(encoding="utf-8")) for p in (out / "results").glob("*.json")]
    assert all(r["schema_version"] == 1 for r in results)
    assert {r["assignment_chosen_by"] for r in results if r["status"] == "graded"} >= {
        "from the file name 'warmup.ipynb' and the notebook's metadata"
    }
    feedback = {p.read_text(encoding="utf-8").splitlines()[0] for p in (out / "feedback").glob("*.md")}
    assert len(list((out / "feedback").glob("*.md"))) == 10, "each notebook its own feedback file"
    assert {"# Warmup: feedback for Zoë", "# Warmup: feedback for Zoé", "# Warmup: feedback for +bob"} <= feedback
    assert len(list((out / "feedback").glob("bob__warmup-*.md"))) == 2, "bob's and +bob's: readable alike"
    label = Entry("bob", folder / "bob" / "warmup.ipynb", within="warmup.ipynb").label
    bob = (out / "feedback" / f"{label}.md").read_text(encoding="utf-8")
    assert "not counted (duplicate)" in bob and "`warmup (copy).ipynb`" in bob

    canvas = list(csv.reader((out / "gradebook-canvas.csv").read_text(encoding="utf-8").splitlines()))
    canvas_rows_obey_the_importer(canvas, {"Project": ("Project", None), "Warmup (4821)": ("Warmup", 4821)})
    assert ["carol", "1001", "", "", "", "", "2"] in canvas
    assert "no id to match on for 5 student(s)" in " ".join(first.stderr.split())

    again = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "(10 already graded, reused)" in again.stderr, again.stderr[-3000:]
    assert {p.name: p.stat().st_mtime_ns for p in (out / "results").glob("*.json")} == stored, "nothing regraded"
