"""Public checks for warmup_04: what each question states outright.

Students run these with `autograder check`; grading runs them too, together
with hidden checks that run the notebook's functions on pictures it never saw.
"""

import pytest
import torch

from autograder.checkkit import ModuleSnapshot
from autograder.reference import figure_record, picture_beside_chart

question, points = pytest.mark.question, pytest.mark.points

FIGURE = "outputs/warmup_inference_viz.png"


@question("t1")
@points(1)
def test_tensor_a(student):
    a = student.fetch("a")
    assert isinstance(a, torch.Tensor), "`a` should be a tensor"
    assert a.shape == (2, 3), f"`a` should have shape (2, 3), not {tuple(a.shape)}"
    assert a.dtype == torch.float32, f"`a` should be float32, not {a.dtype}"
    assert a.cpu().tolist() == [[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]], "`a` should hold the rows [1, 2, 3] and [4, 5, 6]"


@question("t4")
@points(1)
def test_arange_t(student):
    t = student.fetch("t")
    assert isinstance(t, torch.Tensor), "`t` should be a tensor"
    assert t.dtype == torch.float32, f"`t` should be float32 (`.float()`), not {t.dtype}"
    assert t.shape == (24,), f"`t` should be the 24 numbers 0 to 23 in one row, not shape {tuple(t.shape)}"
    assert t.cpu().tolist() == [float(n) for n in range(24)], "`t` should hold 0 to 23 in order"


@question("m2")
@points(1)
def test_final_layer_has_1000_outputs(student):
    model = student.fetch("model", module_state=False)
    assert isinstance(model, ModuleSnapshot), "`model` should be the ResNet18 network"
    shapes = {name: shape for name, shape, _ in model.parameters}
    assert "fc.weight" in shapes, "`model` has no final layer named `fc`"
    assert shapes["fc.weight"][0] == 1000, f"`model.fc` should give 1000 outputs, not {shapes['fc.weight'][0]}"


@question("i4")
@points(1)
def test_figure_shows_a_picture_beside_five_bars(student, workdir):
    _, chart = picture_beside_chart(figure_record(student, workdir, FIGURE), FIGURE)
    count = len(chart.bars)
    assert count == 5, f"the bar chart in `{FIGURE}` has {count} bars: show the top 5 predictions of the picture"
