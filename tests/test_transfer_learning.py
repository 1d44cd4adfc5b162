"""05_transfer_learning: the reference scores full marks, the blank template
zero, and each hand-written wrong answer loses exactly its points
(tests/harness.py). The decisive checks measure the trained model on
FashionMNIST pictures the notebook never sees and compare its frozen layers
with the pretrained weights."""

from __future__ import annotations

from tests.harness import AssignmentTests, Variant

FREEZE = "for parameter in model.parameters():\n    parameter.requires_grad = False\n"
HEAD_OPTIMIZER = "torch.optim.Adam(model.fc.parameters(), lr=0.01)"
STEP = "        loss = loss_fn(model(images), labels)\n"
SHUFFLE = "        labels = labels[torch.randperm(len(labels), device=labels.device)]\n"
LESSON_NORMALIZE = "v2.Normalize(mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225])"


class TestTransferLearning(AssignmentTests):
    assignment = "05_transfer_learning"
    variants = (
        Variant(
            "head-not-replaced",
            (("model.fc = nn.Linear(model.fc.in_features, 10)\n", ""),),
            {"q2": 1, "q3": 3, "q4": 4},
            ("`model.fc` should map 512 features to 10 classes",),
            cell_errors=("RuntimeError", "ValueError"),  # backward() finds nothing to train; the plot, no losses
        ),
        Variant(
            "trained-end-to-end",
            ((FREEZE, ""), (HEAD_OPTIMIZER, "torch.optim.Adam(model.parameters(), lr=0.01)")),
            {"q2": 3},
            ("should be frozen",),
        ),
        Variant("shuffled-labels", ((STEP, SHUFFLE + STEP),), {"q3": 1, "q4": 4}, ("never saw correctly",)),
        Variant("never-trained", (("EPOCHS = 3", "EPOCHS = 0"),), {"q3": 3, "q4": 4}, ("one per epoch",)),
        Variant(
            "normalized-with-half",
            ((LESSON_NORMALIZE, "v2.Normalize(mean=[0.5, 0.5, 0.5], std=[0.5, 0.5, 0.5])"),),
            {"q1": 1},
            ("`preprocess` does not give what the ImageNet weights expect",),
        ),
    )
