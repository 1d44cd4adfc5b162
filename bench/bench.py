"""Grading speed: this project vs bare nbclient vs `otter run`, on the same notebooks.

Run by hand (it takes minutes and wants an idle machine):

    .venv/bin/python bench/bench.py [--notebooks 8] [--runs 5] [--otter PATH] [--docker autograder:latest]

Prints two tables for a one-question torch notebook. One notebook: each
command as a whole process, medians of paired runs (each command once per
round), with the ratios to `otter run` and to bare nbclient: `grade` as root
(warm, and cold with AUTOGRADER_WARM=0), `check` as a user other than root,
the notebook's code as a plain script (the floor: importing torch). A batch:
per-submission wall and CPU seconds and throughput, and the steady state. CPU
counts every process involved (grader, workers, fork servers, kernels).
`otter run` is measured only where otter-grader is installed (`--otter`).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nbformat

BIN = Path(sys.executable).parent
CHECK = """
import pytest

@pytest.mark.question("q1")
@pytest.mark.points(1)
def test_total(student):
    assert float(student.fetch("total")) == 6.0, "`total` should be 6"
"""


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def timed(command: list[str], **kwargs: object) -> tuple[float, float]:
    wall, cpu = time.monotonic(), children_cpu()
    subprocess.run(command, check=True, capture_output=True, **kwargs)  # type: ignore[call-overload]
    return time.monotonic() - wall, children_cpu() - cpu


def make_course(root: Path, count: int, name: str = "submissions") -> Path:
    if not (root / "assignments").exists():
        (root / "assignments" / "one" / "public_checks").mkdir(parents=True)
        (root / "solutions" / "one" / "hidden_checks").mkdir(parents=True)
        (root / "solutions" / "one" / "hidden_checks" / "test_one.py").write_text(CHECK)
        (root / "assignments" / "onepublic" / "public_checks").mkdir(parents=True)  # what a student's check runs
        (root / "assignments" / "onepublic" / "public_checks" / "test_one.py").write_text(CHECK)
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [nbformat.v4.new_code_cell("import torch\ntotal = torch.tensor([1.0, 2.0, 3.0]).sum()")]
    nbformat.write(notebook, root / "assignments" / "one" / "one.ipynb")
    nbformat.write(notebook, root / "assignments" / "onepublic" / "onepublic.ipynb")
    submissions = root / name
    submissions.mkdir()
    for index in range(count):
        nbformat.write(notebook, submissions / f"student{index:02d}.ipynb")
    return submissions


def bench_project(course: Path, submissions: Path, workers: int, image: str | None = None) -> tuple[float, float]:
    out = course / f"out-{submissions.name}-{workers}-{'docker' if image else 'local'}"
    command = [
        str(BIN / "autograder"),
        "--course",
        str(course),
        "grade",
        str(submissions),
        "-a",
        "one",
        "--out",
        str(out),
        "-j",
        str(workers),
        "--force",
        *(["--docker", image] if image else []),
    ]
    wall, cpu = timed(command)
    results = [json.loads(p.read_text()) for p in (out / "results").glob("*.json")]
    assert all(r["score"] == r["max_score"] == 1 for r in results), "the benchmark notebook should score full marks"
    return wall, cpu


def bench_nbclient(submissions: Path) -> tuple[float, float]:
    script = "import sys, nbformat, nbclient\nfor p in sys.argv[1:]:\n    nbclient.execute(nbformat.read(p, 4))\n"
    return timed([sys.executable, "-c", script, *map(str, sorted(submissions.glob("*.ipynb")))])


def otter_assignment(otter: str, scratch: Path) -> tuple[Path, Path]:
    """`otter assign` a one-question master notebook once: its autograder zip and the solved notebook."""
    folder = scratch / "otter"
    if not folder.exists():
        folder.mkdir()
        master = nbformat.v4.new_notebook()
        master.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
        raw = nbformat.v4.new_raw_cell
        master.cells = [
            raw("# ASSIGNMENT CONFIG\nexport_cell: false\ninit_cell: false\ncheck_all_cell: false\nrun_tests: false"),
            raw("# BEGIN QUESTION\nname: q1\npoints: 1"),
            nbformat.v4.new_code_cell("import torch\ntotal = torch.tensor([1.0, 2.0, 3.0]).sum() # SOLUTION"),
            raw("# BEGIN TESTS"),
            nbformat.v4.new_code_cell("assert float(total) == 6.0"),
            raw("# END TESTS"),
            raw("# END QUESTION"),
        ]
        nbformat.write(master, folder / "master.ipynb")
        subprocess.run([otter, "assign", "master.ipynb", "dist"], cwd=folder, check=True, capture_output=True)
    (archive,) = (folder / "dist" / "autograder").glob("*.zip")
    return archive, folder / "dist" / "autograder" / "master.ipynb"


def bench_otter(otter: str | None, scratch: Path, count: int) -> tuple[float, float] | None:
    """`otter run` each of `count` copies of the solved notebook."""
    if otter is None:
        return None
    archive, solved_path = otter_assignment(otter, scratch)
    solved = nbformat.read(solved_path, 4)
    wall, cpu = 0.0, 0.0
    for index in range(count):
        path = scratch / "otter" / f"student{index:02d}.ipynb"
        nbformat.write(solved, path)
        w, c = timed([otter, "run", "-a", str(archive), str(path)], cwd=scratch / "otter")
        wall, cpu = wall + w, cpu + c
    return wall, cpu


def one_notebook_rows(course: Path, otter: str | None, runs: int) -> list[tuple[str, float, float]]:
    """(what, median wall, median CPU) of each one-notebook command, over `runs` paired rounds."""
    notebook = make_course(course, 1, "single") / "student00.ipynb"
    report = course / "single.json"
    grade = [
        str(BIN / "autograder"),
        "--course",
        str(course),
        "grade",
        str(notebook),
        "-a",
        "one",
        "--json",
        str(report),
    ]
    commands: dict[str, tuple[list[str], dict[str, str]]] = {
        "the code as a plain script (import torch)": ([sys.executable, "-c", notebook_code()], {}),
        "bare nbclient, one notebook": ([sys.executable, "-c", NBCLIENT, str(notebook)], {}),
        "autograder grade one.ipynb --json (warm)": (grade, {}),
        "autograder grade, cold (AUTOGRADER_WARM=0)": (grade, {"AUTOGRADER_WARM": "0"}),
    }
    student = other_user(course)
    if student:
        check = [*student, str(BIN / "autograder"), "--course", str(course), "check", str(notebook), "-a", "onepublic"]
        commands["autograder check, another user (warm)"] = (check, {})
        commands["autograder check, another user, cold"] = ([*student, "AUTOGRADER_WARM=0", *check[len(student) :]], {})
    if otter:
        archive, solved = otter_assignment(otter, course)
        commands["otter run, one notebook"] = ([otter, "run", "-a", str(archive), str(solved)], {})
    times: dict[str, list[tuple[float, float]]] = {name: [] for name in commands}
    for _ in range(runs):
        for name, (command, env) in commands.items():
            times[name].append(timed(command, env={**os.environ, **env}, cwd=course))
    return [
        (name, statistics.median(w for w, _ in got), statistics.median(c for _, c in got))
        for name, got in times.items()
    ]


NBCLIENT = "import sys, nbformat, nbclient\nnbclient.execute(nbformat.read(sys.argv[1], 4))\n"


def notebook_code() -> str:
    return "import torch\ntotal = torch.tensor([1.0, 2.0, 3.0]).sum()"


def other_user(course: Path) -> list[str]:
    """The command prefix that runs as a user other than root (none if not root: this user is one)."""
    if os.geteuid() != 0:
        return ["env"]
    if shutil.which("setpriv") is None:
        return []
    uid = 61_999  # no account: a student with nothing but the readable checkout
    for path in [course, *course.rglob("*")]:
        os.chown(path, uid, uid)
    home = f"HOME={course}"
    return ["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups", "--", "env", home]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--notebooks", type=int, default=8)
    parser.add_argument("--runs", type=int, default=5, help="paired rounds of the one-notebook commands")
    parser.add_argument("--otter", default=shutil.which("otter"), help="the otter command (default: from PATH)")
    parser.add_argument("--docker", metavar="IMAGE", help="also grade in containers of this image (wall only)")
    arguments = parser.parse_args()
    count = arguments.notebooks
    rows: list[tuple[str, float, float, str]] = []
    with tempfile.TemporaryDirectory() as scratch:
        Path(scratch).chmod(0o755)  # the other user's check reads the course
        course = Path(scratch)
        single = one_notebook_rows(course, arguments.otter, arguments.runs)
        submissions = make_course(course, count)
        # A batch three times as big: the extra 2N notebooks cost what one
        # submission costs once the batch is running (worker, fork server and
        # checker start-ups paid), the figure the target is about.
        bigger = make_course(course, 3 * count, "bigger")
        bench_project(course, make_course(course, 1, "warm-up"), 1)  # disk caches filled, not timed
        rows.append(("bare nbclient (no checks), serial", *bench_nbclient(submissions), ""))
        for workers in (1, 2):
            wall, cpu = bench_project(course, submissions, workers)
            wall3, cpu3 = bench_project(course, bigger, workers)
            steady = f"{(wall3 - wall) / (2 * count):.2f} / {(cpu3 - cpu) / (2 * count):.2f}"
            rows.append((f"autograder -j {workers}", wall, cpu, steady))
        if arguments.docker:  # the containers' CPU is dockerd's child, not ours: not counted
            for workers in (1, 2):
                wall, _ = bench_project(course, submissions, workers, arguments.docker)
                rows.append((f"autograder --docker -j {workers} (CPU not seen)", wall, 0.0, ""))
        otter = bench_otter(arguments.otter, course, count)
        if otter:
            rows.append(("otter run, serial", *otter, ""))
        else:
            rows.append(("otter run (otter-grader not installed)", 0.0, 0.0, ""))
    floor = {name: wall for name, wall, _ in single}
    otter_wall = floor.get("otter run, one notebook")
    nbclient_wall = floor["bare nbclient, one notebook"]
    print(f"One notebook, whole process, medians of {arguments.runs} paired runs\n")
    print(f"| {'command':<44} | wall s | CPU s | wall / otter | wall / nbclient |")
    print(f"| {'-' * 44} | ---: | ---: | ---: | ---: |")
    for name, wall, cpu in single:
        versus = f"{wall / otter_wall:.2f}" if otter_wall else "(no otter)"
        print(f"| {name:<44} | {wall:.2f} | {cpu:.2f} | {versus} | {wall / nbclient_wall:.2f} |")
    print()
    print(f"{count} one-question torch notebooks (steady state: from a batch of {3 * count})\n")
    print(f"| {'runner':<40} | wall s / nb | CPU s / nb | notebooks / min | steady wall / CPU s per nb |")
    print(f"| {'-' * 40} | ---: | ---: | ---: | ---: |")
    for name, wall, cpu, steady in rows:
        rate = 60 * count / wall if wall else 0.0
        print(f"| {name:<40} | {wall / count:.2f} | {cpu / count:.2f} | {rate:.1f} | {steady} |")


if __name__ == "__main__":
    main()
