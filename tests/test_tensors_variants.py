"""02_tensors: the reference scores full marks, the blank template zero, and
each hand-written wrong answer loses exactly its points (tests/harness.py);
a cell that raises or never ends stops only itself."""

from __future__ import annotations

from pathlib import Path

from autograder.course import Course
from autograder.results import SubmissionResult
from tests.conftest import TENSORS
from tests.harness import AssignmentTests, Variant


class TestTensors(AssignmentTests):
    assignment = TENSORS
    variants = (
        Variant(
            "wrong-dtype", (("torch.ones(3, 4, dtype=torch.float64)", "torch.ones(3, 4)"),), {"q1": 1}, ("float64",)
        ),
        Variant("wrong-shape", (("return t.unsqueeze(0)", "return t.unsqueeze(-1)"),), {"q2": 1}, ("wrong shape",)),
        Variant(
            "hard-coded-printed-answer",
            (("return m.mean(dim=0)", "return torch.tensor([4.0, 5.0, 6.0])  # what the example printed"),),
            {"q4": 1},
            ("`column_means`",),
        ),
        Variant(
            "cell-raises",
            (("def center_columns(m):", "raise ValueError('not finished')\n\n\ndef center_columns(m):"),),
            {"q5": 3},
            ("is not defined",),
            cell_errors=("ValueError",),
        ),
        Variant(
            "infinite-loop",
            (("def double_in_place(t):", "while True:\n    pass\n\n\ndef double_in_place(t):"),),
            {"q6": 2},
            ("is not defined",),
            cell_errors=("CellTimeoutError",),
            cell_timeout_s=3,
        ),
        Variant(
            "missing-name",
            (("def gradient_at(fn, x):", "def grad_at(fn, x):"),),
            {"q9": 3},
            ("`gradient_at` is not defined",),
            cell_errors=("NameError",),  # the cell's own example calls it
        ),
        Variant("not-in-place", (("return t.mul_(2)", "return t * 2"),), {"q6": 2}, ("`double_in_place`",)),
        Variant(
            "copy-not-view", (("return torch.from_numpy(a)", "return torch.tensor(a)"),), {"q7": 1}, ("should change",)
        ),
    )

    def test_an_error_or_a_timeout_is_recorded_as_such(
        self, variant: Variant, variant_result: SubmissionResult
    ) -> None:
        assert variant_result.execution is not None
        kinds = [(e.kind, e.exception) for e in variant_result.execution.cell_errors]
        if variant.id == "cell-raises":
            assert kinds == [("error", "ValueError")]
        if variant.id == "infinite-loop":
            assert [kind for kind, _ in kinds][:1] == ["timeout"]


def test_solution_file_untouched(course: Course) -> None:
    assert "torch.ones(3, 4, dtype=torch.float64)" in course.get(TENSORS).solution.read_text()
    assert Path(course.get(TENSORS).solution).is_file()
