"""Hidden checks for project_04: the models and their outputs, against the
grader's own runs of the same pretrained networks (the figures are judged in
test_figures.py).

Nothing the notebook reports about itself is believed. The grader fetches the
student's own 60 scenes from `image_set` (as pixels, in the notebook's order,
which differs between machines because directory listings do) and runs the
reference models on them; `run_inference` is called in the kernel on held-out
scenes the notebook never saw. Models are compared parameter by parameter
through random projections computed in the kernel (`fingerprints`), so the
weights never have to cross the bridge.

Tolerances, and why:
- TOP1_MARGIN (0.03): a student's top-1 class still counts when the reference
  gives it a probability within 0.03 of the reference's own top-1 (near-ties
  flip between a GPU and a CPU, or between JPEG decoders); the same margin
  applies to the rest of the top 5.
- PROBABILITY_TOLERANCE (0.02): each reported probability against the
  reference's probability of that class. The same weights and preprocessing
  agree to about 1e-5 on CPU and GPU; 0.02 leaves room for a student who
  resizes with another backend without letting a different model through.
- AGREEING_SHARE (0.9): at least 54 of 60 results must agree.
- FEATURE_COSINE (0.99): per row of `feature_matrix`, against ResNet18's
  pooled features of the same image under either documented preprocessing
  (the weights' own `transforms()`, or the lesson's Resize((224, 224)) pipeline).
Checked on the stand-in assets (the reference and the seven real notebooks);
with the real weights near-ties are more frequent, which the margins are for.
"""

import inspect
import math

import numpy as np
import pytest
import torch

from autograder.checkkit import ModuleSnapshot, Opaque
from autograder.errors import count_for_hidden, shape_for_hidden
from autograder.reference import as_number, categories, load_model, preprocessing

question, points = pytest.mark.question, pytest.mark.points

SCENES = ["buildings", "forest", "glacier", "mountain", "sea", "street"]
RESULT_KEYS = ("true_label", "top1_class", "top1_prob", "top5_classes", "top5_probs")
TOP1_MARGIN = 0.03
PROBABILITY_TOLERANCE = 0.02
AGREEING_SHARE = 0.9
FEATURE_COSINE = 0.99
HELD_OUT_PER_CLASS = 2
PARAMETER_COUNTS = {"resnet18": 11_689_512, "mobilenet_v3_small": 2_542_856, "efficientnet_b0": 5_288_548}
HEAD_PARAMETERS = 512 * 6 + 6

_PER_RUN = pytest.StashKey[dict]()

# The pixels of every (PIL image, label) pair of image_set, in order, as uint8 arrays.
IMAGE_SET_PIXELS = """
import numpy as _np
from PIL import Image as _Image
def _pixels(_item):
    if isinstance(_item, (tuple, list)) and len(_item) == 2 and isinstance(_item[0], _Image.Image):
        return (_np.asarray(_item[0].convert("RGB")), _item[1] if isinstance(_item[1], str) else repr(_item[1]))
    return (type(_item).__name__, None)
result = [_pixels(_item) for _item in image_set] if isinstance(image_set, (list, tuple)) else type(image_set).__name__
"""

# The student's run_inference with the notebook's own model, preprocessing, device and class names.
RUN_INFERENCE = """
from PIL import Image as _Image
result = [
    run_inference(resnet, resnet_preproc, _Image.fromarray(_pixels), device, imagenet_classes, top_k=inputs["k"])
    for _pixels in inputs["images"]
]
"""

# Submodules of `resnet` left in training mode (batch norm would then use each image's own statistics).
TRAINING_SUBMODULES = """
import torch as _torch
result = None
if isinstance(resnet, _torch.nn.Module):
    result = [_name or "resnet" for _name, _module in resnet.named_modules() if _module.training]
"""


@pytest.fixture
def per_run(request):
    """Values shared by the checks of one grading run (one notebook)."""
    return request.config.stash.setdefault(_PER_RUN, {})


def kind_of(value):
    """The type name a student would recognise, also for values that came back as descriptions."""
    if isinstance(value, ModuleSnapshot):  # never the class's name: the notebook chose it (see errors.py)
        return "a model"
    if isinstance(value, Opaque):
        return "an object"
    return type(value).__name__


# --- the student's images and the reference models' view of them ---


