"""Hidden checks for 04_cnn_inference: pictures the notebook never sees.

The pictures come from the grader's hidden part of the scene set (never
mounted in the student's kernel). They travel in as uint8 arrays and become
PIL images there; the student's `preprocess` and `predict_topk` answer, and
everything they are compared with is computed in this process by the trusted
pretrained weights (`autograder.reference`), on the CPU:

* Top-1: only pictures whose reference top class is clear are used (the same
  winner under both documented pipelines, by at least MIN_MARGIN of
  probability under each), so a right pipeline of either kind agrees on every
  one, on a CPU or a GPU, and with the stand-in or the real weights.
* Probabilities: the reference network is run on the very tensors the
  student's `preprocess` gives, and its softmax compared with what
  `predict_topk` returned, within PROBABILITY_TOLERANCE (a GPU's TF32
  convolutions move probabilities by far less). This tells a softmax from
  logits, a softmax over the wrong dimension, a model left in training mode
  and answers that do not come from the picture.
* Preprocessing: within PIXEL_TOLERANCE (mean absolute difference, in
  normalised units) of either documented pipeline. Measured on the stand-in
  pictures: a right pipeline of the other kind (torchvision's v1 transforms,
  resizing after ToImage) is within 0.006 of one of them; the two pipelines
  differ from each other by 0.65 (crop against squash); mean and std 0.5
  differ by 0.88 or more, no normalisation by 1.8.
* The top-5 figure: the bars beside the picture are the reference's top 5 for
  the data-set file the picture was drawn from, within PROBABILITY_TOLERANCE
  (`autograder.reference.chart_is_top_k_of_picture`).
"""

import functools
import itertools
import numbers

import numpy as np
import pytest
import torch
from torchvision.transforms import v2

from autograder import reference
from autograder.checkkit import ModuleSnapshot

question, points = pytest.mark.question, pytest.mark.points

MODEL = "resnet18"
SCENES_ASSET = "intel-image-classification"  # registered in assignments/assets.toml
CANDIDATES_PER_SCENE = 4  # held-out pictures drawn per scene, before filtering on the margin
PICTURES_PER_SCENE = 2  # kept per scene
MIN_MARGIN = 0.15  # reference top-1 minus top-2 probability, under both pipelines
MIN_PICTURES = 6
PIXEL_TOLERANCE = 0.05
PROBABILITY_TOLERANCE = 0.02
IMAGENET_MEAN, IMAGENET_STD = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]
EXPECTED_DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
FIGURE = "outputs/top5.png"

PREPROCESS = """
from PIL import Image as _Image
result = [preprocess(_Image.fromarray(_a)) for _a in inputs["images"]]
"""

PREDICT = """
from PIL import Image as _Image
result = [predict_topk(_Image.fromarray(_a), k=inputs["k"]) for _a in inputs["images"]]
"""


def pipelines():
    """The two documented ways: the lesson's Resize((224, 224)) chain and `weights.transforms()`."""
    lesson = v2.Compose(
        [
            v2.Resize((224, 224)),
            v2.ToImage(),
            v2.ToDtype(torch.float32, scale=True),
            v2.Normalize(mean=IMAGENET_MEAN, std=IMAGENET_STD),
        ]
    )
    return [lesson, reference.preprocessing(MODEL)]


