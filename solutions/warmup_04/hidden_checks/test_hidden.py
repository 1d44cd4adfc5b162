"""Hidden checks for warmup_04: values by their prescribed names, and the
notebook's own functions run on pictures from the grader's hidden part of the
Intel scene set, which no student has seen.

Every expected number is computed here, by the trusted ResNet18 from the asset
folder (`autograder.reference`); the kernel only runs the student's code and
sends back what it made. Students rename, reorder and add cells, so only the
names the questions prescribe are looked up; the matrix products of Tensor
Question 5 may have any name and are searched for.

Tolerances:
* PREPROCESS_TOLERANCE (0.02, mean absolute difference in normalised units):
  the same pipeline run on a PIL image or on a tensor (antialiased resize)
  differs by about 0.005; ImageNet normalisation left out differs by 0.9,
  mean=std=0.5 by 0.27.
* PROBABILITY_TOLERANCE (0.02): the reference and the student's kernel run the
  same network on the same input; CPU to CPU they agree to 1e-6. A GPU kernel
  (TF32 convolutions) differs more, by an amount not yet measured here; 0.02
  leaves it room. Logits, a softmax over the wrong dimension or a double
  softmax miss by far more.
* CLEAR_MARGIN (0.05): the pictures used for the top-1 check are those whose
  reference top-1 beats its runner-up by at least this much under both
  accepted preprocessing pipelines, so rounding cannot reorder them.
* Inference Q4's figure: the picture drawn is matched to a file the notebook
  opened by `autograder.reference.pictures_matching` (its thresholds are
  documented there), and each of the 5 bars must be within
  PROBABILITY_TOLERANCE of the reference's probability for that file, under
  either pipeline, read as a fraction or (any bar above 1.5) a percentage.
"""

import functools
import itertools
import weakref
import zlib

import numpy as np
import pytest
import torch

from autograder.checkkit import ModuleSnapshot, Opaque
from autograder.errors import AssetError, count_for_hidden, exception_for_hidden, shape_for_hidden
from autograder.reference import (
    categories,
    chart_is_top_k_of_picture,
    figure_record,
    load_model,
    picture_and_chart,
    preprocessing,
)

question, points = pytest.mark.question, pytest.mark.points

MODEL = "resnet18"
SCENES_ASSET = "intel-image-classification"  # registered in assignments/assets.toml
PARAMETERS = 11_689_512
PREPROCESS_TOLERANCE = 0.02
PROBABILITY_TOLERANCE = 0.02
CLEAR_MARGIN = 0.05
PICTURES = 6
MINIMUM_PICTURES = 4
FIGURE = "outputs/warmup_inference_viz.png"

# Runs in the kernel on a copy of the namespace: every 2 x 2 NumPy array and
# tensor bound to a name (IPython's `_12` output names included).
MATRICES_IN_NAMESPACE = """
import numpy as _np
import torch as _torch
result = []
for _name, _value in list(globals().items()):
    if isinstance(_value, _np.ndarray) and _value.shape == (2, 2) and _value.dtype.kind in "biuf":
        result.append(("numpy", _value))
    elif isinstance(_value, _torch.Tensor) and tuple(_value.shape) == (2, 2) and not _value.is_complex():
        result.append(("torch", _value.detach().cpu()))
"""

# The notebook's `preprocess` on a picture sent from here.
PREPROCESS_PICTURE = """
from PIL import Image as _Image
result = preprocess(_Image.fromarray(inputs["pixels"])) if callable(preprocess) else "not callable"
"""

