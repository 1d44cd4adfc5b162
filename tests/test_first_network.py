"""03_first_network: the reference scores full marks, the blank template zero,
and each hand-written wrong answer loses exactly its points (tests/harness.py).
The decisive check measures the trained model on fresh circles the grader
draws itself."""

from __future__ import annotations

from collections.abc import Mapping

import pytest

from autograder.course import Course
from autograder.results import SubmissionResult
from tests.conftest import grade
from tests.harness import AssignmentTests, Variant

FIRST_NETWORK = "03_first_network"
SPLIT = "y_test = torch.tensor(y_test_np, dtype=torch.long, device=device)\n"
SHUFFLE = "y_train = y_train[torch.randperm(len(y_train), device=device)]  # the labels no longer match\n"


class TestFirstNetwork(AssignmentTests):
    assignment = FIRST_NETWORK
    variants = (
        Variant("zero-epochs", (("EPOCHS = 500", "EPOCHS = 0"),), {"q4": 4, "q5": 4}, ("should hold 500 numbers",)),
        Variant(
            "fabricated-loss-list",
            (
                (
                    "fig, (loss_axes, acc_axes)",
                    "train_loss_history = [0.7 * 0.99**epoch for epoch in range(EPOCHS)]\nfig, (loss_axes, acc_axes)",
                ),
            ),
            {"q4": 1},
            ("is not the loss of the trained `model`",),
        ),
        Variant(
            "shuffled-labels",
            ((SPLIT, SPLIT + SHUFFLE),),
            {"q1": 1, "q4": 1, "q5": 4},
            ("fresh circles",),
        ),
        Variant(
            "four-hidden-units",
            (("nn.Linear(2, 8)", "nn.Linear(2, 4)"), ("nn.Linear(8, 2)", "nn.Linear(4, 2)")),
            {"q2": 3},
            ("Linear(2, 8)",),
        ),
        Variant("unstratified-split", ((", stratify=labels", ""),), {"q1": 1}, ("is not the lesson's split",)),
    )


@pytest.mark.slow
def test_grading_twice_gives_the_same_result(course: Course, graded_solutions: Mapping[str, SubmissionResult]) -> None:
    """Seeds are fixed before the first cell: the same notebook trains the same
    network again, to the last recorded loss, and earns the same points."""
    first = graded_solutions[FIRST_NETWORK]
    again = grade(course, course.get(FIRST_NETWORK).solution, FIRST_NETWORK)
    assert [(c.name, c.status, c.score) for c in again.checks] == [(c.name, c.status, c.score) for c in first.checks]
    assert again.curves == first.curves and again.curves["Training loss"]
