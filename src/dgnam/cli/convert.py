"""``dgnam convert``: the released DGN-AM files (Caffe weights, PyTorch translations, act_range bounds) to safetensors.

Converting once means later runs read a safe, fast format with a model card that records where the weights came from
(the source file's name and SHA-256), so a result can be traced back to the exact original file.
"""

from __future__ import annotations

import json
import math
from datetime import datetime, timezone
from pathlib import Path
from typing import Optional

import typer

from ..atomic import write_text_atomic
from ..errors import DgnamError
from . import MODELS, app

#: Source formats by file suffix.
_FORMATS = {".caffemodel": "caffemodel", ".pt": "pytorch", ".pth": "pytorch", ".bin": "pytorch",
            ".safetensors": "safetensors"}


@app.command(rich_help_panel=MODELS)
def convert(
    src: Path = typer.Argument(..., help="a .caffemodel, a PyTorch state dict (.pt/.pth), a .safetensors, "
                                         "or with --bounds an act_range bounds .txt"),
    to: Path = typer.Option(..., "--to", "--out", help="the .safetensors to write (--out, as other commands call it); its model card goes to the same name .json"),
    arch: Optional[str] = typer.Option(None, help="zoo architecture of the weights, e.g. caffenet, deepsim-fc6 "
                                                  "(`dgnam models`); with --bounds, the generator (checks the count)"),
    bounds: bool = typer.Option(False, "--bounds", help="SRC is an act_range .txt: write it as CodeStats bounds "
                                                        "(for `visualize --code-stats`)"),
) -> None:
    """Convert SRC to a safetensors file plus a model card (source, SHA-256s, architecture, date)."""
    from ..weights import save_safetensors, sha256

    if to.suffix != ".safetensors":
        raise DgnamError(f"--to {to}: the output is a safetensors file; name it {to.with_suffix('.safetensors').name}")
    if not src.is_file():
        raise DgnamError(f"{src} does not exist")
    if bounds:
        fmt, count = "act_range", _convert_bounds(src, to, arch)
    else:
        if arch is None:
            raise DgnamError(f"say which architecture {src.name} holds with --arch NAME (`dgnam models` lists them)")
        fmt = _FORMATS.get(src.suffix.lower())
        if fmt is None:
            raise DgnamError(f"{src.name}: unknown weights format {src.suffix!r}; give a .caffemodel, .pt/.pth or "
                             f".safetensors (or an act_range .txt with --bounds)")
        state = _read_weights(src, arch)
        save_safetensors(state, to, metadata={"arch": arch, "source": src.name, "format": fmt})
        count = len(state)
    card = {
        "name": to.stem, "arch": arch, "format": fmt, "source": src.name, "source_sha256": sha256(src),
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "tensors": count,
        "file": to.name, "sha256": sha256(to),
        "command": f"dgnam convert {src.name} --to {to.name}" + (f" --arch {arch}" if arch else "")
                   + (" --bounds" if bounds else ""),
    }
    card_path = to.with_suffix(".json")
    write_text_atomic(card_path, json.dumps(card, indent=1) + "\n")
    typer.echo(f"wrote {to} ({count} tensors) and its card {card_path}")


def _read_weights(src: Path, arch: str) -> dict:
    """Read SRC as ``arch``'s weights and load them into the architecture, so that only a checked, complete state dict
    (every key, shape and Caffe layer type matched) is ever written."""
    from ..weights import load_into
    from ..zoo import get_entry
    from ..zoo.files import read_state_dict

    entry = get_entry(arch)  # also registers the Caffe readers
    net = entry.build()
    load_into(net, read_state_dict(src, arch), what=f"{src.name} as {arch}")
    return {k: v.detach().float().contiguous() for k, v in net.state_dict().items()}


def _convert_bounds(src: Path, to: Path, arch: Optional[str]) -> int:
    from ..zoo import get_entry
    from ..zoo.caffe_files import read_bounds
    from ..priors import CodeStats

    dim = None
    if arch is not None:
        entry = get_entry(arch)
        if entry.kind != "generator" or entry.code_shape is None:
            raise DgnamError(f"--arch {arch} is not a generator; give the generator whose code the bounds clip")
        dim = math.prod(entry.code_shape)
    stats = CodeStats.from_bounds(read_bounds(src, dim))
    stats.save(to)
    return 2 + len(stats.percentiles) + 1  # mean, std, percentiles (none here), bounds: as CodeStats.save writes
