"""Stand-in assets: small, deterministic, format-identical look-alikes of the
real weights and data sets, for machines with no network (tests, CI, here).

What each stand-in looks like is course data: every asset the course
registers (`assignments/assets.toml`, see `autograder.assets.Dataset`) brings
its own generator. This module is the mechanism around them. The public part
of each comes from the asset's fixed seed, so every machine, a student's
included, makes the same files. The hidden part is drawn by the asset's
hidden module (beside the solutions) from a seed derived from a random secret
made on the first synth and kept in `hidden/` (root's alone, like the files
it makes): the shipped code and seeds cannot regenerate it. A re-synth reuses
the secret; deleting `hidden/` (or passing a new secret) makes a new hidden
set. The set id carries a hash of the generators' versions and a hash of the
secret (never the secret), so caches keyed on it tell sets apart.
"""

from __future__ import annotations

import hashlib
import os
import secrets
from collections.abc import Callable
from typing import Any

import numpy as np

from autograder.assets import AssetStore, Dataset, seal
from autograder.assets import write_manifest as _write_manifest
from autograder.environment import DISTRIBUTION, EXTRA_STANDINS
from autograder.errors import AssetError

SET_ID = "stand-in"  # the set id's prefix; the rest names the generators' versions and the secret
SECRET_FILE = "stand-in-secret"  # in hidden/: 32 random bytes
SECRET_BYTES = 32
# domain tags: each asset's seed and the set id are different hashes of the secret
_SEED_TAG = b"autograder stand-in hidden split\0"
_ID_TAG = b"autograder stand-in set id\0"


def synth(
    store: AssetStore,
    datasets: dict[str, Dataset],
    *,
    secret: bytes | None = None,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Write every registered asset's stand-in into `store`, in registration
    order, and return what their generators report. The hidden parts are
    drawn from `secret`, by default the store's own (made on first use)."""
    if secret is None:
        secret = store_secret(store)
    else:
        save_secret(store, secret)
    report: dict[str, Any] = {}
    for name, dataset in datasets.items():
        log(f"stand-in {name}: {dataset.title}")
        try:
            report.update(write_public_part(store, {name: dataset}))
            if dataset.holds_out and dataset.hidden is None:
                log(f"  {name}: its hidden module is not here (a course without solutions/): no hidden part made")
            write_hidden_part(store, {name: dataset}, secret)
        except ModuleNotFoundError as error:  # the generators' libraries are an optional extra
            package = (error.name or "?").partition(".")[0]
            raise AssetError(
                f"the stand-in generator of {name} needs the module {package!r}, which is not installed: "
                f'pip install "{DISTRIBUTION}[{EXTRA_STANDINS}]"'
            ) from error
    parts = {name: "stand-in" for name in datasets}
    _write_manifest(store, kind="stand-in", set_id=set_identity(secret, datasets), parts=parts, quality=report)
    seal(store)
    return report


def write_public_part(store: AssetStore, datasets: dict[str, Dataset]) -> dict[str, Any]:
    """The public files of `datasets`, the same on every machine; returns what
    their generators report (the weights' fit)."""
    report: dict[str, Any] = {}
    for dataset in datasets.values():
        folder = dataset.public_folder(store)
        folder.mkdir(parents=True, exist_ok=True)
        figures = dataset.module.synth(folder, store.public)
        if isinstance(figures, dict):
            report.update(figures)
    return report


def write_hidden_part(store: AssetStore, datasets: dict[str, Dataset], secret: bytes) -> None:
    """Each asset's held-out files, drawn from `secret` (a seed of its own per asset)."""
    if len(secret) != SECRET_BYTES:
        raise ValueError(f"a stand-in secret is {SECRET_BYTES} bytes, not {len(secret)}")
    for name, dataset in datasets.items():
        if dataset.hidden is None:
            continue
        digest = hashlib.sha256(_SEED_TAG + name.encode() + b"\0" + secret).digest()
        rng = np.random.default_rng(np.random.SeedSequence(int.from_bytes(digest, "big")))
        folder = dataset.hidden_folder(store)
        folder.mkdir(parents=True, exist_ok=True)
        store.hidden.chmod(0o700)  # made by this mkdir where no secret was kept first
        dataset.hidden.synth(folder, rng, dataset.module)


def set_identity(secret: bytes, datasets: dict[str, Dataset]) -> str:
    """The set id: a hash of the generators' names and versions, and a hash of
    the secret that names the hidden part without revealing it (a different
    hash from the ones seeding it)."""
    versions = ";".join(f"{name}={dataset.version}" for name, dataset in datasets.items())
    generators = hashlib.sha256(versions.encode()).hexdigest()[:6]
    return f"{SET_ID}-{generators}-{hashlib.sha256(_ID_TAG + secret).hexdigest()[:12]}"


def store_secret(store: AssetStore) -> bytes:
    """The secret in `store`'s hidden part, made there (root's alone, 0600 under
    0700) on first use. It never ships: each store makes its own."""
    path = store.hidden / SECRET_FILE
    try:
        secret = path.read_bytes()
    except FileNotFoundError:
        secret = b""
    if len(secret) == SECRET_BYTES:
        return secret
    secret = secrets.token_bytes(SECRET_BYTES)
    save_secret(store, secret)
    return secret


def save_secret(store: AssetStore, secret: bytes) -> None:
    """Keep `secret` as the store's, so a later synth makes the same hidden part."""
    if len(secret) != SECRET_BYTES:
        raise ValueError(f"a stand-in secret is {SECRET_BYTES} bytes, not {len(secret)}")
    store.hidden.mkdir(parents=True, exist_ok=True)
    store.hidden.chmod(0o700)
    path = store.hidden / SECRET_FILE
    temporary = path.with_name(f".{SECRET_FILE}.{os.getpid()}")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(secret)
    temporary.replace(path)
