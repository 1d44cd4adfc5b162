"""The `student` API in process (autograder/in_process.py), the check author's
module (checkkit.py) and the in-notebook self-check's own logic (selfcheck.py),
against plain namespaces: no kernel is started here."""

from __future__ import annotations

import contextlib
import json
import time
from pathlib import Path

import pytest
import torch

from autograder import selfcheck
from autograder.assets import AssetStore
from autograder.checkkit import ModuleSnapshot, NamespaceStudent, Opaque, run_check_files
from autograder.contract import hidden_check_names
from autograder.course import Course
from autograder.errors import BridgeTimeoutError, StudentCodeError, StudentNameError, UnsafeValueError
from autograder.reference import FigureProblem, figure_record
from tests.conftest import ROOT

CHECKS = """
import pytest
import torch

@pytest.mark.question("q1")
@pytest.mark.points(2)
def test_values(student):
    x = student.fetch("x")
    assert isinstance(x, torch.Tensor) and x.tolist() == [1.0, 2.0], "`x` should hold 1 and 2"

@pytest.mark.question("q2")
@pytest.mark.points(1)
def test_call(student):
    assert student.call("double", 3) == 6, "`double(3)` should be 6"

@pytest.mark.question("q2")
@pytest.mark.points(1)
def test_partly(student, credit):
    credit.give(0.5, "half of it")
"""


@pytest.fixture
def check_file(tmp_path: Path) -> Path:
    path = tmp_path / "test_checks.py"
    path.write_text(CHECKS, encoding="utf-8")
    return path


def test_run_check_files_gives_grading_s_outcomes(check_file: Path) -> None:
    right = run_check_files([check_file], {"x": torch.tensor([1.0, 2.0]), "double": lambda n: 2 * n})
    assert [(o.question, o.status, o.score) for o in right] == [
        ("q1", "passed", 2.0),
        ("q2", "passed", 1.0),
        ("q2", "failed", 0.5),
    ]
    wrong = run_check_files([check_file], {"x": torch.tensor([1.0]), "double": lambda n: 1 / 0})
    said = {o.name: o.message for o in wrong}
    assert said["test_values"] == "`x` should hold 1 and 2"
    assert said["test_call"] == "`double(...)` raised ZeroDivisionError: division by zero"
    missing = run_check_files([check_file], {})
    assert {o.message for o in missing if o.question == "q1"} == {"`x` is not defined in the notebook"}


def test_values_cross_the_codec_as_copies_and_data() -> None:
    namespace = {"x": torch.zeros(2), "net": torch.nn.Linear(2, 1), "thing": object()}
    student = NamespaceStudent(namespace)
    fetched = student.fetch("x")
    fetched += 1
    assert namespace["x"].tolist() == [0.0, 0.0], "a check never holds the student's own tensor"
    assert isinstance(student.fetch("net"), ModuleSnapshot)
    assert isinstance(student.fetch("thing"), Opaque)
    assert student.probe("result = inputs['a'] + len(x)", a=1) == 3
    with pytest.raises(StudentNameError):
        student.fetch("nothing")
    with pytest.raises(StudentCodeError):
        student.probe("raise ValueError('no')")
    with pytest.raises(UnsafeValueError):
        NamespaceStudent({"big": torch.zeros(1 << 20)}, max_bytes=1 << 16).fetch("big")


def test_a_loop_that_swallows_exceptions_still_ends_at_its_timeout() -> None:
    def spin() -> None:
        while True:
            with contextlib.suppress(Exception):  # the student's code swallows its errors; the timeout is not one
                time.sleep(0.01)

    student = NamespaceStudent({"spin": spin}, timeout_s=0.5)
    started = time.monotonic()
    with pytest.raises(BridgeTimeoutError, match=r"did not answer within 0\.5 s"):
        student.call("spin")
    assert time.monotonic() - started < 10
    assert student.call  # the process goes on: the timer is off again
    time.sleep(0.7)  # no stray alarm arrives after the call


