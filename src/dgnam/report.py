"""Reports: small self-contained HTML pages (images inlined) for a run's figures and tables (the tables and inlined
images themselves: :mod:`dgnam.display`, which notebooks share)."""

from __future__ import annotations

import html
from pathlib import Path
from typing import Sequence

from .atomic import write_text_atomic
from .display import img_tag


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
    return img_tag(path.read_bytes(), alt)


def warning_section(text: str) -> str:
    """A boxed warning (an incomplete run's numbers), so it cannot be missed above the figures."""
    return f'<p class="warning">{html.escape(text)}</p>'