def student_images(student, per_run):
    """[(PIL image, label)] from the kernel's image_set, in its order."""
    if "images" not in per_run:
        from PIL import Image

        entries = student.probe(IMAGE_SET_PIXELS)
        assert isinstance(entries, list) and entries, "`image_set` should be a list of (PIL image, label) pairs"
        bad = [i for i, (pixels, _) in enumerate(entries) if isinstance(pixels, str)]
        assert not bad, f"`image_set[{bad[0]}]` is not a (PIL image, label) pair"
        per_run["images"] = [(Image.fromarray(pixels.astype("uint8")), label) for pixels, label in entries]
    return per_run["images"]


def reference_probabilities(assets, predictions, model_name, images, per_run):
    """The reference model's softmax (N x 1000) for the given images, with its
    own preprocessing, from the batch's store of trusted outputs (`predictions`)."""
    key = ("probabilities", model_name)
    if key not in per_run:
        pictures, transform = [image for image, _ in images], preprocessing(model_name)
        if model_name == "resnet18":  # the pooled features give the logits too
            features = pooled_features(assets, predictions, pictures, transform)
            per_run[("features", "weights")] = features
            with torch.no_grad():
                logits = load_model(assets, model_name).fc(features)
        else:
            logits = predictions.outputs(assets, model_name, pictures, preprocessing=transform)
        per_run[key] = torch.softmax(logits, dim=1)
    return per_run[key]


def pooled_features(assets, predictions, images, transform):
    """ResNet18's 512 pooled features (its fc input) for PIL images."""
    return predictions.outputs(assets, "resnet18", images, preprocessing=transform, layer="pooled")


def class_index():
    names = categories("resnet18")
    return {name: index for index, name in enumerate(names)}


def agrees(classes, probabilities, reference, index):
    """Whether a reported top-k (names, probabilities) matches the reference's
    probability vector, forgiving near-ties (see TOP1_MARGIN)."""
    if len(classes) != len(probabilities) or not classes or len(set(classes)) != len(classes):
        return False
    positions = [index.get(name) for name in classes]
    if None in positions:
        return False
    ranked = reference.sort(descending=True).values
    if reference[positions[0]] < ranked[0] - TOP1_MARGIN:
        return False
    last_kept = ranked[len(classes) - 1]
    for position, probability in zip(positions, probabilities, strict=True):
        if probability is None or abs(float(reference[position]) - probability) > PROBABILITY_TOLERANCE:
            return False
        if reference[position] < last_kept - TOP1_MARGIN:
            return False
    return True


def results_entries(results, name, labels):
    """(classes, probabilities) per result, after checking the layout and the
    alignment with image_set; assertion messages name the first problem."""
    assert isinstance(results, list), f"`{name}` should be a list of dicts, not {kind_of(results)}"
    assert len(results) == len(labels), (
        f"`{name}` should hold one result per image of `image_set` ({len(labels)}), not {len(results)}"
    )
    entries = []
    for position, (entry, label) in enumerate(zip(results, labels, strict=True)):
        where = f"`{name}[{position}]`"
        assert isinstance(entry, dict) and all(k in entry for k in RESULT_KEYS), (
            f"{where} should be a dict with the keys {', '.join(RESULT_KEYS)}"
        )
        assert entry["true_label"] == label, f"{where}['true_label'] is not the label of `image_set[{position}]`"
        classes, probabilities = entry["top5_classes"], entry["top5_probs"]
        assert isinstance(classes, (list, tuple)) and isinstance(probabilities, (list, tuple)), (
            f"{where}['top5_classes'] and ['top5_probs'] should be lists"
        )
        top1 = as_number(entry["top1_prob"])
        assert classes and entry["top1_class"] == classes[0] and top1 is not None, (
            f"{where}['top1_class'] and ['top1_prob'] should be the first of its top 5"
        )
        entries.append(([c if isinstance(c, str) else None for c in classes], [as_number(p) for p in probabilities]))
    return entries


def assert_results_match(student, assets, predictions, per_run, name, model_name):
    images = student_images(student, per_run)
    entries = results_entries(student.fetch(name), name, [label for _, label in images])
    reference = reference_probabilities(assets, predictions, model_name, images, per_run)
    index = class_index()
    agreeing = sum(agrees(c, p, reference[i], index) for i, (c, p) in enumerate(entries))
    assert agreeing >= AGREEING_SHARE * len(entries), (
        f"only {agreeing} of the {len(entries)} results in `{name}` agree with the pretrained model's "
        "predictions for the same images (is it the pretrained model, in eval mode, with its own preprocessing?)"
    )