@functools.lru_cache(maxsize=2)
def unseen_pictures(assets, scenes, set_id, predictions):
    """(uint8 arrays, reference top-1 labels) of held-out pictures with a clear
    winner; `predictions`: the worker's store of trusted outputs."""
    del set_id  # part of the cache key only
    drawn = scenes.hidden_module.held_out(scenes.hidden, tuple(scenes.module.SCENES), CANDIDATES_PER_SCENE, seed=0)
    labels, pictures = reference.categories(MODEL), [image for image, _ in drawn]
    runs = [predictions.probabilities(assets, MODEL, pictures, preprocessing=p) for p in pipelines()]
    tops = [run.topk(2, dim=1) for run in runs]
    kept, per_scene = [], {}
    for row, (image, scene) in enumerate(drawn):
        winners = {int(top.indices[row, 0]) for top in tops}
        clear = all(float(top.values[row, 0] - top.values[row, 1]) >= MIN_MARGIN for top in tops)
        if len(winners) == 1 and clear and per_scene.get(scene, 0) < PICTURES_PER_SCENE:
            per_scene[scene] = per_scene.get(scene, 0) + 1
            kept.append((np.asarray(image), labels[winners.pop()]))
    if len(kept) < MIN_PICTURES:
        raise RuntimeError(f"only {len(kept)} held-out pictures have a clear reference winner; check the assets")
    return [array for array, _ in kept], [label for _, label in kept]


# One grading's answers, shared by its checks: each picture goes through the
# student's code once per grading (pytest's stash lives as long as one run).
ANSWERS = pytest.StashKey[dict]()


@pytest.fixture
def answers(request, fresh_seed):
    """This grading's store of the student's answers; `k` is drawn once per grading (2 to 5)."""
    return request.config.stash.setdefault(ANSWERS, {"k": 2 + fresh_seed % 4})


def remembered(answers, key, compute):
    if key not in answers:
        answers[key] = compute()  # a failed assertion stores nothing and fails each check that asks
    return answers[key]


def is_number(value):
    return (isinstance(value, numbers.Real) and not isinstance(value, bool)) or (
        isinstance(value, torch.Tensor) and value.numel() == 1
    )


def predictions_of(student, answers, arrays):
    """The student's answers as lists of (label, float) pairs, their form checked."""

    def ask():
        checked = []
        for pairs in student.probe(PREDICT, images=arrays, k=answers["k"]):
            assert isinstance(pairs, (list, tuple)) and pairs, "`predict_topk` should return a list of pairs"
            assert all(
                isinstance(pair, (list, tuple)) and len(pair) == 2 and isinstance(pair[0], str) and is_number(pair[1])
                for pair in pairs
            ), "`predict_topk` should return (label, probability) pairs"
            checked.append([(label, float(probability)) for label, probability in pairs])
        return checked

    return remembered(answers, "predictions", ask)


def preprocessed(student, answers, arrays):
    def ask():
        tensors = student.probe(PREPROCESS, images=arrays)
        for tensor in tensors:
            assert isinstance(tensor, torch.Tensor), "`preprocess(image)` should return a tensor"
            assert tuple(tensor.shape) == (3, 224, 224), "`preprocess(image)` should have shape (3, 224, 224)"
            assert tensor.dtype == torch.float32, "`preprocess(image)` should be float32"
        return [tensor.detach().cpu() for tensor in tensors]

    return remembered(answers, "tensors", ask)


def model_snapshot(student, *, with_weights=False):
    model = student.fetch("model", module_state=with_weights)
    assert isinstance(model, ModuleSnapshot), "`model` should be the ResNet18 network (an `nn.Module`)"
    return model


@question("q1")
@points(1)
def test_model_in_eval_mode(student):
    assert not model_snapshot(student).training, "`model` should be in evaluation mode (`model.eval()`)"


@question("q1")
@points(1)
def test_model_on_device(student):
    model = model_snapshot(student)
    assert model.devices and all(torch.device(d).type == EXPECTED_DEVICE for d in model.devices), (
        f"`model` should be on `device` ({EXPECTED_DEVICE})"
    )


@question("q1")
@points(1)
def test_model_has_the_pretrained_weights(student, assets):
    model = model_snapshot(student, with_weights=True)
    for name, expected in reference.load_model(assets, MODEL).named_parameters():
        actual = model.state.get(name)
        same = isinstance(actual, torch.Tensor) and actual.shape == expected.shape
        assert same and torch.allclose(actual.detach().cpu().float(), expected.detach(), rtol=0, atol=1e-6), (
            "`model` does not hold the pretrained ImageNet weights (`resnet18(weights=ResNet18_Weights.DEFAULT)`)"
        )


