"""Showing results: HTML tables, inlined PNGs and short reprs, for the reports dgnam writes and for notebooks.

A notebook shows a cell's last value through its ``_repr_html_`` / ``_repr_png_`` (IPython's rich display hooks) and
otherwise prints its ``repr``; what :func:`dgnam.visualize`, :func:`dgnam.ppgn.sample` and :func:`dgnam.facets.facets`
return hold image tensors and hundreds of records, whose default dataclass repr ran to megabytes of numbers. The
pieces here are the ones :mod:`dgnam.report` (the HTML pages of the CLI) and those results' display hooks share; they
import nothing of the CLI. Every progress bar of the package is made by :func:`progress_bar`.
"""

from __future__ import annotations

import base64
import dataclasses
import html
import io
import os
import sys
from typing import TYPE_CHECKING, Sequence

import numpy as np

if TYPE_CHECKING:
    from PIL import Image

#: Seconds between a progress bar's updates when it writes to a file or a pipe (a batch job's log, CI) rather than a
#: terminal: tqdm's 0.1 s put ten ``\r`` updates a second into the log (159, 15 kB, for a 17 s run; megabytes for an
#: hour's). The last update, at the end, is always written.
LOG_INTERVAL = 30.0

#: No progress bars at all: the command line's ``dgnam --quiet``.
QUIET = False


def progress_bar(iterable=None, *, show: bool = True, **kwargs):
    """A tqdm progress bar (``tqdm.auto``: a widget in a notebook) unless ``show`` is false (a function's
    ``progress=False``) or :data:`QUIET` is set. It passes tqdm no ``disable=False``, which overrode the
    environment's ``TQDM_DISABLE=1``: set, it hides every bar, as it does other tqdm users'. Written to a file or a
    pipe, a bar is updated every :data:`LOG_INTERVAL` seconds, unless ``TQDM_MININTERVAL`` says how often."""
    from tqdm.auto import tqdm

    if not show or QUIET:
        kwargs["disable"] = True
    stream = kwargs.get("file") or sys.stderr
    in_notebook = any(c.__module__ == "tqdm.notebook" for c in tqdm.__mro__)  # a widget: no log to flood
    if not in_notebook and "TQDM_MININTERVAL" not in os.environ and not _is_terminal(stream):
        kwargs.setdefault("mininterval", LOG_INTERVAL)
        kwargs.setdefault("maxinterval", LOG_INTERVAL)  # nor sooner by tqdm's monitor (10 s by default)
    return tqdm(iterable, **kwargs)


def _is_terminal(stream) -> bool:
    try:
        return stream is not None and stream.isatty()
    except (AttributeError, ValueError):  # no isatty, or closed
        return False


#: A cell whose metric does not apply (``None``: the diversity of one image, the judge accuracy of a channel unit).
NOT_APPLICABLE = "n/a"


def counted(n: int, noun: str) -> str:
    """``n`` and ``noun``, plural unless ``n`` is 1 ("1 code", "2 samples"): a message said "wrote 1 codes"."""
    return f"{n} {noun}{'' if n == 1 else 's'}"


def html_table(rows: Sequence[dict], columns: Sequence[str]) -> str:
    """An HTML table of ``rows`` (dicts) in ``columns``: floats to 3 decimals, ``None`` as ``n/a``, a missing field
    empty, every value escaped."""

    def fmt(v):
        if v is None:  # "None" in a table reads like a failure
            return NOT_APPLICABLE
        return f"{v:.3f}" if isinstance(v, float) else html.escape(str(v))

    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = "".join("<tr>" + "".join(f"<td>{fmt(r.get(c, ''))}</td>" for c in columns) + "</tr>" for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def png_bytes(im: "Image.Image") -> bytes:
    """A Pillow image encoded as PNG (what ``_repr_png_`` hands a notebook)."""
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    return buf.getvalue()


def img_tag(png: bytes, alt: str) -> str:
    """An ``<img>`` tag with the PNG ``png`` inlined, so that a page or a notebook's output needs no other file."""
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{base64.b64encode(png).decode()}">'


def compact(value: object, width: int = 60) -> str:
    """``value`` as a short repr: a tensor or array by its shape (and a dtype other than float32: ``<tensor 4x256>``,
    ``<int64 tensor 12>``), a long list or dict, or one holding tensors, by its length (``<list of 10 Tensor>``),
    anything else by its repr cut to ``width`` characters."""
    import torch  # (here, not above: the command line imports this module for ``--quiet`` before it needs torch)

    if isinstance(value, (torch.Tensor, np.ndarray)):
        kind = "tensor" if isinstance(value, torch.Tensor) else "array"
        dtype = str(value.dtype).removeprefix("torch.")
        shape = "x".join(str(int(n)) for n in value.shape) or "scalar"
        return f"<{'' if dtype == 'float32' else dtype + ' '}{kind} {shape}>"
    if isinstance(value, (list, tuple, dict)):
        items = list(value.values()) if isinstance(value, dict) else list(value)
        if len(items) > 4 or any(isinstance(v, (torch.Tensor, np.ndarray, dict, list)) for v in items):
            kinds = {type(v).__name__ for v in items}
            what = f" {kinds.pop()}" if len(kinds) == 1 else ""
            return f"<{type(value).__name__} of {len(items)}{what}>"
    text = repr(value)
    width = 4 * width if dataclasses.is_dataclass(value) else width  # a nested result: its own repr is kept short
    return text if len(text) <= width else text[: width - 3] + "..."


def compact_repr(obj: object) -> str:
    """A dataclass's repr with each field shown by :func:`compact`: one line, however many images it holds."""
    fields = ", ".join(f"{f.name}={compact(getattr(obj, f.name))}" for f in dataclasses.fields(obj) if f.repr)
    return f"{type(obj).__name__}({fields})"
