"""Hidden checks for 06_digits: the trained network is questioned, not trusted.

* Accuracy: the grader's held-out digit pictures (never mounted in the
  student's kernel; `data["digits"].hidden_module.held_out`) go in, as uint8
  arrays, through the notebook's own `predict`; the accuracy is computed here
  and compared with `thresholds["accuracy"]` for the kind of assets in use
  (assignment.toml says how those numbers were chosen).
* Data and network: `prepare` on fresh pictures drawn from `fresh_seed`, the
  four tensors against the files read here, and a fresh `DigitNet` on fresh
  inputs against Linear, ReLU, Linear computed here from its own weights.
* Losses: the training loss falls (the last epoch's under LOSS_DROP of the
  first's), and the last `loss_history` value is near the trained model's
  loss on the training pictures, measured here. LOSS_DROP and LOSS_TOLERANCE
  come from the runs of ../calibrate.py (notebook seeds 0 to 9, stand-in and
  real assets): the last epoch's loss over the first's was 0.020 to 0.025
  (stand-in) and 0.040 to 0.053 (real) for the reference, up to 0.18 with
  unscaled pixels and 16 hidden units, and 0.994 or more with the labels
  shuffled (1.0 untrained). The last recorded loss minus the trained model's
  was -0.005 to 0.017 for the reference (whose loss is 0.025 to 0.065),
  -0.030 to 0.057 for the unscaled network (0.007 to 0.27), 0.001 to 0.006
  with the labels shuffled; 0.05 plus half the model's loss leaves 0.04 or
  more to spare for each of them and still refuses numbers made up or taken
  from another run.
"""

import numbers

import numpy as np
import pytest
import torch

from autograder.checkkit import ModuleSnapshot

question, points = pytest.mark.question, pytest.mark.points

DIGITS = "digits"  # registered in assignments/assets.toml
EPOCHS = 10
LOSS_DROP = 0.5  # calibrated: see the module docstring
LOSS_TOLERANCE = (0.05, 0.5)  # absolute, relative: the last recorded loss against the trained model's
BATCH = 500  # pictures per call into the kernel

# The trained model's logits for the notebook's own training tensors, in evaluation mode.
OWN_TRAIN_LOGITS = """
import torch as _torch
_was_training = model.training
model.eval()
try:
    with _torch.inference_mode():
        result = model(X_train).float().cpu()
finally:
    model.train(_was_training)
"""

# A new, untrained DigitNet on fresh inputs; the global random state is left as it was.
FRESH_DIGITNET = """
import torch as _torch
with _torch.random.fork_rng(devices=[]):
    _torch.manual_seed(inputs["seed"])
    _net = DigitNet()
    _parameters = list(_net.parameters())
    _out = None
    if _parameters:
        with _torch.no_grad():
            _out = _net(inputs["x"].to(_parameters[0].device)).float().cpu()
result = (_net, _out)
"""


@pytest.fixture
def rng(fresh_seed):
    return np.random.default_rng(fresh_seed)


def public_part(data, name):
    return data[DIGITS].module.read_part(data[DIGITS].public / f"{name}.npz")


def prepared(images):
    return torch.as_tensor(images.astype(np.float32)).reshape(len(images), 64) / 16


def recorded_losses(student):
    losses = student.fetch("loss_history")
    assert isinstance(losses, list) and len(losses) == EPOCHS, "`loss_history` should hold one number per epoch"
    assert all(isinstance(v, numbers.Real) and not isinstance(v, bool) for v in losses), (
        "`loss_history` should hold Python numbers"
    )
    return [float(v) for v in losses]


def predictions(student, images):
    """What `predict` says for uint8 pictures (N x 8 x 8), sent in batches."""
    parts = []
    for start in range(0, len(images), BATCH):
        batch = np.ascontiguousarray(images[start : start + BATCH])
        predicted = student.call("predict", batch)
        assert isinstance(predicted, torch.Tensor) and tuple(predicted.shape) == (len(batch),), (
            "`predict(images)` should return a tensor of one digit per picture"
        )
        parts.append(predicted.cpu().long())
    return torch.cat(parts)


