"""Outputs are safe to open: every renderer shows a student's text as text.

A hostile string (HTML that scripts and fetches, a spreadsheet formula,
terminal escape sequences, bidi overrides, rich markup, Markdown that links
and loads images, a lone surrogate and an undecodable file-name byte) is put
in every student-controlled field of a result, and each output is read back
the way its consumer reads it: HTML parsed, Markdown rendered, CSV cells read,
the terminal's bytes inspected, JSON loaded. One slow test grades a real
notebook carrying the same through the CLI and opens the pages in chromium.
"""

from __future__ import annotations

import csv
import html
import http.server
import io
import json
import os
import re
import subprocess
import threading
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import ClassVar

import pytest
from markdown_it import MarkdownIt
from rich.console import Console

from autograder.batch import BatchItem
from autograder.exports import gradescope_results, write_batch_reports
from autograder.results import CellError, CheckOutcome, ExecutionRecord, QuestionScore, SubmissionResult
from autograder.safe_text import csv_cell, json_document, markdown_code, markdown_text, plain_text
from autograder.submissions import Entry
from autograder.terminal import render_batch, render_grade, render_self_check, render_students
from tests.conftest import ROOT, TENSORS
from tests.test_batch import CHROMIUM, CHROMIUM_FLAGS, autograder

UNDECODABLE = os.fsdecode(b"\xff")  # how Python spells a file name's non-UTF-8 byte: a lone surrogate
PAYLOAD = "<script>document.title='pwned'</script><img src=x onerror=\"document.title='pwned'\">"
ANSI = "\x1b]0;owned\x07\x1b[2J\x1b]52;c;b3duZWQ=\x07\x1b[1;1H\x9b2J23/23\r"
BIDI = "\u202e\u2066\u200f"
RICH = "[bold]fake[/bold] [link=http://127.0.0.1:9/]here[/link] :warning:"
MARKDOWN = "![i](http://127.0.0.1:9/i.png) [l](javascript:alert(1)) <http://127.0.0.1:9/> a | b &amp; `x<y` `"
# every field gets all of it; a file or folder name cannot hold "/", so it gets the rest
NAME = f'=HYPERLINK("x"){PAYLOAD.replace("</script>", "")}{ANSI}{BIDI}{RICH.replace("/", "")}\ud800 {UNDECODABLE}'
HOSTILE = f"{NAME}{PAYLOAD}{RICH}{MARKDOWN}\nsecond line"

# what a consumer would act on: C0 but tab and newline, DEL, C1, bidi controls, surrogates
ACTIVE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069\ud800-\udfff]")


def hostile_items(tmp_path: Path) -> list[BatchItem]:
    """A graded, a rejected and a timed-out submission, every student-controlled field hostile."""
    execution = ExecutionRecord(
        "timed-out",
        code_cells=5,
        cells_run=5,
        cell_errors=(CellError(2, "error", HOSTILE, HOSTILE), CellError(4, "timeout", HOSTILE, HOSTILE)),
    )
    checks = (
        CheckOutcome("q1", "test_public", "public", "failed", 0, 1, message=HOSTILE),
        CheckOutcome("q1", "test_hidden", "hidden", "error", 0, 1, message=HOSTILE),
        CheckOutcome("q2", "test_ok", "hidden", "passed", 1, 1),
    )
    graded = SubmissionResult(
        submission=str(tmp_path / NAME / f"{NAME}.ipynb"),
        assignment=TENSORS,
        status="graded",
        student=HOSTILE,
        score=1,
        max_score=3,
        questions=(QuestionScore("q1", "One", 0, 2), QuestionScore("q2", "Two", 1, 1)),
        checks=checks,
        execution=execution,
        answers={"q1": True},
        assignment_chosen_by=HOSTILE,
        timings={"total_s": 2.0},
    )
    rejected = SubmissionResult(
        submission=str(tmp_path / f"{NAME}.ipynb"), assignment=None, status="rejected", reason=HOSTILE, student=HOSTILE
    )
    return [
        BatchItem(Entry(NAME, tmp_path / NAME / f"{NAME}.ipynb", name=HOSTILE, lms_id="12345"), graded, cached=False),
        BatchItem(Entry(f"{NAME}2", tmp_path / f"{NAME}.ipynb", name=HOSTILE), rejected, cached=False),
    ]


