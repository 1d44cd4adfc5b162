"""`environment` blames the machine only when it lacks a GPU and the failing code uses CUDA."""

from __future__ import annotations

from pathlib import Path

import pytest

from autograder.course import Course
from autograder.environment import GpuUse, MissingData, blames_machine, machine_has_gpu, says_no_gpu
from tests.conftest import grade, write_notebook

NO_DRIVER = "RuntimeError: Found no NVIDIA driver on your system."


@pytest.mark.parametrize(
    "message",
    [
        NO_DRIVER,
        "AssertionError: Torch not compiled with CUDA enabled",
        "RuntimeError: No CUDA GPUs are available",
    ],
)
def test_the_messages_of_a_missing_gpu_are_recognised(message: str) -> None:
    assert says_no_gpu(message)
    assert not says_no_gpu("ValueError: shapes (3,) and (4,) do not match")


def test_the_machine_is_blamed_only_without_a_gpu_and_for_code_that_uses_cuda() -> None:
    assert blames_machine(NO_DRIVER, code_uses_gpu=True, gpu_available=False)
    assert not blames_machine(NO_DRIVER, code_uses_gpu=False, gpu_available=False), "the student raised it"
    assert not blames_machine(NO_DRIVER, code_uses_gpu=True, gpu_available=True), "the machine has a GPU"
    assert not blames_machine("ValueError: bad shape", code_uses_gpu=True, gpu_available=False)


NOTEBOOK = [
    "import torch",  # 0
    'device = torch.device("cuda")',  # 1: a variable bound to CUDA
    "def timed(model):\n    torch.cuda.synchronize()\n    return model",  # 2: a function using CUDA directly
    "def run(model):\n    return timed(model)",  # 3: through another function
    "y = torch.ones(2).to(device)",  # 4: through the variable
    "%matplotlib inline\nz = torch.ones(2).cuda()",  # 5: a magic line, then direct use
    "def plain():\n    raise RuntimeError('Found no NVIDIA driver on your system.')",  # 6: no CUDA at all
    "plain()",  # 7
    None,  # 8: a Markdown cell
    "w = 'cuda:0' if False else 'cpu'",  # 9
]


def test_cuda_use_is_found_directly_and_through_the_notebooks_own_names() -> None:
    use = GpuUse.of(NOTEBOOK)
    assert {"device", "timed", "run", "y", "z", "w"} <= use.names
    assert "plain" not in use.names
    assert use.cells == {1, 2, 3, 4, 5, 9}


def test_a_cell_that_does_not_parse_is_read_by_pattern() -> None:
    use = GpuUse.of(["def broken(:\n    x.cuda()", "broken()", "other = 1"])
    assert use.cells == {0, 1} and use.names == {"broken"}


CALLS_CHECK = """
import pytest

@pytest.mark.question("q1")
def test_raises_it_itself(student):
    student.call("plain")

@pytest.mark.question("q2")
def test_uses_cuda(student):
    student.call("on_gpu")

@pytest.mark.question("q3")
def test_value_of_the_cell_that_raised_it_itself(student):
    student.fetch("value")

@pytest.mark.question("q4")
def test_value_of_the_cell_that_used_cuda(student):
    student.fetch("result")
"""


@pytest.mark.slow
def test_a_student_raising_the_no_driver_message_is_not_the_machines_fault(tmp_path: Path) -> None:
    if machine_has_gpu():
        pytest.skip("on a GPU machine both verdicts are the student's")
    root = tmp_path / "course"
    (root / "assignments" / "demo" / "public_checks").mkdir(parents=True)
    (root / "solutions" / "demo" / "hidden_checks").mkdir(parents=True)
    (root / "solutions" / "demo" / "hidden_checks" / "test_demo.py").write_text(CALLS_CHECK)
    notebook = write_notebook(
        root / "assignments" / "demo" / "demo.ipynb",
        "def plain():\n    raise RuntimeError('Found no NVIDIA driver on your system.')",
        "value = plain()",
        "import torch\ndef on_gpu():\n    return torch.ones(1).cuda().item()",
        "result = on_gpu()",
    )
    result = grade(Course(root), notebook, name="demo")
    by_name = {c.name: c for c in result.checks}
    assert by_name["test_raises_it_itself"].status == "failed", by_name["test_raises_it_itself"]
    assert by_name["test_uses_cuda"].status == "environment", by_name["test_uses_cuda"]
    assert "regrade on a GPU" in by_name["test_uses_cuda"].message
    assert by_name["test_value_of_the_cell_that_raised_it_itself"].status == "failed"
    assert by_name["test_value_of_the_cell_that_used_cuda"].status == "environment", "its cell needed the GPU"


KAGGLE = ("/kaggle/input/intel-image-classification", "/kaggle/input/datasets/x/intel", "/kaggle/working")


def test_missing_data_is_found_in_code_and_through_names_not_in_comments() -> None:
    cells = [
        "import os\n# Kaggle keeps /kaggle/working as output",  # 0: a comment only
        "ROOT = '/kaggle/input/datasets/x/intel/seg_test'",  # 1: a missing path, deeper
        "def load():\n    return os.listdir(ROOT)",  # 2: through the variable
        "pictures = load()",  # 3: through the function
        None,  # 4: Markdown
        "other = '/kaggle/inputs-elsewhere'",  # 5: not a prefix of a missing path
    ]
    missing = MissingData.of(cells, KAGGLE)
    assert missing.cells == {1, 2, 3} and {"ROOT", "load", "pictures"} <= missing.names
    assert missing.named == ("/kaggle/input/datasets/x/intel",), "only what the notebook uses is named"
    assert missing.message.startswith("/kaggle/input/datasets/x/intel is not on this machine: check it on Kaggle")
    assert MissingData.of(cells, ()) == MissingData(), "a machine that lacks nothing excuses nothing"


def test_a_notebook_naming_only_the_parent_folder_is_told_about_it() -> None:
    missing = MissingData.of(["print(os.listdir('/kaggle/input'))"], KAGGLE)
    assert missing.cells == {0} and missing.named == ("/kaggle/input",)
