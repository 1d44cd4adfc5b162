"""Recalibrate the thresholds in hidden_checks/test_hidden.py (run by hand, about 2 minutes).

Trains the notebook's network (Linear(2, 8) -> ReLU -> Linear(8, 2), Adam
lr=0.01, 500 full-batch epochs on the lesson's split) once per seed, and prints
the accuracy range on ten fresh make_circles(n_samples=2000, noise=0.03) sets,
the loss-drop ratio and the gap between the last recorded loss and the trained
model's. `--hidden 4`, `--shuffle` and `--epochs 0` measure the wrong variants.

    .venv/bin/python solutions/03_first_network/calibrate_threshold.py --seeds 200
"""

from __future__ import annotations

import argparse

import torch
from sklearn.datasets import make_circles
from sklearn.model_selection import train_test_split
from torch import nn


def lesson_split() -> tuple[torch.Tensor, torch.Tensor]:
    points, labels = make_circles(n_samples=1000, noise=0.03, random_state=42)
    X_train, _, y_train, _ = train_test_split(points, labels, test_size=0.2, random_state=42, stratify=labels)
    return torch.tensor(X_train, dtype=torch.float32), torch.tensor(y_train, dtype=torch.long)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=200)
    parser.add_argument("--hidden", type=int, default=8)
    parser.add_argument("--epochs", type=int, default=500)
    parser.add_argument("--shuffle", action="store_true", help="train on a fixed shuffle of the labels")
    options = parser.parse_args()
    torch.set_num_threads(1)
    X_train, y_train = lesson_split()
    fresh = []
    for k in range(10):
        points, labels = make_circles(n_samples=2000, noise=0.03, random_state=10_000 + k)
        fresh.append((torch.tensor(points, dtype=torch.float32), torch.tensor(labels)))
    for seed in range(options.seeds):
        torch.manual_seed(seed)
        model = nn.Sequential(nn.Linear(2, options.hidden), nn.ReLU(), nn.Linear(options.hidden, 2))
        optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
        loss_fn = nn.CrossEntropyLoss()
        targets = y_train[torch.randperm(len(y_train))] if options.shuffle else y_train
        losses = []
        for _ in range(options.epochs):
            optimizer.zero_grad()
            loss = loss_fn(model(X_train), targets)
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
        with torch.inference_mode():
            accuracies = [(model(x).argmax(dim=1) == y).float().mean().item() for x, y in fresh]
            final = loss_fn(model(X_train), targets).item()
        line = f"seed {seed:3d}  fresh accuracy {min(accuracies):.3f} to {max(accuracies):.3f}"
        if losses:
            tenth = losses[-len(losses) // 10 :]
            line += f"  drop {sum(tenth) / len(tenth) / losses[0]:.3f}  last-vs-model {abs(losses[-1] - final):.5f}"
        print(line, flush=True)


if __name__ == "__main__":
    main()
