"""The wheel carries the engine and the public material, never solutions."""

from __future__ import annotations

import zipfile

import pytest

from autograder.gradescope import build_wheel
from tests.conftest import ROOT


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> zipfile.ZipFile:
    return zipfile.ZipFile(build_wheel(tmp_path_factory.mktemp("wheel")))


def test_wheel_has_engine_and_public_material(wheel: zipfile.ZipFile) -> None:
    names = wheel.namelist()
    assert "autograder/grading.py" in names
    assert "autograder/templates/summary.html.j2" in names
    assert "autograder/isolation/entry.py" in names and "autograder/isolation/forkserver.py" in names
    assert "autograder/course/assignments/02_tensors/02_tensors.ipynb" in names
    assert "autograder/course/assignments/02_tensors/public_checks/test_public.py" in names


def test_wheel_has_no_solutions_or_hidden_checks(wheel: zipfile.ZipFile) -> None:
    names = wheel.namelist()
    assert not [n for n in names if "solutions" in n or "hidden_checks" in n]
    solution_text = (ROOT / "solutions/02_tensors/02_tensors.ipynb").read_text()
    assert "torch.ones(3, 4, dtype=torch.float64)" in solution_text
    for name in names:
        assert b"torch.ones(3, 4, dtype=torch.float64)" not in wheel.read(name), name
