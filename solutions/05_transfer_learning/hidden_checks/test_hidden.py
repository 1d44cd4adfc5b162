"""Hidden checks for 05_transfer_learning: the trained model is questioned, not trusted.

* Accuracy: the grader's hidden part of the FashionMNIST test split (never
  mounted in the student's kernel) is sent in as uint8 arrays, in batches;
  each picture goes through the notebook's own `preprocess` and its `model`
  in evaluation mode, and the logits come back. The accuracy is computed here
  and compared with `thresholds["accuracy"]` for the kind of assets in use
  (assignment.toml says how those numbers were chosen).
* Frozen and unchanged: every parameter outside `fc` must not require
  gradients and must equal the pretrained weights (`reference.load_model`).
  Batch-norm running statistics are buffers, not parameters: they move in
  `model.train()` even when everything is frozen, and are not compared.
* Preprocessing: within PIXEL_TOLERANCE (mean absolute difference, in
  normalised units) of the documented chain at the notebook's own size
  (resize, grey repeated to three channels, ImageNet normalisation). Measured:
  other right orders (PIL or tensor resize, repeat or Grayscale) are within
  0.006; mean and std 0.5 differ by 0.43, no normalisation by 0.62.
* Losses: the training loss falls (the last epoch's mean under LOSS_DROP of
  the first's), and the last `val_losses` value is the trained model's loss
  on the notebook's validation pictures, measured here. LOSS_DROP (0.5) comes
  from the runs of ../calibrate.py (seeds 0 to 11, stand-in assets): the
  ratio was 0.25 to 0.30 for the reference, 0.68 to 0.85 with the labels
  shuffled; the recorded and the measured validation loss agreed to 1e-5.
"""

import numbers

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision.transforms import v2

from autograder import reference
from autograder.assets import read_idx
from autograder.checkkit import ModuleSnapshot

question, points = pytest.mark.question, pytest.mark.points

MODEL = "resnet18"
FASHION = "fashion-mnist"  # registered in assignments/assets.toml
EPOCHS = 3
VAL_SAMPLES = 250
BATCH = 250  # pictures per call into the kernel
PIXEL_TOLERANCE = 0.05
PREPROCESS_SAMPLES = 16
LOSS_DROP = 0.5  # calibrated: see the module docstring
VAL_LOSS_TOLERANCE = (0.02, 0.02)  # absolute, relative
IMAGENET_MEAN, IMAGENET_STD = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]
EXPECTED_DEVICE = "cuda" if torch.cuda.is_available() else "cpu"

PREPROCESS = """
from PIL import Image as _Image
result = [preprocess(_Image.fromarray(_a)) for _a in inputs["images"]]
"""

# The trained model's logits for pictures sent from here, each through the
# notebook's own `preprocess`, in evaluation mode; the model's mode is restored.
LOGITS = """
import torch as _torch
from PIL import Image as _Image
_device = next(model.parameters()).device
_was_training = model.training
model.eval()
try:
    with _torch.inference_mode():
        _batch = _torch.stack([preprocess(_Image.fromarray(_a)) for _a in inputs["images"]])
        result = model(_batch.to(_device)).float().cpu()
finally:
    model.train(_was_training)
"""


def documented_chain(size):
    return v2.Compose(
        [
            v2.ToImage(),
            v2.Resize((size, size)),
            v2.Grayscale(num_output_channels=3),
            v2.ToDtype(torch.float32, scale=True),
            v2.Normalize(mean=IMAGENET_MEAN, std=IMAGENET_STD),
        ]
    )


def logits_of(student, images):
    """The model's logits for uint8 pictures (N x 28 x 28), sent in batches."""
    parts = []
    for start in range(0, len(images), BATCH):
        batch = np.ascontiguousarray(images[start : start + BATCH])
        logits = student.probe(LOGITS, images=batch)
        assert isinstance(logits, torch.Tensor) and logits.shape == (len(batch), 10), (
            "`model` should give 10 logits per picture"
        )
        parts.append(logits)
    return torch.cat(parts)


def held_out_fashion(data):
    """(uint8 images, labels) of the grader's held-out part of the test split."""
    return data[FASHION].hidden_module.held_out(data[FASHION].hidden)


