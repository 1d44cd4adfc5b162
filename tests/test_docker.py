"""Grading in real containers of the real image (`grade --docker`).

The session fixture builds the image with scripts/docker-image.sh (or finds
it, when its sources have not changed): the real Dockerfile, on a Debian base
made locally, offline, with stand-in assets. As root on Linux (CI) a failure
to set up Docker fails these tests; they skip only where they cannot run at
all (not root, not Linux). Every notebook is graded once per session.

Only the tests that need the image are marked `docker` (conftest skips them
where they cannot run); those of the `docker run` command line and the
Dockerfile's lint run everywhere.

GPUs: there is no GPU here, so `--gpus` is checked only as the `docker run`
command line it builds (test_the_command_line_*).
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner

from autograder.cli import cli
from autograder.isolation.container import (
    GROUP_LABEL,
    OWNER_LABEL,
    ContainerSettings,
    docker_command,
    grade_in_container,
    remove_orphans,
)
from autograder.results import SubmissionResult
from tests.conftest import ROOT, TENSORS, write_notebook

SENTINEL = f"SENTINEL-{os.urandom(8).hex()}"
HIDDEN = f"solutions/{TENSORS}/hidden_checks/test_hidden.py"
# Each attack is a cell of its own after the reference's cells; the memory bomb comes last.
ATTACKS = {
    "hidden checks in the image": f"open('/opt/autograder/course/{HIDDEN}').read()",
    "hidden checks mounted by the instructor": f"open('/opt/autograder/instructor/course/{HIDDEN}').read()",
    "hidden assets": "import os\nos.listdir('/opt/autograder/assets/hidden')",
    "the network": "import socket\nsocket.create_connection(('192.0.2.1', 80), timeout=5)",
    "memory": "hog = []\nwhile True:\n    hog.append(bytearray(2**27))",
}


def docker(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["docker", *args], capture_output=True, text=True, check=False, timeout=120)


def autograder(*args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "autograder", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=900, check=False)


def start_time(pid: int) -> str:
    return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[19]


def containers(label: str) -> list[str]:
    return docker("ps", "--all", "--quiet", "--filter", f"label={label}").stdout.split()


@pytest.fixture(scope="session")
def image() -> str:
    if os.environ.get("AUTOGRADER_TEST_IMAGE"):  # an image built beforehand, as it is
        return os.environ["AUTOGRADER_TEST_IMAGE"]
    done = subprocess.run(["bash", str(ROOT / "scripts" / "docker-image.sh")], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.fail(f"scripts/docker-image.sh failed:\n{done.stderr[-3000:]}")
    return done.stdout.split()[-1]


@pytest.fixture(scope="session")
def reference(image: str, tmp_path_factory: pytest.TempPathFactory) -> SubmissionResult:
    """The tensors reference, graded by the CLI in a container, against the image's own course."""
    out = tmp_path_factory.mktemp("reference") / "result.json"
    solution = ROOT / "solutions" / TENSORS / f"{TENSORS}.ipynb"
    done = autograder("grade", "--docker", image, "--json", str(out), str(solution))
    assert done.returncode == 0, done.stderr[-3000:]
    assert "q1" in done.stdout  # the table, rendered on the host
    return SubmissionResult.from_json(out.read_text())


@dataclass(frozen=True)
class Batch:
    results: dict[str, SubmissionResult]
    first_attack: int  # the index of the hostile notebook's first attack cell


