"""Stand-in assets: small, deterministic, format-identical look-alikes of the
real weights and datasets, for machines with no network (tests, CI, here).

- Intel Image Classification: 150x150 JPEGs cut from real photographs that
  scikit-image ships (one photograph per scene class, tinted, cropped, flipped,
  jittered), so the classes are learnable and thresholds mean something.
- FashionMNIST: 28x28 grey silhouettes of the ten garment classes, drawn with
  jitter and noise, in the IDX files torchvision reads.
- Weights: the real architectures, randomly initialised, then made to behave
  like trained ones on these images: batch-norm statistics measured on them and
  the classifier's last layer fitted so each scene gets a clear top-1 ImageNet
  class (a random network gives a near-uniform softmax whose top-1 flips with
  any preprocessing change). Both documented preprocessing pipelines are used
  in the fit, so either gives the same winner.

The public part (weights, train splits, the public test splits) comes from a
fixed seed, so every machine, a student's included, makes the same files. The
hidden part (the Intel holdout, the rest of the FashionMNIST test split) is
drawn by the same code from a seed derived from a random secret made on the
first synth and kept in `hidden/` (root's alone, like the images it makes):
the shipped code and seed cannot regenerate it. A re-synth reuses the secret;
deleting `hidden/` (or passing a new secret) makes a new hidden set. The set
id carries a hash of the secret (never the secret), so caches keyed on it
tell hidden sets apart.
"""

from __future__ import annotations

import hashlib
import io
import os
import secrets
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from autograder.assets import FASHION, INTEL, MODELS, SCENES, AssetStore, seal, weights_enum, weights_file, write_idx
from autograder.assets import write_manifest as _write_manifest

SET_ID = "stand-in-2"  # change when the generated files change: batch caches key on it (with the secret's hash)
SEED = 20261128  # the public part's; the hidden part's seed comes from the store's secret
SECRET_FILE = "stand-in-secret"  # in hidden/: 32 random bytes
SECRET_BYTES = 32
# domain tags: the seed and the set id are different hashes of the secret
_SEED_TAG = b"autograder stand-in hidden split\0"
_ID_TAG = b"autograder stand-in set id\0"
COUNTS = {"seg_train": 60, "seg_test": 30, "holdout": 12}  # images per scene class
_FIT_PER_CLASS = 24  # seg_train images per class the weights are fitted on (time: efficientnet is slow on CPU)
FASHION_COUNTS = {"train": 2000, "test-public": 500, "test-hidden": 1000}
# each scene's top ImageNet classes, most likely first (a soft target for the fit)
SCENE_CLASSES = {
    "buildings": ("palace", "church", "library", "monastery", "castle"),
    "forest": ("maze", "worm fence", "lumbermill", "birdhouse", "hay"),
    "glacier": ("alp", "dogsled", "ski", "mountain tent", "bubble"),
    "mountain": ("valley", "volcano", "cliff", "promontory", "geyser"),
    "sea": ("seashore", "lakeside", "sandbar", "breakwater", "pier"),
    "street": ("streetcar", "traffic light", "cab", "street sign", "police van"),
}
_RANK_OFFSETS = (0.0, -1.5, -2.0, -2.4, -2.8)  # logits of a scene's classes below its top one
_OTHERS = -6.0  # logit of every class no scene maps to
_SHARPNESS = 1.5
# scene -> (scikit-image sample photograph, RGB tint)
_PHOTOS = {
    "buildings": ("brick", (1.0, 0.62, 0.45)),
    "forest": ("grass", (0.45, 0.95, 0.4)),
    "glacier": ("moon", (0.85, 0.95, 1.0)),
    "mountain": ("gravel", (0.75, 0.68, 0.6)),
    "sea": ("hubble_deep_field", (0.35, 0.55, 1.0)),
    "street": ("stereo_motorcycle", (1.0, 1.0, 1.0)),
}


