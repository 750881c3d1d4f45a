"""Plain-text formatting shared by the results store, the report and the CLI (no heavy imports).

Tables become GitHub-flavoured Markdown with every cell escaped, so a name read from a dataset
(an identity, a run name) can neither break the table nor inject HTML into a rendered report.

Every string that comes from data (store columns, run and folder names, ``--name-*``, compare files, identity
names, dataset.json) goes through ONE escaping helper per place it lands:

- :func:`md_text`: a Markdown paragraph, list item, heading or caption (one line, every character Markdown or
  HTML gives a meaning to backslash-escaped);
- :func:`md_code`: the same place, shown as a code span that nothing can break out of;
- :func:`md_cell`: a Markdown table cell;
- :func:`md_fence`: a fenced code block;
- :func:`inline_tokens`: how report.md and report.html read the small Markdown subset paragraphs use
  (code spans, ``**bold**``, backslash escapes), so both show the same text and neither passes raw HTML.
"""

from __future__ import annotations

import html
import math
import re

import w2p_eval.lazy as lazy


# every ASCII punctuation character CommonMark lets a backslash escape and that starts markup somewhere
_MD_ESCAPE = re.compile(r"([\\`*\[\]#|!~$])")
_BLOCK_START = re.compile(r"^([-+=]|\d+[.)])")


def one_line(value: object) -> str:
    """``value`` as text on one line: every line break (CR, LF, VT, FF, NEL, U+2028/9) becomes a space."""
    return " ".join(str(value).splitlines()) if value is not None else ""


def md_text(value: object) -> str:
    """Data text for a Markdown paragraph, list item, heading or caption: one line, ``<``, ``>``, ``&`` as
    HTML entities (no raw HTML), Markdown's special characters backslash-escaped (no link, no code span, no
    emphasis) and a leading character that would start a block (``-``, ``+``, ``=``, ``1.``) escaped too.
    :func:`inline_tokens` / :func:`html_inline` read it back."""
    text = _MD_ESCAPE.sub(r"\\\1", html.escape(one_line(value).strip(), quote=False))
    return _BLOCK_START.sub(lambda m: m.group(1)[:-1] + "\\" + m.group(1)[-1], text)


def md_code(value: object) -> str:
    """Data text as an inline code span nothing can break out of: one line, fenced by more backticks than the
    longest run inside it (CommonMark), padded when it starts or ends with a backtick. Text holding ``<``, ``>``
    or ``&`` is :func:`md_text` instead (a code span shows HTML as text, but report.md then holds no raw tag
    even for a reader that scans it naively)."""
    text = one_line(value)
    if re.search("[<>&]", text):
        return md_text(text)
    runs = [len(r) for r in re.findall("`+", text)]
    fence = "`" * (max(runs, default=0) + 1)
    pad = " " if text.startswith("`") or text.endswith("`") or not text.strip() else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def md_fence(text: object) -> str:
    """A fenced code block around ``text`` whose fence is longer than any backtick run inside it."""
    text = str(text)
    runs = [len(r) for r in re.findall("`+", text)]
    fence = "`" * max(3, max(runs, default=0) + 1)
    return f"{fence}\n{text}\n{fence}"


def md_cell(text: object, brackets: bool = False) -> str:
    """One Markdown table cell: one line, backslashes, pipes, backticks and asterisks escaped, a bracket that
    would make a link (``](``, ``][``) escaped, HTML special characters as entities. Plain brackets such as an
    interval's ``[83.1, 88.7]`` stay as they are (``brackets``: every bracket escaped, e.g. an image's alt text)."""
    text = html.escape(one_line(text), quote=False).replace("\\", "\\\\")
    for ch in "|`*" + ("[]" if brackets else ""):
        text = text.replace(ch, "\\" + ch)
    return text if brackets else text.replace("](", "\\](").replace("][", "\\][")