@pytest.fixture(scope="session")
def batch(image: str, tmp_path_factory: pytest.TempPathFactory) -> Batch:
    """A blank template and a hostile notebook, graded as a batch in two
    containers of 2 GiB, against a course folder mounted from the host whose
    hidden checks carry a sentinel."""
    root = tmp_path_factory.mktemp("docker-batch")
    course = root / "course"
    shutil.copytree(ROOT / "assignments" / TENSORS, course / "assignments" / TENSORS)
    shutil.copytree(ROOT / "solutions" / TENSORS, course / "solutions" / TENSORS)
    hidden = course / HIDDEN
    hidden.write_text(hidden.read_text() + f"\n# {SENTINEL}\n")
    submissions = root / "submissions"
    submissions.mkdir()
    shutil.copy(course / "assignments" / TENSORS / f"{TENSORS}.ipynb", submissions / "blank.ipynb")
    document = json.loads((course / "solutions" / TENSORS / f"{TENSORS}.ipynb").read_text())
    first_attack = len(document["cells"])
    for code in ATTACKS.values():
        document["cells"].append({"cell_type": "code", "metadata": {}, "source": code, "outputs": []})
    (submissions / "hostile.ipynb").write_text(json.dumps(document))
    out = root / "results"
    done = autograder(
        *("--course", str(course), "grade", "--docker", image, "--memory", "2g", "--cpus", "1"),
        *("-a", TENSORS, "--out", str(out), "-j", "2", str(submissions)),
    )
    assert done.returncode == 0, done.stderr[-3000:]
    results = [SubmissionResult.from_json(p.read_text()) for p in (out / "results").glob("*.json")]
    return Batch({Path(r.submission).stem: r for r in results}, first_attack)


