"""Hidden checks for 01_neural_basics: fresh inputs, compared in this process.

Inputs come from `fresh_seed`, so they differ on every run and cannot be
hard-coded; sizes are drawn too and kept distinct where a transposed matrix
would otherwise go unnoticed. Every expected value is computed here, by
trusted code, never in the student's kernel. Messages say what is wrong,
never what the expected value is.
"""

import pytest
import torch

from autograder.errors import shape_for_hidden

question, points = pytest.mark.question, pytest.mark.points


@pytest.fixture
def generator(fresh_seed):
    return torch.Generator().manual_seed(fresh_seed)


def distinct_sizes(generator, count, low=2, high=9):
    """`count` different sizes, so that a swapped dimension changes the shape."""
    return [int(n) + low for n in torch.randperm(high - low, generator=generator)[:count]]


def assert_tensor_like(actual, expected, what):
    assert isinstance(actual, torch.Tensor), f"{what} should return a tensor"
    assert actual.shape == expected.shape, f"{what} gives the wrong shape ({shape_for_hidden(actual.shape)})"
    assert actual.dtype == expected.dtype, f"{what} gives the wrong dtype ({actual.dtype})"
    assert torch.allclose(actual.detach().cpu().double(), expected.double(), rtol=1e-4, atol=1e-5), (
        f"{what} gives wrong values"
    )


@question("q1")
@points(1)
def test_neuron_one_input_fresh(student, generator):
    (d,) = distinct_sizes(generator, 1, low=3)
    x, w = torch.randn(d, generator=generator), torch.randn(d, generator=generator)
    b = float(torch.randn(1, generator=generator))
    assert_tensor_like(student.call("neuron", x, w, b), (x * w).sum() + b, "`neuron` of one input")


@question("q1")
@points(1)
def test_neuron_batch_fresh(student, generator):
    n, d = distinct_sizes(generator, 2, low=3)
    x, w = torch.randn(n, d, generator=generator), torch.randn(d, generator=generator)
    b = torch.randn((), generator=generator)
    assert_tensor_like(student.call("neuron", x, w, b), (x * w).sum(dim=1) + b, "`neuron` of a batch")


@question("q2")
@points(1)
def test_relu_fresh(student, generator):
    z = torch.randn(*distinct_sizes(generator, 2), generator=generator) * 3
    assert_tensor_like(student.call("relu", z), torch.where(z > 0, z, torch.zeros_like(z)), "`relu`")


@question("q2")
@points(1)
def test_sigmoid_fresh_float64(student, generator):
    z = torch.randn(*distinct_sizes(generator, 2), generator=generator, dtype=torch.float64) * 4
    assert_tensor_like(student.call("sigmoid", z), 1 / (1 + torch.exp(-z)), "`sigmoid`")


@question("q3")
@points(2)
def test_two_layer_forward_fresh(student, generator):
    n, d_in, h, d_out = distinct_sizes(generator, 4)
    x = torch.randn(n, d_in, generator=generator)
    W1, b1 = torch.randn(d_in, h, generator=generator), torch.randn(h, generator=generator)
    W2, b2 = torch.randn(h, d_out, generator=generator), torch.randn(d_out, generator=generator)
    hidden = torch.clamp(x @ W1 + b1, min=0)
    out = student.call("two_layer_forward", x, W1, b1, W2, b2)
    assert_tensor_like(out, hidden @ W2 + b2, "`two_layer_forward`")


@question("q4")
@points(1)
def test_mse_fresh_matrix(student, generator):
    shape = distinct_sizes(generator, 2)
    pred, target = torch.randn(*shape, generator=generator), torch.randn(*shape, generator=generator)
    assert_tensor_like(student.call("mse", pred, target), ((pred - target) ** 2).mean(), "`mse`")


def regression_problem(generator):
    n, d = distinct_sizes(generator, 2, low=3, high=12)
    x, w = torch.randn(n, d, generator=generator), torch.randn(d, generator=generator)
    y = torch.randn(n, generator=generator)
    lr = float(torch.rand(1, generator=generator)) * 0.2 + 0.01
    return w, x, y, lr


@question("q5")
@points(2)
def test_gradient_step_fresh(student, generator):
    w, x, y, lr = regression_problem(generator)
    gradient = 2 / len(y) * x.T @ (x @ w - y)  # d/dw of mean((x @ w - y) ** 2), by hand
    assert_tensor_like(student.call("gradient_step", w, x, y, lr), w - lr * gradient, "`gradient_step`")


STEP_ON_A_COPY = """
w = inputs["w"].clone()
new_w = gradient_step(w, inputs["x"], inputs["y"], inputs["lr"])
result = (w, new_w)
"""


@question("q5")
@points(1)
def test_gradient_step_leaves_w_alone_and_detaches(student, generator):
    w, x, y, lr = regression_problem(generator)
    given, new_w = student.probe(STEP_ON_A_COPY, w=w, x=x, y=y, lr=lr)
    assert isinstance(given, torch.Tensor) and torch.equal(given.detach().cpu(), w), (
        "`gradient_step` changed the weights it was given"
    )
    assert isinstance(new_w, torch.Tensor), "`gradient_step` should return a tensor"
    assert not new_w.requires_grad, "the weights `gradient_step` returns should not track gradients (detach them)"
