"""Hidden checks for 03_first_network: the trained model is questioned, not trusted.

Every number compared here is computed in this process from what the model
outputs for inputs sent from here (the lesson's split, rebuilt with sklearn,
or fresh circles drawn from `fresh_seed`); nothing the notebook computed about
itself is believed. The inputs travel as CPU tensors and the probes move them
to the model's device, so the same notebook grades on a CPU and on a GPU.

Calibration of HELD_OUT_ACCURACY (0.90): the notebook's training (CircleNet,
Adam lr=0.01, 500 full-batch epochs on the lesson's split) was run on the CPU
with torch.manual_seed(s) for s = 0..199, and each trained model was measured
on ten fresh make_circles(n_samples=2000, noise=0.03) sets. The accuracies
fall in two groups with a gap between them: 193 of the 200 seeds reach 0.96 or
more on every set (the reference notebook's seed, 42: 0.995 to 0.998), and the
7 others, whose hidden units died early, stay at 0.75 to 0.86. Wrong work
scores far below (100 seeds each): trained zero epochs, 0.40 to 0.55; trained
on a fixed shuffle of the labels, 0.24 to 0.81; a Linear(2, 4) hidden layer,
0.50 to 0.997 depending on the seed (it fails the architecture check
instead). 0.90 sits in the gap: a model that learned the circles passes, a
stalled one fails with a message, and the notebook says to rerun with another
seed. A fresh set of 2000 points has a standard error of about 0.005 at 0.96,
so a model that learned does not fall under 0.90 by the luck of the draw.

LOSS_DROP (0.75) comes from the same runs: the mean of the last 50 recorded
losses over the first one was at most 0.23 for the models that learned, 0.66
for the stalled ones (they did train), and at least 0.85 when the labels were
shuffled. The tolerances: the last recorded loss (before the last step) and
the trained model's differed by at most 0.0007, and the last recorded
training accuracy and the trained model's by at most 0.01 (a model fitting
shuffled labels, 40 seeds); 0.03 leaves room and still catches percentages.
`../calibrate_threshold.py` repeats the measurement (after a torch upgrade, say).
"""

import pytest
import torch
from sklearn.datasets import make_circles
from sklearn.model_selection import train_test_split

from autograder.checkkit import ModuleSnapshot

question, points = pytest.mark.question, pytest.mark.points

HELD_OUT_ACCURACY = 0.90  # calibrated as the docstring says
HELD_OUT_POINTS = 2000
EPOCHS = 500
LOSS_DROP = 0.75  # the last tenth of the training loss must average under this fraction of the first value
LOSS_TOLERANCE = (0.01, 0.05)  # absolute, relative: the last recorded loss against the trained model's
ACCURACY_TOLERANCE = 0.03  # the last recorded accuracy against the trained model's (6 of 200 test points)
EXPECTED_DEVICE = "cuda" if torch.cuda.is_available() else "cpu"

# Runs in the student's kernel on a copy of its namespace: the trained model's
# logits for inputs sent from here, moved to the model's device and back.
LOGITS_OF_MODEL = """
import torch as _torch
_device = next(model.parameters()).device
with _torch.inference_mode():
    result = model(inputs["x"].to(_device)).float().cpu()
"""

# The trained model's logits on the notebook's own split, the data it was trained on.
LOGITS_ON_OWN_SPLIT = """
import torch as _torch
_device = next(model.parameters()).device
with _torch.inference_mode():
    result = [model(_x.to(_device)).float().cpu() for _x in (X_train, X_test)]
"""

# A new, untrained CircleNet on fresh inputs; the global random state is left as it was.
FRESH_CIRCLENET = """
import torch as _torch
with _torch.random.fork_rng(devices=[]):
    _torch.manual_seed(inputs["seed"])
    _net = CircleNet()
    _parameters = list(_net.parameters())
    _out = None
    if _parameters:
        with _torch.no_grad():
            _out = _net(inputs["x"].to(_parameters[0].device)).float().cpu()
result = (_net, _out)
"""

