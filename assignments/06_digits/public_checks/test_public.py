"""Public checks for 06_digits: what the notebook itself can see.

Students run these with `autograder check`; grading runs them too, together
with hidden checks on digit pictures the notebook never sees. Pictures travel
into the kernel as uint8 arrays; every accuracy is computed here from what the
student's `model` or `predict` gives for them, never taken from the notebook.
"""

import numbers

import pytest
import torch

from autograder.checkkit import ModuleSnapshot

question, points = pytest.mark.question, pytest.mark.points

DIGITS = "digits"  # registered in assignments/assets.toml
EPOCHS = 10
LAYER_SHAPES = [(10,), (10, 32), (32,), (32, 64)]  # sorted: Linear(64, 32) and Linear(32, 10)
ACCURACY_TOLERANCE = 0.005  # `test_accuracy` against the trained model's, measured here
EXPECTED_DEVICE = "cuda" if torch.cuda.is_available() else "cpu"

# The trained model's accuracy on the notebook's own X_test and y_test, in
# evaluation mode; the model's mode is restored.
OWN_TEST_ACCURACY = """
import torch as _torch
_was_training = model.training
model.eval()
try:
    with _torch.inference_mode():
        result = (model(X_test).argmax(dim=1) == y_test).float().mean().item()
finally:
    model.train(_was_training)
"""


def public_part(data, name):
    """(uint8 images N x 8 x 8, labels N) of `train` or `test`, read by the asset's own module."""
    return data[DIGITS].module.read_part(data[DIGITS].public / f"{name}.npz")


@question("q1")
@points(1)
def test_data_shapes_dtypes_and_device(student, data):
    for part in ("train", "test"):
        count = len(public_part(data, part)[1])
        expected = {f"X_{part}": ((count, 64), torch.float32), f"y_{part}": ((count,), torch.int64)}
        for name, (shape, dtype) in expected.items():
            value = student.fetch(name)
            assert isinstance(value, torch.Tensor), f"`{name}` should be a tensor"
            assert tuple(value.shape) == shape, f"`{name}` should have shape {shape}, not {tuple(value.shape)}"
            assert value.dtype == dtype, f"`{name}` should be {dtype}, not {value.dtype}"
            assert value.device.type == EXPECTED_DEVICE, f"`{name}` should be on `device` ({EXPECTED_DEVICE})"


@question("q2")
@points(1)
def test_model_is_a_digitnet_on_the_device(student):
    model = student.fetch("model", module_state=False)
    assert isinstance(model, ModuleSnapshot), "`model` should be a `DigitNet` (an `nn.Module`)"
    assert model.type.endswith(".DigitNet"), f"`model` should be a `DigitNet`, not {model.type}"
    shapes = sorted(shape for _, shape, _ in model.parameters)
    assert shapes == LAYER_SHAPES, "`DigitNet` should hold exactly Linear(64, 32) and Linear(32, 10)"
    assert model.devices and all(torch.device(d).type == EXPECTED_DEVICE for d in model.devices), (
        f"`model` should be on `device` ({EXPECTED_DEVICE})"
    )


@question("q3")
@points(1)
def test_loss_history_has_one_number_per_epoch(student):
    losses = student.fetch("loss_history")
    assert isinstance(losses, list), "`loss_history` should be a list"
    assert len(losses) == EPOCHS, f"`loss_history` should hold {EPOCHS} numbers, one per epoch, not {len(losses)}"
    assert all(isinstance(v, numbers.Real) and not isinstance(v, bool) for v in losses), (
        "`loss_history` should hold Python numbers (`loss.item()`)"
    )


@question("q4")
@points(1)
def test_test_accuracy_is_the_models(student):
    recorded = student.fetch("test_accuracy")
    assert isinstance(recorded, numbers.Real) and not isinstance(recorded, bool), (
        "`test_accuracy` should be a Python number between 0 and 1"
    )
    measured = student.probe(OWN_TEST_ACCURACY)
    assert abs(recorded - measured) <= ACCURACY_TOLERANCE, (
        f"`test_accuracy` is {recorded:.3f}, but the trained `model` classifies {measured:.3f} of `X_test` correctly"
    )


@question("q4")
@points(1)
def test_predict_on_the_test_pictures(student, data, thresholds):
    threshold = thresholds["accuracy"]
    images, labels = public_part(data, "test")
    predicted = student.call("predict", images)
    assert isinstance(predicted, torch.Tensor) and tuple(predicted.shape) == (len(labels),), (
        f"`predict(images)` should return a tensor of {len(labels)} digits for {len(labels)} pictures"
    )
    accuracy = (predicted.cpu().long() == torch.as_tensor(labels.astype("int64"))).float().mean().item()
    assert accuracy >= threshold, f"`predict` gets {accuracy:.0%} of the test pictures right, under {threshold:.0%}"
