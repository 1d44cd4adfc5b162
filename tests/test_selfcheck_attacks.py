"""Self-check fidelity under what an honest notebook may do (no kernels)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from autograder import figure_records, selfcheck


def test_a_notebook_that_changed_directory_is_checked_in_its_first_folder(tmp_path: Path, monkeypatch) -> None:
    first, later = tmp_path / "notebook", tmp_path / "notebook" / "outputs"
    later.mkdir(parents=True)
    monkeypatch.setitem(figure_records._state, "cwd", str(first))  # the recorder's, kept from its install
    monkeypatch.chdir(later)  # os.chdir("outputs") in a cell; grading reads files relative to the first folder
    assert selfcheck.notebook_folder() == first
    monkeypatch.setitem(figure_records._state, "cwd", "")
    assert selfcheck.notebook_folder() == Path(os.getcwd())


@pytest.mark.parametrize("recorded", [str(Path("/nonexistent") / "gone"), None])
def test_a_missing_first_folder_falls_back_to_the_current_one(recorded, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setitem(figure_records._state, "cwd", recorded)
    monkeypatch.chdir(tmp_path)
    assert selfcheck.notebook_folder() == tmp_path


OPENING_CHECK = """
from PIL import Image


def test_opens(student):
    with Image.open(CHECKS_PICTURE):  # the picture a check compares against: grading opens it in its own process
        pass
    assert student.call("load", NOTEBOOKS_PICTURE) == [2, 2]
"""


def test_pictures_the_checks_open_are_not_the_notebook_s(tmp_path: Path, monkeypatch) -> None:
    """A figure check takes the pictures opened before a figure was drawn as its
    candidates: after one self-check, a figure drawn again must not count the
    checks' own pictures as the notebook's (grading never would)."""
    from PIL import Image

    from autograder.checks import CheckFile, run_checks

    checks, notebooks = tmp_path / "check.png", tmp_path / "mine.png"
    for path in (checks, notebooks):
        Image.new("RGB", (2, 2)).save(path)
    check = tmp_path / "test_opening.py"
    check.write_text(f"CHECKS_PICTURE = {str(checks)!r}\nNOTEBOOKS_PICTURE = {str(notebooks)!r}\n{OPENING_CHECK}")
    monkeypatch.setitem(figure_records._state, "opened", [])
    monkeypatch.setitem(figure_records._state, "seen", set())

    def load(path: str) -> list[int]:
        with Image.open(path) as image:
            return list(image.size)

    student = selfcheck._NotebookStudent({"load": load}, timeout_s=10)
    with selfcheck._recording(False):
        outcomes = run_checks([CheckFile(check, "public")], student)
    assert [o.status for o in outcomes] == ["passed"], outcomes
    assert figure_records._state["opened"] == [os.path.realpath(notebooks)]
    assert figure_records._state["paused"] is False
