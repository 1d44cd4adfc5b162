"""Public checks for 01_neural_basics: the examples shown in the notebook.

Students run these with `autograder check`; grading runs them too, together
with hidden checks on inputs the notebook never shows.
"""

import pytest
import torch

question, points = pytest.mark.question, pytest.mark.points


def close_to(actual, expected):
    """True when `actual` is a tensor holding `expected` (a list or a number)."""
    expected = torch.tensor(expected, dtype=torch.float64)
    return (
        isinstance(actual, torch.Tensor)
        and actual.shape == expected.shape
        and torch.allclose(actual.detach().cpu().double(), expected, atol=1e-4)
    )


@question("q1")
@points(1)
def test_neuron_example(student):
    z = student.call("neuron", torch.tensor([1.0, 2.0, 3.0]), torch.tensor([0.5, -1.0, 2.0]), 0.5)
    assert isinstance(z, torch.Tensor), "`neuron` should return a tensor"
    assert close_to(z, 5.0), "`neuron` of the example should be a 0-d tensor holding 5.0"


@question("q2")
@points(1)
def test_activations_example(student):
    out = student.call("relu", torch.tensor([-2.0, 0.0, 3.0]))
    assert isinstance(out, torch.Tensor), "`relu` should return a tensor"
    assert close_to(out, [0.0, 0.0, 3.0]), "`relu` of [-2, 0, 3] should be [0, 0, 3]"
    out = student.call("sigmoid", torch.tensor([0.0, 2.0]))
    assert isinstance(out, torch.Tensor), "`sigmoid` should return a tensor"
    assert close_to(out, [0.5, 0.880797]), "`sigmoid` of [0, 2] should be about [0.5, 0.8808]"


@question("q3")
@points(1)
def test_two_layer_forward_example(student):
    out = student.call(
        "two_layer_forward",
        torch.tensor([[1.0, -1.0]]),
        torch.tensor([[1.0, -1.0], [1.0, 1.0]]),
        torch.tensor([0.5, 0.5]),
        torch.tensor([[2.0], [3.0]]),
        torch.tensor([-0.25]),
    )
    assert isinstance(out, torch.Tensor), "`two_layer_forward` should return a tensor"
    assert close_to(out, [[0.75]]), "`two_layer_forward` of the example should be [[0.75]] (shape (1, 1))"


@question("q4")
@points(1)
def test_mse_example(student):
    loss = student.call("mse", torch.tensor([1.0, 2.0, 3.0]), torch.tensor([1.0, 0.0, 5.0]))
    assert isinstance(loss, torch.Tensor), "`mse` should return a tensor"
    assert close_to(loss, 8.0 / 3.0), "`mse` of the example should be a 0-d tensor holding 8/3"


@question("q5")
@points(1)
def test_gradient_step_example(student):
    x, y = torch.tensor([[1.0], [2.0]]), torch.tensor([2.0, 4.0])
    new_w = student.call("gradient_step", torch.zeros(1), x, y, 0.1)
    assert isinstance(new_w, torch.Tensor), "`gradient_step` should return a tensor"
    assert close_to(new_w, [1.0]), "from w = [0] with lr = 0.1 on the example, one step should give [1.0]"