# The notebook's own `get_top5_predictions` with its own model, preprocessing
# and device, on pictures sent from here; also what its `preprocess` makes of
# them. The model is put in evaluation mode for the call and left as it was
# found: Model Question 3 judges the mode, this question the function, and a
# model left training would otherwise also change its batch-norm statistics.
TOP5_OF_PICTURES = """
import torch as _torch
from PIL import Image as _Image
_function = get_top5_predictions
_labels = imagenet_classes if "imagenet_classes" in globals() else inputs["categories"]
_switch = isinstance(model, _torch.nn.Module)
_was_training = model.training if _switch else False
if _switch:
    model.eval()
try:
    _answers, _prepared = [], []
    for _pixels in inputs["pictures"]:
        _image = _Image.fromarray(_pixels)
        _answers.append(_function(model, preprocess, _image, device, _labels))
        try:
            _made = preprocess(_image)
        except Exception:
            _made = None
        _prepared.append(_made.detach().cpu() if isinstance(_made, _torch.Tensor) else None)
finally:
    if _switch:
        model.train(_was_training)
result = (_answers, _prepared)
"""

# `load_sample_image` for each scene: (label, the name of what it raised or None, is a PIL image, size).
# Never the message: a hidden check repeats no text the notebook's code made.
LOAD_EACH_SCENE = """
from PIL import Image as _Image
_function = load_sample_image
result = []
for _label in inputs["labels"]:
    try:
        _loaded = _function(_label)
    except NameError:
        raise  # a name the notebook never defined: reported as such (or as a GPU-only stop)
    except Exception as _error:
        result.append((_label, type(_error).__name__[:100], False, None))
        continue
    _image = _loaded[0] if isinstance(_loaded, tuple) and _loaded else _loaded
    _ok = isinstance(_image, _Image.Image)
    result.append((_label, None, _ok, tuple(_image.size) if _ok else None))
"""

# Each parameter of the notebook's model projected on a random direction drawn
# from a seed the grader sends (one generator per parameter name): comparing
# the projections with the reference's compares the weights without sending
# 47 MB of them through the bridge. `project_parameters` below is the same code.
PARAMETER_PROJECTIONS = """
import zlib as _zlib
import torch as _torch
result = None
if isinstance(model, _torch.nn.Module):
    result = {}
    for _name, _parameter in model.named_parameters():
        _values = _parameter.detach().to("cpu", _torch.float64).flatten()
        _generator = _torch.Generator().manual_seed(inputs["seed"] + _zlib.crc32(_name.encode()))
        _direction = _torch.randn(_values.numel(), generator=_generator, dtype=_torch.float64)
        result[_name] = (tuple(_parameter.shape), float(_values @ _direction))
"""

KERNEL_HAS_CUDA = "import torch as _torch\nresult = bool(_torch.cuda.is_available())"

MODEL_MODES = "result = sorted({type(_m).__name__ for _m in model.modules() if _m.training})"


# --- trusted references, computed once per asset set ---------------------------


def _pipelines():
    """The two preprocessing chains the course accepts: the weights' own
    transforms and the lesson's Resize((224, 224)) chain."""
    from torchvision.transforms import v2

    resize = v2.Compose(
        [
            v2.Resize((224, 224)),
            v2.ToImage(),
            v2.ToDtype(torch.float32, scale=True),
            v2.Normalize(mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225]),
        ]
    )
    return [preprocessing(MODEL), resize]


def project_parameters(network, seed):
    """What PARAMETER_PROJECTIONS computes, for the trusted network."""
    result = {}
    for name, parameter in network.named_parameters():
        values = parameter.detach().to("cpu", torch.float64).flatten()
        generator = torch.Generator().manual_seed(seed + zlib.crc32(name.encode()))
        direction = torch.randn(values.numel(), generator=generator, dtype=torch.float64)
        result[name] = (tuple(parameter.shape), float(values @ direction))
    return result


def held_out_scenes(scenes, per_class, seed):
    """(PIL image, scene) pairs of the grader's held-out Intel pictures (`scenes`: the course's asset)."""
    return scenes.hidden_module.held_out(scenes.hidden, tuple(scenes.module.SCENES), per_class, seed=seed)


