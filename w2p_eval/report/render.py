"""Render a report (a list of blocks) as report.md (images linked) and a self-contained report.html
(images base64-embedded, no external file, script or stylesheet)."""

from __future__ import annotations

import base64
import html
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from w2p_eval.text import html_inline as _inline
from w2p_eval.text import md_cell, md_fence, md_inline, md_text, to_markdown
from w2p_eval.text import table_cells as _cells

# Every table sits in its own horizontal scroll box (.scroll) and every figure, code block and long word is kept
# inside the page, so the page is never wider than the window (tests/unit/test_report_browser.py checks it in
# headless Chromium at 1400 and 800 px).
_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;max-width:1100px;margin:2em auto;
padding:0 1em;color:#222;line-height:1.45;overflow-wrap:anywhere}
.scroll{overflow-x:auto;max-width:100%;margin:.6em 0}.scroll table{margin:0}table{overflow-wrap:normal}
td{white-space:nowrap}th{word-break:keep-all}
pre{overflow-x:auto;max-width:100%;white-space:pre-wrap}img{height:auto}
h1{font-size:1.6em}h2{font-size:1.25em;border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:1.8em}
h3{font-size:1.05em}table{border-collapse:collapse;margin:.6em 0;font-size:.85em}
th,td{border:1px solid #ccc;padding:.25em .55em;text-align:right}th{background:#f3f3f3}
td:first-child,th:first-child{text-align:left}figure{margin:1em 0}img{max-width:100%}
figcaption,.caption{font-size:.85em;color:#555}code{background:#f5f5f5;padding:0 .2em}
"""


@dataclass
class Block:
    kind: str  # "h2" | "h3" | "p" | "ul" | "table" | "figure" | "code"
    text: str = ""
    items: list[str] = field(default_factory=list)
    table: pd.DataFrame | None = None
    path: Path | None = None  # figure PNG


def h2(text):
    return Block("h2", text)


def h3(text):
    return Block("h3", text)


def p(text):
    return Block("p", text)


def ul(items):
    return Block("ul", items=list(items))


def code(text):
    return Block("code", text)


def table(df: pd.DataFrame, caption: str = ""):
    return Block("table", caption, table=df)


def figure(path, caption: str = ""):
    return Block("figure", caption, path=Path(path))


def render_markdown(title: str, blocks: list[Block], root: str | os.PathLike) -> str:
    """Markdown with image links relative to ``root`` (the report folder). Headings and the title are plain
    text (:func:`~w2p_eval.text.md_text`); paragraphs and list items are the small Markdown subset
    :func:`~w2p_eval.text.inline_tokens` reads, kept on one line with raw HTML escaped
    (:func:`~w2p_eval.text.md_inline`); a code block's fence is longer than any backtick run inside it."""
    root = Path(root)
    out = [f"# {md_text(title)}", ""]
    for b in blocks:
        if b.kind == "h2":
            out += [f"## {md_text(b.text)}", ""]
        elif b.kind == "h3":
            out += [f"### {md_text(b.text)}", ""]
        elif b.kind == "p":
            out += [md_inline(b.text), ""]
        elif b.kind == "ul":
            out += [f"- {md_inline(item)}" for item in b.items] + [""]
        elif b.kind == "code":
            out += [md_fence(b.text), ""]
        elif b.kind == "table" and b.table is not None and not b.table.empty:
            if b.text:
                out += [f"*{md_cell(b.text)}*", ""]
            out += [to_markdown(b.table), ""]
        elif b.kind == "figure" and b.path is not None:  # captions carry run names: escaped like table cells
            rel = os.path.relpath(b.path, root).replace(os.sep, "/")
            alt = md_cell(b.text, brackets=True)
            out += [f"![{alt}]({rel})", ""]
            if b.text:
                out += [f"*{md_cell(b.text)}*", ""]
    return "\n".join(out).rstrip() + "\n"


def _html_table(df: pd.DataFrame) -> str:
    header, body = _cells(df)
    rows = ["<tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in header) + "</tr>"]
    rows += ["<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in body]
    return "<table>\n" + "\n".join(rows) + "\n</table>"


def _data_uri(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(Path(path).read_bytes()).decode("ascii")


def render_html(title: str, blocks: list[Block]) -> str:
    """One self-contained HTML page: every image is a base64 data URI."""
    out = ["<!DOCTYPE html>", "<html lang=\"en\"><head><meta charset=\"utf-8\">",
           f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>",
           f"<h1>{html.escape(title)}</h1>"]
    for b in blocks:
        if b.kind in ("h2", "h3"):
            out.append(f"<{b.kind}>{html.escape(b.text)}</{b.kind}>")
        elif b.kind == "p":
            out.append(f"<p>{_inline(b.text)}</p>")
        elif b.kind == "ul":
            out.append("<ul>" + "".join(f"<li>{_inline(i)}</li>" for i in b.items) + "</ul>")
        elif b.kind == "code":
            out.append(f"<pre><code>{html.escape(b.text)}</code></pre>")
        elif b.kind == "table" and b.table is not None and not b.table.empty:
            if b.text:
                out.append(f"<p class=\"caption\">{_inline(b.text)}</p>")
            out.append(f"<div class=\"scroll\">{_html_table(b.table)}</div>")
        elif b.kind == "figure" and b.path is not None and Path(b.path).is_file():
            out.append(f"<figure><img alt=\"{html.escape(b.text)}\" src=\"{_data_uri(b.path)}\">"
                       f"<figcaption>{_inline(b.text)}</figcaption></figure>")
    out.append("</body></html>")
    return "\n".join(out) + "\n"


def is_missing(v) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v))
