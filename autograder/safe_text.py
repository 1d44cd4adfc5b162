"""Make student-derived text safe for each output format.

Anything a student controls (file and folder names, roster names, exception
names and messages, check messages quoting their values) reaches people
through the reports: an instructor's terminal, a spreadsheet, a browser, a
Markdown viewer, Gradescope. Each renderer passes such text through the one
function here for its format, so no format trusts a string:

* `plain_text`: control characters (C0 but tab and, where allowed, newline;
  DEL; C1, ESC included), bidi controls and lone surrogates become visible
  escapes such as `\\x1b`; a surrogate standing for an undecodable byte of a
  file name shows as that byte (`\\xff`). Never raises, and its output always
  encodes as UTF-8. Terminal, HTML (before autoescaping) and Gradescope text
  use it.
* `markdown_text`, `markdown_code`: the same, then whatever Markdown or
  embedded HTML would render (tags, entities, links, images, table pipes,
  stray backticks) escaped, and what GitHub's Markdown would turn into a
  link by itself (`www.`, `://`, an `@` of an address or a mention, `#1`)
  broken with a character reference.
* `csv_cell`: the same on one line, then OWASP's CSV-injection rule: a text
  cell starting with `= + - @`, tab or CR gets a leading `'`. Plain numbers
  (scores, ids) are never touched.
* `json_document`: a JSON text with lone surrogates, C1 and bidi controls
  written as `\\u` escapes: lossless, and writable as UTF-8.
"""

from __future__ import annotations

import bisect
import re

_BIDI = "\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069"
# tab and newline are decided per call; everything else here is never shown raw
_UNSAFE = re.compile(f"[\x00-\x08\x0b-\x1f\x7f-\x9f{_BIDI}\u2028\u2029\ud800-\udfff]")
_UNSAFE_ONE_LINE = re.compile(f"[\x00-\x08\x0a-\x1f\x7f-\x9f{_BIDI}\u2028\u2029\ud800-\udfff]")
_NAMED = {"\n": "\\n", "\r": "\\r"}


def _visible(match: re.Match[str]) -> str:
    character = match.group()
    code = ord(character)
    if character in _NAMED:
        return _NAMED[character]
    if 0xDC80 <= code <= 0xDCFF:  # surrogateescape: the byte a file name could not decode
        return f"\\x{code - 0xDC00:02x}"
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def plain_text(text: str, *, one_line: bool = False) -> str:
    """`text` with nothing a terminal, viewer or encoder would act on: unsafe
    characters become visible escapes. `one_line` escapes line breaks too, for
    places where a newline could draw a fake line of the report."""
    text = text.replace("\r\n", "\n")
    return (_UNSAFE_ONE_LINE if one_line else _UNSAFE).sub(_visible, text)


_MARKDOWN_SPECIAL = {"\\": "\\\\", "&": "&amp;", "<": "&lt;", ">": "&gt;", "[": "\\[", "]": "\\]", "|": "\\|"}
# GitHub links www.example.com, https://..., a@b.c, @user and #12 by itself; a character
# reference where one would start renders the same and links nothing
_MARKDOWN_SPECIAL |= {"@": "&#64;", ":": "&#58;", ".": "&#46;", "#": "&#35;"}
_MARKDOWN_PLAIN = re.compile(r"[\\&<>\[\]|@]|:(?=//)|(?<=[wW]{3})\.|#(?=\d)")
_BACKTICKS = re.compile(r"`+")
_SPAN_UNSAFE = re.compile(r"[<|]")


def markdown_text(text: str) -> str:
    """Inline Markdown showing `text` as it is, on one line. Code spans the text
    already has (an author's "`x` should be 1") stay code spans, which render
    nothing; a span holding `<` (which could open an HTML tag across it) or `|`
    (which splits a table cell even there) is escaped like the rest, and so
    are unpaired backticks."""
    text = plain_text(text, one_line=True).replace("\t", " ")
    runs = list(_BACKTICKS.finditer(text))
    later: dict[int, list[int]] = {}  # run length -> indices of the runs of that length, in order
    for index, run in enumerate(runs):
        later.setdefault(len(run.group()), []).append(index)
    parts: list[str] = []
    position = 0
    index = 0
    while index < len(runs):
        opening = runs[index]
        parts.append(_escape_plain(text[position : opening.start()]))
        same = later[len(opening.group())]
        following = bisect.bisect_right(same, index)  # CommonMark: the next run of the same length closes
        closing = runs[same[following]] if following < len(same) else None
        if closing is None or _SPAN_UNSAFE.search(text, opening.end(), closing.start()):
            parts.append(opening.group().replace("`", "\\`"))
            position, index = opening.end(), index + 1
        else:
            parts.append(text[opening.start() : closing.end()])
            position, index = closing.end(), same[following] + 1
    parts.append(_escape_plain(text[position:]))
    return "".join(parts)


def markdown_code(text: str) -> str:
    """`text` as one inline code span, fenced with more backticks than it holds."""
    text = plain_text(text, one_line=True)
    if _SPAN_UNSAFE.search(text):
        return markdown_text(text)
    longest = max((len(run) for run in _BACKTICKS.findall(text)), default=0)
    fence = "`" * (longest + 1)
    padding = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{padding}{text}{padding}{fence}"


def _escape_plain(text: str) -> str:
    return _MARKDOWN_PLAIN.sub(lambda match: _MARKDOWN_SPECIAL[match.group()], text)


_FORMULA_START = tuple("=+-@\t\r\uff1d\uff0b\uff0d\uff20")  # full-width forms too: some spreadsheets read them
_NUMBER = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?")


def csv_cell(text: str) -> str:
    """A text cell no spreadsheet evaluates (OWASP: prefix `'` to a cell starting
    with = + - @ tab or CR). A plain number (a score, an id) is left as it is,
    so it stays a number."""
    if _NUMBER.fullmatch(text):
        return text
    if text.startswith(_FORMULA_START) or text.lstrip(" ").startswith(_FORMULA_START):
        text = "'" + text
    return plain_text(text, one_line=True)


_JSON_UNSAFE = re.compile(f"[\x7f-\x9f{_BIDI}\u2028\u2029\ud800-\udfff]")


def json_document(text: str) -> str:
    """`text` (JSON from `json.dumps(..., ensure_ascii=False)`) with lone
    surrogates, DEL, C1 and bidi controls as `\\u` escapes: the same document,
    readable back unchanged, that writes as UTF-8 and draws nothing in a
    terminal. Outside strings JSON is ASCII, so only string contents change.
    (As with any JSON, a lone high surrogate right before a lone low one reads
    back as the character the pair stands for.)"""
    return _JSON_UNSAFE.sub(lambda match: f"\\u{ord(match.group()):04x}", text)