@pytest.fixture(scope="module")
def reports(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("reports")
    write_batch_reports(hostile_items(out), out, title=HOSTILE, titles={TENSORS: HOSTILE})
    return out


class _Elements(HTMLParser):
    """Every element and attribute of a page, and its text, as a browser's parser sees them."""

    def __init__(self, page: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []
        self.feed(page)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        self.text.append(data)


PAGE_TAGS = {"html", "head", "meta", "title", "style", "body", "h1", "h2", "p", "b", "code", "ul", "li"}
PAGE_TAGS |= {"table", "tr", "th", "td", "div", "figure", "img", "figcaption"}


def assert_inert_html(page: str, *, allowed: set[str]) -> None:
    """Only the template's own elements; no handler, no link, no image but embedded PNGs;
    the hostile text kept as visible text, with its control characters made visible."""
    elements = _Elements(page)
    assert {tag for tag, _ in elements.tags} <= allowed
    for tag, attributes in elements.tags:
        assert not [name for name in attributes if name.startswith("on")], (tag, attributes)
        assert "href" not in attributes
        if tag == "img":
            assert (attributes["src"] or "").startswith("data:image/png;base64,"), attributes
    text = "".join(elements.text)
    assert "<script>document.title='pwned'</script>" in text, "the student's text is shown, not dropped"
    assert "\\x1b]0;owned\\x07" in text and "\\u202e" in text and "\\xff" in text
    assert not ACTIVE.search(page)


def test_html_feedback_and_summary_show_markup_as_text(reports: Path) -> None:
    pages = [reports / "summary.html", *sorted((reports / "feedback").glob("*.html"))]
    assert len(pages) == 3
    for page in pages:
        assert_inert_html(page.read_bytes().decode("utf-8"), allowed=PAGE_TAGS)


def test_templates_cannot_let_text_through() -> None:
    for template in (ROOT / "autograder" / "templates").glob("*.j2"):
        source = template.read_text(encoding="utf-8")
        assert "|safe" not in source.replace(" ", "") and "Markup" not in source and "autoescape" not in source


def test_markdown_feedback_renders_as_plain_text(reports: Path) -> None:
    renderer = MarkdownIt("commonmark", {"html": True}).enable("table")  # raw HTML on: nothing may use it
    pages = sorted((reports / "feedback").glob("*.md"))
    assert len(pages) == 2
    for page in pages:
        source = page.read_bytes().decode("utf-8")
        assert not ACTIVE.search(source)
        html = renderer.render(source)
        markdown_tags = {"h1", "h2", "p", "strong", "em", "code", "ul", "li", "table", "thead", "tbody", "tr", "th"}
        assert_inert_html(html, allowed=markdown_tags | {"td"})
        assert "![i](http://127.0.0.1:9/i.png)" in "".join(_Elements(html).text)


@pytest.mark.parametrize(
    ("text", "rendered"),
    [
        ("`x` should be 1", "<code>x</code> should be 1"),  # an author's code span stays one
        ('`<a href="`">`', "`&lt;a href=&quot;<code>&quot;&gt;</code>"),  # not an HTML tag across a span
        ("a | b", "a | b"),
        ("un`paired", "un`paired"),
        ("a\\", "a\\"),
        ("``a`b``", "<code>a`b</code>"),
    ],
)
def test_markdown_text_is_what_it_says(text: str, rendered: str) -> None:
    html = MarkdownIt("commonmark", {"html": True}).render(f"- {markdown_text(text)}")
    assert html == f"<ul>\n<li>{rendered}</li>\n</ul>\n"


def test_markdown_code_fences_past_the_backticks_it_holds() -> None:
    for text in ("test_x", "a`b", "`x", "a``b`"):
        html = MarkdownIt("commonmark").renderInline(markdown_code(text))
        assert html == f"<code>{text}</code>"
    assert "<code>" not in MarkdownIt("commonmark").renderInline(markdown_code("<b>"))


def test_csv_text_cells_cannot_be_formulas_and_numbers_stay_numbers(reports: Path) -> None:
    for name in ("gradebook.csv", "gradebook-canvas.csv"):
        text = (reports / name).read_bytes().decode("utf-8")
        assert not ACTIVE.search(text.replace("\r\n", "\n"))
        rows = list(csv.reader(io.StringIO(text)))
        cells = [cell for row in rows for cell in row]
        assert "'" + NAME.split("<")[0] in " ".join(cells), "the hostile name is kept, neutralised"
        for cell in cells:
            if cell.startswith(("=", "+", "-", "@", "\t", "\r")):
                float(cell)  # only a plain number may start so
    rows = list(csv.DictReader(io.StringIO((reports / "gradebook.csv").read_text(encoding="utf-8"))))
    assert [(r["q1"], r["score"], r["max_score"]) for r in rows if r["status"] == "graded"] == [("0", "1", "3")]


@pytest.mark.parametrize("start", ["=", "+", "-", "@", "\t", "\r", " =", "\uff1d"])
def test_csv_cell_prefixes_every_formula_start(start: str) -> None:
    assert csv_cell(f"{start}1+1").startswith("'")
    assert csv_cell(f"{start}cmd|' /C calc'!A0").startswith("'")


@pytest.mark.parametrize("number", ["-1", "+2", "0.5", "-1.5e3", "12345", ""])
def test_csv_cell_leaves_numbers_alone(number: str) -> None:
    assert csv_cell(number) == number


def terminal_bytes(draw: object, *arguments: object) -> str:
    console = Console(file=io.StringIO(), force_terminal=True, color_system="truecolor", width=400)
    draw(*arguments, console)  # type: ignore[operator]
    return console.file.getvalue()  # type: ignore[attr-defined]


def test_terminal_shows_escape_sequences_and_markup_as_text(tmp_path: Path) -> None:
    items = hostile_items(tmp_path)
    results = [item.result for item in items]
    drawn = [
        terminal_bytes(render_grade, results[0]),
        terminal_bytes(render_grade, results[1]),
        terminal_bytes(render_self_check, results[0]),
        terminal_bytes(render_self_check, results[1]),
        terminal_bytes(render_students, results),
        terminal_bytes(render_batch, items),
    ]
    for output in drawn:
        text = re.sub(r"\x1b\[[0-9;]*m", "", output)  # the report's own colours are the only sequences
        assert not ACTIVE.search(text), repr(ACTIVE.search(text))
        assert "\x1b]8;" not in output, "no hyperlink"
        assert "[bold]fake" in text and ":warning:" in text, "markup and emoji codes stay as typed"
        assert "\\x1b]0;owned\\x07" in text


def test_gradescope_output_is_plain_text(reports: Path) -> None:
    for item in hostile_items(reports):
        payload = gradescope_results(item.result)
        assert payload["output_format"] == "text" and payload["test_output_format"] == "text"
        assert all(t["output_format"] == "text" and t["name_format"] == "text" for t in payload["tests"])
        assert not ACTIVE.search(json.dumps(payload, ensure_ascii=False))
    written = sorted((reports / "gradescope").glob("*/results.json"))
    assert len(written) == 2
    outputs = [json.loads(path.read_text(encoding="utf-8")) for path in written]
    assert any(PAYLOAD in test["output"] for o in outputs for test in o["tests"])


def test_result_json_keeps_every_character_and_writes_as_utf8(tmp_path: Path) -> None:
    for item in hostile_items(tmp_path):
        document = json_document(item.result.to_json())
        path = tmp_path / "result.json"
        path.write_text(document, encoding="utf-8")  # a lone surrogate raised here before
        assert not ACTIVE.search(path.read_text(encoding="utf-8"))
        assert SubmissionResult.from_json(path.read_text(encoding="utf-8")) == item.result


def test_plain_text_makes_every_control_visible() -> None:
    assert plain_text("a\x1b[2Jb\x07\r\n\u202ec\x9b\x7f") == "a\\x1b[2Jb\\x07\n\\u202ec\\x9b\\x7f"
    assert plain_text("tab\there\nnext", one_line=True) == "tab\there\\nnext"
    assert plain_text(f"caf{UNDECODABLE} \ud800") == "caf\\xff \\ud800"  # the byte a name could not decode
    assert plain_text("Zoë 🙂 ∑") == "Zoë 🙂 ∑"


# One real notebook, through the CLI, opened in a real browser


class _Listener(http.server.BaseHTTPRequestHandler):
    requests: ClassVar[list[str]]  # each test's own list, set on a subclass

    def do_GET(self) -> None:
        self.requests.append(self.path)
        self.send_response(204)
        self.end_headers()

    def log_message(self, *_: object) -> None:
        pass


@pytest.fixture
def listener() -> Iterator[tuple[int, list[str]]]:
    """A local web server: a page that runs the payload, or loads its image, calls it."""
    requests: list[str] = []
    handler = type("Handler", (_Listener,), {"requests": requests})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1], requests
    server.shutdown()
    server.server_close()


def browser_payload(port: int) -> str:
    """What would run if markup were live: retitle the page and call the listener."""
    call = f"fetch('http://127.0.0.1:{port}/script')"
    return (
        f"<script>document.title='pwned';{call}</script>"
        f"<img src=x onerror=\"document.title='pwned';{call}\"><img src=http://127.0.0.1:{port}/img>"
    )


def dom_after_load(page: Path, profile: Path) -> str:
    done = subprocess.run(
        [
            str(CHROMIUM),
            *CHROMIUM_FLAGS,
            f"--user-data-dir={profile}",
            "--virtual-time-budget=3000",  # the page's timers and handlers have run
            "--dump-dom",
            page.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert "<html" in done.stdout, done.stderr[-2000:]
    return done.stdout


EXCEPTION_CELL = """
class Raised(Exception):
    pass

Raised.__name__ = Raised.__qualname__ = {name!r}
print({payload!r})
raise Raised({message!r})
"""


@pytest.mark.slow
@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (.ci/run installs it)")
def test_a_hostile_notebook_through_the_cli_writes_every_file_and_runs_nothing(
    tmp_path: Path, listener: tuple[int, list[str]]
) -> None:
    port, requests = listener
    payload = browser_payload(port)
    template = json.loads((ROOT / "assignments" / TENSORS / f"{TENSORS}.ipynb").read_text(encoding="utf-8"))
    cell = EXCEPTION_CELL.format(
        name=payload.replace("<script>", "<b>"), payload=payload, message=f"{payload}{ANSI}{BIDI}{UNDECODABLE}"
    )
    template["cells"] += [
        {"cell_type": "code", "metadata": {}, "execution_count": None, "outputs": [], "source": cell},
        {"cell_type": "markdown", "metadata": {}, "source": f"Written answer: {payload}"},
    ]
    folder = f'<img src=x onerror="document.title=1">=HYPERLINK("http://127.0.0.1:{port}")'
    student = tmp_path / "class" / folder.replace("/", "")
    student.mkdir(parents=True)
    notebook = os.fsencode(student) + b"/=cmd|calc" + b"\xff" + b"<b>.ipynb"
    Path(os.fsdecode(notebook)).write_text(json.dumps(template), encoding="utf-8")
    roster = tmp_path / "roster.csv"
    with roster.open("w", newline="", encoding="utf-8") as handle:
        csv.writer(handle).writerows([["match", "name", "id"], [student.name, f"@SUM(1){payload}", "77"]])
    out = tmp_path / "out"
    done = autograder(
        "grade", str(student.parent), "-a", TENSORS, "--out", str(out), "--roster", str(roster), course=ROOT
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert not ACTIVE.search(done.stdout + done.stderr.replace("\r", "")), "the terminal got raw controls"
    (result,) = [json.loads(p.read_text(encoding="utf-8")) for p in (out / "results").glob("*.json")]
    assert result["status"] == "graded", result["reason"]
    errors = result["execution"]["cell_errors"]
    assert [(e["exception"][:3], e["message"][:8]) for e in errors] == [("<b>", "<script>")], "kept as it was"
    for name in ("gradebook.csv", "gradebook-canvas.csv", "summary.html"):
        assert (out / name).is_file()
    assert len(list((out / "feedback").glob("*.html"))) == len(list((out / "feedback").glob("*.md"))) == 1
    assert len(list((out / "gradescope").glob("*/results.json"))) == 1
    cells = [c for row in csv.reader(io.StringIO((out / "gradebook.csv").read_text(encoding="utf-8"))) for c in row]
    assert not [c for c in cells if c.startswith(("=", "@", "+")) or (c.startswith("-") and not _number(c))]

    pages = [out / "summary.html", *(out / "feedback").glob("*.html")]
    for page in pages:  # the title the page was written with is the one it has after its handlers ran
        assert _title(dom_after_load(page, tmp_path / "profile")) == _title(page.read_text(encoding="utf-8"))
    assert f"@SUM(1){payload}" in html.unescape((out / "summary.html").read_text(encoding="utf-8")), "shown as text"
    control = tmp_path / "control.html"  # the same payload, live: the harness sees it run
    control.write_text(f"<!doctype html><title>control</title><body>{payload}</body>", encoding="utf-8")
    assert requests == [], "a page made a request"
    assert _title(dom_after_load(control, tmp_path / "profile")) == "pwned"
    assert requests, "the live payload called the listener"


def _title(page: str) -> str:
    found = re.search(r"<title>(.*?)</title>", page, re.DOTALL)
    return html.unescape(found.group(1)) if found else ""


def _number(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return False
    return True