def inline_tokens(text: str) -> list[tuple[str, str]]:
    """Read the Markdown subset of report paragraphs: ``[(kind, text)]`` with kind "text", "esc" (one
    backslash-escaped character), "code" (a code span's content) or "bold" (a ``**`` marker). A backtick run
    without its closing run of the same length is text (CommonMark)."""
    out: list[tuple[str, str]] = []
    i, n, buf = 0, len(text), []

    def flush():
        if buf:
            out.append(("text", "".join(buf)))
            buf.clear()
    while i < n:
        c = text[i]
        nxt = text[i + 1] if i + 1 < n else ""
        if c == "\\" and nxt.isascii() and nxt and not nxt.isalnum() and not nxt.isspace():  # ASCII punctuation
            flush()
            out.append(("esc", text[i + 1]))
            i += 2
        elif c == "`":
            run = re.match("`+", text[i:]).group(0)
            close = re.compile(r"(?<!`)" + run + r"(?!`)")
            m = close.search(text, i + len(run))
            if m is None:
                buf.append(run)
                i += len(run)
                continue
            flush()
            body = text[i + len(run):m.start()]
            if len(body) > 1 and body.startswith(" ") and body.endswith(" ") and body.strip():
                body = body[1:-1]
            out.append(("code", body))
            i = m.end()
        elif text.startswith("**", i):
            flush()
            out.append(("bold", "**"))
            i += 2
        else:
            buf.append(c)
            i += 1
    flush()
    return out


def md_inline(text: str) -> str:
    """A paragraph for report.md: one line, no leading block marker, every raw ``<`` outside code spans an
    entity, code spans re-fenced (a safety net under :func:`md_text`: data that reached a
    paragraph unescaped still renders as text, never as HTML or a new block)."""
    parts = []
    for kind, val in inline_tokens(one_line(text).strip()):
        if kind == "text":
            parts.append(val.replace("<", "&lt;"))
        elif kind == "esc":
            parts.append("\\" + val)
        elif kind == "code":
            parts.append(md_code(val))
        else:
            parts.append(val)
    line = "".join(parts)
    if line.startswith(("#", ">")):
        return "\\" + line
    return _BLOCK_START.sub(lambda m: m.group(1)[:-1] + "\\" + m.group(1)[-1], line)


def html_inline(text: str) -> str:
    """A paragraph for report.html: text escaped (its entities read first, as Markdown does), ``<code>`` for
    code spans, ``<b>`` for bold (balanced)."""
    parts, bold = [], False
    for kind, val in inline_tokens(text):
        if kind == "code":
            parts.append(f"<code>{html.escape(val)}</code>")
        elif kind == "bold":
            parts.append("</b>" if bold else "<b>")
            bold = not bold
        elif kind == "text":
            parts.append(html.escape(html.unescape(val)))
        else:
            parts.append(html.escape(val))
    return "".join(parts) + ("</b>" if bold else "")


def table_cells(df) -> tuple[list[str], list[list[str]]]:
    """A pandas DataFrame -> (header, rows) of strings: NaN as '–', floats with 4 significant digits.
    The index is shown (first column) unless it is a plain RangeIndex."""
    pd = lazy.pandas()
    index_name = df.index.name or ""
    show_index = not isinstance(df.index, pd.RangeIndex)
    header = ([index_name] if show_index else []) + [str(c) for c in df.columns]
    body = []
    for idx, row in df.iterrows():
        vals = ["–" if (isinstance(v, float) and math.isnan(v)) else
                (f"{v:.4g}" if isinstance(v, float) else str(v)) for v in row.tolist()]
        body.append(([str(idx)] if show_index else []) + vals)
    return header, body


def to_markdown(df) -> str:
    """A GitHub-flavoured Markdown table (no tabulate dependency), every cell escaped with :func:`md_cell`."""
    header, body = table_cells(df)
    lines = ["| " + " | ".join(md_cell(h) for h in header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(md_cell(c) for c in row) + " |" for row in body]
    return "\n".join(lines)


def json_safe(obj):
    """NaN/inf floats -> None, recursively (strict JSON for ``--json`` output)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    return obj


def interval_text(value, ci: dict | None = None, rate: bool = True) -> str:
    """``0.86, {"low": .831, "high": .887} -> '86.0 % [83.1, 88.7]'`` (rates) or ``'0.4123 [0.4011, 0.4236]'``;
    the bare value without an interval; '–' for a missing value."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    lo, hi = (ci or {}).get("low"), (ci or {}).get("high")
    has = lo is not None and hi is not None and math.isfinite(lo) and math.isfinite(hi)
    if rate:
        return f"{100 * value:.1f} %" + (f" [{100 * lo:.1f}, {100 * hi:.1f}]" if has else "")
    return f"{value:.4g}" + (f" [{lo:.4g}, {hi:.4g}]" if has else "")


def plain_table(header: list[str], rows: list[list[str]]) -> str:
    """An aligned plain-text table (left-aligned columns, two spaces apart) for the terminal."""
    widths = [max(len(str(c)) for c in col) for col in zip(header, *rows)]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(row, widths)).rstrip() for row in [header, *rows]]
    return "\n".join(lines)
