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
"""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any

import numpy as np

from autograder.assets import FASHION, INTEL, MODELS, SCENES, AssetStore, seal, weights_enum, weights_file, write_idx
from autograder.assets import write_manifest as _write_manifest

SET_ID = "stand-in-1"  # change when the generated files change: batch caches key on it
SEED = 20261128
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


def synth(store: AssetStore, *, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Write the whole stand-in set into `store` and return what the fit achieved."""
    import torch

    rng = np.random.default_rng(SEED)
    log("stand-in Intel scenes (150x150 JPEGs from scikit-image photographs)")
    scenes = _write_scenes(store, rng)
    log("stand-in FashionMNIST (IDX files)")
    _write_fashion(store, rng)
    quality: dict[str, Any] = {}
    threads = torch.get_num_threads()
    torch.set_num_threads(max(1, min(4, threads)))
    try:
        for index, model in enumerate(MODELS):
            log(f"stand-in weights {model}")
            quality[model] = _write_weights(store, model, scenes, seed=SEED + index)
    finally:
        torch.set_num_threads(threads)
    parts = {name: "stand-in" for name in (*MODELS, FASHION, INTEL)}
    _write_manifest(store, kind="stand-in", set_id=SET_ID, parts=parts, quality=quality)
    seal(store)
    return quality


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


def _write_scenes(store: AssetStore, rng: np.random.Generator) -> dict[str, list[tuple[Any, int]]]:
    """Writes every split; returns the images the weights are fitted and judged on."""
    folders = {
        "seg_train": store.public / INTEL / "seg_train" / "seg_train",
        "seg_test": store.public / INTEL / "seg_test" / "seg_test",
        "holdout": store.hidden / INTEL / "holdout",
    }
    kept: dict[str, list[tuple[Any, int]]] = {"seg_train": [], "holdout": []}
    number = 10_000
    for label, scene in enumerate(SCENES):
        name, tint = _PHOTOS[scene]
        photo = _photo(name)
        for split, count in COUNTS.items():
            folder = folders[split] / scene
            folder.mkdir(parents=True, exist_ok=True)
            for position in range(count):
                image = _scene_image(photo, tint, rng)
                number += int(rng.integers(1, 40))  # Kaggle's names are sparse numbers
                buffer = io.BytesIO()
                image.save(buffer, format="JPEG", quality=90)
                (folder / f"{number}.jpg").write_bytes(buffer.getvalue())
                if split == "holdout" or (split == "seg_train" and position < _FIT_PER_CLASS):
                    kept[split].append((image, label))
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


def _write_fashion(store: AssetStore, rng: np.random.Generator) -> None:
    def split(count: int) -> tuple[np.ndarray, np.ndarray]:
        labels = np.arange(count) % 10
        rng.shuffle(labels)
        return np.stack([_garment(int(label), rng) for label in labels]), labels.astype(np.uint8)

    public = store.public / FASHION / "FashionMNIST" / "raw"
    hidden = store.hidden / FASHION / "FashionMNIST" / "raw"
    for folder, prefix, count in (
        (public, "train", FASHION_COUNTS["train"]),
        (public, "t10k", FASHION_COUNTS["test-public"]),
        (hidden, "t10k", FASHION_COUNTS["test-hidden"]),
    ):
        images, labels = split(count)
        write_idx(folder / f"{prefix}-images-idx3-ubyte", images)
        write_idx(folder / f"{prefix}-labels-idx1-ubyte", labels)


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
    store: AssetStore, model: str, scenes: dict[str, list[tuple[Any, int]]], *, seed: int
) -> dict[str, float]:
    import torch
    import torchvision.models

    torch.manual_seed(seed)
    network = getattr(torchvision.models, model)(weights=None)
    categories = weights_enum(model).meta["categories"]
    pipelines = _pipelines(model)

    def batch(images: list[tuple[Any, int]], pipeline: Any) -> Any:
        return torch.stack([pipeline(image) for image, _ in images])

    train = scenes["seg_train"]
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
        quality = _quality(body, last, batch, scenes["holdout"], pipelines, categories)
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
