"""Offline assets: the stand-ins are format-identical to what torchvision reads,
the sandbox shows the public part where the notebooks' own code looks and
never the hidden part, and figures are read without following links."""

from __future__ import annotations

import json
import os
import sys
import zipfile
from pathlib import Path

import nbformat
import pytest

from autograder import reference
from autograder.answers import find_answers
from autograder.assets import AssetStore, CourseAsset, Dataset, bound, default_store, fetch, read_idx, weights_file
from autograder.course import Course
from autograder.errors import AssetError
from autograder.grading import grade_notebook
from autograder.isolation import sandbox_available
from tests.conftest import write_notebook

INTEL, FASHION, WEIGHTS = "intel-image-classification", "fashion-mnist", "torch"


@pytest.fixture(scope="session")
def assets() -> AssetStore:
    store = default_store()
    if store.kind == "none":
        pytest.fail(f"no assets in {store.root}: scripts/setup.sh generates them (`autograder assets synth`)")
    return store


@pytest.fixture(scope="session")
def datasets() -> dict[str, Dataset]:
    return Course.default().datasets()


@pytest.fixture(scope="session")
def data(assets: AssetStore, datasets: dict[str, Dataset]) -> dict[str, CourseAsset]:
    return bound(datasets, assets)


def test_the_course_registers_its_assets_in_order(datasets: dict[str, Dataset]):
    names = list(datasets)  # a course may register more (06_digits' own `digits`)
    assert {INTEL, FASHION, WEIGHTS} <= set(names)
    assert names.index(INTEL) < names.index(WEIGHTS)  # the weights' stand-in is fitted on the scenes
    assert all(dataset.hidden is not None for name, dataset in datasets.items() if name != WEIGHTS)


def test_stand_in_weights_load_through_torchvision_unchanged(
    assets: AssetStore, data: dict[str, CourseAsset], monkeypatch: pytest.MonkeyPatch
):
    import torchvision.models

    monkeypatch.setenv("TORCH_HOME", str(assets.torch_home))
    for name in data[WEIGHTS].module.MODELS:
        assert (assets.checkpoints / weights_file(name)).is_file()
        model = torchvision.models.get_model(name, weights="DEFAULT")
        assert (
            sum(p.numel() for p in model.parameters())
            == {
                "resnet18": 11_689_512,
                "mobilenet_v3_small": 2_542_856,
                "efficientnet_b0": 5_288_548,
            }[name]
        )


def test_stand_in_weights_give_clear_winners_on_held_out_scenes(assets: AssetStore, data: dict[str, CourseAsset]):
    """Near-uniform softmaxes would make top-1 comparisons flip: the manifest
    records how the fit did on the held-out images, and it is checked here.
    The held-out draw comes from a random secret, so a rare image may be close
    (the checks keep only clear winners); nearly all must be clear."""
    if assets.kind != "stand-in":
        pytest.skip("real assets: nothing generated to check")
    quality = assets.manifest()["quality"]
    assert quality["resnet18"]["intended_top1"] >= 0.95
    assert quality["resnet18"]["pipelines_agree"] >= 0.95
    for name in ("mobilenet_v3_small", "efficientnet_b0"):
        assert quality[name]["pipelines_agree"] >= 0.85, name
    scenes = data[INTEL]
    images = scenes.hidden_module.held_out(scenes.hidden, scenes.module.SCENES, 4)  # what 04's checks draw
    top = reference.predict(assets, "resnet18", [image for image, _ in images], k=2)
    margins = [first[1] - second[1] for first, second in top]
    assert sum(margin >= 0.2 for margin in margins) >= 0.9 * len(margins), sorted(margins)[:5]


def test_fashion_mnist_stand_in_reads_with_torchvision(data: dict[str, CourseAsset], tmp_path: Path):
    import torchvision.datasets

    root = tmp_path / "data"
    root.symlink_to(data[FASHION].public)
    train = torchvision.datasets.FashionMNIST(root=str(root), train=True, download=True)  # present: no network
    test = torchvision.datasets.FashionMNIST(root=str(root), train=False, download=False)
    image, label = train[0]
    assert image.size == (28, 28) and 0 <= label < 10
    assert len(train.classes) == 10 and len(train) > len(test) > 0
    hidden_images, hidden_labels = data[FASHION].hidden_module.held_out(data[FASHION].hidden)
    assert hidden_images.shape[1:] == (28, 28) and len(hidden_labels) == len(hidden_images)
    assert sorted(set(hidden_labels.tolist())) == list(range(10))