@functools.lru_cache(maxsize=2)
def _clear_pictures(assets, scenes, set_id, predictions):
    """Up to PICTURES held-out pictures, one per scene where possible, whose
    reference top-1 is clear under both pipelines: (pixels, [(prepared tensor,
    probabilities) per pipeline]). `predictions` is the worker's store of
    trusted outputs (the same object for every submission it grades)."""
    del set_id  # part of the cache key only
    for per_class in (1, 3):  # a larger pool only where too few pictures are clear
        chosen = _choose_clear(assets, held_out_scenes(scenes, per_class=per_class, seed=0), predictions)
        if len(chosen) >= MINIMUM_PICTURES:
            break
    if not chosen:  # the grader's assets, not the student: an error, not a failed check
        raise AssetError("no held-out picture has a clear reference prediction: check `autograder assets status`")
    return chosen


def _choose_clear(assets, pool, predictions):
    pictures = [image for image, _ in pool]
    prepared = [torch.stack([p(image) for image in pictures]) for p in _pipelines()]
    runs = [predictions.probabilities(assets, MODEL, pictures, preprocessing=p) for p in _pipelines()]
    chosen, scenes_used = [], set()
    for second_pass in (False, True):
        for index, (image, scene) in enumerate(pool):
            top = [run[index].topk(2) for run in runs]
            clear = all(float(t.values[0] - t.values[1]) >= CLEAR_MARGIN for t in top)
            if not clear or len(chosen) >= PICTURES or index in (c[0] for c in chosen):
                continue
            if second_pass or scene not in scenes_used:
                accepted = [(batch[index], run[index]) for batch, run in zip(prepared, runs, strict=True)]
                chosen.append((index, np.asarray(image, dtype=np.uint8), accepted))
                scenes_used.add(scene)
    return [(pixels, accepted) for _, pixels, accepted in chosen]


@functools.lru_cache(maxsize=2)
def _unseen_picture(scenes, set_id):
    """A held-out picture cut to a non-square shape, as uint8 pixels, and the
    accepted preprocessing outputs for it."""
    del set_id
    from PIL import Image

    image, _ = held_out_scenes(scenes, per_class=1, seed=1)[0]
    pixels = np.ascontiguousarray(np.asarray(image, dtype=np.uint8)[:, 13:137])
    picture = Image.fromarray(pixels)
    return pixels, [p(picture) for p in _pipelines()]


_TOP5_ANSWERS = weakref.WeakKeyDictionary()  # student -> (answers, candidates): three checks, one kernel call


def top5_of_pictures(student, assets, scenes, predictions):
    """(the notebook's answers, the reference probabilities each answer may
    follow) for every clear held-out picture. Where the notebook's own
    `preprocess` prepares a picture differently from both accepted pipelines,
    the reference network's output on the notebook's tensor is accepted too,
    so that a preprocessing mistake costs points in Model Question 4 only."""
    if student in _TOP5_ANSWERS:
        return _TOP5_ANSWERS[student]
    chosen = _clear_pictures(assets, scenes, assets.set_id, predictions)
    answers, prepared = student.probe(
        TOP5_OF_PICTURES, pictures=[pixels for pixels, _ in chosen], categories=categories(MODEL)
    )
    candidates = []
    for (_, accepted), made in zip(chosen, prepared, strict=True):
        options = [probabilities for _, probabilities in accepted]
        usable = isinstance(made, torch.Tensor) and made.dim() == 3 and made.is_floating_point()
        if usable and made.shape[0] == 3 and min(made.shape[1:]) >= 32:
            made = made.float()
            if not any(t.shape == made.shape and float((t - made).abs().max()) < 1e-4 for t, _ in accepted):
                options.append(predictions.probabilities(assets, MODEL, [made], preprocessing=None)[0])
        candidates.append(options)
    _TOP5_ANSWERS[student] = (answers, candidates)
    return answers, candidates