def test_dockerfile_passes_hadolint() -> None:
    hadolint = Path(sys.executable).parent / "hadolint"
    done = subprocess.run([str(hadolint), str(ROOT / "Dockerfile")], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_command_line_confines_the_container() -> None:
    settings = ContainerSettings("grader:1", memory="3g", cpus=1.5, pids=300)
    command = docker_command(settings, Path("/data/ann,1.ipynb"), name="autograder-x", assignment=TENSORS)
    image_at = command.index("grader:1")
    options, inside = command[:image_at], command[image_at + 1 :]
    pairs = set(itertools.pairwise(options))
    assert {("--network", "none"), ("--memory", "3g"), ("--memory-swap", "3g"), ("--pids-limit", "300")} <= pairs
    assert {("--cpus", "1.5"), ("--cap-drop", "ALL"), ("--security-opt", "no-new-privileges")} <= pairs
    assert "--read-only" in options and "--init" in options and "--gpus" not in options
    assert "--sig-proxy=false" in options
    assert {c for o, c in pairs if o == "--cap-add"} == {"CHOWN", "SETUID", "SETGID", "KILL", "DAC_OVERRIDE", "FOWNER"}
    mounts = [value for option, value in pairs if option == "--mount"]
    assert mounts == ['type=bind,"source=/data/ann,1.ipynb",target=/submission/ann_1.ipynb,readonly']
    assert not {"-v", "--volume", "--privileged"} & set(options)
    assert all(",mode=" in value for option, value in pairs if option == "--tmpfs")
    assert any(o == "--label" and v.startswith(f"{OWNER_LABEL}=") for o, v in pairs)
    assert inside == ["grade", "--json", "-", "/submission/ann_1.ipynb", "--assignment", TENSORS]


def test_the_command_line_passes_gpus_through_and_mounts_a_course_out_of_reach(tmp_path: Path) -> None:
    """Only the command line can be checked here: there is no GPU (nor NVIDIA runtime) on CI."""
    settings = ContainerSettings("grader:1", gpus="all", course=tmp_path)
    command = docker_command(settings, tmp_path / "a.ipynb", name="autograder-x")
    image_at = command.index("grader:1")
    assert command[command.index("--gpus") + 1] == "all" and command.index("--gpus") < image_at
    assert f"type=bind,source={tmp_path},target=/opt/autograder/instructor/course,readonly" in command
    assert command[image_at + 1 : image_at + 4] == ["--course", "/opt/autograder/instructor/course", "grade"]


def test_container_options_need_docker(tmp_path: Path) -> None:
    done = CliRunner().invoke(cli, ["grade", "--gpus", "all", str(tmp_path / "a.ipynb")], standalone_mode=False)
    assert "go with --docker" in str(done.exception)


@pytest.mark.slow
@pytest.mark.docker
def test_the_image_builds_on_the_local_base(image: str) -> None:
    layers = json.loads(docker("image", "inspect", "--format", "{{json .RootFS.Layers}}", image).stdout)
    base_layers = docker("image", "inspect", "--format", "{{json .RootFS.Layers}}", "autograder-base:bookworm")
    base = json.loads(base_layers.stdout)
    assert layers[: len(base)] == base
    config = json.loads(docker("image", "inspect", "--format", "{{json .Config}}", image).stdout)
    assert "AUTOGRADER_IN_CONTAINER=1" in config["Env"]
    assert config["Entrypoint"][0] == "autograder" and config.get("User", "") in ("", "root", "0")
    modes = docker(
        *("run", "--rm", "--network", "none", "--entrypoint", "stat", image, "-c", "%a %U %n"),
        *("/opt/autograder/course/solutions", "/submission", "/opt/autograder/instructor", "/run/grader"),
        "/opt/autograder/assets/hidden",
    )
    assert [line.split()[:2] for line in modes.stdout.splitlines()] == [["700", "root"]] * 5, modes.stderr
    public = docker(
        *("run", "--rm", "--network", "none", "--user", "123456", "--entrypoint", "ls", image),
        *("-R", "/opt/autograder/assets/public"),
    )
    assert public.returncode == 0 and ".pth" in public.stdout, public.stderr  # student code reads the public part
    status = docker("run", "--rm", "--network", "none", image, "assets", "status")
    assert status.returncode == 0 and "missing" not in status.stdout, status.stdout  # the stand-ins, all there


@pytest.mark.slow
@pytest.mark.docker
def test_the_reference_scores_full_marks_in_a_container(reference: SubmissionResult) -> None:
    assert reference.status == "graded", reference.reason
    failing = [(c.name, c.message) for c in reference.checks if c.status != "passed"]
    assert reference.score == reference.max_score > 0, failing
    assert reference.execution is not None and reference.execution.sandbox.startswith("container, uid ")
    assert "no network" in reference.execution.sandbox
    assert reference.submission == str(ROOT / "solutions" / TENSORS / f"{TENSORS}.ipynb")


@pytest.mark.slow
@pytest.mark.docker
def test_a_blank_template_scores_zero_in_a_batch(batch: Batch) -> None:
    blank = batch.results["blank"]
    assert blank.status == "graded" and blank.score == 0 and blank.max_score > 0


@pytest.mark.slow
@pytest.mark.docker
def test_a_hostile_notebook_is_stopped_by_the_container_with_the_reason_recorded(batch: Batch) -> None:
    hostile = batch.results["hostile"]
    assert hostile.status == "graded", hostile.reason
    assert hostile.execution is not None and "2048 MiB" in hostile.execution.sandbox
    errors = {error.cell_index: error for error in hostile.execution.cell_errors}
    read_image, read_mounted, read_assets, network, memory = (
        errors.get(batch.first_attack + i) for i in range(len(ATTACKS))
    )
    assert read_image and read_mounted and read_assets and network and memory, hostile.execution.cell_errors
    for read in (read_image, read_mounted, read_assets):
        assert (read.kind, read.exception) == ("error", "PermissionError") and "Permission denied" in read.message
    assert network.exception == "OSError" and "Network is unreachable" in network.message
    assert (memory.kind, memory.exception) == ("kernel-died", "DeadKernelError")
    assert hostile.execution.status == "kernel-died"
    assert hostile.score == 0 and all("kernel died" in c.message for c in hostile.checks)
    assert SENTINEL not in hostile.to_json()


@pytest.mark.slow
@pytest.mark.docker
def test_a_container_past_its_time_is_removed(image: str, tmp_path: Path) -> None:
    notebook = write_notebook(tmp_path / "sleepy.ipynb", "import time\ntime.sleep(600)")
    settings = ContainerSettings(image, timeout_s=8)
    before = set(containers(f"{GROUP_LABEL}={os.getpgid(0)}"))
    result = grade_in_container(notebook, settings=settings, assignment_name=TENSORS)
    assert result.status == "error" and "ran past 8 s and was removed" in result.reason
    assert set(containers(f"{GROUP_LABEL}={os.getpgid(0)}")) <= before


@pytest.mark.slow
@pytest.mark.docker
def test_ctrl_c_removes_the_container(image: str, tmp_path: Path) -> None:
    notebook = write_notebook(tmp_path / "sleepy.ipynb", "import time\ntime.sleep(600)")
    command = [sys.executable, "-m", "autograder", "grade", "--docker", image, "-a", TENSORS, str(notebook)]
    grader = subprocess.Popen(
        command,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
        # a terminal's foreground job takes SIGINT, even where these tests run
        # as a background job, which ignores it (and its children inherit that)
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    with grader:
        try:
            deadline = time.monotonic() + 120
            while not containers(f"{GROUP_LABEL}={grader.pid}") and time.monotonic() < deadline:
                time.sleep(0.2)
            assert containers(f"{GROUP_LABEL}={grader.pid}"), "the container never started"
            os.killpg(grader.pid, signal.SIGINT)  # what Ctrl-C in a terminal sends
            _, stderr = grader.communicate(timeout=60)
        finally:
            if grader.poll() is None:
                os.killpg(grader.pid, signal.SIGKILL)
    assert grader.returncode == 130, stderr
    assert containers(f"{GROUP_LABEL}={grader.pid}") == []


@pytest.mark.slow
@pytest.mark.docker
def test_containers_of_a_grader_that_died_are_removed_on_the_next_run(image: str) -> None:
    finished = subprocess.Popen(["true"])
    finished.wait()
    dead_owner = f"{socket.gethostname()}/{finished.pid}/{start_time(os.getpid())}"
    live_owner = f"{socket.gethostname()}/{os.getpid()}/{start_time(os.getpid())}"
    made = [
        docker("create", "--label", f"{OWNER_LABEL}={owner}", "--entrypoint", "true", image).stdout.strip()
        for owner in (dead_owner, live_owner)
    ]
    try:
        removed = remove_orphans()
        remaining = docker("ps", "--all", "--quiet", "--no-trunc").stdout.split()
        assert made[0][:12] in removed and made[0] not in remaining
        assert made[1] in remaining  # a running grader's container stays
    finally:
        for container in made:
            docker("rm", "--force", container)


@pytest.mark.slow
@pytest.mark.docker
def test_links_to_the_solution_are_refused_never_mounted(image: str, tmp_path: Path) -> None:
    """A loose link and a linked student folder pointing at the host's
    solution, graded with --docker: rejected rows with the reason, never a
    container given the host's file; the honest blank beside them scores zero."""
    solution = ROOT / "solutions" / TENSORS / f"{TENSORS}.ipynb"
    class_folder = tmp_path / "class"
    class_folder.mkdir()
    (class_folder / "alice.ipynb").symlink_to(solution)
    (class_folder / "bob").symlink_to(solution.parent, target_is_directory=True)
    shutil.copy(ROOT / "assignments" / TENSORS / f"{TENSORS}.ipynb", class_folder / "carol.ipynb")
    out = tmp_path / "results"
    done = autograder("grade", "--docker", image, "-a", TENSORS, "--out", str(out), str(class_folder))
    assert done.returncode == 0, done.stderr[-3000:]
    found = [SubmissionResult.from_json(p.read_text()) for p in (out / "results").glob("*.json")]
    results = {result.student: result for result in found}
    for student in ("alice", "bob"):
        assert results[student].status == "rejected", results[student]
        assert results[student].reason == "a symbolic link: not followed" and results[student].score == 0
    assert results["carol"].status == "graded" and results["carol"].score == 0
    single = autograder(
        "grade", "--docker", image, "--json", str(tmp_path / "one.json"), str(class_folder / "alice.ipynb")
    )
    assert single.returncode == 2, single.stderr[-3000:]
    assert SubmissionResult.from_json((tmp_path / "one.json").read_text()).status == "rejected"


@pytest.mark.slow
@pytest.mark.docker
def test_no_container_is_left(reference: SubmissionResult, batch: Batch) -> None:
    assert containers(f"{GROUP_LABEL}={os.getpgid(0)}") == []
