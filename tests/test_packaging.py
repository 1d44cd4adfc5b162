"""The wheel carries the engine and the public material, never solutions."""

from __future__ import annotations

import tomllib
import zipfile
from email.parser import Parser

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

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


def test_wheel_is_dl_notebook_autograder_with_the_stand_ins_an_extra(wheel: zipfile.ZipFile) -> None:
    """`autograder` on PyPI is another project; the import name and the command stay `autograder`."""
    (metadata,) = [n for n in wheel.namelist() if n.endswith(".dist-info/METADATA")]
    fields = Parser().parsestr(wheel.read(metadata).decode("utf-8"))
    assert fields["Name"] == "dl-notebook-autograder" and fields["Requires-Python"] == ">=3.11"
    skimage = [r for r in map(Requirement, fields.get_all("Requires-Dist") or []) if r.name == "scikit-image"]
    assert skimage and all(r.marker is not None and not r.marker.evaluate({"extra": ""}) for r in skimage)
    assert any(r.marker is not None and r.marker.evaluate({"extra": "standins"}) for r in skimage)
    (entry_points,) = [n for n in wheel.namelist() if n.endswith(".dist-info/entry_points.txt")]
    assert "autograder = autograder.warm:main" in wheel.read(entry_points).decode("utf-8")
    assert "autograder/course/assignments/github/autograder-selfcheck.yml" in wheel.namelist()


# What the kernels students use already have (pip freeze there), so that installing the wheel
# changes none of it: Colab's from googlecolab/backend-info (pip-freeze.gpu.txt, mid 2026);
# Kaggle's torch and torchvision as the course's real submissions print them (Kaggle's image
# is built on Colab's, so the rest is Colab's).
PLATFORMS = {
    "colab": {"torch": "2.11.0", "torchvision": "0.26.0", "numpy": "2.0.2", "matplotlib": "3.10.0"}
    | {"pandas": "2.2.2", "scikit-learn": "1.6.1", "pillow": "11.3.0", "ipykernel": "6.17.1"}
    | {"jupyter-client": "7.4.9", "nbclient": "0.10.4", "nbformat": "5.10.4", "pytest": "8.4.2"}
    | {"click": "8.4.1", "rich": "13.9.4", "jinja2": "3.1.6", "scikit-image": "0.25.2"},
    "kaggle": {"torch": "2.10.0", "torchvision": "0.25.0", "matplotlib": "3.10.0", "numpy": "2.0.2"},
}


@pytest.mark.parametrize("platform", sorted(PLATFORMS))
def test_dependency_ranges_admit_what_kaggle_and_colab_have(platform: str) -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    requirements = [Requirement(r) for r in project["dependencies"] + project["optional-dependencies"]["standins"]]
    for requirement in requirements:
        there = PLATFORMS[platform].get(canonicalize_name(requirement.name))
        if there is not None:
            assert requirement.specifier.contains(there), f"{platform} has {requirement.name} {there}"
