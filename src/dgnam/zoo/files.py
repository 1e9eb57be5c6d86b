"""Models from local weight files: ``--model FILE --arch NAME``.

``.safetensors`` and plain PyTorch state dicts (``weights_only=True``) are read here; other formats (Caffe) add
their readers to ``READERS`` by suffix.
"""

from __future__ import annotations

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


def load_file_model(path: Path, arch: str) -> nn.Module:
    if not path.is_file():
        raise DgnamError(f"weights file {path} does not exist")
    entry = get_entry(arch)
    net = entry.build()
    load_into(net, read_state_dict(path, arch), what=f"{path.name} as {arch}")
    return wrap(entry, net, with_stats=False, name=path.stem)