DRAW_BOUNDARY = """
import matplotlib.pyplot as _plt
_device = next(model.parameters()).device
_figure = plot_decision_boundary(model, inputs["X"].to(_device), inputs["y"].to(_device))
_axes = []
if isinstance(_figure, _plt.Figure):
    for _a in _figure.axes:
        _drawn = len(_a.collections) + len(_a.images)
        _axes.append((_drawn, tuple(map(float, _a.get_xlim())), tuple(map(float, _a.get_ylim()))))
    _plt.close(_figure)
result = (type(_figure).__name__, _axes)
"""


@pytest.fixture
def generator(fresh_seed):
    return torch.Generator().manual_seed(fresh_seed)


def lesson_split():
    """The lesson's data, made here: X_train, X_test, y_train, y_test as CPU tensors."""
    points, labels = make_circles(n_samples=1000, noise=0.03, random_state=42)
    parts = train_test_split(points, labels, test_size=0.2, random_state=42, stratify=labels)
    X_train, X_test, y_train, y_test = (torch.as_tensor(p) for p in parts)
    return X_train.float(), X_test.float(), y_train.long(), y_test.long()


def fresh_circles(seed, n_samples):
    points, labels = make_circles(n_samples=n_samples, noise=0.03, random_state=seed % 2**32)
    return torch.as_tensor(points).float(), torch.as_tensor(labels).long()


def trained_model_logits(student, x):
    model = student.fetch("model", module_state=False)
    assert isinstance(model, ModuleSnapshot), "`model` should be a trained `CircleNet`"
    logits = student.probe(LOGITS_OF_MODEL, x=x)
    assert isinstance(logits, torch.Tensor) and logits.shape == (len(x), 2), "`model` should give 2 logits per point"
    return logits


def logits_and_labels_of_own_split(student):
    """(logits, labels) for the notebook's training and test sets: the trained
    model's outputs, so that a mistake in the split is not counted twice."""
    model = student.fetch("model", module_state=False)
    assert isinstance(model, ModuleSnapshot), "`model` should be a trained `CircleNet`"
    labels = [student.fetch("y_train"), student.fetch("y_test")]
    assert all(isinstance(y, torch.Tensor) and y.dim() == 1 for y in labels), "`y_train` and `y_test` should be labels"
    logits = student.probe(LOGITS_ON_OWN_SPLIT)
    for out, y in zip(logits, labels, strict=True):
        assert isinstance(out, torch.Tensor) and out.shape == (len(y), 2), "`model` should give 2 logits per point"
    return [(out, y.cpu().long()) for out, y in zip(logits, labels, strict=True)]


def accuracy(logits, labels):
    return (logits.argmax(dim=1) == labels).float().mean().item()


def is_number(value):
    return isinstance(value, (int, float)) or (isinstance(value, torch.Tensor) and value.numel() == 1)


def recorded(student, name):
    history = student.fetch(name)
    assert isinstance(history, list) and len(history) == EPOCHS, f"`{name}` should hold one number per epoch"
    values = [float(v) for v in history if is_number(v)]
    assert len(values) == EPOCHS, f"`{name}` should hold numbers"
    return values


@question("q1")
@points(1)
def test_split_is_the_lesson_split(student):
    for name, expected in zip(("X_train", "X_test", "y_train", "y_test"), lesson_split(), strict=True):
        value = student.fetch(name)
        assert isinstance(value, torch.Tensor), f"`{name}` should be a tensor"
        assert value.shape == expected.shape, f"`{name}` has the wrong shape"
        same = torch.allclose(value.detach().cpu().double(), expected.double(), atol=1e-6)
        assert same, f"`{name}` is not the lesson's split (check random_state=42 and stratify=y)"


@question("q2")
@points(2)
def test_circlenet_is_linear_relu_linear(student, generator, fresh_seed):
    x = torch.randn(64, 2, generator=generator) * 2
    net, out = student.probe(FRESH_CIRCLENET, seed=fresh_seed % 2**63, x=x)
    assert isinstance(net, ModuleSnapshot), "`CircleNet()` should make an `nn.Module`"
    by_shape = {tuple(t.shape): t.detach().cpu().float() for t in net.state.values()}
    layers = [(8, 2), (8,), (2, 8), (2,)]
    assert len(net.state) == 4 and all(s in by_shape for s in layers), (
        "`CircleNet` should hold exactly Linear(2, 8) and Linear(8, 2)"
    )
    W1, b1, W2, b2 = (by_shape[s] for s in layers)
    expected = torch.relu(x @ W1.T + b1) @ W2.T + b2
    assert isinstance(out, torch.Tensor) and out.shape == expected.shape, "`CircleNet` should give 2 logits per point"
    assert torch.allclose(out, expected, atol=1e-5), "`CircleNet` should compute Linear(2, 8), ReLU, Linear(8, 2)"


