"""One harness for every assignment's tests: the reference scores full marks,
the blank template scores zero, and each hand-written wrong variant loses
exactly its points, in exactly its questions, with a message that names the
problem. An assignment's test file is a table of variants and a subclass:

    class TestFirstNetwork(AssignmentTests):
        assignment = "03_first_network"
        variants = (
            Variant("zero-epochs", (("EPOCHS = 500", "EPOCHS = 0"),), {"q4": 4, "q5": 4}, ("should hold 500 numbers",)),
        )

plus whatever is truly its own. The points each question is worth are read
from the assignment's check files, never written in the tests. Every notebook
is graded once per run: the reference and template through conftest's
session fixtures, each variant once per class. Tests that grade are `slow`
(conftest marks them by their fixtures); so are the `sandbox` ones of an
assignment reading /kaggle paths, which only the sandbox shows.
"""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import pytest

from autograder.course import Assignment, Course
from autograder.grading import GradingOptions, grade_notebook
from autograder.results import SubmissionResult
from autograder.scoring import self_check_summary

_ROOT = Path(__file__).resolve().parents[1]
UNSCORED = "(no question)"  # what the grader calls the question of a check marked with none


@dataclass(frozen=True)
class Variant:
    """The reference with each `old` replaced by its `new` (each `old` occurs
    exactly once in its code cells), and what grading it must show."""

    id: str
    edits: tuple[tuple[str, str], ...]
    lost: Mapping[str, float]  # question -> points lost; every other question keeps all of its points
    says: tuple[str, ...] = ()  # a piece of a failing message the student reads, per mistake
    bonus_lost: Mapping[str, float] = field(default_factory=dict)  # question -> bonus points lost
    # question -> points it may lose as well, all or none, depending on the hidden draw
    may_also_lose: Mapping[str, float] = field(default_factory=dict)
    cell_errors: tuple[str, ...] = ()  # the exceptions the edited notebook raises, in order
    cell_timeout_s: float | None = None


