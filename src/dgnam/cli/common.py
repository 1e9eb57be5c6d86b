"""Helpers shared by the CLI modules."""

from __future__ import annotations

import sys

import torch
from torch import nn

from ..errors import DgnamError
from ..generators import Generator, LearnedGenerator
from ..zoo import load_model


def model_arg(spec: str, arch: str | None = None) -> nn.Module:
    m = load_model(spec, arch)
    if isinstance(m, Generator):
        raise DgnamError(f"{spec} is a generator; give a classifier as --model and this as --generator")
    return m


def generator_arg(spec: str | None, arch: str | None = None) -> Generator | None:
    if spec is None or spec in ("none", "pixels"):
        return None
    g = load_model(spec, arch)
    if not isinstance(g, Generator):
        raise DgnamError(f"{spec} is not a generator: wrap your network as dgnam.LearnedGenerator(net, code_shape, space)")
    return g


def device_arg(device: str) -> torch.device:
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise DgnamError("--device cuda asked for, but this torch has no CUDA device; use --device cpu")
    try:
        return torch.device(device)
    except RuntimeError:
        raise DgnamError(f"unknown device {device!r}: use cpu, cuda or cuda:N") from None


#: ``--data`` of every command that reads images (:func:`dgnam.data.load_dataset`).
DATA_HELP = ("fashion-mnist (default), fashion-mnist:DIR, or an image folder (one sub-folder per class, or the images "
             "directly in it)")


def print_table(rows: list[dict], columns: list[str], title: str | None = None) -> None:
    from rich.console import Console
    from rich.table import Table

    t = Table(title=title)
    for c in columns:
        t.add_column(c, overflow="fold")  # a narrow terminal wraps values (unit names, figures), never cuts them
    for r in rows:
        t.add_row(*[f"{r[c]:.3f}" if isinstance(r.get(c), float) else str(r.get(c, "")) for c in columns])
    # written to a file or a pipe (logs, CI), rich would assume 80 columns: give the table the width it needs
    Console(width=None if sys.stdout.isatty() else 200).print(t)


def space_arg(net: nn.Module, shape: str | None):
    """``--input-shape CxHxW`` for a user's model without ``input_space``: images in [0, 1], gray or RGB."""
    if shape is None:
        return getattr(net, "input_space", None)
    from ..imagespace import ImageSpace

    try:
        c, h, w = (int(v) for v in shape.lower().split("x"))
        assert c in (1, 3)
    except (ValueError, AssertionError):
        raise DgnamError(f"--input-shape {shape!r}: write CxHxW with C 1 or 3, e.g. 3x224x224") from None
    return ImageSpace(size=(h, w), color="GRAY" if c == 1 else "RGB")