def test_intel_stand_in_is_the_kaggle_layout(assets: AssetStore, data: dict[str, CourseAsset]):
    from PIL import Image
    from torchvision.datasets import ImageFolder

    train = ImageFolder(str(assets.public / INTEL / "seg_train" / "seg_train"))
    assert train.classes == list(data[INTEL].module.SCENES)
    for split in ("seg_train", "seg_test"):
        for scene in data[INTEL].module.SCENES:
            files = sorted((assets.public / INTEL / split / split / scene).glob("*.jpg"))
            assert len(files) >= 10
            with Image.open(files[0]) as image:
                assert image.size == (150, 150) and image.format == "JPEG"


def test_hidden_part_is_the_graders_alone(assets: AssetStore):
    assert (assets.hidden.stat().st_mode & 0o077) == 0
    assert (assets.public.stat().st_mode & 0o005) == 0o005


def _tree(folder: Path) -> dict[str, bytes]:
    """Every generated file under `folder` (the secret aside), by relative path."""
    from autograder.standins import SECRET_FILE

    return {
        str(path.relative_to(folder)): path.read_bytes()
        for path in sorted(folder.rglob("*"))
        if path.is_file() and path.name != SECRET_FILE
    }


@pytest.mark.slow
def test_stand_in_public_part_is_fixed_and_hidden_part_follows_the_secret(tmp_path: Path, datasets: dict[str, Dataset]):
    """Students' machines regenerate the public part byte for byte; the hidden
    part comes from the store's secret, which the shipped code and seed do not
    hold, so the public command in another folder cannot rebuild it. (The
    weights are fitted on public images only; `synth` adds them, in minutes.)"""
    from autograder import standins

    pictures = {name: datasets[name] for name in (INTEL, FASHION)}  # the weights: minutes, fitted on public files
    graders, elsewhere = AssetStore(tmp_path / "graders"), AssetStore(tmp_path / "elsewhere")
    for store in (graders, elsewhere):
        standins.write_public_part(store, pictures)
        standins.write_hidden_part(store, pictures, standins.store_secret(store))  # what `assets synth` does
    assert _tree(graders.public) and _tree(graders.public) == _tree(elsewhere.public)
    scenes = datasets[INTEL].module
    for scene in scenes.SCENES:  # not one held-out picture of the grader's set is rebuilt
        mine = {p.read_bytes() for p in (graders.hidden / INTEL / "holdout" / scene).glob("*.jpg")}
        theirs = {p.read_bytes() for p in (elsewhere.hidden / INTEL / "holdout" / scene).glob("*.jpg")}
        assert len(mine) == scenes.COUNTS["holdout"] and not mine & theirs
    fashion = f"{FASHION}/FashionMNIST/raw/t10k-images-idx3-ubyte"
    assert _tree(graders.hidden)[fashion] != _tree(elsewhere.hidden)[fashion]

    secret = standins.store_secret(graders)
    assert standins.store_secret(graders) == secret  # kept, root's alone: a re-synth makes the same set
    assert (graders.hidden / standins.SECRET_FILE).stat().st_mode & 0o077 == 0
    standins.write_hidden_part(elsewhere, pictures, secret)  # with the secret: the same hidden set, no old file left
    assert _tree(elsewhere.hidden) == _tree(graders.hidden)
    assert _tree(elsewhere.public) == _tree(graders.public)

    names = standins.set_identity(secret, datasets), standins.set_identity(standins.store_secret(elsewhere), datasets)
    assert names[0] != names[1] and names[0].startswith(standins.SET_ID)
    assert secret.hex()[:12] not in names[0]
    newer = {**datasets, INTEL: Dataset(INTEL, _VersionTwo(), datasets[INTEL].hidden)}  # type: ignore[arg-type]
    assert standins.set_identity(secret, newer) != names[0]  # a new generator version: a new set, caches miss


class _VersionTwo:
    VERSION = "2"


def test_a_generator_without_its_library_names_the_extra_to_install(
    tmp_path: Path, datasets: dict[str, Dataset], monkeypatch: pytest.MonkeyPatch
) -> None:
    """scikit-image (the scenes' photographs) is the `standins` extra: a student's self-check needs none of it."""
    from autograder import standins

    monkeypatch.setitem(sys.modules, "skimage", None)  # import skimage: ModuleNotFoundError
    store = AssetStore(tmp_path / "assets")
    with pytest.raises(
        AssetError, match=r"needs the module 'skimage'.*pip install \"dl-notebook-autograder\[standins\]\""
    ):
        standins.synth(store, {INTEL: datasets[INTEL]}, secret=bytes(32), log=lambda _: None)