def synth(store: AssetStore, *, secret: bytes | None = None, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Write the whole stand-in set into `store` and return what the fit achieved.
    The hidden part is drawn from `secret`, by default the store's own (made on
    first use)."""
    import torch

    if secret is None:
        secret = store_secret(store)
    else:
        save_secret(store, secret)
    log("stand-in Intel scenes (150x150 JPEGs from scikit-image photographs) and FashionMNIST (IDX files)")
    fit = write_public_part(store)
    held_out = write_hidden_part(store, secret)
    quality: dict[str, Any] = {}
    threads = torch.get_num_threads()
    torch.set_num_threads(max(1, min(4, threads)))
    try:
        for index, model in enumerate(MODELS):
            log(f"stand-in weights {model}")
            quality[model] = _write_weights(store, model, fit, held_out, seed=SEED + index)
    finally:
        torch.set_num_threads(threads)
    parts = {name: "stand-in" for name in (*MODELS, FASHION, INTEL)}
    _write_manifest(store, kind="stand-in", set_id=set_identity(secret), parts=parts, quality=quality)
    seal(store)
    return quality


def write_public_part(store: AssetStore) -> list[tuple[Any, int]]:
    """The public images, the same on every machine; returns those the weights are fitted on."""
    rng = np.random.default_rng(SEED)
    splits = {
        "seg_train": (store.public / INTEL / "seg_train" / "seg_train", _FIT_PER_CLASS),
        "seg_test": (store.public / INTEL / "seg_test" / "seg_test", 0),
    }
    fit = _write_scenes(splits, rng)
    public = store.public / FASHION / "FashionMNIST" / "raw"
    _write_fashion(public / "train", FASHION_COUNTS["train"], rng)
    _write_fashion(public / "t10k", FASHION_COUNTS["test-public"], rng)
    return fit


def write_hidden_part(store: AssetStore, secret: bytes) -> list[tuple[Any, int]]:
    """The grader's held-out images, drawn from `secret`; returns the Intel ones
    (the weights' fit is judged on them)."""
    if len(secret) != SECRET_BYTES:
        raise ValueError(f"a stand-in secret is {SECRET_BYTES} bytes, not {len(secret)}")
    digest = hashlib.sha256(_SEED_TAG + secret).digest()
    rng = np.random.default_rng(np.random.SeedSequence(int.from_bytes(digest, "big")))
    held_out = _write_scenes({"holdout": (store.hidden / INTEL / "holdout", COUNTS["holdout"])}, rng)
    _write_fashion(store.hidden / FASHION / "FashionMNIST" / "raw" / "t10k", FASHION_COUNTS["test-hidden"], rng)
    return held_out


def set_identity(secret: bytes) -> str:
    """The set id: the generator's version and a hash of the secret that names the
    hidden part without revealing it (a different hash from the one seeding it)."""
    return f"{SET_ID}-{hashlib.sha256(_ID_TAG + secret).hexdigest()[:12]}"


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


# --- scenes ---


def _photo(name: str) -> np.ndarray:
    import skimage.data

    loaded = getattr(skimage.data, name)()
    image = np.asarray(loaded[0] if isinstance(loaded, tuple) else loaded, dtype=np.float32)  # a stereo pair
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=2)
    return image[..., :3] / (255.0 if image.max() > 1 else 1.0)


def _scene_image(photo: np.ndarray, tint: tuple[float, float, float], rng: np.random.Generator) -> Any:
    from PIL import Image

    height, width = photo.shape[:2]
    side = int(min(height, width) * rng.uniform(0.55, 0.75))
    top, left = rng.integers(0, height - side + 1), rng.integers(0, width - side + 1)
    crop = photo[top : top + side, left : left + side]
    if rng.random() < 0.5:
        crop = crop[:, ::-1]
    jitter = np.asarray(tint) * rng.uniform(0.93, 1.07, size=3)
    crop = crop * jitter * rng.uniform(0.9, 1.1) + rng.normal(0, 0.02, size=crop.shape)
    pixels = (np.clip(crop, 0, 1) * 255).astype(np.uint8)
    return Image.fromarray(pixels).resize((150, 150), Image.Resampling.BILINEAR)


def _write_scenes(splits: dict[str, tuple[Path, int]], rng: np.random.Generator) -> list[tuple[Any, int]]:
    """Writes each split (name -> folder, images kept per class) afresh; returns
    the kept (image, label) pairs."""
    kept: list[tuple[Any, int]] = []
    number = 10_000
    for label, scene in enumerate(SCENES):
        name, tint = _PHOTOS[scene]
        photo = _photo(name)
        for split, (root, keep) in splits.items():
            folder = root / scene
            shutil.rmtree(folder, ignore_errors=True)  # no image of an earlier set stays beside the new ones
            folder.mkdir(parents=True)
            for position in range(COUNTS[split]):
                image = _scene_image(photo, tint, rng)
                number += int(rng.integers(1, 40))  # Kaggle's names are sparse numbers
                buffer = io.BytesIO()
                image.save(buffer, format="JPEG", quality=90)
                (folder / f"{number}.jpg").write_bytes(buffer.getvalue())
                if position < keep:
                    kept.append((image, label))
    return kept


# --- FashionMNIST ---


