"""Intake accepts every nbformat 4 notebook and refuses everything else clearly."""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest

from autograder.errors import NotANotebookError
from autograder.intake import read_submission


def _notebook(minor: int, *, ids: bool) -> dict[str, object]:
    cell: dict[str, object] = {
        "cell_type": "code",
        "metadata": {},
        "source": ["x = 1\n", "y = 2"],
        "outputs": [],
        "execution_count": None,
    }
    if ids:
        cell["id"] = "abc123"
    return {"nbformat": 4, "nbformat_minor": minor, "metadata": {}, "cells": [cell]}


@pytest.mark.parametrize("minor", [0, 1, 2, 3, 4, 5])
def test_every_nbformat_4_minor_is_accepted(tmp_path: Path, minor: int) -> None:
    path = tmp_path / "n.ipynb"
    path.write_text(json.dumps(_notebook(minor, ids=minor >= 5)))
    submission = read_submission(path)
    assert submission.notebook.cells[0].source == "x = 1\ny = 2"


def test_kaggle_one_line_json_with_outputs_and_papermill(tmp_path: Path) -> None:
    document = _notebook(4, ids=False)
    document["metadata"] = {"kaggle": {"accelerator": "nvidiaTeslaT4"}, "papermill": {"duration": 3.2}}
    document["cells"][0]["outputs"] = [{"output_type": "stream", "name": "stdout", "text": "forged\n"}]  # type: ignore[index]
    path = tmp_path / "kaggle.ipynb"
    path.write_text(json.dumps(document, separators=(",", ":")))
    submission = read_submission(path)
    assert submission.notebook.cells[0].outputs == [], "saved outputs are never trusted"
    assert submission.metadata["kaggle"]["accelerator"] == "nvidiaTeslaT4"
    nbformat.validate(submission.notebook)


def test_missing_kernelspec_is_fine(tmp_path: Path) -> None:
    path = tmp_path / "n.ipynb"
    path.write_text(json.dumps(_notebook(5, ids=True)))
    assert read_submission(path).notebook.metadata.kernelspec.name == "python3"


BAD_FILES = {
    "not-json.ipynb": ("this is { not json", "not valid JSON"),
    "empty.ipynb": ("", "empty"),
    "v3.ipynb": (json.dumps({"nbformat": 3, "nbformat_minor": 0, "worksheets": []}), "nbformat 3"),
    "script.py": ("import torch\nprint(torch.ones(2))\n", "Python script"),
    "list.ipynb": ("[1, 2, 3]", "not an object"),
    "no-version.ipynb": (json.dumps({"cells": []}), "without an `nbformat`"),
    "bad-cell.ipynb": (
        json.dumps({"nbformat": 4, "nbformat_minor": 4, "metadata": {}, "cells": [{"source": 3}]}),
        "malformed",
    ),
}


@pytest.mark.parametrize("name", sorted(BAD_FILES))
def test_bad_files_are_refused_with_a_reason(tmp_path: Path, name: str) -> None:
    content, says = BAD_FILES[name]
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(NotANotebookError, match=says):
        read_submission(path)


def test_a_directory_is_refused(tmp_path: Path) -> None:
    with pytest.raises(NotANotebookError, match="directory"):
        read_submission(tmp_path)


def test_binary_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "image.ipynb"
    path.write_bytes(b"\x89PNG\r\n\x1a\n\xff\xfe\x00")
    with pytest.raises(NotANotebookError, match="UTF-8"):
        read_submission(path)


def test_every_real_submission_is_read(real_submissions: Path) -> None:
    notebooks = sorted(real_submissions.rglob("*.ipynb"))
    assert len(notebooks) >= 10
    for path in notebooks:
        submission = read_submission(path)
        assert submission.notebook.cells, path
        assert all(not getattr(c, "outputs", []) for c in submission.notebook.cells), path
