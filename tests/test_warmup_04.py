"""warmup_04: the reference scores full marks, the blank template zero, and
hand-written wrong answers lose exactly their points. The inference checks
run the notebook's own function on held-out pictures, judged by the trusted
ResNet18 from the asset folder."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pytest

from autograder.course import Course
from autograder.isolation import sandbox_available
from autograder.results import SubmissionResult
from tests.conftest import grade

# Like the course, the notebook reads /kaggle/input/..., which only the sandbox provides.
pytestmark = [
    pytest.mark.slow,
    pytest.mark.sandbox,
    pytest.mark.skipif(not sandbox_available(), reason="/kaggle/input paths need the sandbox (root on Linux)"),
]

WARMUP = "warmup_04"
MAX_SCORE = 23


@dataclass(frozen=True)
class Variant:
    id: str
    edits: tuple[tuple[str, str], ...]  # (old, new): each old occurs exactly once in the reference's code
    lost: dict[str, float]  # question -> points lost
    says: tuple[str, ...]  # a piece of each failing message the student reads
    # points a variant may lose as well, depending on the hidden pictures (each synth draws its own)
    may_also_lose: tuple[tuple[str, float], ...] = ()


VARIANTS = [
    # in training mode batch norm uses each picture's own statistics: whether the top 5 on the hidden pictures
    # still match the trusted model's within the tolerance depends on those pictures
    Variant(
        "left-in-training-mode",
        (("model.eval()\n", "model.train()\n"),),
        {"m3": 1},
        ("training mode",),
        may_also_lose=(("i1", 1),),
    ),
    Variant(
        "ones-and-elementwise-product",  # the second is a real student's mistake
        (("b = torch.zeros(2, 3)", "b = torch.ones(2, 3)"), ("np_product = np_a @ np_b", "np_product = np_a * np_b")),
        {"t1": 1, "t5": 1},
        ("`b` holds the wrong values", "no NumPy array"),
    ),
    Variant(
        "figure-in-two-rows",
        (("plt.subplots(1, 2, figsize=(11, 4.5))", "plt.subplots(2, 1, figsize=(5, 9))"),),
        {"i4": 1},
        ("side by side",),
    ),
    Variant(  # the function a hidden check calls adds an entry of its own to the probe's result
        "plants-a-label",
        (
            (
                '    path = random.choice(sorted((DATA_DIR / label).glob("*.jpg")))\n',
                "    import sys\n"
                "    probe = sys._getframe(1).f_globals\n"
                "    if isinstance(probe.get('result'), list) and 'inputs' in probe and not probe.get('_planted'):\n"
                "        probe['_planted'] = True\n"
                "        probe['result'].append(('sentinel_planted_label', None, False, None))\n"
                '    path = random.choice(sorted((DATA_DIR / label).glob("*.jpg")))\n',
            ),
        ),
        {"i2": 1},
        ("should load each scene class",),
    ),
    Variant(
        "returns-logits",
        (("probabilities = torch.softmax(logits[0], dim=0)", "probabilities = logits[0]"),),
        {"i1": 2},
        ("between 0 and 1", "ResNet18's softmax"),
    ),
]


def variant_notebook(course: Course, path: Path, edits: tuple[tuple[str, str], ...]) -> Path:
    """The reference notebook with each `old` replaced by its `new` (code cells only)."""
    document = json.loads(course.get(WARMUP).solution.read_text(encoding="utf-8"))
    code = [cell for cell in document["cells"] if cell["cell_type"] == "code"]
    for old, new in edits:
        sources = ["".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"] for cell in code]
        hits = [i for i, source in enumerate(sources) if old in source]
        assert len(hits) == 1 and sources[hits[0]].count(old) == 1, f"{old!r} should occur exactly once"
        code[hits[0]]["source"] = sources[hits[0]].replace(old, new)
    path.write_text(json.dumps(document), encoding="utf-8")
    return path


@pytest.fixture(scope="module", params=VARIANTS, ids=lambda v: v.id)
def variant_result(
    request: pytest.FixtureRequest, course: Course, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Variant, SubmissionResult]:
    variant: Variant = request.param
    path = variant_notebook(course, tmp_path_factory.mktemp(variant.id) / f"{WARMUP}.ipynb", variant.edits)
    return variant, grade(course, path, WARMUP)


def test_reference_scores_full_marks(graded_solutions: dict[str, SubmissionResult]) -> None:
    result = graded_solutions[WARMUP]
    assert result.status == "graded", result.reason
    failing = [(c.name, c.message) for c in result.checks if c.status != "passed"]
    assert result.score == result.max_score == MAX_SCORE, failing
    assert result.execution is not None and not result.execution.cell_errors


def test_reference_answers_every_question(graded_solutions: dict[str, SubmissionResult], course: Course) -> None:
    result = graded_solutions[WARMUP]
    assert set(result.answers) == set(course.get(WARMUP).config.questions)
    assert all(result.answers.values()), result.answers


def test_template_scores_zero(graded_templates: dict[str, SubmissionResult]) -> None:
    result = graded_templates[WARMUP]
    assert result.status == "graded", result.reason
    assert result.score == 0 and result.max_score == MAX_SCORE
    assert all(c.status == "failed" and c.message for c in result.checks), [(c.name, c.status) for c in result.checks]


def test_template_names_what_is_missing(graded_templates: dict[str, SubmissionResult]) -> None:
    messages = {c.name: c.message for c in graded_templates[WARMUP].checks}
    assert "`a` should be a tensor" in messages["test_tensor_a"]
    assert "`model`" in messages["test_final_layer_has_1000_outputs"]
    assert "was not written" in messages["test_figure_saved"]


def test_variant_loses_exactly_its_points(variant_result: tuple[Variant, SubmissionResult]) -> None:
    variant, result = variant_result
    assert result.status == "graded", result.reason
    assert result.execution is not None and not result.execution.cell_errors
    lost = {q.question: q.max_score - q.score for q in result.questions if q.score < q.max_score}
    maybe = dict(variant.may_also_lose)
    assert {q: p for q, p in lost.items() if q not in maybe} == variant.lost, [
        (c.name, c.message) for c in result.checks if c.status != "passed"
    ]
    assert all(lost.get(q, 0) in (0, points) for q, points in maybe.items()), lost


def test_variant_messages_name_the_problem(variant_result: tuple[Variant, SubmissionResult]) -> None:
    variant, result = variant_result
    messages = [c.message for c in result.checks if c.status != "passed"]
    for piece in variant.says:
        assert any(piece in m for m in messages), (piece, messages)


def test_hidden_messages_do_not_reveal_expected_values(variant_result: tuple[Variant, SubmissionResult]) -> None:
    _, result = variant_result
    for check in result.checks:
        if check.visibility == "hidden" and check.status != "passed":
            assert "tensor(" not in check.message and "\nassert" not in check.message, check.message
            assert "sentinel_" not in check.message, check.message  # no text of the notebook's
