"""warmup_04: the reference scores full marks, the blank template zero, and
hand-written wrong answers lose exactly their points (tests/harness.py). The
inference checks run the notebook's own function on held-out pictures, judged
by the trusted ResNet18 from the asset folder. Like the course, the notebook
reads /kaggle/input/..., which only the sandbox provides (`sandbox`)."""

from __future__ import annotations

from autograder.course import Course
from autograder.results import SubmissionResult
from tests.harness import AssignmentTests, Variant


class TestWarmup04(AssignmentTests):
    assignment = "warmup_04"
    variants = (
        # in training mode batch norm uses each picture's own statistics: whether the top 5 on the hidden pictures
        # still match the trusted model's within the tolerance depends on those pictures
        Variant(
            "left-in-training-mode",
            (("model.eval()\n", "model.train()\n"),),
            {"m3": 1},
            ("training mode",),
            may_also_lose={"i1": 1, "i4": 1},  # the figure's bars come from the same model
        ),
        Variant(
            "ones-and-elementwise-product",  # the second is a real student's mistake
            (
                ("b = torch.zeros(2, 3)", "b = torch.ones(2, 3)"),
                ("np_product = np_a @ np_b", "np_product = np_a * np_b"),
            ),
            {"t1": 1, "t5": 1},
            ("`b` holds the wrong values", "no NumPy array"),
        ),
        Variant(
            "figure-in-two-rows",
            (("plt.subplots(1, 2, figsize=(11, 4.5))", "plt.subplots(2, 1, figsize=(5, 9))"),),
            {"i4": 1},
            ("side by side",),
        ),
        Variant(  # the bars are of the picture an earlier cell left in `image`, not of the one drawn
            "stale-bars-of-another-picture",
            (
                (
                    'image, name = load_sample_image("mountain")\n'
                    "top5 = get_top5_predictions(model, preprocess, image, device, imagenet_classes)\n",
                    "top5 = get_top5_predictions(model, preprocess, image, device, imagenet_classes)\n"
                    'image, name = load_sample_image("mountain")\n',
                ),
            ),
            {"i4": 1},
            ("not the predictions for the picture shown",),
        ),
        Variant(  # amunzh's and renato2r's mistake: the top 3 of the last picture of Inference Q2's loop
            "stale-top3-of-the-loop",
            (
                (
                    "top5 = get_top5_predictions(model, preprocess, image, device, imagenet_classes)\n\nfig",
                    "top5 = top3\n\nfig",
                ),
            ),
            {"i4": 2},
            ("has 3 bars", "3 bars, not the top 5"),
        ),
        Variant(  # the function a hidden check calls adds an entry of its own to the probe's result
            "plants-a-label",
            (
                (
                    '    path = random.choice(sorted((DATA_DIR / label).glob("*.jpg")))\n',
                    "    import sys\n"
                    "    probe = sys._getframe(1).f_globals\n"
                    "    if isinstance(probe.get('result'), list) and 'inputs' in probe"
                    " and not probe.get('_planted'):\n"
                    "        probe['_planted'] = True\n"
                    "        probe['result'].append(('sentinel_planted_label', None, False, None))\n"
                    '    path = random.choice(sorted((DATA_DIR / label).glob("*.jpg")))\n',
                ),
            ),
            {"i2": 1},
            ("should load each scene class",),
        ),
        Variant(  # the model's parameters name one whose shape is a number of 4,000 digits (any text, spelled)
            "plants-a-parameter-count",
            (
                (
                    "model.eval()\n",
                    "model.eval()\n"
                    "class _Planted:\n"
                    "    shape, requires_grad, device = (10**4000 + 7,), True, 'cpu'\n"
                    "_named = model.named_parameters\n"
                    "model.named_parameters = lambda *a, **k: iter([*_named(*a, **k), ('planted', _Planted())])\n",
                ),
            ),
            {"m1": 2},
            ("parameters, not ResNet18's",),
        ),
        Variant(
            "returns-logits",
            (("probabilities = torch.softmax(logits[0], dim=0)", "probabilities = logits[0]"),),
            {"i1": 2, "i4": 1},  # the figure draws the same logits
            ("between 0 and 1", "ResNet18's softmax"),
        ),
    )

    def test_reference_answers_every_question(self, course: Course, reference_result: SubmissionResult) -> None:
        assert set(reference_result.answers) == set(course.get(self.assignment).config.questions)
        assert all(reference_result.answers.values()), reference_result.answers

    def test_template_names_what_is_missing(self, template_result: SubmissionResult) -> None:
        messages = {c.name: c.message for c in template_result.checks}
        assert "`a` should be a tensor" in messages["test_tensor_a"]
        assert "`model`" in messages["test_final_layer_has_1000_outputs"]
        assert "was not written" in messages["test_figure_shows_a_picture_beside_five_bars"]