@question("q2")
@points(2)
def test_preprocess_matches_a_documented_pipeline(student, assets, data, answers, predictions):
    arrays, _ = unseen_pictures(assets, data[SCENES_ASSET], assets.set_id, predictions)
    tensors = preprocessed(student, answers, arrays)
    from PIL import Image

    for array, tensor in zip(arrays, tensors, strict=True):
        image = Image.fromarray(array)
        distance = min(float((tensor - p(image)).abs().mean()) for p in pipelines())
        assert distance <= PIXEL_TOLERANCE, (
            "`preprocess` does not give what the ImageNet weights expect "
            "(check the resize to 224, the scaling to [0, 1], and Normalize's mean and std)"
        )


@question("q4")
@points(2)
def test_top_class_on_unseen_pictures(student, assets, data, answers, predictions):
    arrays, expected = unseen_pictures(assets, data[SCENES_ASSET], assets.set_id, predictions)
    answered = predictions_of(student, answers, arrays)
    best = [max(pairs, key=lambda pair: pair[1])[0] for pairs in answered]
    wrong = sum(b != e for b, e in zip(best, expected, strict=True))
    assert wrong == 0, f"`predict_topk` names the wrong top class for {wrong} of {len(arrays)} pictures it never saw"


@question("q4")
@points(2)
def test_probabilities_are_the_softmax_of_the_model(student, assets, data, answers, predictions):
    arrays, _ = unseen_pictures(assets, data[SCENES_ASSET], assets.set_id, predictions)
    answered = predictions_of(student, answers, arrays)
    inputs = preprocessed(student, answers, arrays)
    index = {label: i for i, label in enumerate(reference.categories(MODEL))}
    expected = predictions.probabilities(assets, MODEL, inputs, preprocessing=None)
    for pairs, row in zip(answered, expected, strict=True):
        values = [p for _, p in pairs]
        assert all(0.0 <= p <= 1.0 for p in values), (
            "`predict_topk` should give probabilities in [0, 1] (a softmax of the logits), not raw logits"
        )
        assert sum(values) <= 1.0 + 1e-3, (
            "the probabilities of one picture should add up to at most 1 (softmax over the classes)"
        )
        assert all(label in index for label, _ in pairs), "`predict_topk` should use the names in `imagenet_classes`"
        close = all(abs(p - float(row[index[label]])) <= PROBABILITY_TOLERANCE for label, p in pairs)
        assert close, "`predict_topk`'s probabilities are not the softmax of the model's output for that picture"
        kth = float(row.topk(len(pairs)).values[-1])
        assert all(float(row[index[label]]) >= kth - PROBABILITY_TOLERANCE for label, _ in pairs), (
            "`predict_topk` should return the k most probable classes"
        )


@question("q4")
@points(1)
def test_k_pairs_best_first(student, assets, data, answers, predictions):
    arrays, _ = unseen_pictures(assets, data[SCENES_ASSET], assets.set_id, predictions)
    k = answers["k"]
    for pairs in predictions_of(student, answers, arrays):
        assert len(pairs) == k, f"`predict_topk(image, k={k})` should return {k} pairs"
        values = [p for _, p in pairs]
        assert all(a >= b for a, b in itertools.pairwise(values)), (
            "`predict_topk` should list the pairs best first (highest probability first)"
        )


@question("q5")
@points(0.5)
def test_figure_bars_are_the_top5_of_the_picture_shown(student, workdir, assets, predictions):
    record = reference.figure_record(student, workdir, FIGURE)
    reference.chart_is_top_k_of_picture(
        record,
        FIGURE,
        assets=assets,
        model=MODEL,
        pipelines=pipelines(),
        tolerance=PROBABILITY_TOLERANCE,
        predictions=predictions,
    )
