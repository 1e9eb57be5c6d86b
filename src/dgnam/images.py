"""Saving images: single PNGs and labelled grids (Pillow)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont


#: The side a small image's PNG is enlarged towards, by the largest whole factor (nearest-neighbour) that does not
#: pass it: a 28-px image is saved at 84 px, a 32-px one at 96 px, one of 96 px or more as it is, so that an image
#: viewer shows it at a visible size without blurring it.
PNG_TARGET_SIDE = 96


def png_scale(size: Sequence[int]) -> int:
    """The whole factor a run's PNG of an image of ``size`` (H, W) is enlarged by (:data:`PNG_TARGET_SIDE`)."""
    return max(1, PNG_TARGET_SIDE // max(size))


def enlarged(array: np.ndarray, scale: int = 1) -> Image.Image:
    """An HxW (gray) or HxWx3 uint8 array as a Pillow image, enlarged ``scale`` times with nearest-neighbour: the
    picture :func:`save_png` writes, which notebooks show without a file."""
    im = Image.fromarray(array)
    if scale > 1:
        im = im.resize((im.width * scale, im.height * scale), Image.NEAREST)
    return im


def save_png(array: np.ndarray, path: str | os.PathLike, scale: int = 1) -> None:
    """Save an HxW (gray) or HxWx3 uint8 array; ``scale`` enlarges it with nearest-neighbour for small images."""
    save_image(enlarged(array, scale), path)


def save_image(im: Image.Image, path: str | os.PathLike) -> None:
    """Save a Pillow image in the format its suffix names, atomically (:mod:`dgnam.atomic`): a kill or a full disk
    leaves the previous file or none, never a truncated one."""
    from .atomic import write_atomic

    fmt = Image.registered_extensions().get(Path(path).suffix.lower(), "PNG")
    write_atomic(path, lambda tmp: im.save(tmp, format=fmt))


def _font(size: int = 12):
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1
        return ImageFont.load_default()


def _fit(draw: ImageDraw.ImageDraw, text: str, width: int, font) -> str:
    """``text`` shortened with an ellipsis so that it fits in ``width`` pixels: captions never run into their
    neighbours."""
    if draw.textlength(text, font=font) <= width:
        return text
    while text and draw.textlength(text + "…", font=font) > width:
        text = text[:-1]
    return text + "…"


#: Where a row label too long for its line is broken when it has no space: after these characters, so that a unit
#: address such as ``_blocks.15._project_conv:123`` keeps its channel on the next line.
_BREAK_AFTER = "._:/=#,-"


def _wrap(draw: ImageDraw.ImageDraw, text: str, width: int, font, max_lines: int) -> list[str]:
    """``text`` broken into lines of at most ``width`` pixels (at its ``\\n``, at spaces, else after one of
    :data:`_BREAK_AFTER`, else anywhere), at most ``max_lines`` of them, the last shortened with an ellipsis if the
    text runs on: a row label says a whole unit address and class name instead of losing their ends."""
    def fits(t: str) -> bool:
        return draw.textlength(t, font=font) <= width

    lines: list[str] = []
    for para in str(text).split("\n"):
        line = ""
        for word in para.split(" "):
            trial = f"{line} {word}" if line else word
            if fits(trial):
                line = trial
                continue
            if line:
                lines.append(line)
            while word and not fits(word):  # a word wider than the line: break it
                n = max((i for i in range(1, len(word)) if fits(word[:i])), default=1)
                cut = max((i + 1 for i in range(n) if word[i] in _BREAK_AFTER), default=n)
                lines.append(word[:cut])
                word = word[cut:]
            line = word
        lines.append(line)
    if len(lines) > max_lines:
        lines = lines[: max_lines - 1] + [_fit(draw, " ".join(lines[max_lines - 1 :]), width, font)]
    return lines


#: The most rows (units) and columns (restarts) an overview figure shows: 100 x 16 cells is about 11,000 x 1,800 px.
#: A run of 1000 units x 16 restarts made a 200-Mpx grid.png that Pillow refuses to open (its decompression-bomb
#: check), and the HTML report inlined it (43 MB). Every image is in the run's images/ folder either way.
GRID_MAX_ROWS = 100
GRID_MAX_COLS = 16


#: The side of an overview figure's cell in pixels: a 28-px image enlarged 3x, an ImageNet one shrunk (for a figure,
#: ``dgnam grid --cell 0`` draws the images at their own size).
GRID_CELL = 96

#: The most lines a column label of :func:`grid` takes; a longer one ends in an ellipsis.
COL_LABEL_LINES = 2


def grid(
    rows: Sequence[Sequence[np.ndarray | None]],
    row_labels: Sequence[str] | None = None,
    col_labels: Sequence[str] | None = None,
    cell_labels: Sequence[Sequence[str]] | None = None,
    cell: int = GRID_CELL,
    pad: int = 4,
    label_width: int = 150,
    wrap_row_labels: bool = False,
    corner: str | None = None,
) -> Image.Image:
    """A grid of images (rows x columns; ``None`` leaves a cell empty) with row, column and per-cell captions.

    A caption may have several lines (``"\\n"``); every line is shortened to its cell's width. A row label is one
    line shortened to ``label_width`` unless ``wrap_row_labels``: then it is broken into as many lines as the cell's
    height holds (at its ``"\\n"`` too), so that a long unit address or class name is shown whole. A column label
    too wide for its cell is broken the same way onto a second line (:data:`COL_LABEL_LINES`). ``corner`` is a
    note above the row labels, beside the column labels (what the captions are).
    """
    ncols = max(len(r) for r in rows)
    font = _font(12)
    # a column label too wide for its cell takes a second line (a class name such as "9 Ankle boot" lost its end)
    measure = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    col_lines = [_wrap(measure, str(label), cell, font, COL_LABEL_LINES) for label in col_labels or []]
    top = 4 + 14 * max(len(c) for c in col_lines) if col_lines else 0
    lines = max((str(c).count("\n") + 1 for r in cell_labels or [] for c in r if c), default=0)
    cap = 14 * lines
    lw = label_width if row_labels else 0
    W = lw + ncols * (cell + pad) + pad
    H = top + len(rows) * (cell + cap + pad) + pad
    canvas = Image.new("RGB", (W, H), "white")
    draw = ImageDraw.Draw(canvas)
    if corner and col_labels and row_labels:
        draw.text((4, 2), _fit(draw, corner, lw - 8, font), fill="gray", font=font)
    for j, label in enumerate(col_lines):
        for k, line in enumerate(label):
            draw.text((lw + pad + j * (cell + pad), 2 + 14 * k), line, fill="black", font=font)
    for i, row in enumerate(rows):
        y = top + pad + i * (cell + cap + pad)
        if row_labels and wrap_row_labels:
            lines = _wrap(draw, str(row_labels[i]), lw - 8, font, max(1, cell // 14))
            for k, line in enumerate(lines):
                draw.text((4, y + cell // 2 - 7 * len(lines) + 14 * k), line, fill="black", font=font)
        elif row_labels:
            draw.text((4, y + cell // 2 - 6), _fit(draw, str(row_labels[i]), lw - 8, font), fill="black", font=font)
        for j, arr in enumerate(row):
            x = lw + pad + j * (cell + pad)
            if arr is not None:
                im = Image.fromarray(arr).convert("RGB")
                resample = Image.NEAREST if max(im.size) * 2 <= cell else Image.BILINEAR
                # the longer side fills the cell, the other is scaled alike and centred: a 16x48 input was
                # stretched into a square
                side = max(im.size)
                w, h = max(1, round(im.width * cell / side)), max(1, round(im.height * cell / side))
                canvas.paste(im.resize((w, h), resample), (x + (cell - w) // 2, y + (cell - h) // 2))
            if cell_labels and j < len(cell_labels[i]) and cell_labels[i][j]:
                for k, line in enumerate(str(cell_labels[i][j]).split("\n")):
                    draw.text((x, y + cell + 1 + 14 * k), _fit(draw, line, cell, font), fill="black", font=font)
    return canvas


#: Samples per row of a chain's figure (``samples.png`` of `dgnam sample`, :meth:`dgnam.ppgn.Chain.grid`).
SAMPLES_PER_ROW = 10


def wrapped_grid(arrays: Sequence[np.ndarray], captions: Sequence[str], cols: int = SAMPLES_PER_ROW,
                 groups: Sequence[int] | None = None, names: Sequence[str] | None = None) -> Image.Image:
    """A sequence of images (a chain's samples) in rows of ``cols``, each with its caption. With ``groups`` (each
    image's condition, an index into ``names``), each condition's samples start a row of their own, the first one
    labelled with its name: a chain through several classes is otherwise one unlabelled run of images."""
    if groups is None:
        rows = [list(arrays[i : i + cols]) for i in range(0, len(arrays), cols)]
        caps = [list(captions[i : i + cols]) for i in range(0, len(captions), cols)]
        return grid(rows, cell_labels=caps)
    rows, caps, labels = [], [], []
    start = 0
    for end in range(1, len(arrays) + 1):
        if end < len(arrays) and groups[end] == groups[start]:
            continue
        for i in range(start, end, cols):
            rows.append(list(arrays[i : min(i + cols, end)]))
            caps.append(list(captions[i : min(i + cols, end)]))
            labels.append(str(names[groups[start]]) if i == start and names is not None else "")
        start = end
    return grid(rows, row_labels=labels, cell_labels=caps, wrap_row_labels=True)


def paste_inside(original: np.ndarray, fill: np.ndarray, inside: np.ndarray) -> np.ndarray:
    """``original`` (HxW or HxWx3 uint8, at its own size) with the pixels where ``inside`` (HxW bool) holds taken
    from ``fill``, which is resized (bicubic) to the original's size first.

    Why: a model fills a hole at its input size (28x28, 224x224), while the user's photo has its own; the result
    they can use is their photo at full resolution with only the hole replaced, every other pixel untouched. A gray
    fill in a colour photo is pasted as gray RGB, and a colour fill makes a gray photo RGB.
    """
    if inside.shape != original.shape[:2]:
        raise ValueError(f"the mask is {inside.shape}, the image {original.shape[:2]}")
    mode = "RGB" if original.ndim == 3 or fill.ndim == 3 else "L"
    base = np.asarray(Image.fromarray(original).convert(mode)).copy()
    big = Image.fromarray(fill).convert(mode).resize((original.shape[1], original.shape[0]), Image.BICUBIC)
    base[inside] = np.asarray(big)[inside]
    return base
