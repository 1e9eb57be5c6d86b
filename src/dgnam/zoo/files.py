"""Models from local weight files: ``--model FILE --arch NAME``.

``.safetensors`` and plain PyTorch state dicts (``weights_only=True``) are read here; other formats (Caffe) add
their readers to ``READERS`` by suffix.
"""

from __future__ import annotations

import inspect
import json
import math
from pathlib import Path
from typing import Callable

from torch import nn

from ..errors import DgnamError
from ..weights import load_into, load_state_dict
from .registry import get_entry, wrap

#: suffix -> reader(path, arch) returning a state dict for that zoo architecture.
READERS: dict[str, Callable[[Path, str], dict]] = {}


def read_state_dict(path: Path, arch: str) -> dict:
    reader = READERS.get(path.suffix.lower())
    return reader(path, arch) if reader else load_state_dict(path)


def code_stats_beside(path: Path) -> Path:
    """Where `dgnam train generator` writes a generator's code statistics: ``NAME.codestats.safetensors`` next to
    ``NAME.safetensors``."""
    return path.with_name(f"{path.stem}.codestats.safetensors")


def _card_classes(path: Path) -> list[str] | None:
    """The class names in the card `dgnam train classifier` writes beside its weights (``NAME.json``), if any."""
    card = path.with_suffix(".json")
    if not card.is_file():
        return None
    try:
        classes = json.loads(card.read_text()).get("classes")
    except (OSError, ValueError, AttributeError):
        return None
    return [str(c) for c in classes] if isinstance(classes, list) and classes else None


def load_file_model(path: Path, arch: str) -> nn.Module:
    """A zoo architecture with the weights of ``path``; a generator also gets the code statistics found beside the
    file (without them DGN-AM's clip to ``[0, U]`` would have no upper bound)."""
    if not path.is_file():
        raise DgnamError(f"weights file {path} does not exist")
    entry = get_entry(arch)
    classes = _card_classes(path) if entry.kind == "classifier" else None
    if classes and "num_classes" in inspect.signature(entry.build).parameters:
        net = entry.build(num_classes=len(classes))  # trained on a folder of its own classes (`dgnam train`)
    else:
        net = entry.build()
    load_into(net, read_state_dict(path, arch), what=f"{path.name} as {arch}")
    model = wrap(entry, net, with_stats=False, name=path.stem)
    if classes:
        model.classes = tuple(classes)
    stats = code_stats_beside(path)
    if entry.kind == "generator" and stats.is_file():
        from ..priors import CodeStats

        cs = CodeStats.load(stats)
        if cs.mean.numel() != math.prod(entry.code_shape):
            raise DgnamError(f"{stats.name} has {cs.mean.numel()} components, {path.name} takes codes of "
                             f"{math.prod(entry.code_shape)}: it belongs to another generator; move it away")
        model.code_stats = cs
    return model
