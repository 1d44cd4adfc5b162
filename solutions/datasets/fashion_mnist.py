"""The held-out part of FashionMNIST's test split, for hidden checks (`held_out`).

Real files: the second half of the test split moves to the hidden folder
(FashionMNIST's test split ships with torchvision, so this proves less than
stand-ins do: SECURITY.md, "What held-out accuracy proves"). Stand-in: drawn
like the public garments, from the store's secret.
"""

from __future__ import annotations

from pathlib import Path
from types import ModuleType
from typing import Any

HELD_OUT_SHARE = 0.5  # of the real test split


def synth(folder: Path, rng: Any, public: ModuleType) -> None:
    public.write_garments(public.raw(folder) / "t10k", public.COUNTS["test-hidden"], rng)


def split(public_folder: Path, hidden_folder: Path) -> None:
    from autograder.assets import read_idx, write_idx

    source, target = public_folder / "FashionMNIST" / "raw", hidden_folder / "FashionMNIST" / "raw"
    images, labels = read_idx(source / "t10k-images-idx3-ubyte"), read_idx(source / "t10k-labels-idx1-ubyte")
    cut = int(len(labels) * (1 - HELD_OUT_SHARE))
    write_idx(target / "t10k-images-idx3-ubyte", images[cut:])
    write_idx(target / "t10k-labels-idx1-ubyte", labels[cut:])
    write_idx(source / "t10k-images-idx3-ubyte", images[:cut])
    write_idx(source / "t10k-labels-idx1-ubyte", labels[:cut])


def status(folder: Path) -> list[tuple[str, int, str]]:
    raw = folder / "FashionMNIST" / "raw"
    present = sum(1 for name in ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte") if (raw / name).is_file())
    return [("fashion-mnist test part", present, "IDX files")]


def held_out(folder: Path) -> tuple[Any, Any]:
    """(uint8 images N x 28 x 28, labels N) of the held-out test part."""
    from autograder.assets import read_idx
    from autograder.errors import AssetError

    raw = folder / "FashionMNIST" / "raw"
    try:
        return read_idx(raw / "t10k-images-idx3-ubyte"), read_idx(raw / "t10k-labels-idx1-ubyte")
    except OSError as error:
        raise AssetError(f"the hidden FashionMNIST test part is missing in {raw}") from error