def is_probability_number(value):
    return isinstance(value, (float, np.floating)) and not isinstance(value, bool)


def pairs_of(answer):
    """The answer as [(name, probability)], or None when it is not 5 pairs."""
    if not isinstance(answer, (list, tuple)) or len(answer) != 5:
        return None
    if not all(isinstance(pair, (list, tuple)) and len(pair) == 2 for pair in answer):
        return None
    return [tuple(pair) for pair in answer]


def matches(pairs, probabilities, indices_of):
    """Whether (name, probability) pairs agree with one reference probability vector."""
    top = probabilities.topk(5).values.tolist()
    for rank, (name, value) in enumerate(pairs):
        if not isinstance(name, str) or not is_probability_number(value):
            return False
        if abs(float(value) - top[rank]) > PROBABILITY_TOLERANCE:
            return False
        own = [float(probabilities[i]) for i in indices_of.get(name, ())]
        if not any(abs(float(value) - p) <= PROBABILITY_TOLERANCE for p in own):
            return False
    return True


def assert_equal_values(value, expected, what):
    assert isinstance(value, torch.Tensor), f"{what} should be a tensor"
    assert value.shape == expected.shape, f"{what} has the wrong shape ({shape_for_hidden(value.shape)})"
    assert value.dtype == torch.float32, f"{what} should be float32, not {value.dtype}"
    assert torch.equal(value.cpu(), expected), f"{what} holds the wrong values"


# --- Tensor questions ------------------------------------------------------------


@question("t1")
@points(1)
def test_zeros_b(student):
    assert_equal_values(student.fetch("b"), torch.zeros(2, 3), "`b`")


@question("t1")
@points(1)
def test_ones_c(student):
    assert_equal_values(student.fetch("c"), torch.ones(4), "`c`")


@question("t2")
@points(1)
def test_squares_x(student):
    assert_equal_values(student.fetch("x"), torch.arange(1, 6, dtype=torch.float32) ** 2, "`x`")


@question("t3")
@points(1)
def test_a_back_on_cpu(student):
    a, back = student.fetch("a"), student.fetch("a_back")
    assert isinstance(back, torch.Tensor), "`a_back` should be a tensor"
    assert back.device.type == "cpu", f"`a_back` should be on the CPU, not {back.device}"
    assert isinstance(a, torch.Tensor), "`a` should be a tensor"
    assert back.shape == a.shape and torch.equal(back, a.cpu()), "`a_back` should hold the same values as `a`"


@question("t3")
@points(1)
def test_a_numpy_array(student):
    a, array = student.fetch("a"), student.fetch("a_numpy")
    assert isinstance(array, np.ndarray), "`a_numpy` should be a NumPy array (`.numpy()`)"
    assert isinstance(a, torch.Tensor), "`a` should be a tensor"
    assert array.shape == tuple(a.shape), f"`a_numpy` has the wrong shape {shape_for_hidden(array.shape)}"
    assert np.array_equal(array, a.cpu().numpy()), "`a_numpy` should hold the same values as `a`"


def products_found(student, kind):
    expected = np.array([[1.0, 2.0], [3.0, 4.0]]) @ np.array([[5.0, 6.0], [7.0, 8.0]])
    found = student.probe(MATRICES_IN_NAMESPACE)
    values = [value for found_kind, value in found if found_kind == kind]
    return any(np.allclose(np.asarray(value, dtype=np.float64), expected) for value in values)


@question("t5")
@points(1)
def test_numpy_matrix_product(student):
    assert products_found(student, "numpy"), (
        "no NumPy array in the notebook holds the matrix product of the two matrices (`np_a @ np_b`)"
    )


@question("t5")
@points(1)
def test_torch_matrix_product(student):
    assert products_found(student, "torch"), (
        "no tensor in the notebook holds the matrix product of the two matrices (`t_a @ t_b`)"
    )


# --- Model questions -------------------------------------------------------------


