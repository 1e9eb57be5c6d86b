"""Reports: small self-contained HTML pages (images inlined) for a run's figures and tables."""

from __future__ import annotations

import base64
import html
from pathlib import Path
from typing import Sequence

from .atomic import write_text_atomic

#: A cell whose metric does not apply (``None``: the diversity of one image, the judge accuracy of a channel unit).
NOT_APPLICABLE = "n/a"


def html_table(rows: Sequence[dict], columns: Sequence[str]) -> str:
    def fmt(v):
        if v is None:  # "None" in a table reads like a failure
            return NOT_APPLICABLE
        return f"{v:.3f}" if isinstance(v, float) else html.escape(str(v))

    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = "".join("<tr>" + "".join(f"<td>{fmt(r.get(c, ''))}</td>" for c in columns) + "</tr>" for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def write_page(path: Path, title: str, sections: Sequence[tuple[str, str]]) -> Path:
    """``sections`` are (heading, html) pairs; images should already be inlined with :func:`image_section`."""
    css = ("body{font-family:system-ui,sans-serif;margin:2em;max-width:1100px}table{border-collapse:collapse}"
           "td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}th{background:#f3f3f3}img{max-width:100%}"
           ".warning{background:#fde2e1;border:2px solid #c0392b;padding:.6em 1em;font-weight:bold}")
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
             f"<style>{css}</style></head><body><h1>{html.escape(title)}</h1>"]
    parts += [f"<h2>{html.escape(h)}</h2>{body}" for h, body in sections]
    parts.append("</body></html>")
    write_text_atomic(path, "\n".join(parts))
    return path


def image_section(path: Path, alt: str) -> str:
    """The PNG at ``path`` as an ``<img>`` tag with its data inlined."""
    data = base64.b64encode(path.read_bytes()).decode()
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'


def warning_section(text: str) -> str:
    """A boxed warning (an incomplete run's numbers), so it cannot be missed above the figures."""
    return f'<p class="warning">{html.escape(text)}</p>'