def test_figures_drawn_before_the_import_are_said_so(tmp_path: Path) -> None:
    from PIL import Image

    Image.new("RGB", (8, 8)).save(tmp_path / "fig.png")
    student = NamespaceStudent({}, workdir=tmp_path)
    student.late_recorder = True
    with pytest.raises(FigureProblem, match="import selfcheck at the top"):
        figure_record(student, tmp_path, "fig.png")


@pytest.fixture(scope="module")
def course() -> Course:
    return Course(ROOT)


def test_the_assignment_is_told_by_name_session_or_prescribed_names(course: Course) -> None:
    assert selfcheck._assignment(course, {}, "02_tensors")[0].name == "02_tensors"
    session = {"__session__": "/home/me/work/02_tensors (2).ipynb"}
    chosen, how = selfcheck._assignment(course, session, None)
    assert chosen.name == "02_tensors" and "file name" not in how and "02_tensors" in how
    wanted = selfcheck._prescribed(course.get("06_digits").public_checks)
    assert wanted, "the digits checks ask for names"
    assert selfcheck._assignment(course, dict.fromkeys(wanted, 1), None)[0].name == "06_digits"
    with pytest.raises(LookupError, match=r"selfcheck\.check"):
        selfcheck._assignment(course, {"unrelated": 1}, None)


def test_only_public_checks_run_and_none_is_named_hidden(course: Course, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    done = selfcheck.run("02_tensors", namespace={}, course=course)
    assert done.outcomes and all(o.visibility == "public" for o in done.outcomes)
    hidden = hidden_check_names(course.get("02_tensors"))
    shown = json.dumps(done.summary()) + done.text() + done.html()
    assert hidden and not [name for name in hidden if name in shown]
    assert {q.verdict for q in done.questions} == {"failed"}
    one = selfcheck.run("02_tensors", "q1", namespace={}, course=course)
    assert [q.question for q in one.questions] == ["q1"]
    with pytest.raises(ValueError, match="no public check for question"):
        selfcheck.run("02_tensors", "q99", namespace={}, course=course)


def test_the_table_escapes_what_the_student_wrote(course: Course, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    namespace = {"scale_and_clamp": lambda *a, **k: (_ for _ in ()).throw(ValueError("<script>alert(1)</script>"))}
    page = selfcheck.run("02_tensors", namespace=namespace, course=course).html()
    assert "<script>" not in page and "&lt;script&gt;" in page


def test_on_kaggle_the_checks_use_the_input_data_and_real_thresholds(
    course: Course, tmp_path: Path, monkeypatch
) -> None:
    kaggle = tmp_path / "input"
    (kaggle / "intel-image-classification" / "seg_test").mkdir(parents=True)
    monkeypatch.delenv("AUTOGRADER_ASSETS", raising=False)
    monkeypatch.setattr(selfcheck, "default_store", lambda: AssetStore(tmp_path / "none"))
    monkeypatch.setattr(selfcheck, "ASSETS_VIEW", tmp_path / "no-view")
    monkeypatch.setattr(selfcheck, "KAGGLE_INPUT", kaggle)
    store = selfcheck.find_assets(course.get("warmup_04"))
    assert store.kind == "real"
    assert (store.public / "intel-image-classification" / "seg_test").is_dir()
    assert (store.public / "torch").resolve() == Path(torch.hub.get_dir()).parent.resolve()


def test_where_the_machine_has_no_assets_their_checks_are_environment(
    course: Course, tmp_path: Path, monkeypatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("AUTOGRADER_ASSETS", str(tmp_path / "nothing-here"))
    done = selfcheck.run("05_transfer_learning", namespace={}, course=course)
    needing = [o for o in done.outcomes if o.name in ("test_preprocess_shape_and_dtype",)]
    assert needing and {o.status for o in needing} == {"environment"}, [(o.name, o.message) for o in needing]