def fingerprints(model, seed):
    """Per parameter: (shape, requires_grad, a random projection of its values).

    Comparing projections on a random vector nobody can predict tells equal
    weights from different ones as surely as comparing every number, without
    moving 47 MB of weights out of the kernel. The same function runs in the
    kernel (its source is sent in a probe) and here on the reference model."""
    import zlib

    import torch

    if not isinstance(model, torch.nn.Module):
        return None
    found = {}
    for name, parameter in model.named_parameters():
        values = parameter.detach().to("cpu", torch.float64).flatten()
        generator = torch.Generator().manual_seed((seed + zlib.crc32(name.encode())) % 2**62)
        weights = torch.rand(values.numel(), generator=generator, dtype=torch.float64)
        found[name] = (tuple(int(n) for n in parameter.shape), bool(parameter.requires_grad), float(values @ weights))
    return found


def student_fingerprints(student, name, seed):
    """`fingerprints` of the notebook's model `name`, computed in the kernel."""
    source = inspect.getsource(fingerprints)
    found = student.probe(f"{source}\nresult = fingerprints({name}, inputs['seed'])", seed=seed)
    assert found is not None, f"`{name}` should be a model (an nn.Module)"
    return found


def same_projection(mine, reference):
    return math.isclose(mine, reference, rel_tol=1e-9, abs_tol=1e-9)


def assert_pretrained(student, assets, fresh_seed, name, model_name, title):
    found = student_fingerprints(student, name, fresh_seed)
    reference = fingerprints(load_model(assets, model_name), fresh_seed)
    count = sum(math.prod(shape) for shape, _, _ in found.values())
    assert {n: f[0] for n, f in found.items()} == {n: f[0] for n, f in reference.items()}, (
        f"`{name}` is not torchvision's {title} ({count_for_hidden(count)} parameters;"
        f" {title} has {PARAMETER_COUNTS[model_name]:,})"
    )
    changed = [n for n, f in reference.items() if not same_projection(found[n][2], f[2])]
    assert not changed, f"`{name}` does not hold the pretrained {title} weights (`{changed[0]}` differs)"


# --- Task 2 ---


@question("task2")
@points(1)
def test_resnet_is_pretrained_resnet18(student, assets, fresh_seed):
    assert_pretrained(student, assets, fresh_seed, "resnet", "resnet18", "ResNet18")


@question("task2")
@points(1)
def test_resnet_in_eval_mode(student):
    training = student.probe(TRAINING_SUBMODULES)
    assert training is not None, "`resnet` should be a model (an nn.Module)"
    assert not training, (
        f"`resnet` is in training mode ({len(training)} of its layers): call `resnet.eval()` before inference"
    )


@question("task2")
@points(2)
def test_run_inference_on_unseen_scenes(student, assets, data, fresh_seed, predictions):
    intel = data["intel-image-classification"]  # registered in assignments/assets.toml
    scenes = intel.hidden_module.held_out(intel.hidden, tuple(intel.module.SCENES), HELD_OUT_PER_CLASS, seed=fresh_seed)
    pixels = [np.asarray(image) for image, _ in scenes]
    answers = student.probe(RUN_INFERENCE, images=pixels, k=5)
    shorter = student.probe(RUN_INFERENCE, images=pixels[:1], k=3)
    assert isinstance(answers, list) and len(answers) == len(pixels), "`run_inference` did not answer"
    for answer, k in [*((a, 5) for a in answers), (shorter[0], 3)]:
        assert isinstance(answer, (list, tuple)) and len(answer) == k, (
            f"`run_inference(..., top_k={k})` should return a list of {k} (class name, probability) pairs"
        )
        assert all(isinstance(pair, (list, tuple)) and len(pair) == 2 for pair in answer), (
            "`run_inference` should return (class name, probability) pairs"
        )
        assert all(isinstance(name, str) and as_number(p) is not None for name, p in answer), (
            "each pair from `run_inference` should be a class name (string) and a probability (number)"
        )
    reference = predictions.probabilities(
        assets, "resnet18", [image for image, _ in scenes], preprocessing=preprocessing("resnet18")
    )
    index = class_index()
    for position, answer in enumerate(answers):
        classes, probabilities = [name for name, _ in answer], [as_number(p) for _, p in answer]
        assert agrees(classes, probabilities, reference[position], index), (
            "`run_inference` on scenes the notebook never saw disagrees with the pretrained ResNet18 "
            "(the classes, their order or their probabilities)"
        )


@question("task2")
@points(2)
def test_resnet_results_match_reference(student, assets, predictions, per_run):
    assert_results_match(student, assets, predictions, per_run, "resnet_results", "resnet18")


# --- Task 3 ---


@question("task3")
@points(1)
def test_mobilenet_is_pretrained(student, assets, fresh_seed):
    assert_pretrained(student, assets, fresh_seed, "mobilenet", "mobilenet_v3_small", "MobileNetV3-Small")


