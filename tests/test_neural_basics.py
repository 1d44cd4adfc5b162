"""01_neural_basics: the reference scores full marks, the blank template zero,
and each hand-written wrong answer loses exactly its points (tests/harness.py)."""

from __future__ import annotations

from tests.harness import AssignmentTests, Variant

STEP = "return weights - lr * weights.grad"


class TestNeuralBasics(AssignmentTests):
    assignment = "01_neural_basics"
    variants = (
        Variant(
            "sigmoid-sign-flipped",
            (("return 1 / (1 + torch.exp(-z))", "return 1 / (1 + torch.exp(z))"),),
            {"q2": 2},
            ("`sigmoid` gives wrong values",),
        ),
        Variant(
            "no-relu-between-layers",
            (("hidden = relu(x @ W1 + b1)", "hidden = x @ W1 + b1"),),
            {"q3": 3},
            ("`two_layer_forward` gives wrong values",),
        ),
        Variant(
            "mse-divides-by-rows",
            (("return ((pred - target) ** 2).mean()", "return ((pred - target) ** 2).sum() / len(pred)"),),
            {"q4": 1},
            ("`mse` gives wrong values",),
        ),
        Variant(
            "step-ignores-the-gradient",
            ((STEP, "return (weights - lr * weights).detach()"),),
            {"q5": 3},
            ("`gradient_step` gives wrong values",),
        ),
        Variant(
            "step-keeps-tracking-gradients",
            ((f"    with torch.no_grad():\n        {STEP}", f"    {STEP}"),),
            {"q5": 1},
            ("should not track gradients",),
        ),
        Variant(
            "step-changes-its-argument",
            (
                (
                    "weights = w.detach().clone().requires_grad_(True)\n    loss = mse(x @ weights, y)\n"
                    "    loss.backward()\n    with torch.no_grad():\n        return weights - lr * weights.grad",
                    "w.requires_grad_(True)\n    mse(x @ w, y).backward()\n    with torch.no_grad():\n"
                    "        w -= lr * w.grad\n    return w.detach()",
                ),
            ),
            {"q5": 1},
            ("changed the weights it was given",),
        ),
    )
