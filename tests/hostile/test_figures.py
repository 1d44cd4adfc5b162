"""Hostile figure records against the real warmup_04, in the real sandbox.

The kernel's figure records (autograder/figure_records.py) are the student's
data: the notebook can rewrite them before a check asks. One notebook, the
reference with one cell appended, tampers with them every way that is
independent of the others: the honest figure's record claims files it never
opened (through links in the working folder, `..`, a FIFO, names no file can
have, a FIFO on the grader's host), and forged records beside it carry names
no file can have, links, FIFOs, numbers too large for a float and arrays of
every dtype the wire carries. The grader must finish in time with the honest
score (the honest record still counts), blame no check, read no file outside
the public assets, and change nothing outside the sandbox.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from autograder import reference
from autograder.assets import default_store
from autograder.course import Course
from autograder.grading import grade_notebook
from autograder.results import SubmissionResult
from tests.conftest import ROOT

pytestmark = [
    pytest.mark.sandbox,
    pytest.mark.slow,
]

WARMUP = "warmup_04"
FIGURE = "outputs/warmup_inference_viz.png"
SENTINEL = f"FIGURE-SENTINEL-{secrets.token_hex(8)}"
WITHIN_S = 180  # the reference alone grades in about 20 s on two cores
CANARY_CHECK = """
import pytest

@pytest.mark.question("canary")
@pytest.mark.points(0)
def test_canary(student):
    assert False, "canary=" + repr(student.fetch("canary"))[:3000]
"""

TAMPER = """
import os, sys
import numpy as np
state = sys.modules["_autograder_figures"]._state
here = os.getcwd()
os.symlink("/", "root-link")
os.symlink(HIDDEN_ASSETS, "hidden-link")
os.mkfifo("pipe.jpg")
claimed = [
    "/assets/../" + HIDDEN_ASSETS.lstrip("/") + "/x.jpg",
    here + "/root-link/etc/passwd",
    here + "/hidden-link/intel-image-classification/x.jpg",
    here + "/pipe.jpg",
    HOST_FIFO,
    "/assets/a\\x00b.jpg",
    "/assets/\\ud800.jpg",
    "/assets/" + "x/" * 3000 + "x.jpg",
    "/assets",
    "/assets/intel-image-classification",
]
honest = [r for r in state["records"] if r.get("file") == FIGURE]
state["opened"][:0] = claimed  # the honest record now claims to have opened these first
for record in state["records"]:
    record["opened"] = record.get("opened", 0) + len(claimed)
