"""Staging: what a student hands in is copied by the grader before anything
reads it; links are never followed, FIFOs never waited on, oversized files
never read whole, and every refused file is a row with its reason."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import threading
import time
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import pytest

from autograder import reference
from autograder.batch import grade_batch
from autograder.course import Course
from autograder.errors import NotANotebookError
from autograder.gradescope import _RUN, grade_gradescope_submission
from autograder.intake import read_submission
from autograder.isolation.container import ContainerSettings, grade_in_container
from autograder.staging import LINK, MAX_DEPTH, MAX_FILE_BYTES, read_inside, read_regular, stage
from autograder.submissions import Entry, collect
from tests.conftest import ROOT, TENSORS, write_notebook

SOLUTION = ROOT / "solutions" / TENSORS / f"{TENSORS}.ipynb"
SEVEN_GIB = 7 * 1024**3
T = TypeVar("T")


def within(seconds: float, work: Callable[[], T]) -> T:
    """`work()`, failing (not hanging) if it takes longer than `seconds`."""
    outcome: list[T] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            outcome.append(work())
        except BaseException as error:  # handed to the test's thread
            errors.append(error)

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(seconds)
    if worker.is_alive():
        pytest.fail(f"still running after {seconds} s: it waited on something")
    if errors:
        raise errors[0]
    return outcome[0]


def refusals(entries: list[Entry]) -> dict[str, str]:
    return {f"{e.student}:{e.within}": e.refusal for e in entries if e.refusal}


@pytest.fixture
def fifo(tmp_path: Path) -> Path:
    """A FIFO named like a notebook, which nobody ever writes to."""
    path = tmp_path / "class" / "carol.ipynb"
    path.parent.mkdir(exist_ok=True)
    os.mkfifo(path)
    return path


def test_a_symlinked_notebook_in_a_students_folder_is_refused_not_graded(tmp_path: Path) -> None:
    class_folder = tmp_path / "class"
    (class_folder / "alice").mkdir(parents=True)
    (class_folder / "alice" / f"{TENSORS}.ipynb").symlink_to(SOLUTION)
    (class_folder / "dave.ipynb").symlink_to(SOLUTION)  # a loose top-level file
    write_notebook(class_folder / "erin.ipynb", "x = 1")
    entries = collect([class_folder], unpack_to=tmp_path / "inputs")
    assert refusals(entries) == {f"alice:{TENSORS}.ipynb": LINK, "dave:dave.ipynb": LINK}
    graded = [e for e in entries if not e.refusal]
    assert [e.student for e in graded] == ["erin"]
    assert graded[0].path.is_relative_to(tmp_path / "inputs"), "the grader's copy is graded, not the original"
    assert not graded[0].path.is_symlink() and stat.S_IMODE(graded[0].path.stat().st_mode) == 0o600
    assert all(not e.path.resolve().is_relative_to(ROOT / "solutions") for e in graded)


def test_a_symlinked_student_folder_is_refused_and_never_walked(tmp_path: Path) -> None:
    class_folder = tmp_path / "class"
    class_folder.mkdir()
    (class_folder / "bob").symlink_to(SOLUTION.parent, target_is_directory=True)
    (class_folder / "root").symlink_to("/", target_is_directory=True)  # walking it would take minutes
    write_notebook(class_folder / "erin.ipynb", "x = 1")
    entries = within(20, lambda: collect([class_folder], unpack_to=tmp_path / "inputs"))
    assert refusals(entries) == {"bob:bob": LINK, "root:root": LINK}
    assert [e.student for e in entries if not e.refusal] == ["erin"]


def test_the_refused_rows_are_rejected_results_with_their_reason(tmp_path: Path) -> None:
    class_folder = tmp_path / "class"
    class_folder.mkdir()
    (class_folder / "dave.ipynb").symlink_to(SOLUTION)
    entries = collect([class_folder], unpack_to=tmp_path / "out" / "inputs")
    items = grade_batch(entries, course=Course(ROOT), out=tmp_path / "out", assignment_name=TENSORS)
    (item,) = items
    assert (item.result.status, item.result.reason, item.result.score) == ("rejected", LINK, 0)
    assert item.result.submission == str(class_folder / "dave.ipynb")


def test_a_fifo_named_ipynb_does_not_hang_the_batch(tmp_path: Path, fifo: Path) -> None:
    write_notebook(fifo.parent / "erin.ipynb", "x = 1")
    entries = within(20, lambda: collect([fifo.parent], unpack_to=tmp_path / "inputs"))
    assert refusals(entries) == {"carol:carol.ipynb": "not a regular file (FIFO)"}
    with pytest.raises(NotANotebookError, match=r"not a regular file \(FIFO\)"):
        within(20, lambda: read_submission(fifo))  # a FIFO handed in as a single file
    assert stage(fifo, into=tmp_path / "single").refused[0].reason == "not a regular file (FIFO)"


def test_a_sparse_7_gib_notebook_is_refused_without_being_read(tmp_path: Path) -> None:
    class_folder = tmp_path / "class"
    class_folder.mkdir()
    with (class_folder / "frank.ipynb").open("wb") as handle:
        handle.truncate(SEVEN_GIB)  # sparse: no disk used, 7 GiB if read
    started = time.monotonic()
    entries = collect([class_folder], unpack_to=tmp_path / "inputs")
    assert refusals(entries) == {"frank:frank.ipynb": "larger than 64 MiB"}
    with pytest.raises(NotANotebookError, match="larger than 64 MiB"):
        read_submission(class_folder / "frank.ipynb")
    assert time.monotonic() - started < 5


def test_no_more_than_the_cap_is_read_whatever_the_size_says(tmp_path: Path) -> None:
    """A file that grows after its `fstat` (or a /proc-like file that says 0
    bytes) is still read only to the cap plus one byte."""
    path = tmp_path / "grows.ipynb"
    path.write_bytes(b"x" * 100)
    with pytest.raises(NotANotebookError, match="larger than"):
        read_regular(path, limit=99)
    assert read_regular(path, limit=100) == b"x" * 100


def test_zip_members_refused_each_leave_a_row(tmp_path: Path) -> None:
    archive = tmp_path / "submissions.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as bundle:
        bundle.writestr("alice/alice.ipynb", SOLUTION.read_text())
        link = zipfile.ZipInfo("bob/bob.ipynb")
        link.create_system = 3
        link.external_attr = (stat.S_IFLNK | 0o777) << 16
        bundle.writestr(link, str(SOLUTION))
        pipe = zipfile.ZipInfo("carol/carol.ipynb")
        pipe.create_system = 3
        pipe.external_attr = (stat.S_IFIFO | 0o644) << 16
        bundle.writestr(pipe, "")
        bundle.writestr("../escaped.ipynb", "{}")
        bundle.writestr("dave/dave.ipynb", b" " * (MAX_FILE_BYTES + 1))  # deflates to almost nothing
        bundle.writestr("erin/notes.txt", "not a submission")
    entries = collect([archive], unpack_to=tmp_path / "inputs")
    assert refusals(entries) == {
        "bob:bob.ipynb": LINK,
        "carol:carol.ipynb": "not a regular file (FIFO)",
        "dave:dave.ipynb": "larger than 64 MiB",
        "escaped:escaped.ipynb": "a path outside the archive ('../escaped.ipynb'): not unpacked",
    }
    (alice,) = [e for e in entries if not e.refusal]
    assert alice.student == "alice" and read_submission(alice.path).notebook.cells
    assert not list((tmp_path / "inputs").rglob("notes.txt")), "only notebooks are taken in"


def test_staging_again_starts_afresh_and_keeps_times(tmp_path: Path) -> None:
    class_folder = tmp_path / "class"
    class_folder.mkdir()
    old = write_notebook(class_folder / "erin.ipynb", "x = 1")
    os.utime(old, ns=(1_000_000_000_000, 1_000_000_000_000))
    first = stage(class_folder, into=tmp_path / "inputs")
    assert first.root is not None
    assert (first.root / "erin.ipynb").stat().st_mtime_ns == 1_000_000_000_000
    old.unlink()
    second = stage(class_folder, into=tmp_path / "inputs")
    assert second.root == first.root and not list(second.root.iterdir()), "nothing of the last run is left"


def test_the_staging_folder_must_be_the_graders_own(tmp_path: Path) -> None:
    write_notebook(tmp_path / "erin.ipynb", "x = 1")
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "inputs").symlink_to(tmp_path / "elsewhere", target_is_directory=True)
    with pytest.raises(Exception, match="not a folder of the grader's own"):
        stage(tmp_path / "erin.ipynb", into=tmp_path / "inputs")


def test_read_figure_does_not_wait_on_a_fifo(tmp_path: Path) -> None:
    (tmp_path / "outputs").mkdir()
    os.mkfifo(tmp_path / "outputs" / "figure.png")
    with pytest.raises(AssertionError, match=r"not a regular file \(FIFO\)"):
        within(20, lambda: reference.read_figure(tmp_path, "outputs/figure.png"))
    (tmp_path / "outputs" / "real.png").write_bytes(b"png")
    (tmp_path / "linked").symlink_to(tmp_path / "outputs", target_is_directory=True)
    with pytest.raises(NotANotebookError, match="symbolic link"):
        read_inside(tmp_path, "linked/real.png", limit=100)


def jpeg_of_endless_scans(side: int, scans: int) -> bytes:
    """A valid progressive JPEG whose last scan is repeated `scans` times: libjpeg
    accepts each (a warning, not an error) and walks every block in each, so
    decoding costs side^2 x scans (19 ms a scan at 6000 x 6000, 59 bytes each:
    hours of the grader's CPU in a 20 MiB figure)."""
    import io
    import struct

    from PIL import Image

    buffer = io.BytesIO()
    Image.new("L", (side, side), 128).save(buffer, "JPEG", progressive=True)
    data = buffer.getvalue()
    position, last_scan = 2, b""
    while data[position + 1] != 0xD9:  # segments up to the end of the image
        (length,) = struct.unpack(">H", data[position + 2 : position + 4])
        end = position + 2 + length
        if data[position + 1] == 0xDA:  # a scan: its entropy-coded data runs to the next real marker
            while not (data[end] == 0xFF and data[end + 1] not in (0x00, *range(0xD0, 0xD8))):
                end += 1
            last_scan = data[position:end]
        position = end
    return data[:position] + last_scan * scans + data[position:]


def test_read_figure_refuses_a_jpeg_of_endless_scans_and_formats_no_figure_is_saved_in(tmp_path: Path) -> None:
    """A figure is the student's file, decoded in the grader's process with no time
    limit: a scan bomb (valid, small, and slow to decode) is refused before it is
    decoded, as is any format beyond the few a figure is written in."""
    from PIL import Image

    (tmp_path / "outputs").mkdir()
    bomb = tmp_path / "outputs" / "figure.png"
    bomb.write_bytes(jpeg_of_endless_scans(6000, 500))  # about 10 s of decoding where it is not refused
    with pytest.raises(AssertionError, match="not an image that can be read"):
        within(5, lambda: reference.read_figure(tmp_path, "outputs/figure.png"))
    assert within(5, lambda: reference.open_picture(bomb)) is None
    Image.new("RGB", (40, 30), "red").save(tmp_path / "outputs" / "figure.tif", "TIFF")
    with pytest.raises(AssertionError, match="not an image that can be read"):
        reference.read_figure(tmp_path, "outputs/figure.tif")
    honest = Image.new("L", (300, 200), 90)
    honest.save(tmp_path / "outputs" / "honest.jpg", "JPEG", progressive=True)
    assert reference.read_figure(tmp_path, "outputs/honest.jpg").width == 300, "a progressive JPEG of its own is read"


def test_a_path_handed_in_that_is_a_link_is_refused(tmp_path: Path) -> None:
    (tmp_path / "mine.ipynb").symlink_to(SOLUTION)
    entries = collect([tmp_path / "mine.ipynb"], unpack_to=tmp_path / "inputs")
    assert refusals(entries) == {"mine:mine.ipynb": LINK}
    with pytest.raises(NotANotebookError, match="symbolic link"):
        read_submission(tmp_path / "mine.ipynb")


def test_the_container_path_refuses_a_link_before_any_container(tmp_path: Path) -> None:
    (tmp_path / "mine.ipynb").symlink_to(SOLUTION)
    result = grade_in_container(tmp_path / "mine.ipynb", settings=ContainerSettings("no-such-image"))
    assert (result.status, result.reason) == ("rejected", LINK)


def test_the_gradescope_entry_refuses_a_symlink(tmp_path: Path) -> None:
    root = tmp_path / "autograder"
    (root / "submission").mkdir(parents=True)
    (root / "submission" / "mine.ipynb").symlink_to(SOLUTION)
    results = grade_gradescope_submission(root=root, assignment=TENSORS, course=Course(ROOT))
    payload = json.loads(results.read_text())
    assert payload["score"] == 0 and payload["tests"] == []
    assert f"mine.ipynb: {LINK}" in payload["output"]


def test_the_run_autograder_script_goes_through_staging(tmp_path: Path, fifo: Path) -> None:
    """The script itself, as Gradescope runs it: a FIFO and a link submitted,
    nothing hangs, both are named, nothing is graded from the solution."""
    root = tmp_path / "autograder"
    (root / "source").mkdir(parents=True)
    (root / "source" / "course").symlink_to(ROOT, target_is_directory=True)  # the grader's own course
    script = root / "source" / "run_autograder"
    script.write_text(_RUN.format(name=TENSORS))
    script.chmod(0o755)
    (root / "submission").mkdir()
    (root / "submission" / "a.ipynb").symlink_to(SOLUTION)
    shutil.move(fifo, root / "submission" / "b.ipynb")
    grader = Path(sys.executable).parent / "autograder"
    env = {**os.environ, "AUTOGRADER_ROOT": str(root), "AUTOGRADER_BIN": str(grader)}
    done = subprocess.run([str(script)], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    payload = json.loads((root / "results" / "results.json").read_text())
    assert payload["score"] == 0
    assert f"a.ipynb: {LINK}" in payload["output"] and "b.ipynb: not a regular file (FIFO)" in payload["output"]


@pytest.mark.slow
def test_a_figure_the_notebook_made_a_fifo_fails_its_check_and_blocks_nothing(tmp_path: Path) -> None:
    """The reference of an assignment whose checks read a figure, with a last
    cell that puts a FIFO where the figure was: the figure's checks fail,
    saying why, every other check passes as it did, and the grader finishes."""
    warmup = "warmup_04"
    figure = "outputs/warmup_inference_viz.png"
    document = json.loads((ROOT / "solutions" / warmup / f"{warmup}.ipynb").read_text())
    fifo_cell = f"import os\nos.makedirs('outputs', exist_ok=True)\nos.remove({figure!r})\nos.mkfifo({figure!r})\n"
    document["cells"].append({"cell_type": "code", "metadata": {}, "outputs": [], "source": fifo_cell})
    notebook = tmp_path / f"{warmup}.ipynb"
    notebook.write_text(json.dumps(document))
    out = tmp_path / "result.json"
    command = [sys.executable, "-m", "autograder", "grade", "-a", warmup, "--json", str(out), str(notebook)]
    subprocess.run(command, capture_output=True, text=True, timeout=600, check=False)
    result = json.loads(out.read_text())
    assert result["status"] == "graded", result["reason"]
    failed = {c["name"]: c["message"] for c in result["checks"] if c["status"] != "passed"}
    assert failed and all("not a regular file (FIFO)" in message for message in failed.values()), failed
    assert "test_figure_shows_a_picture_beside_five_bars" in failed


def test_a_folder_nested_past_the_depth_limit_is_a_row_not_a_crash(tmp_path: Path) -> None:
    deep = tmp_path / "class" / "gina"
    for level in range(MAX_DEPTH + 3):
        deep = deep / f"d{level}"
    deep.mkdir(parents=True)
    write_notebook(deep / "gina.ipynb", "x = 1")
    entries = collect([tmp_path / "class"], unpack_to=tmp_path / "inputs")
    (refused,) = entries
    assert refused.student == "gina" and "folders deep" in refused.refusal
