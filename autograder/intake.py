"""Notebook intake: read a submitted file, refuse what is not a notebook, and
make the clean copy that is executed (saved outputs are never trusted).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nbformat
from nbformat import NotebookNode

from autograder.errors import NotANotebookError
from autograder.staging import MAX_FILE_BYTES, read_regular

MAX_NOTEBOOK_BYTES = MAX_FILE_BYTES
MAX_CELLS = 5_000
MAX_CELL_SOURCE = 1_000_000  # characters; real cells are a few thousand
_SUPPORTED_MAJOR = 4


@dataclass(frozen=True)
class Submission:
    """A notebook accepted for grading."""

    path: Path
    notebook: NotebookNode  # clean copy: sources only, no outputs, nothing to trust
    metadata: dict[str, Any]  # the original top-level metadata, for recognising the assignment
    sha256: str


def read_submission(path: Path) -> Submission:
    """Read `path` as a notebook or raise `NotANotebookError` saying why not.
    `path` is opened as given except its last part, which is never followed:
    batches hand in staged copies (staging.py), single files their own path."""
    raw = _read_bytes(path)
    text = _decode(path, raw)
    document = _parse_json(path, text)
    major, minor = document.get("nbformat"), document.get("nbformat_minor", 0)
    if not isinstance(major, int):
        raise NotANotebookError(path, "JSON without an `nbformat` version, not a Jupyter notebook")
    if major != _SUPPORTED_MAJOR:
        raise NotANotebookError(
            path,
            f"nbformat {major} is not supported (only nbformat 4); open it in Jupyter and save it again",
        )
    cells = document.get("cells")
    if not isinstance(cells, list):
        raise NotANotebookError(path, f"nbformat {major}.{minor} document without a cell list")
    if len(cells) > MAX_CELLS:
        raise NotANotebookError(path, f"{len(cells)} cells, more than the {MAX_CELLS} allowed")
    metadata = document.get("metadata")
    return Submission(
        path=path,
        notebook=clean_copy(path, cells),
        metadata=metadata if isinstance(metadata, dict) else {},
        sha256=hashlib.sha256(raw).hexdigest(),
    )


def clean_copy(path: Path, cells: list[Any]) -> NotebookNode:
    """A fresh nbformat 4.5 notebook holding only the cells' sources."""
    notebook: NotebookNode = nbformat.v4.new_notebook()  # type: ignore[no-untyped-call]
    makers = {
        "code": nbformat.v4.new_code_cell,
        "markdown": nbformat.v4.new_markdown_cell,
        "raw": nbformat.v4.new_raw_cell,
    }
    for index, cell in enumerate(cells):
        kind = cell.get("cell_type") if isinstance(cell, dict) else None
        source = cell.get("source", "") if isinstance(cell, dict) else None
        if isinstance(source, list) and all(isinstance(line, str) for line in source):
            source = "".join(source)
        if kind not in makers or not isinstance(source, str):
            raise NotANotebookError(path, f"cell {index} is malformed")
        if len(source) > MAX_CELL_SOURCE:
            raise NotANotebookError(path, f"cell {index} holds {len(source)} characters, more than {MAX_CELL_SOURCE}")
        notebook.cells.append(makers[kind](source))  # type: ignore[no-untyped-call]
    notebook.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    nbformat.validate(notebook)
    return notebook


def _read_bytes(path: Path) -> bytes:
    """The file's bytes under staging's rule: the file itself never a link, a
    FIFO or a device, and never more read than the cap plus one byte."""
    try:
        raw = read_regular(path, limit=MAX_NOTEBOOK_BYTES)
    except NotANotebookError as error:
        raise NotANotebookError(path, error.reason) from None
    if not raw:
        raise NotANotebookError(path, "the file is empty")
    return raw


def _decode(path: Path, raw: bytes) -> str:
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise NotANotebookError(path, "not UTF-8 text (a binary file?)") from None


def _parse_json(path: Path, text: str) -> dict[str, Any]:
    try:
        document = json.loads(text)
    except RecursionError:
        raise NotANotebookError(path, "JSON nested too deeply") from None
    except json.JSONDecodeError as error:
        hint = " (a Python script? submit the .ipynb file)" if path.suffix == ".py" else ""
        raise NotANotebookError(path, f"not valid JSON{hint}: {error.msg}, line {error.lineno}") from None
    if not isinstance(document, dict):
        raise NotANotebookError(path, "JSON that is not an object, not a Jupyter notebook")
    return document
