"""The pretrained ImageNet weights the notebooks load with torchvision's
weights enums (`resnet18(weights=ResNet18_Weights.DEFAULT)`), as files in
`TORCH_HOME/hub/checkpoints/` under the names torchvision looks for.

Real files: downloaded by torchvision's own code (`autograder assets fetch`,
with a network). Stand-in: the real architectures, randomly initialised, then
made to behave like trained ones on the course's scene pictures (the
intel-image-classification asset, registered before this one): batch-norm
statistics measured on them and the classifier's last layer fitted so each
scene gets a clear top-1 ImageNet class (a random network gives a
near-uniform softmax whose top-1 flips with any preprocessing change). Both
documented preprocessing pipelines are used in the fit, so either gives the
same winner. Nothing is held out.

A course asset module: see `autograder.assets.Dataset` for what it defines.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

TITLE = "ImageNet weights of resnet18, mobilenet_v3_small and efficientnet_b0"
VERSION = "2"
SEED = 20261128
MODELS = ("resnet18", "mobilenet_v3_small", "efficientnet_b0")
SCENES_ASSET = "intel-image-classification"
FIT_PER_CLASS = 24  # seg_train pictures per scene the weights are fitted on (time: efficientnet is slow on CPU)
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


def checkpoints(folder: Path) -> Path:
    return folder / "hub" / "checkpoints"


def synth(folder: Path, assets: Path) -> dict[str, Any]:
    """Fitted on public pictures only (the scenes' seg_train), judged on their seg_test."""
    import torch

    scenes = assets / SCENES_ASSET
    train = _pictures(scenes / "seg_train" / "seg_train", FIT_PER_CLASS)
    judged = _pictures(scenes / "seg_test" / "seg_test", None)
    quality: dict[str, Any] = {}
    threads = torch.get_num_threads()
    torch.set_num_threads(max(1, min(4, threads)))
    try:
        for index, model in enumerate(MODELS):
            quality[model] = _write_weights(checkpoints(folder), model, train, judged, seed=SEED + index)
    finally:
        torch.set_num_threads(threads)
    return quality


def fetch(folder: Path, source: Path | None, download: bool) -> str | None:
    if not download:
        return None
    from autograder.assets import environment, weights_enum, weights_file
    from autograder.errors import AssetError

    checkpoints(folder).mkdir(parents=True, exist_ok=True)
    with environment(TORCH_HOME=str(folder)):
        for model in MODELS:
            try:
                weights_enum(model).get_state_dict(progress=False)
            except OSError as error:
                raise AssetError(f"cannot download the {model} weights (no network?): {error}") from error
    return ", ".join(weights_file(model) for model in MODELS)


def status(folder: Path) -> list[tuple[str, int, str]]:
    from autograder.assets import weights_file

    rows = []
    for model in MODELS:
        path = checkpoints(folder) / weights_file(model)
        size = f" ({path.stat().st_size / 1e6:.1f} MB)" if path.is_file() else ""
        rows.append((f"weights {model}", int(path.is_file()), f"file{size}"))
    return rows


def _pictures(split: Path, per_class: int | None) -> list[tuple[Any, int]]:
    """(PIL image, scene index) pairs, the first `per_class` of each scene by name."""
    from PIL import Image

    pictures = []
    for label, scene in enumerate(SCENE_CLASSES):
        files = sorted((split / scene).glob("*.jpg"))
        if not files:
            from autograder.errors import AssetError

            raise AssetError(f"no pictures of `{scene}` in {split}: the scenes' stand-in comes first")
        for path in files[:per_class]:
            with Image.open(path) as image:
                pictures.append((image.convert("RGB"), label))
    return pictures


def _pipelines(model: str) -> list[Any]:
    """The two documented preprocessing chains: `weights.transforms()` and the
    lesson's Resize((224, 224)) chain."""
    import torch
    from torchvision.transforms import v2

    from autograder.assets import weights_enum

    resize = v2.Compose(
        [
            v2.Resize((224, 224)),
            v2.ToImage(),
            v2.ToDtype(torch.float32, scale=True),
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


def _restore_head(network: Any, last: Any) -> None:
    if hasattr(network, "fc"):
        network.fc = last
    else:
        network.classifier[-1] = last


def _write_weights(
    target: Path, model: str, train: list[tuple[Any, int]], judged: list[tuple[Any, int]], *, seed: int
) -> dict[str, float]:
    import torch
    import torchvision.models

    from autograder.assets import weights_enum, weights_file

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
        quality = _quality(body, last, batch, judged, pipelines, categories)
    _restore_head(network, last)
    for layer in network.modules():
        if isinstance(layer, torch.nn.modules.batchnorm._BatchNorm):
            layer.momentum = 0.1  # the default; saved state holds only tensors anyway
    target.mkdir(parents=True, exist_ok=True)
    torch.save(network.state_dict(), target / weights_file(model))
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
        for row, names in enumerate(SCENE_CLASSES.values()):
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
    """On pictures the fit never saw: how often the intended class wins under
    both pipelines, the smallest top-1 margin, and how often the two pipelines agree."""
    import torch

    intended = [names[0] for names in SCENE_CLASSES.values()]
    expected = torch.tensor([categories.index(intended[label]) for _, label in images])
    runs = [torch.softmax(last(_features(body, batch, images, p)), dim=1) for p in pipelines]
    top = [r.topk(2, dim=1) for r in runs]
    return {
        "intended_top1": round(min(float((t.indices[:, 0] == expected).float().mean()) for t in top), 3),
        "pipelines_agree": round(float((top[0].indices[:, 0] == top[1].indices[:, 0]).float().mean()), 3),
        "min_margin": round(min(float((t.values[:, 0] - t.values[:, 1]).min()) for t in top), 3),
        "mean_top1_probability": round(float(runs[0].max(dim=1).values.mean()), 3),
    }
