"""Public checks for 04_cnn_inference: the notebook's own sample pictures.

Students run these with `autograder check`; grading runs them too, together
with hidden checks on pictures the notebook never sees. Pictures travel into
the kernel as uint8 arrays and become PIL images there; every expected answer
is computed in this process by a trusted run of the same pretrained weights.
"""

import functools
import numbers

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision.transforms import v2

from autograder import reference
from autograder.checkkit import ModuleSnapshot

question, points = pytest.mark.question, pytest.mark.points

MODEL = "resnet18"
SCENES_ASSET = "intel-image-classification"  # registered in assignments/assets.toml
PARAMETERS = 11_689_512
FIGURE = "outputs/top5.png"
IMAGENET_MEAN, IMAGENET_STD = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]

PREPROCESS = """
from PIL import Image as _Image
result = [preprocess(_Image.fromarray(_a)) for _a in inputs["images"]]
"""

PREDICT = """
from PIL import Image as _Image
result = [predict_topk(_Image.fromarray(_a), k=inputs["k"]) for _a in inputs["images"]]
"""


def sample_pictures(scenes):
    """The notebook's samples: the first picture (by file name) of each scene's test folder."""
    folder = scenes.public / "seg_test" / "seg_test"
    pictures = []
    for scene in scenes.module.SCENES:
        with Image.open(sorted((folder / scene).glob("*.jpg"))[0]) as image:
            pictures.append(image.convert("RGB"))
    return pictures


def lesson_pipeline():
    return v2.Compose(
        [
            v2.Resize((224, 224)),
            v2.ToImage(),
            v2.ToDtype(torch.float32, scale=True),
            v2.Normalize(mean=IMAGENET_MEAN, std=IMAGENET_STD),
        ]
    )


@functools.lru_cache(maxsize=2)
def sample_winners(assets, scenes, set_id, predictions):
    """The reference top class of each sample under each documented pipeline
    (either is accepted); `predictions`: the grader's store of trusted outputs."""
    del set_id  # part of the cache key only
    pictures, labels = sample_pictures(scenes), reference.categories(MODEL)
    runs = [
        predictions.outputs(assets, MODEL, pictures, preprocessing=p).argmax(dim=1)
        for p in (lesson_pipeline(), reference.preprocessing(MODEL))
    ]
    return [{labels[int(first)], labels[int(second)]} for first, second in zip(*runs, strict=True)]


def is_probability_like(value):
    return (isinstance(value, numbers.Real) and not isinstance(value, bool)) or (
        isinstance(value, torch.Tensor) and value.numel() == 1
    )


@question("q1")
@points(1)
def test_model_is_resnet18(student):
    model = student.fetch("model", module_state=False)
    assert isinstance(model, ModuleSnapshot), "`model` should be the ResNet18 network (an `nn.Module`)"
    assert model.type.endswith(".ResNet"), f"`model` should be a torchvision ResNet, not {model.type}"
    shapes = {name: shape for name, shape, _ in model.parameters}
    assert shapes.get("fc.weight") == (1000, 512), "`model.fc` should map 512 features to the 1000 ImageNet classes"
    assert model.parameter_count == PARAMETERS, f"ResNet18 has {PARAMETERS:,} parameters, not {model.parameter_count:,}"


@question("q2")
@points(1)
def test_preprocess_shape_and_dtype(student, data):
    picture = np.asarray(sample_pictures(data[SCENES_ASSET])[0])
    (tensor,) = student.probe(PREPROCESS, images=[picture])
    assert isinstance(tensor, torch.Tensor), "`preprocess(image)` should return a tensor"
    assert tuple(tensor.shape) == (3, 224, 224), (
        f"`preprocess(image)` should have shape (3, 224, 224), not {tuple(tensor.shape)}"
    )
    assert tensor.dtype == torch.float32, f"`preprocess(image)` should be float32, not {tensor.dtype}"


@question("q3")
@points(1)
def test_imagenet_classes(student):
    classes = student.fetch("imagenet_classes")
    assert isinstance(classes, list) and all(isinstance(c, str) for c in classes), (
        "`imagenet_classes` should be a list of class names"
    )
    assert len(classes) == 1000, f"`imagenet_classes` should name 1000 classes, not {len(classes)}"
    assert classes == reference.categories(MODEL), "`imagenet_classes` should be `weights.meta['categories']`, in order"


@question("q4")
@points(1)
def test_predict_topk_on_the_sample_pictures(student, assets, data, predictions):
    scenes = data[SCENES_ASSET]
    pictures = [np.asarray(p) for p in sample_pictures(scenes)]
    answered = student.probe(PREDICT, images=pictures, k=5)
    winners_of = sample_winners(assets, scenes, assets.set_id, predictions)
    for scene, pairs, winners in zip(scenes.module.SCENES, answered, winners_of, strict=True):
        assert isinstance(pairs, (list, tuple)) and len(pairs) == 5, "`predict_topk(image)` should return 5 pairs"
        assert all(
            isinstance(pair, (list, tuple))
            and len(pair) == 2
            and isinstance(pair[0], str)
            and is_probability_like(pair[1])
            for pair in pairs
        ), "`predict_topk` should return (label, probability) pairs"
        best = max(pairs, key=lambda pair: float(pair[1]))[0]
        assert best in winners, (
            f"`predict_topk` names `{best}` as the top class of the {scene} sample; the pretrained ResNet18 does not"
        )


@question("q5")
@points(0.5)
def test_figure_shows_a_picture_beside_five_bars(student, workdir):
    _, chart = reference.picture_beside_chart(reference.figure_record(student, workdir, FIGURE), FIGURE)
    count = len(chart.bars)
    assert count == 5, f"the bar chart in `{FIGURE}` has {count} bars: show the top 5 predictions of the picture"