@question("m1")
@points(1)
def test_weights_are_the_default(student):
    from torchvision.models import ResNet18_Weights

    weights = student.fetch("weights")
    expected = ResNet18_Weights.DEFAULT
    assert isinstance(weights, Opaque) and weights.type == "torchvision.models.resnet.ResNet18_Weights", (
        "`weights` should be `ResNet18_Weights.DEFAULT`"
    )
    assert weights.repr == f"ResNet18_Weights.{expected.name}", "`weights` should be `ResNet18_Weights.DEFAULT`"


@question("m1")
@points(1)
def test_model_is_resnet18(student):
    model = student.fetch("model", module_state=False)
    assert isinstance(model, ModuleSnapshot), "`model` should be a torchvision ResNet18"
    assert model.type == "torchvision.models.resnet.ResNet", "`model` should be torchvision's ResNet18"
    count = model.parameter_count
    assert count == PARAMETERS, f"`model` has {count_for_hidden(count)} parameters, not ResNet18's"


@question("m1")
@points(1)
def test_model_has_pretrained_weights(student, assets, fresh_seed):
    seed = fresh_seed % 2**31
    projections = student.probe(PARAMETER_PROJECTIONS, seed=seed)
    assert isinstance(projections, dict) and projections, "`model` should be a torchvision ResNet18"
    expected = project_parameters(load_model(assets, MODEL), seed)
    assert set(projections) == set(expected), "`model` does not have ResNet18's layers"
    different = [
        name
        for name, (shape, value) in expected.items()
        if tuple(projections[name][0]) != shape or abs(projections[name][1] - value) > 1e-6 * (1 + abs(value))
    ]
    assert not different, f"`model` does not hold the pretrained weights (first difference: `{different[0]}`)"


@question("m3")
@points(1)
def test_model_in_eval_mode(student):
    model = student.fetch("model", module_state=False)
    assert isinstance(model, ModuleSnapshot), "`model` should be the ResNet18 network"
    training = student.probe(MODEL_MODES)
    assert not training, "`model` is still in training mode: call `model.eval()`"


@question("m3")
@points(1)
def test_model_on_the_device(student):
    expected = "cuda" if student.probe(KERNEL_HAS_CUDA) else "cpu"
    model = student.fetch("model", module_state=False)
    assert isinstance(model, ModuleSnapshot) and model.devices, "`model` should be the ResNet18 network"
    where = sorted({torch.device(d).type for d in model.devices})
    assert where == [expected], f"`model` should be on {expected} (`model.to(device)`), not on {', '.join(where)}"


@question("m4")
@points(1)
def test_preprocess_shape(student, assets, data):
    pixels, _ = _unseen_picture(data[SCENES_ASSET], assets.set_id)
    made = student.probe(PREPROCESS_PICTURE, pixels=pixels)
    assert not isinstance(made, str), "`preprocess` should be the weights' transforms (`weights.transforms()`)"
    assert isinstance(made, torch.Tensor), "`preprocess(image)` should give a tensor"
    assert made.shape == (3, 224, 224), (
        f"`preprocess(image)` should give shape (3, 224, 224), not {shape_for_hidden(made.shape)}"
    )
    assert made.dtype == torch.float32, f"`preprocess(image)` should give float32, not {made.dtype}"


@question("m4")
@points(1)
def test_preprocess_normalises_like_the_weights(student, assets, data):
    pixels, accepted = _unseen_picture(data[SCENES_ASSET], assets.set_id)
    made = student.probe(PREPROCESS_PICTURE, pixels=pixels)
    assert isinstance(made, torch.Tensor) and made.shape == (3, 224, 224), (
        "`preprocess(image)` should give a (3, 224, 224) tensor"
    )
    distance = min(float((made.cpu().float() - expected).abs().mean()) for expected in accepted)
    assert distance <= PREPROCESS_TOLERANCE, (
        "`preprocess` does not prepare pictures as the weights expect (use `weights.transforms()`)"
    )


