"""Written answers: the course asks for a comment or a markdown answer under
each question. The grader cannot judge them; it says, per question, whether
one is there, so a mentor knows where to look. Never scored.

A question's section runs from the cell whose text matches its heading
pattern (from the config's `answers`) to the next question's heading.
Headings are searched in the config's order, each after the previous one
found, so a pattern as plain as `Q1` finds the tensor section's Q1 first and,
for a later question, the models section's Q1. An
answer is present when the section has an "Answer:" marker (in any of a few
languages) followed by a few words, or, with no marker, enough prose that is
not itself a question.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Mapping

from nbformat import NotebookNode

_MARKER = re.compile(r"^\W*(answer|respuesta|resposta|réponse|reponse|antwort|ответ)\b\W*", re.IGNORECASE)
_MARKER_WORDS = 3  # words after an "Answer:" marker that make an answer
_PROSE_WORDS = 8  # words of non-question prose that make an answer without a marker


def find_answers(notebook: NotebookNode, headings: Mapping[str, str]) -> dict[str, bool]:
    """Question id -> whether a written answer is present (False where the
    question's heading is not found at all)."""
    patterns = {question: re.compile(pattern, re.IGNORECASE | re.MULTILINE) for question, pattern in headings.items()}
    sources = [_source(cell) for cell in notebook.cells]
    starts: dict[str, int] = {}
    after = 0
    for question, pattern in patterns.items():
        start = next((i for i in range(after, len(sources)) if pattern.search(sources[i])), None)
        if start is not None:
            starts[question] = start
            after = start + 1
    ordered = sorted(set(starts.values()))
    found = {}
    for question in headings:
        start = starts.get(question)
        if start is None:
            found[question] = False
            continue
        end = next((index for index in ordered if index > start), len(sources))
        lines = [line for index in range(start, end) for line in _prose(notebook.cells[index], sources[index])]
        found[question] = _has_answer(lines, patterns[question])
    return found


def _source(cell: NotebookNode) -> str:
    source = cell.get("source", "")
    return "".join(source) if isinstance(source, list) else str(source)


def _prose(cell: NotebookNode, source: str) -> list[str]:
    """The text lines a student writes answers in: markdown, and code comments."""
    if cell.get("cell_type") == "markdown":
        return [line.lstrip("#>*- ").strip() for line in source.splitlines()]
    comments = [line.strip().lstrip("#").strip() for line in source.splitlines() if line.strip().startswith("#")]
    return comments + _bare_strings(source)


def _bare_strings(source: str) -> list[str]:
    """Lines of string literals standing alone as statements (a triple-quoted answer)."""
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):  # IPython syntax (magics, `!pip`) or broken code
        return []
    return [
        line.strip()
        for node in tree.body
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)
        for line in node.value.value.splitlines()
    ]


def _has_answer(lines: list[str], heading: re.Pattern[str]) -> bool:
    text = [line for line in lines if line and not heading.search(line)]
    markers = [position for position, line in enumerate(text) if _MARKER.match(line)]
    for position in markers:  # an "Answer:" marker: the words after it, up to the next question
        marker = _MARKER.match(text[position])
        assert marker is not None
        after = [text[position][marker.end() :]]
        for line in text[position + 1 : position + 7]:
            if line.rstrip().endswith("?") or _MARKER.match(line):
                break
            after.append(line)
        if sum(len(part.split()) for part in after) >= _MARKER_WORDS:
            return True
    if markers:
        return False
    prose = [word for line in text if not line.rstrip().endswith("?") for word in line.split()]
    return len(prose) >= _PROSE_WORDS
