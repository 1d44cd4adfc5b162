"""The held-out part of the digits' test part, for hidden checks (`held_out`).

Real files: the second half of the test part moves to the hidden folder
(scikit-learn ships every real picture, so this proves less than stand-ins
do: SECURITY.md, "What held-out accuracy proves"). Stand-in: drawn like the
public digits, from the store's secret.
"""

from __future__ import annotations

from pathlib import Path
from types import ModuleType
from typing import Any

HELD_OUT_SHARE = 0.5  # of the real test part
HELD_OUT = "held_out.npz"  # in hidden/digits/, the layout of the public parts


def synth(folder: Path, rng: Any, public: ModuleType) -> None:
    public.write_part(folder / HELD_OUT, *public.draw_digits(public.COUNTS["test-hidden"], rng))


def split(public_folder: Path, hidden_folder: Path) -> None:
    images, labels = _read(public_folder / "test.npz", "the digits' test part")
    cut = int(len(labels) * (1 - HELD_OUT_SHARE))
    _write(hidden_folder / HELD_OUT, images[cut:], labels[cut:])
    _write(public_folder / "test.npz", images[:cut], labels[:cut])


def status(folder: Path) -> list[tuple[str, int, str]]:
    return [("digits test part", int((folder / HELD_OUT).is_file()), ".npz files")]


def held_out(folder: Path) -> tuple[Any, Any]:
    """(uint8 images N x 8 x 8 with pixels 0 to 16, labels N) of the held-out part."""
    return _read(folder / HELD_OUT, "the hidden digits part")


# The public module's layout (`images`, `labels`), read and written here: split
# and the checks' readers are not handed the public module.


def _read(path: Path, what: str) -> tuple[Any, Any]:
    import numpy as np

    from autograder.errors import AssetError

    try:
        with np.load(path) as part:
            return part["images"], part["labels"]
    except (OSError, KeyError, ValueError) as error:
        raise AssetError(f"{what} is missing or unreadable: {path}") from error


def _write(path: Path, images: Any, labels: Any) -> None:
    import numpy as np

    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as handle:
        np.savez_compressed(handle, images=images, labels=labels)
