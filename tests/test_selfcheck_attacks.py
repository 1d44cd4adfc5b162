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