def test_fetch_unpacks_an_instructors_intel_zip_and_holds_part_out(
    assets: AssetStore, datasets: dict[str, Dataset], tmp_path: Path
):
    archive = tmp_path / "intel-image-classification.zip"
    with zipfile.ZipFile(archive, "w") as bundle:
        for path in (assets.public / INTEL).rglob("*.jpg"):
            bundle.write(path, Path("archive") / path.relative_to(assets.public / INTEL))
    store = AssetStore(tmp_path / "assets")
    lines = fetch(store, datasets, sources={INTEL: archive}, download=False)
    assert lines[0].startswith("intel-image-classification") and len(lines) == 1
    for scene in datasets[INTEL].module.SCENES:
        public = list((store.public / INTEL / "seg_test" / "seg_test" / scene).glob("*.jpg"))
        held = list((store.hidden / INTEL / "holdout" / scene).glob("*.jpg"))
        assert public and held and not {p.name for p in public} & {h.name for h in held}
    assert store.manifest()["parts"][INTEL] == "real" and store.kind == "mixed"


def test_fetch_refuses_a_zip_that_escapes(tmp_path: Path, datasets: dict[str, Dataset]):
    archive = tmp_path / "evil.zip"
    with zipfile.ZipFile(archive, "w") as bundle:
        bundle.writestr("../../escaped.jpg", b"x")
    with pytest.raises(AssetError, match="unsafe path"):
        fetch(AssetStore(tmp_path / "assets"), datasets, sources={INTEL: archive}, download=False)
    assert not (tmp_path.parent / "escaped.jpg").exists()


def test_course_data_the_engine_used_to_hold_still_works_with_a_warning(assets: AssetStore):
    """Private courses written before assets were course data import these."""
    import autograder.assets

    with pytest.warns(DeprecationWarning, match="deprecated"):
        assert autograder.assets.SCENES == ("buildings", "forest", "glacier", "mountain", "sea", "street")
    with pytest.warns(DeprecationWarning):
        assert autograder.assets.INTEL == INTEL and autograder.assets.FASHION == FASHION
    with pytest.warns(DeprecationWarning):
        assert autograder.assets.MODELS["resnet18"] == "ResNet18_Weights"
    with pytest.warns(DeprecationWarning):
        assert len(reference.held_out_scenes(assets, per_class=1)) == 6
    with pytest.warns(DeprecationWarning):
        images, labels = reference.held_out_fashion(assets)
    assert len(images) == len(labels) > 0


def test_a_registry_that_names_no_module_is_a_clear_error(tmp_path: Path):
    from autograder.assets import course_datasets

    (tmp_path / "assignments").mkdir()
    (tmp_path / "assignments" / "assets.toml").write_text('[[asset]]\nname = "x"\n', encoding="utf-8")
    with pytest.raises(AssetError, match="names no `module`"):
        course_datasets(tmp_path)
    (tmp_path / "assignments" / "assets.toml").write_text('[[asset]]\nname = "x"\nmodule = "gone.py"\n')
    with pytest.raises(AssetError, match="missing"):
        course_datasets(tmp_path)


def test_idx_round_trip(tmp_path: Path):
    import numpy as np

    from autograder.assets import write_idx

    array = np.arange(2 * 28 * 28, dtype=np.uint8).reshape(2, 28, 28)
    write_idx(tmp_path / "images", array)
    assert (read_idx(tmp_path / "images") == array).all()
    assert (tmp_path / "images").read_bytes()[:4] == bytes([0, 0, 8, 3])


# --- what the kernel sees, through a course made for this test ---

SEES = """
import os, torch, torchvision
from torchvision.models import resnet18, ResNet18_Weights
model = resnet18(weights=ResNet18_Weights.DEFAULT)
fashion = len(torchvision.datasets.FashionMNIST(root="data", download=True))
scenes = "/kaggle/input/intel-image-classification/seg_test/seg_test"
kaggle = sorted(os.listdir(scenes)) if os.path.isdir("/kaggle") else []
puneet = os.path.isdir("/kaggle/input/datasets/puneet6060/intel-image-classification/seg_train/seg_train/forest")
working = os.path.isdir("/kaggle") and os.path.realpath("/kaggle/working") == os.path.realpath(os.getcwd())
hidden_visible = sum(len(files) for _, _, files in os.walk(ASSETS_HIDDEN)) > 0
os.makedirs("outputs", exist_ok=True)
os.symlink(HIDDEN_CHECK, "outputs/figure.png")
"""

CHECKS = """
import pytest
from autograder import reference

@pytest.mark.question("q1")
@pytest.mark.points(1)
def test_sees(student, workdir, assets, thresholds):
    assert student.fetch("fashion") > 0, "no FashionMNIST"
    assert student.fetch("model") is not None
    assert thresholds == {"accuracy": 0.5}
    if KAGGLE:
        assert student.fetch("kaggle") == ["buildings", "forest", "glacier", "mountain", "sea", "street"], "Kaggle"
        assert student.fetch("puneet") is True, "second Kaggle layout"
        assert student.fetch("working") is True, "/kaggle/working"
        assert student.fetch("hidden_visible") is False, "hidden assets visible"

@pytest.mark.question("q2")
@pytest.mark.points(1)
def test_linked_figure_is_not_followed(workdir):
    reference.read_figure(workdir, "outputs/figure.png")
"""