arrays = [
    np.zeros((8, 8, 3)),
    np.zeros((8, 8, 3), dtype=np.complex64),
    np.ones((8, 8, 3), dtype=bool),
    np.zeros((0, 0, 3), dtype=np.uint8),
    np.zeros((1, 1, 1, 3), dtype=np.uint8),
    np.zeros((65, 65, 3), dtype=np.uint8),
    np.zeros(3, dtype=np.int64),
]
huge = 10**400
axes = {
    "grid": [huge] * 6,
    "bounds": [float("nan"), float("inf"), huge, -huge],
    "titles": [huge, None, "\\x00" * 500],
    "texts": [[huge], "x", []],
    "images": [{"pixels": a, "shape": [huge, -1]} for a in arrays],
    "bars": [{"length": huge, "position": 0}, {"length": float("nan"), "position": 1}, {"length": 1}],
    "boxes": [{"med": huge, "q1": 0, "q3": 0, "whislo": 0, "whishi": 0, "position": 0, "fliers": arrays[0]}],
    "lines": [{"x": a, "y": a} for a in arrays],
    "scatters": [{"offsets": a, "colors": a, "values": a} for a in arrays],
}
state["records"] += [
    {"file": "a\\x00.png", "sha256": "0" * 64, "axes": [axes]},
    {"file": "outputs/\\ud800.png", "sha256": "0" * 64, "axes": [axes]},
    {"file": "pipe.jpg", "sha256": "0" * 64, "axes": [axes]},
    {"file": "root-link/etc/passwd", "sha256": "0" * 64, "axes": [axes]},
    {"file": "hidden-link/x.jpg", "sha256": "0" * 64, "axes": [axes]},
    {"file": None, "size": [huge, huge], "sequence": huge, "opened": huge, "axes": [axes] * 30},
]
canary = f"tampered: {len(honest)} honest record, {len(claimed)} claimed files, {len(state['records'])} records"
"""


@dataclass(frozen=True)
class Tampered:
    result: SubmissionResult
    read: list[Path]  # every file the grader opened by path (reference.read_regular)
    public: Path
    before: str
    after: str
    elapsed: float


def tree_digest(*folders: Path) -> str:
    digest = hashlib.sha256()
    for folder in folders:
        for path in sorted(folder.rglob("*")):
            digest.update(str(path).encode())
            if path.is_file() and not path.is_symlink():
                digest.update(path.read_bytes())
    return digest.hexdigest()


@pytest.fixture(scope="module")
def tampered(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Tampered]:
    root = tmp_path_factory.mktemp("figures-arena")
    course = root / "course"
    shutil.copytree(ROOT / "assignments" / WARMUP, course / "assignments" / WARMUP)
    shutil.copytree(ROOT / "solutions" / WARMUP, course / "solutions" / WARMUP)
    for part in ("assignments/datasets", "solutions/datasets"):  # the course's data sets, the checks' `data`
        shutil.copytree(ROOT / part, course / part)
    shutil.copyfile(ROOT / "assignments" / "assets.toml", course / "assignments" / "assets.toml")
    hidden = course / "solutions" / WARMUP / "hidden_checks"
    (hidden / "test_hidden.py").write_text((hidden / "test_hidden.py").read_text() + f"\n# {SENTINEL}\n")
    (hidden / "test_zz_canary.py").write_text(CANARY_CHECK)
    host_fifo = root / "host-fifo.jpg"  # the grader's side: opening it for reading would wait forever
    os.mkfifo(host_fifo)
    document = json.loads((course / "solutions" / WARMUP / f"{WARMUP}.ipynb").read_text())
    code = (
        TAMPER.replace("HIDDEN_ASSETS", repr(str(default_store().hidden)))
        .replace("HOST_FIFO", repr(str(host_fifo)))
        .replace("FIGURE", repr(FIGURE))
    )
    document["cells"].append(
        {"cell_type": "code", "metadata": {}, "source": code, "outputs": [], "execution_count": None}
    )
    submissions = root / "submissions"
    submissions.mkdir()
    notebook = submissions / f"{WARMUP}.ipynb"
    notebook.write_text(json.dumps(document))
    read: list[Path] = []
    original = reference.read_regular

    def noting(name: Any, **options: Any) -> bytes:
        read.append(Path(name))
        return original(name, **options)

    before = tree_digest(course, submissions)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(reference, "read_regular", noting)
        started = time.monotonic()
        result = grade_notebook(notebook, course=Course(course), assignment_name=WARMUP)
        elapsed = time.monotonic() - started
    yield Tampered(result, read, default_store().public, before, tree_digest(course, submissions), elapsed)


def test_tampered_records_leave_the_honest_score_and_blame_no_check(tampered: Tampered) -> None:
    result = tampered.result
    assert result.status == "graded", result.reason
    canary = next(c for c in result.checks if c.question == "canary")
    assert "tampered: 1 honest record, 10 claimed files" in canary.message, canary.message
    assert [(c.name, c.message) for c in result.checks if c.status == "error"] == []
    failing = [(c.name, c.message) for c in result.checks if c.status != "passed" and c.question != "canary"]
    assert result.score == result.max_score > 0, failing
    assert tampered.elapsed <= WITHIN_S, f"{tampered.elapsed:.0f} s"


def test_the_grader_reads_no_file_outside_the_public_assets(tampered: Tampered) -> None:
    assert tampered.read, "the hidden check compared the picture with the files the notebook opened"
    outside = [p for p in tampered.read if tampered.public not in p.parents]
    assert outside == []


def test_nothing_of_the_tampering_reaches_the_result_or_outside_the_sandbox(tampered: Tampered) -> None:
    assert SENTINEL not in tampered.result.to_json()
    assert tampered.before == tampered.after
