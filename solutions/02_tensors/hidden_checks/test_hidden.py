"""Hidden checks for 02_tensors: fresh inputs, compared in this process.

Inputs come from `fresh_seed`, so they differ on every run and cannot be
hard-coded. Messages say what is wrong, never what the expected value is.
"""

import pytest
import torch

from autograder.errors import shape_for_hidden

question, points = pytest.mark.question, pytest.mark.points


@pytest.fixture
def generator(fresh_seed):
    return torch.Generator().manual_seed(fresh_seed)


def random_matrix(generator, rows=None, cols=None):
    rows = rows or int(torch.randint(2, 7, (1,), generator=generator))
    cols = cols or int(torch.randint(2, 7, (1,), generator=generator))
    return torch.randn(rows, cols, generator=generator)


def assert_tensor_like(actual, expected, what):
    assert isinstance(actual, torch.Tensor), f"{what} should return a tensor"
    assert actual.shape == expected.shape, f"{what} gives the wrong shape ({shape_for_hidden(actual.shape)})"
    assert actual.dtype == expected.dtype, f"{what} gives the wrong dtype ({actual.dtype})"
    assert torch.allclose(actual.cpu().double(), expected.double(), atol=1e-5), f"{what} gives wrong values"


@question("q1")
@points(1)
def test_as_int32_fresh(student, generator):
    values = torch.randn(5, generator=generator) * 10
    assert_tensor_like(student.call("as_int32", values), values.to(torch.int32), "`as_int32`")


@question("q2")
@points(1)
def test_add_batch_dim_fresh(student, generator):
    t = random_matrix(generator)
    assert_tensor_like(student.call("add_batch_dim", t), t.unsqueeze(0), "`add_batch_dim`")


@question("q2")
@points(1)
def test_drop_unit_dims_fresh(student, generator):
    t = torch.randn(1, 4, 1, 3, 1, generator=generator)
    assert_tensor_like(student.call("drop_unit_dims", t), t.squeeze(), "`drop_unit_dims`")


@question("q3")
@points(1)
def test_scale_and_clamp_fresh(student, generator):
    t = random_matrix(generator)
    scale = float(torch.rand(1, generator=generator)) * 3 + 0.5
    expected = torch.clamp(t * scale, -0.7, 0.9)
    assert_tensor_like(student.call("scale_and_clamp", t, scale, -0.7, 0.9), expected, "`scale_and_clamp`")


@question("q4")
@points(1)
def test_column_means_fresh(student, generator):
    m = random_matrix(generator)
    assert_tensor_like(student.call("column_means", m), m.mean(dim=0), "`column_means`")


@question("q4")
@points(1)
def test_row_argmax_fresh(student, generator):
    m = random_matrix(generator)
    # and its columns reversed: a small matrix's every row may peak in column 0 (one time in
    # four for 2 x 2), and then so would a constant answer; reversed, none does
    for shown in (m, m.flip(dims=[1])):
        assert_tensor_like(student.call("row_argmax", shown), shown.argmax(dim=1), "`row_argmax`")


@question("q5")
@points(1)
def test_center_columns_fresh(student, generator):
    m = random_matrix(generator)
    assert_tensor_like(student.call("center_columns", m), m - m.mean(dim=0), "`center_columns`")


@question("q5")
@points(1)
def test_outer_sum_fresh(student, generator):
    a, b = torch.randn(4, generator=generator), torch.randn(3, generator=generator)
    assert_tensor_like(student.call("outer_sum", a, b), a[:, None] + b[None, :], "`outer_sum`")


@question("q6")
@points(1)
def test_double_in_place_is_in_place(student, generator):
    t = random_matrix(generator)
    changed, same_object = student.probe(
        "t = inputs['t'].clone()\nreturned = double_in_place(t)\nresult = (t, returned is t)", t=t
    )
    assert_tensor_like(changed, t * 2, "the tensor passed to `double_in_place`")
    assert same_object, "`double_in_place` should return the very tensor it was given"


@question("q7")
@points(1)
def test_numpy_view_shares_memory(student, generator):
    t = torch.randn(4, generator=generator)
    seen = student.probe("t = inputs['t'].clone()\nview = numpy_view(t)\nt.add_(1.0)\nresult = view", t=t)
    assert type(seen).__name__ == "ndarray", "`numpy_view` should return a NumPy array"
    assert torch.allclose(torch.from_numpy(seen).float(), t + 1.0), "the array does not share memory with the tensor"


@question("q8")
@points(1)
def test_device_matches_machine(student):
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    device = student.fetch("device")
    assert isinstance(device, torch.device), "`device` should be a `torch.device`"
    assert device.type == expected, "`device` should be the GPU when one is available, else the CPU"


@question("q8")
@points(1)
def test_to_device_moves(student, generator):
    t = torch.randn(3, generator=generator)
    moved = student.probe("result = to_device(inputs['t'], torch.device('cpu'))", t=t)
    assert_tensor_like(moved, t, "`to_device`")


@question("q9")
@points(2)
def test_gradient_fresh_function(student, generator):
    x = torch.randn(5, generator=generator)
    grad = student.probe("result = gradient_at(lambda v: (v.sin() * v).sum(), inputs['x'])", x=x)
    expected = x.sin() + x * x.cos()
    assert_tensor_like(grad, expected, "`gradient_at`")