@question("task3")
@points(1)
def test_efficientnet_is_pretrained(student, assets, fresh_seed):
    assert_pretrained(student, assets, fresh_seed, "efficientnet", "efficientnet_b0", "EfficientNet-B0")


@question("task3")
@points(2)
def test_mobilenet_results_match_reference(student, assets, predictions, per_run):
    assert_results_match(student, assets, predictions, per_run, "mobilenet_results", "mobilenet_v3_small")


@question("task3")
@points(2)
def test_effnet_results_match_reference(student, assets, predictions, per_run):
    assert_results_match(student, assets, predictions, per_run, "effnet_results", "efficientnet_b0")


# --- Task 5 ---


def lesson_preprocessing():
    """The CNN lesson's pipeline: resize to 224x224 (no crop), scale, ImageNet-normalise."""
    from torchvision.transforms import v2

    return v2.Compose(
        [
            v2.Resize((224, 224)),
            v2.ToImage(),
            v2.ToDtype(torch.float32, scale=True),
            v2.Normalize(mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225]),
        ]
    )


@question("task5")
@points(1)
def test_feature_matrix_matches_resnet18_features(student, assets, predictions, per_run):
    matrix = student.fetch("feature_matrix")
    assert hasattr(matrix, "shape") and len(matrix.shape) == 2, "`feature_matrix` should be a 2-D array or tensor"
    rows = torch.as_tensor(matrix).detach().cpu().double()
    images = student_images(student, per_run)
    assert rows.shape == (len(images), 512), (
        "`feature_matrix` should have one row of 512 features per image of `image_set`,"
        f" not shape {shape_for_hidden(rows.shape)}"
    )
    reference_probabilities(assets, predictions, "resnet18", images, per_run)  # also computes the pooled features
    similarity = torch.cosine_similarity(rows, per_run[("features", "weights")].double(), dim=1)
    if (similarity < FEATURE_COSINE).any():
        other = pooled_features(assets, predictions, [image for image, _ in images], lesson_preprocessing()).double()
        similarity = torch.maximum(similarity, torch.cosine_similarity(rows, other, dim=1))
    matching = int((similarity >= FEATURE_COSINE).sum())
    assert matching >= AGREEING_SHARE * len(images), (
        f"only {matching} of the {len(images)} rows of `feature_matrix` are ResNet18's pooled features "
        "of the matching image (the model without its `fc` layer, in eval mode)"
    )


# --- Stretch ---


@question("stretch")
@points(1, bonus=True)
def test_ft_model_has_six_way_head(student):
    snapshot = student.fetch("ft_model", module_state=False)
    assert isinstance(snapshot, ModuleSnapshot), "`ft_model` should be a model (an nn.Module)"
    children = dict(snapshot.children)
    assert children.get("fc") == "torch.nn.modules.linear.Linear", "`ft_model.fc` should be an nn.Linear"
    head = {n: (s, t) for n, s, t in snapshot.parameters if n.startswith("fc.")}
    assert head == {"fc.weight": ((6, 512), True), "fc.bias": ((6,), True)}, (
        "`ft_model.fc` should be a trainable nn.Linear(512, 6), one output per scene class"
    )


@question("stretch")
@points(2, bonus=True)
def test_ft_model_backbone_frozen_and_pretrained(student, assets, fresh_seed):
    found = student_fingerprints(student, "ft_model", fresh_seed)
    trainable = [n for n, (_, grad, _) in found.items() if grad and not n.startswith("fc.")]
    assert not trainable, f"`ft_model`'s backbone should be frozen, but {len(trainable)} of its parameters require grad"
    count = sum(math.prod(shape) for shape, grad, _ in found.values() if grad)
    assert count == HEAD_PARAMETERS, (
        f"`ft_model` should train exactly {HEAD_PARAMETERS:,} parameters (the head), not {count_for_hidden(count)}"
    )
    pretrained = fingerprints(load_model(assets, "resnet18"), fresh_seed)
    reference = {n: f for n, f in pretrained.items() if not n.startswith("fc.")}
    missing = sorted(set(reference) - set(found))
    assert not missing, "`ft_model` should be a copy of the pretrained ResNet18 with a new head"
    # parameters only: batch-norm running statistics (buffers) move whenever ft_model.train() runs
    changed = [n for n, f in reference.items() if found[n][0] != f[0] or not same_projection(found[n][2], f[2])]
    assert not changed, f"`ft_model`'s frozen backbone differs from the pretrained ResNet18 (`{changed[0]}`)"
