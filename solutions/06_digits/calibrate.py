"""Calibrate 06_digits' thresholds: run the reference notebook's code, and
wrong variants of it, for several notebook seeds, and print what the checks
would measure, one JSON line per run.

    .venv/bin/python solutions/06_digits/calibrate.py reference,shuffled-labels 0 10
    .venv/bin/python solutions/06_digits/calibrate.py --real reference 0 10

The code cells run in this process (no kernel, no sandbox) in a scratch
folder whose `digits` shows the asset folder's digits; the accuracy is
measured as the checks measure it: the held-out pictures through the
notebook's `predict`. `--real` first writes scikit-learn's real digits into a
scratch asset folder (`fetch`, then the hidden module's `split`), so both
kinds are measured on any machine.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

CHECKOUT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(CHECKOUT))

from autograder.assets import AssetStore, bound, default_store, fetch  # noqa: E402
from autograder.course import Course  # noqa: E402

DIGITS = "digits"  # registered in assignments/assets.toml
NOTEBOOK = Path(__file__).with_name("06_digits.ipynb")
STEP = "        loss = loss_fn(model(images), labels)\n"
VARIANTS = {  # name -> (old, new) edits of the reference's code; tests/test_digits.py grades the first four
    "reference": [],
    "unscaled-narrow-percent-accuracy": [
        ("return pixels.reshape(len(pixels), 64) / 16", "return pixels.reshape(len(pixels), 64)"),
        ("nn.Linear(64, 32)", "nn.Linear(64, 16)"),
        ("nn.Linear(32, 10)", "nn.Linear(16, 10)"),
        ("test_accuracy = (model(X_test)", "test_accuracy = 100 * (model(X_test)"),
    ],
    "shuffled-labels": [(STEP, "        labels = labels[torch.randperm(len(labels), device=labels.device)]\n" + STEP)],
    "batch-losses-predict-logits": [
        ("        total += loss.item() * len(labels)\n", "        loss_history.append(loss.item())\n"),
        ("    loss_history.append(total / len(X_train))\n", ""),
        (".argmax(dim=1).cpu()", ".cpu()"),
    ],
    "untrained": [("EPOCHS = 10", "EPOCHS = 1"), ("lr=0.01", "lr=0.0")],
    "linear": [("self.output(self.activation(self.hidden(x)))", "self.output(self.hidden(x))")],
    "one-epoch-tiny-step": [("EPOCHS = 10", "EPOCHS = 1"), ("lr=0.01", "lr=0.0001")],
    "one-epoch": [("EPOCHS = 10", "EPOCHS = 1")],
    "predict-unscaled": [
        ("model(prepare(images).to(device))", "model(torch.as_tensor(images).float().reshape(-1, 64).to(device))")
    ],
}


def code_cells(edits: list[tuple[str, str]], seed: int) -> list[str]:
    document = json.loads(NOTEBOOK.read_text(encoding="utf-8"))
    cells = ["".join(c["source"]) for c in document["cells"] if c["cell_type"] == "code"]
    for old, new in [*edits, ("SEED = 0", f"SEED = {seed}"), ("plt.show()", "plt.close(fig)")]:
        hits = [i for i, cell in enumerate(cells) if old in cell]
        if len(hits) != 1:
            raise SystemExit(f"{old!r} should occur in exactly one cell of {NOTEBOOK}")
        cells[hits[0]] = cells[hits[0]].replace(old, new)
    return cells


def run(variant: str, seed: int, assets: AssetStore) -> dict[str, Any]:
    digits = bound(Course.default().datasets(), assets)[DIGITS]
    namespace: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as work, contextlib.chdir(work), open(os.devnull, "w") as sink:
        os.symlink(digits.public, DIGITS)
        started = time.monotonic()
        with contextlib.redirect_stdout(sink):
            for cell in code_cells(VARIANTS[variant], seed):
                exec(compile(cell, "<cell>", "exec"), namespace)
        seconds = time.monotonic() - started
    images, labels = digits.hidden_module.held_out(digits.hidden)
    test_images, test_labels = digits.module.read_part(digits.public / "test.npz")
    _, train_labels = digits.module.read_part(digits.public / "train.npz")

    def accuracy(pictures: Any, truth: Any) -> float | None:
        predicted = namespace["predict"](pictures)
        if predicted.shape != (len(truth),):
            return None
        return round(float((predicted.numpy() == truth).mean()), 4)

    model, losses = namespace["model"], namespace["loss_history"]
    model.eval()
    with torch.inference_mode():
        logits = model(namespace["X_train"]).float().cpu()
    measured = torch.nn.functional.cross_entropy(logits, torch.as_tensor(train_labels.astype("int64"))).item()
    return {
        "variant": variant,
        "seed": seed,
        "assets": assets.kind,
        "hidden_accuracy": accuracy(images, labels),
        "test_accuracy": accuracy(test_images, test_labels),
        "loss_ratio": round(losses[-1] / losses[0], 4) if losses else None,
        "last_loss": round(losses[-1], 4) if losses else None,
        "measured_loss": round(measured, 4),
        "seconds": round(seconds, 2),
    }


def real_store(folder: Path) -> AssetStore:
    store = AssetStore(folder)
    fetch(store, {DIGITS: Course.default().datasets()[DIGITS]}, sources={}, download=True)
    return store


def main() -> None:
    import matplotlib

    matplotlib.use("Agg")
    arguments = sys.argv[1:]
    real = arguments[:1] == ["--real"]
    variants, first, end = arguments[real].split(","), int(arguments[real + 1]), int(arguments[real + 2])
    with tempfile.TemporaryDirectory() as scratch:
        assets = real_store(Path(scratch)) if real else default_store()
        for seed in range(first, end):
            for variant in variants:
                print(json.dumps(run(variant, seed, assets)), flush=True)


if __name__ == "__main__":
    main()