def variant_notebook(assignment: Assignment, path: Path, edits: Sequence[tuple[str, str]]) -> Path:
    """The reference notebook with each `old` replaced by its `new` (code cells only)."""
    document = json.loads(assignment.solution.read_text(encoding="utf-8"))
    code = [cell for cell in document["cells"] if cell["cell_type"] == "code"]
    for old, new in edits:
        sources = ["".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"] for cell in code]
        hits = [i for i, source in enumerate(sources) if old in source]
        assert len(hits) == 1 and sources[hits[0]].count(old) == 1, f"{old!r} should occur exactly once"
        code[hits[0]]["source"] = sources[hits[0]].replace(old, new)
    path.write_text(json.dumps(document), encoding="utf-8")
    return path


def points_by_question(assignment: Assignment) -> dict[str, tuple[float, float]]:
    """Question -> (points, bonus points) its checks are worth, read from the
    check files' `question` and `points` marks without importing them (as the
    grader counts: one point where a check names none). A check file this
    cannot read plainly (parametrized checks, marks set elsewhere) is refused."""
    worth: dict[str, tuple[float, float]] = {}
    for path in (*assignment.public_checks, *assignment.hidden_checks):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in tree.body:
            assert not (isinstance(node, ast.ClassDef) and node.name.startswith("Test")), f"{path.name}: a check class"
            targets = node.targets if isinstance(node, ast.Assign) else []
            assert "pytestmark" not in [ast.unparse(t) for t in targets], f"{path.name}: module-wide marks"
            if isinstance(node, ast.FunctionDef) and node.name.startswith("test_"):
                question, points, bonus = _marks(node, path)
                scored, extra = worth.get(question, (0.0, 0.0))
                worth[question] = (scored, extra + points) if bonus else (scored + points, extra)
    return worth


def _marks(check: ast.FunctionDef, path: Path) -> tuple[str, float, bool]:
    question, points, bonus = UNSCORED, 1.0, False
    for decorator in check.decorator_list:
        name = ast.unparse(decorator.func if isinstance(decorator, ast.Call) else decorator).rpartition(".")[2]
        assert name != "parametrize", f"{path.name}: {check.name} is parametrized"
        if isinstance(decorator, ast.Call) and name == "question":
            question = ast.literal_eval(decorator.args[0])
        if isinstance(decorator, ast.Call) and name == "points":
            points = float(ast.literal_eval(decorator.args[0]))
            bonus = any(k.arg == "bonus" and ast.literal_eval(k.value) for k in decorator.keywords)
    return question, points, bonus


def failing(result: SubmissionResult) -> list[tuple[str, str]]:
    return [(c.name, c.message) for c in result.checks if c.status != "passed"]


def lost_points(result: SubmissionResult) -> tuple[dict[str, float], dict[str, float]]:
    """Question -> points lost, and question -> bonus points lost."""
    lost = {q.question: q.max_score - q.score for q in result.questions if q.score < q.max_score}
    return lost, {q.question: q.bonus_max - q.bonus for q in result.questions if q.bonus < q.bonus_max}


class AssignmentTests:
    """Subclass as `Test...` with `assignment` and `variants` set."""

    assignment: ClassVar[str]
    variants: ClassVar[Sequence[Variant]] = ()

    def pytest_generate_tests(self, metafunc: pytest.Metafunc) -> None:
        if "variant" in metafunc.fixturenames:
            metafunc.parametrize("variant", self.variants, ids=[v.id for v in self.variants], scope="class")

    @pytest.fixture(scope="class")
    @classmethod
    def points(cls, course: Course) -> dict[str, tuple[float, float]]:
        return points_by_question(course.get(cls.assignment))

    @pytest.fixture(scope="class")
    @classmethod
    def reference_result(cls, graded_solutions: Mapping[str, SubmissionResult]) -> SubmissionResult:
        return graded_solutions[cls.assignment]

    @pytest.fixture(scope="class")
    @classmethod
    def template_result(cls, graded_templates: Mapping[str, SubmissionResult]) -> SubmissionResult:
        return graded_templates[cls.assignment]

    @pytest.fixture(scope="class")
    @classmethod
    def variant_result(
        cls, variant: Variant, course: Course, tmp_path_factory: pytest.TempPathFactory
    ) -> SubmissionResult:
        path = tmp_path_factory.mktemp(variant.id) / f"{cls.assignment}.ipynb"
        variant_notebook(course.get(cls.assignment), path, variant.edits)
        options = GradingOptions(cell_timeout_s=variant.cell_timeout_s)
        return grade_notebook(path, course=course, assignment_name=cls.assignment, options=options)

    @pytest.fixture(scope="class")
    @classmethod
    def seam_verdicts(cls, course: Course, tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
        """Each variant's public verdicts through the check-author seam: its code run
        in a process of its own, its public checks against that namespace
        (tests/seam_runner.py); two at a time."""
        folder = tmp_path_factory.mktemp(f"seam-{cls.assignment}")

        def one(variant: Variant) -> dict[str, Any]:
            path = variant_notebook(course.get(cls.assignment), folder / f"{variant.id}.ipynb", variant.edits)
            timeout = str(variant.cell_timeout_s or "")
            command = [sys.executable, "-m", "tests.seam_runner", str(course.root), cls.assignment, str(path), timeout]
            done = subprocess.run(command, cwd=_ROOT, capture_output=True, text=True, timeout=900, check=False)
            said = [line[len("SEAM ") :] for line in done.stdout.splitlines() if line.startswith("SEAM ")]
            assert done.returncode == 0 and said, f"{variant.id}: {done.stderr[-3000:]}"
            found: dict[str, Any] = json.loads(said[-1])
            return found

        with ThreadPoolExecutor(max_workers=2) as pool:
            return dict(zip([v.id for v in cls.variants], pool.map(one, cls.variants), strict=True))

    def test_points_are_those_of_the_configured_questions(
        self, course: Course, points: dict[str, tuple[float, float]]
    ) -> None:
        assert sum(scored for scored, _ in points.values()) > 0
        assert set(points) <= set(course.get(self.assignment).config.questions), sorted(points)

    def test_variant_edits_apply_to_the_reference(self, variant: Variant, course: Course, tmp_path: Path) -> None:
        variant_notebook(course.get(self.assignment), tmp_path / "variant.ipynb", variant.edits)
        questions = set(course.get(self.assignment).config.questions)
        assert {*variant.lost, *variant.bonus_lost, *variant.may_also_lose} <= questions
        assert not variant.lost or variant.says, "a variant that loses points says what the student reads"

    def test_reference_scores_full_marks(
        self, course: Course, reference_result: SubmissionResult, points: dict[str, tuple[float, float]]
    ) -> None:
        result = reference_result
        assert result.status == "graded", result.reason
        assert result.score == result.max_score == sum(scored for scored, _ in points.values()), failing(result)
        assert result.bonus == result.bonus_max == sum(extra for _, extra in points.values()), failing(result)
        worth = {q.question: (q.max_score, q.bonus_max) for q in result.questions if q.max_score or q.bonus_max}
        assert worth == points
        assert result.execution is not None and not result.execution.cell_errors
        assert set(result.answers) == set(course.get(self.assignment).config.answers)
        assert all(result.answers.values()), result.answers

    def test_template_scores_zero(
        self, template_result: SubmissionResult, points: dict[str, tuple[float, float]]
    ) -> None:
        result = template_result
        assert result.status == "graded", result.reason
        assert result.score == 0 and result.bonus == 0
        assert result.max_score == sum(scored for scored, _ in points.values())
        assert all(c.status == "failed" and c.message for c in result.checks), [
            (c.name, c.status) for c in result.checks
        ]
        assert not any(result.answers.values()), result.answers

    def test_variant_loses_exactly_its_points(self, variant: Variant, variant_result: SubmissionResult) -> None:
        result = variant_result
        assert result.status == "graded", result.reason
        assert result.execution is not None
        assert result.execution.cells_run == result.execution.code_cells  # later cells run after an error or timeout
        errors = result.execution.cell_errors
        assert tuple(e.exception for e in errors) == variant.cell_errors, [(e.exception, e.message) for e in errors]
        lost, bonus_lost = lost_points(result)
        maybe = variant.may_also_lose
        assert ({q: p for q, p in lost.items() if q not in maybe}, bonus_lost) == (
            dict(variant.lost),
            dict(variant.bonus_lost),
        ), failing(result)
        assert all(lost.get(q, 0) in (0, points) for q, points in maybe.items()), lost
        assert {c.question for c in result.checks if c.status != "passed"} == {*lost, *bonus_lost}, failing(result)

    def test_variant_public_verdicts_are_grading_s_through_the_seam(
        self, variant: Variant, variant_result: SubmissionResult, seam_verdicts: dict[str, dict[str, Any]]
    ) -> None:
        """The check-author seam (the public checks against the variant's namespace,
        in process) gives each question the verdict grading gave it."""
        seam, graded = seam_verdicts[variant.id]["questions"], self_check_summary(variant_result)["questions"]
        assert seam == graded, [(s, g) for s, g in zip(seam, graded, strict=False) if s != g] or (seam, graded)

    def test_variant_messages_name_the_problems(self, variant: Variant, variant_result: SubmissionResult) -> None:
        messages = [c.message for c in variant_result.checks if c.status != "passed"]
        for piece in variant.says:
            assert any(piece in m for m in messages), (piece, messages)

    def test_hidden_messages_do_not_reveal_expected_values(self, variant_result: SubmissionResult) -> None:
        for check in variant_result.checks:
            if check.visibility == "hidden" and check.status != "passed":
                assert "tensor(" not in check.message and "\nassert" not in check.message, check.message
                assert "sentinel_" not in check.message, check.message  # no text the notebook planted
                # nor a number long enough to spell it (a planted parameter count of 4,000 digits)
                assert not re.search(r"\d[\d,.]{24}", check.message), check.message