# --- Inference questions ---------------------------------------------------------


@question("i1")
@points(1)
def test_top5_are_probability_pairs(student, assets, data, predictions):
    answers, _ = top5_of_pictures(student, assets, data[SCENES_ASSET], predictions)
    for answer in answers:
        pairs = pairs_of(answer)
        assert pairs is not None, "`get_top5_predictions` should return a list of 5 (class_name, probability) tuples"
        assert all(isinstance(name, str) for name, _ in pairs), "each class name should be a string"
        values = [value for _, value in pairs]
        assert all(is_probability_number(v) for v in values), "each probability should be a Python float (`.item()`)"
        assert all(0.0 <= float(v) <= 1.0 for v in values), "the values should be probabilities, between 0 and 1"
        assert all(a >= b for a, b in itertools.pairwise(values)), "the most likely class should come first"


@question("i1")
@points(1)
def test_top1_matches_the_model(student, assets, data, predictions):
    answers, candidates = top5_of_pictures(student, assets, data[SCENES_ASSET], predictions)
    labels = categories(MODEL)
    for answer, options in zip(answers, candidates, strict=True):
        pairs = pairs_of(answer) or (list(answer[:1]) if isinstance(answer, (list, tuple)) else [])
        first = pairs[0][0] if pairs and isinstance(pairs[0], (list, tuple)) and pairs[0] else None
        assert isinstance(first, str), "`get_top5_predictions` should return (class_name, probability) tuples"
        winners = {labels[int(p.argmax())] for p in options}
        assert first in winners, (
            "on unseen pictures, `get_top5_predictions` does not put the pretrained ResNet18's top class first"
        )


@question("i1")
@points(1)
def test_top5_probabilities_match_the_model(student, assets, data, predictions):
    answers, candidates = top5_of_pictures(student, assets, data[SCENES_ASSET], predictions)
    indices_of = {}
    for index, name in enumerate(categories(MODEL)):
        indices_of.setdefault(name, []).append(index)
    for answer, options in zip(answers, candidates, strict=True):
        pairs = pairs_of(answer)
        assert pairs is not None, "`get_top5_predictions` should return a list of 5 (class_name, probability) tuples"
        assert any(matches(pairs, p, indices_of) for p in options), (
            "on unseen pictures, the five classes or probabilities differ from the pretrained ResNet18's softmax"
        )


@question("i2")
@points(1)
def test_load_sample_image_for_every_scene(student, data):
    scenes = list(data[SCENES_ASSET].module.SCENES)
    loaded = student.probe(LOAD_EACH_SCENE, labels=scenes)
    assert isinstance(loaded, list) and len(loaded) == len(scenes), "`load_sample_image` should load each scene class"
    # the labels named are this check's own: the kernel's list is data, and could carry any text
    for label, (_, error, is_image, size) in zip(scenes, loaded, strict=True):
        assert error is None, f"`load_sample_image({label!r})` raised {exception_for_hidden(str(error))}"
        assert is_image, f"`load_sample_image({label!r})` should return a PIL image (or an (image, name) tuple)"
        assert size[0] > 0 and size[1] > 0, f"`load_sample_image({label!r})` returned an empty image"


@question("i4")
@points(1)
def test_figure_bars_are_the_top5_of_the_picture_shown(student, workdir, assets, predictions):
    record = figure_record(student, workdir, FIGURE)
    _, chart = picture_and_chart(record, FIGURE)
    assert len(chart.bars) == 5, f"the bar chart shows {count_for_hidden(len(chart.bars))} bars, not the top 5"
    chart_is_top_k_of_picture(
        record,
        FIGURE,
        assets=assets,
        model=MODEL,
        pipelines=_pipelines(),
        tolerance=PROBABILITY_TOLERANCE,
        predictions=predictions,
    )
