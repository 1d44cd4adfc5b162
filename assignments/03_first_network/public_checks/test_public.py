"""Public checks for 03_first_network: what the notebook itself shows.

Students run these with `autograder check`; grading runs them too, together
with hidden checks that question the trained model on points of their own.
Every number compared here is computed by this file from the model's outputs,
never taken from a value the notebook computed.
"""

import pytest
import torch
from sklearn.datasets import make_circles
from sklearn.model_selection import train_test_split

from autograder.checkkit import ModuleSnapshot

question, points = pytest.mark.question, pytest.mark.points

EPOCHS = 500
LAYER_SHAPES = [(2,), (2, 8), (8,), (8, 2)]  # sorted: both biases and both weights of Linear(2,8), Linear(8,2)
EXPECTED_DEVICE = "cuda" if torch.cuda.is_available() else "cpu"

# Runs in the student's kernel on a copy of its namespace: the logits of the
# trained model for inputs sent from here, moved to the model's device and back.
LOGITS_OF_MODEL = """
import torch as _torch
_device = next(model.parameters()).device
with _torch.inference_mode():
    result = model(inputs["x"].to(_device)).float().cpu()
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


def lesson_split():
    """The lesson's data, made here: X_train, X_test, y_train, y_test as CPU tensors."""
    points, labels = make_circles(n_samples=1000, noise=0.03, random_state=42)
    parts = train_test_split(points, labels, test_size=0.2, random_state=42, stratify=labels)
    X_train, X_test, y_train, y_test = (torch.as_tensor(p) for p in parts)
    return X_train.float(), X_test.float(), y_train.long(), y_test.long()


@question("q1")
@points(1)
def test_split_shapes_dtypes_and_device(student):
    expected = {"X_train": ((800, 2), torch.float32), "X_test": ((200, 2), torch.float32)}
    expected |= {"y_train": ((800,), torch.int64), "y_test": ((200,), torch.int64)}
    for name, (shape, dtype) in expected.items():
        value = student.fetch(name)
        assert isinstance(value, torch.Tensor), f"`{name}` should be a tensor"
        assert tuple(value.shape) == shape, f"`{name}` should have shape {shape}, not {tuple(value.shape)}"
        assert value.dtype == dtype, f"`{name}` should be {dtype}, not {value.dtype}"
        assert value.device.type == EXPECTED_DEVICE, f"`{name}` should be on `device` ({EXPECTED_DEVICE})"


@question("q2")
@points(1)
def test_model_is_a_circlenet(student):
    model = student.fetch("model", module_state=False)
    assert isinstance(model, ModuleSnapshot), "`model` should be a `CircleNet` (an `nn.Module`)"
    assert model.type.endswith(".CircleNet"), f"`model` should be a `CircleNet`, not {model.type}"
    shapes = sorted(shape for _, shape, _ in model.parameters)
    assert shapes == LAYER_SHAPES, "`CircleNet` should hold exactly Linear(2, 8) and Linear(8, 2)"


@question("q3")
@points(1)
def test_accuracy_example(student):
    logits = torch.tensor([[2.0, 1.0], [0.0, 3.0], [1.0, 0.0], [0.0, 1.0]])
    accuracy = student.call("accuracy_from_logits", logits, torch.tensor([0, 1, 1, 1]))
    assert isinstance(accuracy, (int, float, torch.Tensor)), "`accuracy_from_logits` should return a number"
    assert abs(float(accuracy) - 0.75) < 1e-6, "`accuracy_from_logits` of the example should be 0.75"


@question("q4")
@points(1)
def test_histories_have_one_number_per_epoch(student):
    for name in ("train_loss_history", "test_loss_history", "train_acc_history", "test_acc_history"):
        history = student.fetch(name)
        assert isinstance(history, list), f"`{name}` should be a list"
        assert len(history) == EPOCHS, f"`{name}` should hold {EPOCHS} numbers, one per epoch, not {len(history)}"
        assert all(isinstance(v, (int, float)) for v in history), f"`{name}` should hold Python numbers (`.item()`)"


@question("q5")
@points(1)
def test_model_accuracy_on_the_lesson_test_set(student):
    model = student.fetch("model", module_state=False)
    assert isinstance(model, ModuleSnapshot), "`model` should be a trained `CircleNet`"
    _, X_test, _, y_test = lesson_split()
    logits = student.probe(LOGITS_OF_MODEL, x=X_test)
    assert isinstance(logits, torch.Tensor) and logits.shape == (200, 2), "`model` should give 2 logits per point"
    accuracy = (logits.argmax(dim=1) == y_test).float().mean().item()
    assert accuracy >= 0.9, f"`model` classifies only {accuracy:.0%} of the test points correctly (at least 90%)"


@question("q6")
@points(1)
def test_decision_boundary_is_a_figure(student):
    model = student.fetch("model", module_state=False)
    assert isinstance(model, ModuleSnapshot), "`model` should be a trained `CircleNet`"
    _, X_test, _, y_test = lesson_split()
    kind, axes = student.probe(DRAW_BOUNDARY, X=X_test, y=y_test)
    assert kind == "Figure", "`plot_decision_boundary` should return the matplotlib figure"
    assert any(drawn >= 2 for drawn, _, _ in axes), "the figure should show the predicted regions and the points"