@pytest.fixture(scope="module")
def seeing_course(tmp_path_factory: pytest.TempPathFactory, assets: AssetStore) -> Path:
    root = tmp_path_factory.mktemp("course")
    public, solution = root / "assignments" / "sees", root / "solutions" / "sees"
    (public / "public_checks").mkdir(parents=True)
    (solution / "hidden_checks").mkdir(parents=True)
    (public / "assignment.toml").write_text(
        '[questions]\nq1 = "Assets"\nq2 = "Links"\n[links]\ndata = "fashion-mnist"\n'
        '[kaggle_inputs]\n"intel-image-classification" = "intel-image-classification"\n'
        '"datasets/puneet6060/intel-image-classification" = "intel-image-classification"\n'
        "[thresholds.stand-in]\naccuracy = 0.5\n[thresholds.real]\naccuracy = 0.5\n",
        encoding="utf-8",
    )
    checks = CHECKS.replace("KAGGLE", str(sandbox_available()))
    (public / "public_checks" / "test_sees.py").write_text(checks, encoding="utf-8")
    hidden_check = solution / "hidden_checks" / "test_hidden.py"
    hidden_check.write_text("SECRET = 'expected values'\n", encoding="utf-8")
    source = SEES.replace("ASSETS_HIDDEN", repr(str(assets.hidden))).replace("HIDDEN_CHECK", repr(str(hidden_check)))
    write_notebook(public / "sees.ipynb", "")
    write_notebook(solution / "sees.ipynb", source)
    return root


@pytest.mark.slow
def test_kernel_finds_assets_where_the_apis_look_and_never_the_hidden_part(seeing_course: Path, assets: AssetStore):
    course = Course(seeing_course)
    result = grade_notebook(course.get("sees").solution, course=course, assignment_name="sees")
    assert result.status == "graded", result.reason
    assert result.assets == assets.set_id
    by_name = {check.name: check for check in result.checks}
    assert by_name["test_sees"].status == "passed", by_name["test_sees"].message
    linked = by_name["test_linked_figure_is_not_followed"]
    assert linked.status == "failed" and "was not written" in linked.message
    assert "expected values" not in json.dumps(json.loads(result.to_json()))


def test_read_figure_limits(tmp_path: Path):
    from PIL import Image

    (tmp_path / "outputs").mkdir()
    Image.new("RGB", (200, 100), "white").save(tmp_path / "outputs" / "blank.png")
    figure = reference.read_figure(tmp_path, "outputs/blank.png")
    assert (figure.width, figure.height) == (200, 100) and not reference.figure_has_content(figure)
    (tmp_path / "outputs" / "text.png").write_text("not an image")
    with pytest.raises(AssertionError, match="not an image"):
        reference.read_figure(tmp_path, "outputs/text.png")
    with pytest.raises(AssertionError, match="not a path inside"):
        reference.read_figure(tmp_path, "../outside.png")
    os.symlink(tmp_path / "outputs", tmp_path / "linked")
    with pytest.raises(AssertionError, match="was not written"):
        reference.read_figure(tmp_path, "linked/blank.png")
    with (tmp_path / "outputs" / "huge.png").open("wb") as handle:
        handle.truncate(reference.MAX_FIGURE_BYTES + 1)
    with pytest.raises(AssertionError, match="larger than"):
        reference.read_figure(tmp_path, "outputs/huge.png")


def test_written_answers_found_per_question():
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [
        nbformat.v4.new_markdown_cell("## Q1"),
        nbformat.v4.new_code_cell("x = 1\n# Why does this matter?\n# Answer: because the shapes must agree"),
        nbformat.v4.new_markdown_cell("## Q2"),
        nbformat.v4.new_code_cell("y = 2\n# What does it do?\n# Answer:"),
        nbformat.v4.new_markdown_cell("# Models\n## Q1"),
        nbformat.v4.new_code_cell('"""La respuesta: el modelo ya aprendió rasgos generales de las imágenes."""'),
    ]
    found = find_answers(notebook, {"t1": r"^\W*Q1\b", "t2": r"^\W*Q2\b", "m1": r"^\W*Q1\b", "m2": r"^\W*Q2\b"})
    assert found == {"t1": True, "t2": False, "m1": True, "m2": False}


def test_assets_cli_status(assets: AssetStore):
    from click.testing import CliRunner

    from autograder.cli import cli

    outcome = CliRunner().invoke(cli, ["assets", "status"])
    assert outcome.exit_code == 0, outcome.output
    assert assets.kind in outcome.output and "missing" not in outcome.output


def test_empty_asset_folder_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("AUTOGRADER_ASSETS", str(tmp_path / "none"))
    with pytest.raises(AssetError, match="autograder assets synth"):
        default_store().require()