@question("q1")
@points(1)
def test_prepare_scales_fresh_pictures(student, rng):
    images = rng.integers(0, 17, size=(int(rng.integers(5, 40)), 8, 8), dtype=np.uint8)
    out = student.call("prepare", images)
    expected = prepared(images)
    assert isinstance(out, torch.Tensor) and out.shape == expected.shape and out.dtype == torch.float32, (
        "`prepare(images)` should give a float32 tensor of one row of 64 numbers per picture"
    )
    assert torch.allclose(out.cpu(), expected, atol=1e-6), (
        "`prepare` gives wrong values: flatten each picture row by row, then divide its pixels by 16"
    )


@question("q1")
@points(1)
def test_tensors_hold_the_files_pictures(student, data):
    for part in ("train", "test"):
        images, labels = public_part(data, part)
        for name, expected in ((f"X_{part}", prepared(images)), (f"y_{part}", torch.as_tensor(labels.astype("int64")))):
            value = student.fetch(name)
            same = isinstance(value, torch.Tensor) and value.shape == expected.shape
            assert same and torch.allclose(value.cpu().double(), expected.double(), atol=1e-6), (
                f"`{name}` does not hold digits/{part}.npz prepared as Q1 says"
            )


@question("q2")
@points(2)
def test_digitnet_is_linear_relu_linear(student, rng, fresh_seed):
    x = torch.as_tensor(rng.random((64, 64), dtype=np.float32))
    net, out = student.probe(FRESH_DIGITNET, seed=fresh_seed % 2**63, x=x)
    assert isinstance(net, ModuleSnapshot), "`DigitNet()` should make an `nn.Module`"
    by_shape = {tuple(t.shape): t.detach().cpu().float() for t in net.state.values()}
    layers = [(32, 64), (32,), (10, 32), (10,)]
    assert len(net.state) == 4 and all(s in by_shape for s in layers), (
        "`DigitNet` should hold exactly Linear(64, 32) and Linear(32, 10)"
    )
    W1, b1, W2, b2 = (by_shape[s] for s in layers)
    expected = torch.relu(x @ W1.T + b1) @ W2.T + b2
    assert isinstance(out, torch.Tensor) and out.shape == expected.shape, "`DigitNet` should give 10 logits per picture"
    assert torch.allclose(out, expected, atol=1e-5), "`DigitNet` should compute Linear(64, 32), ReLU, Linear(32, 10)"


@question("q3")
@points(1)
def test_training_loss_falls(student):
    losses = recorded_losses(student)
    assert losses[-1] < LOSS_DROP * losses[0], "`loss_history` does not fall enough: the network did not learn"


@question("q3")
@points(1)
def test_last_loss_is_the_trained_models(student, data):
    last = recorded_losses(student)[-1]
    logits = student.probe(OWN_TRAIN_LOGITS)
    _, labels = public_part(data, "train")
    assert isinstance(logits, torch.Tensor) and logits.shape == (len(labels), 10), (
        "`model` should give 10 logits for each picture of `X_train`"
    )
    actual = torch.nn.functional.cross_entropy(logits, torch.as_tensor(labels.astype("int64"))).item()
    absolute, relative = LOSS_TOLERANCE
    assert abs(last - actual) <= absolute + relative * actual, (
        "the last value of `loss_history` is not near the trained `model`'s loss on the training pictures"
    )


@question("q4")
@points(3)
def test_accuracy_on_unseen_digits(student, data, thresholds):
    threshold = thresholds["accuracy"]
    images, labels = data[DIGITS].hidden_module.held_out(data[DIGITS].hidden)
    accuracy = (predictions(student, images) == torch.as_tensor(labels.astype("int64"))).float().mean().item()
    assert accuracy >= threshold, (
        f"`predict` gets {accuracy:.0%} of digit pictures it never saw right, under {threshold:.0%}"
    )
