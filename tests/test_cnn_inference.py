"""04_cnn_inference: the reference scores full marks, the blank template zero,
the weights' own preprocessing is as right as the lesson's chain, and each
hand-written wrong answer loses exactly its points (tests/harness.py). The
hidden checks compare with a trusted run of the same weights on pictures the
notebook never sees."""

from __future__ import annotations

from tests.harness import AssignmentTests, Variant

LESSON_NORMALIZE = "v2.Normalize(mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225])"
PREDICT_LOOP = 'for image, scene in sample_images:\n    print(f"{scene:10s}"'
KEEP_ANSWERS = (
    "_kept = {image.tobytes(): predict_topk(image) for image, _ in sample_images}\n\n\n"
    "def predict_topk(image, k=5):\n"
    "    return _kept.get(image.tobytes(), _kept[sample_images[0][0].tobytes()])[:k]\n\n\n"
)


class TestCnnInference(AssignmentTests):
    assignment = "04_cnn_inference"
    variants = (
        Variant(
            "weights-own-transforms",  # right: the other documented pipeline
            (
                ("# The lesson's chain; `preprocess = weights.transforms()` would be equally right.\n", ""),
                ("preprocess = v2.Compose(", "preprocess = weights.transforms()\n_unused = v2.Compose("),
            ),
            {},
        ),
        Variant(
            "normalized-with-half",
            ((LESSON_NORMALIZE, "v2.Normalize(mean=[0.5, 0.5, 0.5], std=[0.5, 0.5, 0.5])"),),
            {"q2": 2, "q4": 3},
            ("`preprocess` does not give what the ImageNet weights expect",),
        ),
        Variant(
            "answers-kept-for-the-samples",
            ((PREDICT_LOOP, KEEP_ANSWERS + PREDICT_LOOP),),
            {"q4": 4},
            ("pictures it never saw",),
        ),
        Variant(
            "returns-logits",
            (("probabilities = torch.softmax(logits[0], dim=0)", "probabilities = logits[0]"),),
            {"q4": 2, "q5": 0.5},  # the figure draws the same logits
            ("not raw logits",),
        ),
        Variant(
            "left-in-training-mode",
            (("model.eval()", "model.train()"),),
            {"q1": 1, "q4": 5},
            ("evaluation mode",),
            may_also_lose={"q5": 0.5},  # batch norm on one picture's own statistics: far from the trusted bars, or not
        ),
        Variant(  # the figure's bars are another sample's predictions
            "bars-of-another-picture",
            (("pairs = predict_topk(image, k=5)", "pairs = predict_topk(sample_images[0][0], k=5)"),),
            {"q5": 0.5},
            ("not the predictions for the picture shown",),
        ),
        Variant(
            "best-last",
            (("for probability, index in pairs]", "for probability, index in pairs][::-1]"),),
            {"q4": 1, "q5": 0.5},  # the figure's bars come out worst first
            ("best first",),
        ),
    )
