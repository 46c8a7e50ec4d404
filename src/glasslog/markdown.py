"""Markdown to HTML for glasslog's own reports (audit reports, the scenario lab's report): one renderer.

Only the Markdown the reports write is understood, and all text is escaped
first, so a value in a cell (a group name, a feature name) can never become
markup:

- ``#`` .. ``######`` headings;
- pipe tables: a header row, a separator row (``|---|``; ``---:`` right-aligns
  the column) and body rows; ``|`` inside a cell is written ``\\|`` (``cell``);
- lists: consecutive ``- `` lines;
- paragraphs: consecutive other non-blank lines, joined with a space (a blank
  line ends a paragraph, as in CommonMark);
- inline: ```code```, ``**strong**``, ``*emphasis*`` (none inside code).

The result is ``markupsafe.Markup``: safe to put into a jinja2 template with
autoescape on, and a plain ``str`` everywhere else.
"""

from __future__ import annotations

import re

from markupsafe import Markup, escape

__all__ = ["markdown_to_html", "cell"]

_CODE = re.compile(r"`([^`]+)`")
_STRONG = re.compile(r"\*\*(.+?)\*\*")
_EM = re.compile(r"(?<![*\w])\*(?![\s*])([^*]+?)(?<!\s)\*(?![*\w])")
_PIPE = re.compile(r"(?<!\\)\|")


def cell(text: object) -> str:
    """Text for one Markdown table cell: ``|`` escaped as ``\\|``, newlines as spaces."""
    return str(text).replace("|", "\\|").replace("\n", " ")


def _inline(text: str) -> str:
    parts = _CODE.split(str(text))  # even positions: text; odd: code spans
    out = []
    for k, part in enumerate(parts):
        if k % 2:
            out.append(f"<code>{escape(part)}</code>")
            continue
        s = str(escape(part))
        s = _STRONG.sub(r"<strong>\1</strong>", s)
        out.append(_EM.sub(r"<em>\1</em>", s))
    return "".join(out)


def _cells(line: str) -> list[str]:
    body = line.strip()
    body = body[1:] if body.startswith("|") else body
    body = body[:-1] if body.endswith("|") and not body.endswith("\\|") else body
    return [c.strip().replace("\\|", "|") for c in _PIPE.split(body)]


def _is_separator(line: str) -> bool:
    return line.lstrip().startswith("|") and set(line.replace("|", "").replace(":", "").replace(" ", "")) <= {"-"} \
        and "-" in line


def _table(head: str, sep: str, rows: list[str]) -> str:
    right = [a.endswith(":") for a in _cells(sep)]

    def td(tag: str, text: str, k: int) -> str:
        style = ' style="text-align:right"' if k < len(right) and right[k] else ""
        return f"<{tag}{style}>{_inline(text)}</{tag}>"

    return ("<table><tr>" + "".join(td("th", h, k) for k, h in enumerate(_cells(head))) + "</tr>"
            + "".join("<tr>" + "".join(td("td", c, k) for k, c in enumerate(_cells(r))) + "</tr>" for r in rows)
            + "</table>")


def markdown_to_html(markdown: str | list[str]) -> Markup:
    """HTML for Markdown text (or its lines), as described in the module docstring.

    Args:
        markdown: the text, or its lines (without line ends).

    Returns:
        The HTML, one block (heading, table, list, paragraph) per line, as ``Markup``.
    """
    lines = markdown.split("\n") if isinstance(markdown, str) else list(markdown)
    html: list[str] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        heading = re.match(r"^(#{1,6}) +(.*)$", line)
        if heading:
            level = len(heading.group(1))
            html.append(f"<h{level}>{_inline(heading.group(2).strip())}</h{level}>")
            i += 1
        elif line.lstrip().startswith("|") and i + 1 < len(lines) and _is_separator(lines[i + 1]):
            j = i + 2
            while j < len(lines) and lines[j].lstrip().startswith("|"):
                j += 1
            html.append(_table(line, lines[i + 1], lines[i + 2:j]))
            i = j
        elif line.startswith("- "):
            items = []
            while i < len(lines) and lines[i].startswith("- "):
                items.append(f"<li>{_inline(lines[i][2:])}</li>")
                i += 1
            html.append("<ul>" + "".join(items) + "</ul>")
        elif line.strip():
            para = [line.strip()]
            i += 1
            while i < len(lines) and lines[i].strip() and not re.match(r"^(#{1,6} |\||- )", lines[i].lstrip()):
                para.append(lines[i].strip())
                i += 1
            html.append(f"<p>{_inline(' '.join(para))}</p>")
        else:
            i += 1
    return Markup("\n".join(html))
