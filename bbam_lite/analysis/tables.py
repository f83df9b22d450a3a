"""Result rows as tables: Markdown text, and a :class:`Table` that notebooks display (HTML in the
rendered book and in Jupyter, Markdown where only Markdown is shown)."""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from typing import Any


def _cell(value: Any, fmt: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, (int, float)) and not isinstance(value, bool) and fmt:
        return format(value, fmt)
    return str(value)


def pick(holds: Any, if_true: str, if_false: str) -> str:
    """``if_true`` when ``holds``, else ``if_false``: the wording of a sentence for each outcome
    (:mod:`bbam_lite.book.claims`)."""
    return if_true if bool(holds) else if_false


def fmt_change(value: float, digits: int = 3) -> str:
    """A signed change in words: ``"gains 0.012"``, ``"loses 0.034"``, ``"does not change"``."""
    rounded = round(value, digits)
    if rounded > 0:
        return f"gains {rounded:.{digits}f}"
    if rounded < 0:
        return f"loses {-rounded:.{digits}f}"
    return "does not change"


def markdown_table(rows: Sequence[dict[str, Any]], columns: Sequence[tuple[str, str, str]]) -> str:
    """A Markdown table: ``columns`` are (key, header, format spec such as ".3f" or "").

    Missing keys and NaN show as "-".
    """
    head = "| " + " | ".join(h for _, h, _ in columns) + " |"
    rule = "| " + " | ".join("---" for _ in columns) + " |"
    body = ["| " + " | ".join(_cell(r.get(k), f) for k, _, f in columns) + " |" for r in rows]
    return "\n".join([head, rule, *body])


def html_table(
    rows: Sequence[dict[str, Any]], columns: Sequence[tuple[str, str, str]], caption: str | None = None
) -> str:
    """The same table as HTML (cells escaped; numbers right-aligned)."""

    def td(value: Any, fmt: str) -> str:
        align = ' style="text-align: right"' if isinstance(value, (int, float)) else ""
        return f"<td{align}>{html.escape(_cell(value, fmt))}</td>"

    parts = ['<table class="dataframe">']
    if caption:
        parts.append(f"<caption>{html.escape(caption)}</caption>")
    parts.append(
        "<thead><tr>" + "".join(f"<th>{html.escape(h)}</th>" for _, h, _ in columns) + "</tr></thead>"
    )
    parts.append("<tbody>")
    parts += ["<tr>" + "".join(td(r.get(k), f) for k, _, f in columns) + "</tr>" for r in rows]
    parts.append("</tbody></table>")
    return "".join(parts)


class Table:
    """Rows and column specs that display as a table in notebooks (``display(Table(...))``)."""

    def __init__(
        self,
        rows: Sequence[dict[str, Any]],
        columns: Sequence[tuple[str, str, str]],
        caption: str | None = None,
    ) -> None:
        self.rows, self.columns, self.caption = list(rows), list(columns), caption

    def _repr_html_(self) -> str:
        return html_table(self.rows, self.columns, self.caption)

    def _repr_markdown_(self) -> str:
        text = markdown_table(self.rows, self.columns)
        return f"**{self.caption}**\n\n{text}" if self.caption else text

    def __repr__(self) -> str:
        return self._repr_markdown_()
