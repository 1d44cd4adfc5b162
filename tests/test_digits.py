"""06_digits: the reference scores full marks, the blank template zero, and
each wrong variant (two or three independent mistakes at once, to grade few
notebooks) loses exactly its points; and the course's `digits` asset makes
its real files from scikit-learn's copy and its stand-in from nothing."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from autograder import standins
from autograder.assets import AssetStore, Dataset, fetch
from autograder.course import Course
from autograder.results import SubmissionResult
from tests.harness import AssignmentTests, Variant

ASSET = "digits"  # registered in assignments/assets.toml
HELD_OUT_NOTE = " (the hidden module holds part of the test part out)"
STEP = "        loss = loss_fn(model(images), labels)\n"


class TestDigits(AssignmentTests):
    assignment = "06_digits"
    variants = (
        Variant(
            "unscaled-narrow-percent-accuracy",
            (
                ("return pixels.reshape(len(pixels), 64) / 16", "return pixels.reshape(len(pixels), 64)"),
                ("nn.Linear(64, 32)", "nn.Linear(64, 16)"),
                ("nn.Linear(32, 10)", "nn.Linear(16, 10)"),
                ("test_accuracy = (model(X_test)", "test_accuracy = 100 * (model(X_test)"),
            ),
            {"q1": 2, "q2": 3, "q4": 1},
            ("divide its pixels by 16", "Linear(64, 32) and Linear(32, 10)", "of `X_test` correctly"),
        ),
        Variant(
            "shuffled-labels",
            ((STEP, "        labels = labels[torch.randperm(len(labels), device=labels.device)]\n" + STEP),),
            {"q3": 1, "q4": 4},
            ("does not fall enough", "never saw right"),
        ),
        Variant(
            "batch-losses-predict-logits",
            (
                ("        total += loss.item() * len(labels)\n", "        loss_history.append(loss.item())\n"),
                ("    loss_history.append(total / len(X_train))\n", ""),
                (".argmax(dim=1).cpu()", ".cpu()"),
            ),
            {"q3": 3, "q4": 4},
            ("should hold 10 numbers, one per epoch", "one digit per picture"),
        ),
    )

    def test_reference_draws_its_loss_curve(self, reference_result: SubmissionResult) -> None:
        assert len(reference_result.curves["Training loss"]) == 10


# --- the `digits` asset: no kernel, a second or two ---


@pytest.fixture(scope="module")
def digits(course: Course) -> Dataset:
    return course.datasets()[ASSET]


def parts(store: AssetStore, dataset: Dataset) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    public, hidden = dataset.public_folder(store), dataset.hidden_folder(store)
    assert dataset.hidden is not None
    return {
        "train": dataset.module.read_part(public / "train.npz"),
        "test": dataset.module.read_part(public / "test.npz"),
        "held-out": dataset.hidden.held_out(hidden),
    }


def test_fetch_cuts_scikit_learns_digits_and_holds_half_the_test_part_out(digits: Dataset, tmp_path: Path) -> None:
    import sklearn.datasets

    store = AssetStore(tmp_path / "assets")
    lines = fetch(store, {ASSET: digits}, sources={}, download=True)  # scikit-learn's own copy: no network
    assert lines == [f"{ASSET}: 1200 training and 597 test pictures" + HELD_OUT_NOTE]
    assert store.kind == "real"
    found = parts(store, digits)
    assert {name: len(labels) for name, (_, labels) in found.items()} == {"train": 1200, "test": 298, "held-out": 299}
    images = np.concatenate([images for images, _ in found.values()])
    labels = np.concatenate([labels for _, labels in found.values()])
    real = sklearn.datasets.load_digits()
    assert images.dtype == np.uint8 and images.shape == (1797, 8, 8)
    as_rows = {(row.tobytes(), label) for row, label in zip(images.reshape(-1, 64), labels, strict=True)}
    shipped = zip(real.data.astype(np.uint8), real.target, strict=True)
    assert as_rows == {(row.tobytes(), label) for row, label in shipped}

    again = AssetStore(tmp_path / "from-a-source")  # the offline route: `fetch --no-download --source digits=PATH`
    source = Path(sklearn.datasets.__file__).parent / "data"
    fetch(again, {ASSET: digits}, sources={ASSET: source}, download=False)
    assert all(np.array_equal(a[0], b[0]) for a, b in zip(parts(again, digits).values(), found.values(), strict=True))


def test_stand_in_public_part_is_fixed_and_hidden_part_comes_from_the_secret(digits: Dataset, tmp_path: Path) -> None:
    one, two = AssetStore(tmp_path / "one"), AssetStore(tmp_path / "two")
    for store, secret in ((one, b"\1" * 32), (two, b"\2" * 32)):
        standins.write_public_part(store, {ASSET: digits})
        standins.write_hidden_part(store, {ASSET: digits}, secret)
    first, second = parts(one, digits), parts(two, digits)
    counts = digits.module.COUNTS
    sizes = [len(labels) for _, labels in first.values()]
    assert sizes == [counts["train"], counts["test-public"], counts["test-hidden"]]
    for name in ("train", "test"):
        assert all(np.array_equal(a, b) for a, b in zip(first[name], second[name], strict=True))
    assert not np.array_equal(first["held-out"][0], second["held-out"][0])
    for images, labels in first.values():
        assert images.dtype == np.uint8 and images.shape[1:] == (8, 8) and images.max() <= 16
        assert np.bincount(labels, minlength=10).min() >= len(labels) // 10