@question("q2")
@points(1)
def test_model_lives_on_the_device(student):
    model = student.fetch("model", module_state=False)
    assert isinstance(model, ModuleSnapshot) and model.devices, "`model` should be a `CircleNet` with parameters"
    assert all(torch.device(d).type == EXPECTED_DEVICE for d in model.devices), (
        f"`model` should be on `device` ({EXPECTED_DEVICE})"
    )


@question("q3")
@points(1)
def test_accuracy_from_logits_fresh(student, generator):
    rows = int(torch.randint(50, 300, (1,), generator=generator))
    classes = int(torch.randint(2, 6, (1,), generator=generator))
    logits = torch.randn(rows, classes, generator=generator)
    labels = torch.randint(0, classes, (rows,), generator=generator)
    result = student.call("accuracy_from_logits", logits, labels)
    assert is_number(result), "`accuracy_from_logits` should return a number"
    assert abs(float(result) - accuracy(logits, labels)) < 1e-6, "`accuracy_from_logits` gives a wrong fraction"


@question("q4")
@points(1)
def test_training_loss_drops(student):
    losses = recorded(student, "train_loss_history")
    last_tenth = losses[-EPOCHS // 10 :]
    assert sum(last_tenth) / len(last_tenth) < LOSS_DROP * losses[0], (
        "`train_loss_history` does not fall: training did not fit the training data"
    )


@question("q4")
@points(1)
def test_recorded_losses_are_the_trained_models(student):
    own_train, own_test = logits_and_labels_of_own_split(student)
    for name, (logits, labels) in (("train_loss_history", own_train), ("test_loss_history", own_test)):
        actual = torch.nn.functional.cross_entropy(logits, labels).item()
        last = recorded(student, name)[-1]
        absolute, relative = LOSS_TOLERANCE
        assert abs(last - actual) <= absolute + relative * actual, (
            f"the last value of `{name}` is not the loss of the trained `model`"
        )


@question("q4")
@points(1)
def test_recorded_accuracies_are_the_trained_models(student):
    own_train, own_test = logits_and_labels_of_own_split(student)
    for name, (logits, labels) in (("train_acc_history", own_train), ("test_acc_history", own_test)):
        last = recorded(student, name)[-1]
        assert abs(last - accuracy(logits, labels)) <= ACCURACY_TOLERANCE, (
            f"the last value of `{name}` is not the accuracy (a fraction) of the trained `model`"
        )


@question("q5")
@points(3)
def test_accuracy_on_fresh_circles(student, fresh_seed):
    x, labels = fresh_circles(fresh_seed, HELD_OUT_POINTS)
    logits = trained_model_logits(student, x)
    score = accuracy(logits, labels)
    assert score >= HELD_OUT_ACCURACY, (
        f"`model` classifies {score:.0%} of fresh circles correctly, under {HELD_OUT_ACCURACY:.0%}"
    )


@question("q6")
@points(1)
def test_decision_boundary_covers_fresh_points(student, generator, fresh_seed):
    model = student.fetch("model", module_state=False)
    assert isinstance(model, ModuleSnapshot), "`model` should be a trained `CircleNet`"
    x, labels = fresh_circles(fresh_seed + 1, 150)
    scale = float(torch.rand(1, generator=generator)) * 3 + 2
    shift = torch.randn(2, generator=generator) * 3
    x = x * scale + shift
    kind, axes = student.probe(DRAW_BOUNDARY, X=x, y=labels)
    assert kind == "Figure", "`plot_decision_boundary` should return the matplotlib figure"
    low, high = x.min(dim=0).values.tolist(), x.max(dim=0).values.tolist()
    covered = [
        drawn >= 2 and xlim[0] <= low[0] and high[0] <= xlim[1] and ylim[0] <= low[1] and high[1] <= ylim[1]
        for drawn, xlim, ylim in axes
    ]
    assert any(covered), "the boundary plot should cover the points it is given, wherever they lie"
