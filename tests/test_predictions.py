"""The store of trusted predictions (autograder/predictions.py): the same
outputs as running the model, a miss whenever anything in the key changes, a
corrupt or foreign file recomputed, bounded in memory and on disk, and a
resumed batch reading what the interrupted one wrote."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
import torch
from PIL import Image
from torchvision.transforms import v2

from autograder import predictions as trusted
from autograder.assets import AssetStore, default_store
from autograder.batch import grade_batch
from autograder.course import Course
from autograder.predictions import Predictions, _Memory
from autograder.reference import load_model, preprocessing
from autograder.submissions import collect
from tests.conftest import write_notebook

MODEL = "mobilenet_v3_small"  # the smallest of the course's networks: the quickest to run


@pytest.fixture(scope="module")
def assets() -> AssetStore:
    store = default_store()
    if store.kind == "none":
        pytest.fail(f"no assets in {store.root}: scripts/setup.sh generates them (`autograder assets synth`)")
    return store


@pytest.fixture(scope="module")
def pictures(assets: AssetStore) -> list[Image.Image]:
    """Six of the stand-in Intel pictures, one per class."""
    folder = assets.public / "intel-image-classification" / "seg_test" / "seg_test"
    return [Image.open(next(iter(sorted(scene.iterdir())))).convert("RGB") for scene in sorted(folder.iterdir())]


def fresh(folder: Path | None) -> Predictions:
    """What a new worker process would have: an empty memory, the same folder."""
    return Predictions(folder, memory=_Memory(trusted.MEMORY_BYTES))


def uncached(assets: AssetStore, model: str, pictures: list[Image.Image], transform: object) -> torch.Tensor:
    """The model run as the checks ran it before there was a store."""
    with torch.no_grad():
        return load_model(assets, model)(torch.stack([transform(p) for p in pictures]))  # type: ignore[operator]


def entry_files(folder: Path) -> list[Path]:
    return sorted(folder.glob("*/*.pt"))


def test_cached_outputs_are_the_models_own(assets: AssetStore, pictures: list[Image.Image], tmp_path: Path) -> None:
    folder, transform = tmp_path / "cache" / "predictions", preprocessing(MODEL)
    store = fresh(folder)
    computed = store.outputs(assets, MODEL, pictures, preprocessing=transform)
    assert torch.equal(computed, uncached(assets, MODEL, pictures, transform))
    assert torch.equal(store.outputs(assets, MODEL, pictures, preprocessing=transform), computed)  # from memory
    resumed = fresh(folder)
    assert torch.equal(resumed.outputs(assets, MODEL, pictures, preprocessing=transform), computed)  # from disk
    assert (store.counts.computed, store.counts.memory, resumed.counts.disk) == (6, 6, 6)
    assert all(path.stat().st_size < 8000 for path in entry_files(folder)), "each entry holds its own row only"
    assert resumed.counts.computed == 0
    shuffled = pictures[::-1]
    assert torch.equal(resumed.outputs(assets, MODEL, shuffled, preprocessing=transform), computed.flip(0))
    probabilities = resumed.probabilities(assets, MODEL, pictures, preprocessing=transform)
    assert torch.equal(probabilities, torch.softmax(computed, dim=1))


def test_pooled_features_and_prepared_tensors(assets: AssetStore, pictures: list[Image.Image]) -> None:
    store, transform, pictures = fresh(None), preprocessing("resnet18"), pictures[:3]
    network = load_model(assets, "resnet18")
    pooled = store.outputs(assets, "resnet18", pictures, preprocessing=transform, layer="pooled")
    with torch.no_grad():
        body = torch.nn.Sequential(*list(network.children())[:-1])
        inputs = torch.stack([transform(p) for p in pictures])
        assert torch.equal(pooled, body(inputs).flatten(1))
        assert torch.allclose(network.fc(pooled), network(inputs), atol=1e-5)
    prepared = store.outputs(assets, "resnet18", list(inputs), preprocessing=None)  # the tensors themselves
    assert torch.allclose(prepared, network.fc(pooled), atol=1e-5)
    assert store.counts.computed == 6
    assert torch.equal(store.outputs(assets, "resnet18", list(inputs), preprocessing=None), prepared)
    assert store.counts.memory == 3
    with pytest.raises(ValueError, match="no layer"):
        store.outputs(assets, "resnet18", pictures, preprocessing=transform, layer="fc")


def other_asset_set(assets: AssetStore, root: Path, set_id: str) -> AssetStore:
    """The same files under another asset set's id."""
    root.mkdir()
    (root / "public").symlink_to(assets.public)
    manifest = assets.manifest() | {"id": set_id}
    (root / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    return AssetStore(root)


def test_any_change_in_the_key_misses(
    assets: AssetStore, pictures: list[Image.Image], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder, transform = tmp_path / "cache" / "predictions", preprocessing(MODEL)
    store = fresh(folder)
    store.outputs(assets, MODEL, pictures[:2], preprocessing=transform)
    lesson = v2.Compose([v2.Resize((224, 224)), v2.ToImage(), v2.ToDtype(torch.float32, scale=True)])
    nearest = v2.Compose(
        [
            v2.Resize((224, 224), interpolation=v2.InterpolationMode.NEAREST),
            v2.ToImage(),
            v2.ToDtype(torch.float32, scale=True),
        ]
    )
    changes = {
        "asset set": lambda: store.outputs(
            other_asset_set(assets, tmp_path / "other", "another-set"), MODEL, pictures[:2], preprocessing=transform
        ),
        "model": lambda: store.outputs(assets, "resnet18", pictures[:2], preprocessing=preprocessing("resnet18")),
        "preprocessing": lambda: store.outputs(assets, MODEL, pictures[:2], preprocessing=lesson),
        "a preprocessing setting": lambda: store.outputs(assets, MODEL, pictures[:2], preprocessing=nearest),
        "layer": lambda: store.outputs(assets, MODEL, pictures[:2], preprocessing=transform, layer="pooled"),
        "picture": lambda: store.outputs(assets, MODEL, [pictures[0].rotate(90)], preprocessing=transform),
    }
    for change, run in changes.items():
        before = store.counts.computed
        run()
        assert store.counts.computed > before, change
    monkeypatch.setattr(torch, "__version__", "0.0.0")
    before = fresh(folder)
    before.outputs(assets, MODEL, pictures[:2], preprocessing=transform)
    assert (before.counts.disk, before.counts.computed) == (0, 2), "another torch version"
    monkeypatch.undo()
    again = fresh(folder)
    again.outputs(assets, MODEL, pictures[:2], preprocessing=lesson)
    assert (again.counts.disk, again.counts.computed) == (2, 0), "the same settings, a new Compose"


def test_a_preprocessing_without_a_description_is_run_uncached(
    assets: AssetStore, pictures: list[Image.Image], tmp_path: Path
) -> None:
    folder, transform = tmp_path / "cache" / "predictions", preprocessing(MODEL)
    store = fresh(folder)
    wrapped = v2.Lambda(lambda image: transform(image))  # a function: its code is not in any key
    outputs = store.outputs(assets, MODEL, pictures[:2], preprocessing=wrapped)
    assert torch.equal(outputs, uncached(assets, MODEL, pictures[:2], transform))
    assert (store.counts.uncached, store.counts.computed) == (2, 0)
    assert not entry_files(folder)


def test_a_corrupt_or_foreign_entry_is_computed_again(
    assets: AssetStore, pictures: list[Image.Image], tmp_path: Path
) -> None:
    folder, transform = tmp_path / "cache" / "predictions", preprocessing(MODEL)
    expected = fresh(folder).outputs(assets, MODEL, pictures, preprocessing=transform)
    files = entry_files(folder)
    assert len(files) == 6
    other = fresh(tmp_path / "elsewhere" / "predictions")
    other.outputs(assets, MODEL, [pictures[0].rotate(90)], preprocessing=transform)
    (foreign,) = entry_files(tmp_path / "elsewhere" / "predictions")
    entry = torch.load(files[4], weights_only=True)
    entry["value"] = entry["value"] + 1.0  # values that are not the ones written
    torch.save(entry, files[4])
    files[0].write_bytes(b"not a torch file")
    files[1].write_bytes(files[1].read_bytes()[:200])  # cut short
    shutil.copyfile(foreign, files[2])  # a whole entry, for another picture
    files[3].unlink()
    os.symlink(foreign, files[3])  # a link: never followed
    files[5].write_bytes(b"")
    store = fresh(folder)
    assert torch.equal(store.outputs(assets, MODEL, pictures, preprocessing=transform), expected)
    assert (store.counts.disk, store.counts.computed) == (0, 6)
    rewritten = fresh(folder)
    assert torch.equal(rewritten.outputs(assets, MODEL, pictures, preprocessing=transform), expected)
    assert (rewritten.counts.disk, rewritten.counts.computed) == (6, 0)


def test_a_folder_not_the_graders_own_is_not_used(
    assets: AssetStore, pictures: list[Image.Image], tmp_path: Path
) -> None:
    folder = tmp_path / "cache" / "predictions"
    folder.mkdir(parents=True)
    folder.chmod(0o777)  # anyone could have written there
    store = fresh(folder)
    store.outputs(assets, MODEL, pictures[:1], preprocessing=preprocessing(MODEL))
    assert store.counts.computed == 1 and not entry_files(folder)
    made = tmp_path / "made" / "cache" / "predictions"
    fresh(made).outputs(assets, MODEL, pictures[:1], preprocessing=preprocessing(MODEL))
    assert oct(made.stat().st_mode & 0o777) == oct(made.parent.stat().st_mode & 0o777) == "0o700"


def test_memory_and_disk_are_bounded(
    assets: AssetStore, pictures: list[Image.Image], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    transform, row = preprocessing(MODEL), 1000 * 4
    store = Predictions(None, memory=_Memory(3 * row))
    store.outputs(assets, MODEL, pictures, preprocessing=transform)
    store.outputs(assets, MODEL, pictures[3:], preprocessing=transform)  # the last three are kept
    store.outputs(assets, MODEL, pictures[:1], preprocessing=transform)
    assert (store.counts.memory, store.counts.computed) == (3, 7)
    monkeypatch.setattr(trusted, "DISK_BYTES", 1)  # full after the first entry
    folder = tmp_path / "cache" / "predictions"
    fresh(folder).outputs(assets, MODEL, pictures, preprocessing=transform)
    assert len(entry_files(folder)) == 1


@pytest.mark.slow
@pytest.mark.sandbox  # the disk store is used only where the kernel could not have written to it
def test_a_resumed_batch_reads_what_the_first_run_computed(tmp_path: Path) -> None:
    course = tmp_path / "course"
    (course / "assignments" / "seen" / "public_checks").mkdir(parents=True)
    (course / "solutions" / "seen" / "hidden_checks").mkdir(parents=True)
    write_notebook(course / "assignments" / "seen" / "seen.ipynb", "x = None")
    (course / "assignments" / "seen" / "assignment.toml").write_text('title = "Seen"\n[questions]\nq1 = "One"\n')
    (course / "solutions" / "seen" / "hidden_checks" / "test_seen.py").write_text(COUNTING_CHECK)
    submissions = tmp_path / "class"
    for name in ("ann", "bo", "cy"):
        (submissions / name).mkdir(parents=True)
        write_notebook(submissions / name / "seen.ipynb", "x = 1")
    out = tmp_path / "out"

    def graded(*names: str) -> dict[str, str]:
        entries = [e for e in collect([submissions], unpack_to=tmp_path / "unpacked") if e.student in names]
        items = grade_batch(entries, course=Course(course), out=out, assignment_name="seen", workers=1)
        return {item.entry.student: item.result.checks[0].message for item in items if not item.cached}

    assert graded("ann") == {"ann": "memory=0 disk=0 computed=5"}
    assert len(entry_files(trusted.folder_for(out))) == 5
    # resumed with the rest of the class: a new worker reads the first run's entries
    assert graded("ann", "bo", "cy") == {"bo": "memory=0 disk=5 computed=0", "cy": "memory=5 disk=5 computed=0"}


COUNTING_CHECK = """
import pytest
from PIL import Image

from autograder.reference import preprocessing


@pytest.mark.question("q1")
@pytest.mark.points(1)
def test_counts(student, assets, predictions, credit):
    pictures = [Image.new("RGB", (64, 64), (shade, 100, 200)) for shade in range(0, 250, 50)]
    predictions.outputs(assets, "mobilenet_v3_small", pictures, preprocessing=preprocessing("mobilenet_v3_small"))
    counts = predictions.counts  # this worker's, since it started
    credit.give(1.0, f"memory={counts.memory} disk={counts.disk} computed={counts.computed}")
"""