def _garment(label: int, rng: np.random.Generator) -> np.ndarray:
    """One 28x28 silhouette of class `label`, drawn at 56x56 and shrunk."""
    from PIL import Image, ImageDraw

    canvas = Image.new("L", (56, 56), 0)
    draw = ImageDraw.Draw(canvas)
    shade = int(rng.integers(120, 256))
    x0 = float(rng.uniform(-3, 3))
    y0 = float(rng.uniform(-3, 3))
    s = float(rng.uniform(0.85, 1.1))

    def box(a: float, b: float, c: float, d: float, fill: int = shade) -> None:
        draw.rectangle([28 + x0 + s * a, 28 + y0 + s * b, 28 + x0 + s * c, 28 + y0 + s * d], fill=fill)

    def poly(*points: tuple[float, float]) -> None:
        draw.polygon([(28 + x0 + s * x, 28 + y0 + s * y) for x, y in points], fill=shade)

    if label in (0, 2, 4, 6):  # tops: torso, then sleeves of some length
        box(-11, -16, 11, 18 if label == 4 else 16)
        sleeve = {0: 6, 2: 24, 4: 26, 6: 24}[label]
        poly((-11, -16), (-11 - 8, -16 + sleeve), (-11 - 3, -14 + sleeve), (-11, -6))
        poly((11, -16), (11 + 8, -16 + sleeve), (11 + 3, -14 + sleeve), (11, -6))
        if label == 4:
            box(-1, -14, 1, 18, fill=shade // 3)
        if label == 6:
            poly((-5, -16), (0, -9), (5, -16))
            for y in (-6, 0, 6, 12):
                box(-1, y, 1, y + 1, fill=shade // 2)
    elif label == 1:  # trousers
        box(-10, -18, 10, -10)
        poly((-10, -10), (-1, -10), (-3, 20), (-11, 20))
        poly((1, -10), (10, -10), (11, 20), (3, 20))
    elif label == 3:  # dress
        poly((-6, -18), (6, -18), (15, 20), (-15, 20))
    elif label == 5:  # sandal: straps and a sole
        box(-18, 8, 18, 11)
        for x in (-12, -2, 8):
            poly((x, 8), (x + 4, -2), (x + 7, -2), (x + 3, 8))
    elif label == 7:  # sneaker
        poly((-18, 2), (-4, -4), (6, 0), (18, 4), (18, 10), (-18, 10))
        box(-18, 10, 18, 12, fill=min(255, shade + 40))
    elif label == 8:  # bag with a handle
        box(-15, -6, 15, 18)
        draw.arc([28 + x0 - 9 * s, 28 + y0 - 20 * s, 28 + x0 + 9 * s, 28 + y0 + 4 * s], 180, 360, fill=shade, width=3)
    else:  # ankle boot
        poly((-10, -18), (2, -18), (4, 2), (18, 6), (18, 14), (-12, 14))
    angle = float(rng.uniform(-8, 8))
    small = canvas.rotate(angle, resample=Image.Resampling.BILINEAR).resize((28, 28), Image.Resampling.BILINEAR)
    pixels = np.asarray(small, dtype=np.float32)
    texture = rng.normal(0, 12, size=pixels.shape) * (pixels > 0)
    return np.clip(pixels + texture, 0, 255).astype(np.uint8)


def _write_fashion(prefix: Path, count: int, rng: np.random.Generator) -> None:
    """`count` balanced, shuffled garments as `<prefix>-images-idx3-ubyte` and `-labels-idx1-ubyte`."""
    labels = np.arange(count) % 10
    rng.shuffle(labels)
    images = np.stack([_garment(int(label), rng) for label in labels])
    write_idx(prefix.with_name(f"{prefix.name}-images-idx3-ubyte"), images)
    write_idx(prefix.with_name(f"{prefix.name}-labels-idx1-ubyte"), labels.astype(np.uint8))


# --- weights ---


def _pipelines(model: str) -> list[Any]:
    """The two documented preprocessing chains: `weights.transforms()` and the
    lesson's Resize((224, 224)) chain."""
    from torchvision.transforms import v2

    resize = v2.Compose(
        [
            v2.Resize((224, 224)),
            v2.ToImage(),
            v2.ToDtype(__import__("torch").float32, scale=True),
            v2.Normalize(mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225]),
        ]
    )
    return [weights_enum(model).transforms(), resize]


def _head(network: Any) -> tuple[Any, Any]:
    """(the last Linear layer, the module giving its input features)."""
    import torch

    if hasattr(network, "fc"):
        last = network.fc
        network.fc = torch.nn.Identity()
        return last, network
    last = network.classifier[-1]
    network.classifier[-1] = torch.nn.Identity()
    return last, network


def _write_weights(
    store: AssetStore, model: str, train: list[tuple[Any, int]], held_out: list[tuple[Any, int]], *, seed: int
) -> dict[str, float]:
    """Fitted on public images only, so the weights are the same for every secret."""
    import torch
    import torchvision.models

    torch.manual_seed(seed)
    network = getattr(torchvision.models, model)(weights=None)
    categories = weights_enum(model).meta["categories"]
    pipelines = _pipelines(model)

    def batch(images: list[tuple[Any, int]], pipeline: Any) -> Any:
        return torch.stack([pipeline(image) for image, _ in images])

    with torch.no_grad():
        # batch-norm statistics measured on the stand-in images, as training would leave them
        for layer in network.modules():
            if isinstance(layer, torch.nn.modules.batchnorm._BatchNorm):
                layer.reset_running_stats()
                layer.momentum = None
        network.train()
        for start in range(0, len(train), 60):
            network(batch(train[start : start + 60], pipelines[0]))
        network.eval()
        last, body = _head(network)
        features = torch.cat([_features(body, batch, train, p) for p in pipelines])
    labels = torch.tensor([label for _, label in train] * len(pipelines))
    _fit(last, features, labels, categories)
    with torch.no_grad():
        quality = _quality(body, last, batch, held_out, pipelines, categories)
    _restore_head(network, last)
    for layer in network.modules():
        if isinstance(layer, torch.nn.modules.batchnorm._BatchNorm):
            layer.momentum = 0.1  # the default; saved state holds only tensors anyway
    store.checkpoints.mkdir(parents=True, exist_ok=True)
    torch.save(network.state_dict(), store.checkpoints / weights_file(model))
    return quality


def _features(body: Any, batch: Callable[..., Any], images: list[tuple[Any, int]], pipeline: Any) -> Any:
    import torch

    return torch.cat([body(batch(images[i : i + 60], pipeline)) for i in range(0, len(images), 60)])


def _fit(last: Any, features: Any, labels: Any, categories: list[str]) -> None:
    """A six-scene logistic regression on the features, spread over ImageNet's
    classes: each scene's five classes get its score minus a rank offset, the
    other classes a low constant. Top-1 follows the regression (which
    generalises to unseen images), top-5 stays on the scene's classes."""
    import torch
    from sklearn.linear_model import LogisticRegression

    mean, scale = features.mean(0), features.std(0) + 1e-6
    regression = LogisticRegression(C=0.1, max_iter=3000).fit(((features - mean) / scale).numpy(), labels.numpy())
    scene_weight = torch.tensor(regression.coef_, dtype=torch.float32) / scale
    scene_bias = torch.tensor(regression.intercept_, dtype=torch.float32) - scene_weight @ mean
    with torch.no_grad():
        last.weight.zero_()
        last.bias.fill_(_OTHERS)
        for scene, names in SCENE_CLASSES.items():
            row = SCENES.index(scene)
            for offset, name in zip(_RANK_OFFSETS, names, strict=True):
                index = categories.index(name)
                last.weight[index] = _SHARPNESS * scene_weight[row]
                last.bias[index] = _SHARPNESS * scene_bias[row] + offset


def _quality(
    body: Any,
    last: Any,
    batch: Callable[..., Any],
    images: list[tuple[Any, int]],
    pipelines: list[Any],
    categories: list[str],
) -> dict[str, float]:
    """On held-out images: how often the intended class wins under both pipelines,
    the smallest top-1 margin, and how often the two pipelines agree."""
    import torch

    expected = torch.tensor([categories.index(SCENE_CLASSES[SCENES[label]][0]) for _, label in images])
    runs = [torch.softmax(last(_features(body, batch, images, p)), dim=1) for p in pipelines]
    top = [r.topk(2, dim=1) for r in runs]
    return {
        "intended_top1": round(min(float((t.indices[:, 0] == expected).float().mean()) for t in top), 3),
        "pipelines_agree": round(float((top[0].indices[:, 0] == top[1].indices[:, 0]).float().mean()), 3),
        "min_margin": round(min(float((t.values[:, 0] - t.values[:, 1]).min()) for t in top), 3),
        "mean_top1_probability": round(float(runs[0].max(dim=1).values.mean()), 3),
    }


def _restore_head(network: Any, last: Any) -> None:
    if hasattr(network, "fc"):
        network.fc = last
    else:
        network.classifier[-1] = last
