"""Calibrate 05_transfer_learning's thresholds: run the reference notebook's
code, and wrong variants of it, for several notebook seeds, and print what the
hidden checks would measure, one JSON line per run.

    .venv/bin/python solutions/05_transfer_learning/calibrate.py reference,shuffled-labels 0 12

The code cells run in this process (no kernel, no sandbox) in a scratch folder
whose `data` shows the asset folder's FashionMNIST; the accuracy is measured
as the checks measure it: the held-out pictures through the notebook's
`preprocess` and `model` in evaluation mode. It uses a GPU where there is one.
Set AUTOGRADER_ASSETS to calibrate on another asset set (the real one).
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
from PIL import Image

CHECKOUT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(CHECKOUT))

from autograder.assets import bound, default_store, read_idx  # noqa: E402
from autograder.course import Course  # noqa: E402

FASHION = "fashion-mnist"  # registered in assignments/assets.toml

NOTEBOOK = Path(__file__).with_name("05_transfer_learning.ipynb")
STEP = "        loss = loss_fn(model(images), labels)\n"
VARIANTS = {  # name -> (old, new) edits of the reference's code
    "reference": [],
    "shuffled-labels": [(STEP, "        labels = labels[torch.randperm(len(labels), device=labels.device)]\n" + STEP)],
    "untrained": [("EPOCHS = 3", "EPOCHS = 0")],
    "end-to-end": [
        ("for parameter in model.parameters():\n    parameter.requires_grad = False\n", ""),
        ("torch.optim.Adam(model.fc.parameters(), lr=0.01)", "torch.optim.Adam(model.parameters(), lr=0.01)"),
    ],
    "half-normalized": [
        (
            "v2.Normalize(mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225])",
            "v2.Normalize(mean=[0.5, 0.5, 0.5], std=[0.5, 0.5, 0.5])",
        )
    ],
}
VAL_SAMPLES = 250


def code_cells(edits: list[tuple[str, str]], seed: int) -> list[str]:
    document = json.loads(NOTEBOOK.read_text(encoding="utf-8"))
    cells = ["".join(c["source"]) for c in document["cells"] if c["cell_type"] == "code"]
    quiet = [("plt.show()", "plt.close(fig)"), ('torch.save(model.state_dict(), "fashion_mnist_resnet.pth")', "")]
    for old, new in [*edits, ("SEED = 0", f"SEED = {seed}"), *quiet]:
        hits = [i for i, cell in enumerate(cells) if old in cell]
        if len(hits) != 1:
            raise SystemExit(f"{old!r} should occur in exactly one cell of {NOTEBOOK}")
        cells[hits[0]] = cells[hits[0]].replace(old, new)
    return cells


def logits(namespace: dict[str, Any], images: Any) -> torch.Tensor:
    model, preprocess = namespace["model"], namespace["preprocess"]
    device = next(model.parameters()).device
    model.eval()
    parts = []
    with torch.inference_mode():
        for start in range(0, len(images), 250):
            batch = torch.stack([preprocess(Image.fromarray(a)) for a in images[start : start + 250]])
            parts.append(model(batch.to(device)).float().cpu())
    return torch.cat(parts)


def run(variant: str, seed: int) -> dict[str, Any]:
    assets = default_store()
    os.environ["TORCH_HOME"] = str(assets.torch_home)
    namespace: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as work, contextlib.chdir(work), open(os.devnull, "w") as sink:
        os.symlink(assets.public_folder(FASHION), "data")
        started = time.monotonic()
        with contextlib.redirect_stdout(sink):
            for cell in code_cells(VARIANTS[variant], seed):
                exec(compile(cell, "<cell>", "exec"), namespace)
        seconds = time.monotonic() - started
    fashion = bound(Course.default().datasets(), assets)[FASHION]
    images, labels = fashion.hidden_module.held_out(fashion.hidden)
    hidden = (logits(namespace, images).argmax(dim=1).numpy() == labels).mean()
    raw = assets.public_folder(FASHION) / "FashionMNIST" / "raw"
    val_images = read_idx(raw / "t10k-images-idx3-ubyte")[:VAL_SAMPLES]
    val_labels = torch.as_tensor(read_idx(raw / "t10k-labels-idx1-ubyte")[:VAL_SAMPLES].astype("int64"))
    val_logits = logits(namespace, val_images)
    train_losses, val_losses = namespace["train_losses"], namespace["val_losses"]
    measured_val_loss = torch.nn.functional.cross_entropy(val_logits, val_labels).item()
    return {
        "variant": variant,
        "seed": seed,
        "assets": assets.kind,
        "hidden_accuracy": round(float(hidden), 4),
        "val_accuracy": round((val_logits.argmax(dim=1) == val_labels).float().mean().item(), 4),
        "loss_ratio": round(train_losses[-1] / train_losses[0], 4) if train_losses else None,
        "train_losses": [round(v, 4) for v in train_losses],
        "val_loss_gap": round(val_losses[-1] - measured_val_loss, 5) if val_losses else None,
        "seconds": round(seconds, 1),
        "device": str(namespace["device"]),
    }


def main() -> None:
    import matplotlib

    matplotlib.use("Agg")
    variants, first, end = sys.argv[1].split(","), int(sys.argv[2]), int(sys.argv[3])
    for seed in range(first, end):
        for variant in variants:
            print(json.dumps(run(variant, seed)), flush=True)


if __name__ == "__main__":
    main()