def validation_pictures(data):
    raw = data[FASHION].public / "FashionMNIST" / "raw"
    images, labels = read_idx(raw / "t10k-images-idx3-ubyte"), read_idx(raw / "t10k-labels-idx1-ubyte")
    return images[:VAL_SAMPLES], torch.as_tensor(labels[:VAL_SAMPLES].astype("int64"))


def recorded(student, name):
    losses = student.fetch(name)
    assert isinstance(losses, list) and len(losses) == EPOCHS, f"`{name}` should hold one number per epoch"
    assert all(isinstance(v, numbers.Real) and not isinstance(v, bool) for v in losses), (
        f"`{name}` should hold Python numbers"
    )
    return [float(v) for v in losses]


def model_snapshot(student, *, with_weights=False):
    model = student.fetch("model", module_state=with_weights)
    assert isinstance(model, ModuleSnapshot), "`model` should be the ResNet18 network (an `nn.Module`)"
    return model


@question("q1")
@points(1)
def test_preprocess_matches_the_documented_chain(student, data):
    images, _ = held_out_fashion(data)
    images = images[:PREPROCESS_SAMPLES]
    tensors = student.probe(PREPROCESS, images=images)
    for array, tensor in zip(images, tensors, strict=True):
        assert isinstance(tensor, torch.Tensor) and tensor.dim() == 3 and tensor.shape[0] == 3, (
            "`preprocess(image)` should give a (3, IMAGE_SIZE, IMAGE_SIZE) tensor"
        )
        expected = documented_chain(int(tensor.shape[-1]))(Image.fromarray(array))
        same_shape = tensor.shape == expected.shape and tensor.dtype == torch.float32
        distance = float((tensor.detach().cpu() - expected).abs().mean()) if same_shape else float("inf")
        assert distance <= PIXEL_TOLERANCE, (
            "`preprocess` does not give what the ImageNet weights expect "
            "(check the resize, the three channels, the scaling to [0, 1], and Normalize's mean and std)"
        )


@question("q2")
@points(1)
def test_backbone_frozen(student):
    model = model_snapshot(student)
    thawed = [name for name, _, trainable in model.parameters if trainable and not name.startswith("fc.")]
    assert not thawed, f"every pretrained parameter should be frozen (`requires_grad = False`); {len(thawed)} are not"
    assert model.devices and all(torch.device(d).type == EXPECTED_DEVICE for d in model.devices), (
        f"`model` should be on `device` ({EXPECTED_DEVICE})"
    )


@question("q2")
@points(2)
def test_backbone_unchanged(student, assets):
    model = model_snapshot(student, with_weights=True)
    for name, expected in reference.load_model(assets, MODEL).named_parameters():
        if name.startswith("fc."):
            continue
        actual = model.state.get(name)
        same = isinstance(actual, torch.Tensor) and actual.shape == expected.shape
        assert same and torch.allclose(actual.detach().cpu().float(), expected.detach(), rtol=0, atol=1e-6), (
            "the pretrained layers changed: train only `model.fc` and keep the rest frozen"
        )


@question("q3")
@points(1)
def test_training_loss_falls(student):
    losses = recorded(student, "train_losses")
    assert losses[-1] < LOSS_DROP * losses[0], "`train_losses` does not fall: the head did not learn"


@question("q3")
@points(1)
def test_last_val_loss_is_the_trained_models(student, data):
    last = recorded(student, "val_losses")[-1]
    images, labels = validation_pictures(data)
    actual = torch.nn.functional.cross_entropy(logits_of(student, images), labels).item()
    absolute, relative = VAL_LOSS_TOLERANCE
    assert abs(last - actual) <= absolute + relative * actual, (
        "the last value of `val_losses` is not the trained `model`'s loss on `val_subset`"
    )


@question("q4")
@points(3)
def test_accuracy_on_unseen_pictures(student, data, thresholds):
    threshold = thresholds["accuracy"]
    images, labels = held_out_fashion(data)
    logits = logits_of(student, images)
    accuracy = (logits.argmax(dim=1) == torch.as_tensor(labels.astype("int64"))).float().mean().item()
    assert accuracy >= threshold, (
        f"`model` classifies {accuracy:.0%} of FashionMNIST pictures it never saw correctly, under {threshold:.0%}"
    )
