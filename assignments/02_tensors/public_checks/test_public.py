"""Public checks for 02_tensors: the examples shown in the notebook.

Students run these with `autograder check`; grading runs them too, together
with hidden checks on inputs the notebook never shows.
"""

import pytest
import torch

question, points = pytest.mark.question, pytest.mark.points


@question("q1")
@points(1)
def test_ones_f64(student):
    ones = student.fetch("ones_f64")
    assert isinstance(ones, torch.Tensor), "`ones_f64` should be a tensor"
    assert ones.shape == (3, 4), f"`ones_f64` should have shape (3, 4), not {tuple(ones.shape)}"
    assert ones.dtype == torch.float64, f"`ones_f64` should be float64, not {ones.dtype}"
    assert bool((ones == 1).all()), "`ones_f64` should hold only ones"


@question("q2")
@points(1)
def test_grid(student):
    grid = student.fetch("grid")
    assert isinstance(grid, torch.Tensor), "`grid` should be a tensor"
    assert grid.shape == (3, 4), f"`grid` should have shape (3, 4), not {tuple(grid.shape)}"
    assert grid.flatten().tolist() == list(range(12)), "`grid` should hold 0 to 11 in order"


@question("q3")
@points(1)
def test_scale_and_clamp_example(student):
    out = student.call("scale_and_clamp", torch.tensor([-1.0, 0.5, 2.0]), 2.0, -1.0, 1.0)
    assert isinstance(out, torch.Tensor), "`scale_and_clamp` should return a tensor"
    assert out.tolist() == [-1.0, 1.0, 1.0], "the notebook's example should give [-1, 1, 1]"


@question("q4")
@points(1)
def test_reductions_example(student):
    example = torch.tensor([[1.0, 2.0, 3.0], [7.0, 8.0, 9.0]])
    means = student.call("column_means", example)
    assert isinstance(means, torch.Tensor), "`column_means` should return a tensor"
    assert means.tolist() == [4.0, 5.0, 6.0], "`column_means` of the example should be [4, 5, 6]"
    assert student.call("row_argmax", example).tolist() == [2, 2], "`row_argmax` of the example should be [2, 2]"


@question("q5")
@points(1)
def test_outer_sum_example(student):
    out = student.call("outer_sum", torch.tensor([0.0, 10.0]), torch.tensor([1.0, 2.0, 3.0]))
    assert isinstance(out, torch.Tensor), "`outer_sum` should return a tensor"
    assert out.tolist() == [[1.0, 2.0, 3.0], [11.0, 12.0, 13.0]], "`outer_sum` of the example is wrong"


@question("q6")
@points(1)
def test_double_in_place_example(student):
    doubled = student.probe("v = torch.ones(3)\ndouble_in_place(v)\nresult = v")
    assert isinstance(doubled, torch.Tensor) and doubled.tolist() == [2.0, 2.0, 2.0], (
        "after `double_in_place(v)` the tensor `v` itself should hold 2s"
    )


@question("q7")
@points(1)
def test_tensor_view_example(student):
    shared = student.probe("a = np.zeros(3)\nt = tensor_view(a)\na[0] = 5.0\nresult = t")
    assert isinstance(shared, torch.Tensor), "`tensor_view` should return a tensor"
    assert shared.tolist() == [5.0, 0.0, 0.0], "the tensor should change when the array changes"


@question("q8")
@points(1)
def test_device_defined(student):
    device = student.fetch("device")
    assert isinstance(device, torch.device), "`device` should be a `torch.device`"


@question("q9")
@points(1)
def test_gradient_example(student):
    grad = student.probe("result = gradient_at(lambda v: (v ** 2).sum(), torch.tensor([1.0, 2.0, 3.0]))")
    assert isinstance(grad, torch.Tensor), "`gradient_at` should return a tensor"
    assert grad.tolist() == [2.0, 4.0, 6.0], "the gradient of sum(v**2) at [1, 2, 3] is [2, 4, 6]"

