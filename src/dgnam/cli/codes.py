"""``dgnam encode`` and ``dgnam code-stats``: codes of real images for a generator's encoder layer."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Optional

import typer

from ..display import counted
from ..errors import DgnamError
from . import CODES, app
from .common import (DATA_HELP, LIMIT_HELP, arch_help, dataset_arg, declared_space, device_arg, device_option,
                     model_arg)

if TYPE_CHECKING:
    import numpy as np
    import torch


def read_image(spec: str, space) -> tuple[torch.Tensor, "np.ndarray"]:
    """IMAGE is a file, or ``test:INDEX`` / ``train:INDEX`` for a Fashion-MNIST image: the image (1, C, H, W) in
    ``space`` at its size, and the image as read, at its own size (an HxW or HxWx3 uint8 array). A Fashion-MNIST
    image reaches the model as a 28x28 gray file would: resized to its input and made RGB for a colour model (it
    was encoded as it was, so a model of another size or colour got a 1x28x28 tensor and failed)."""
    import re

    import numpy as np

    from ..imagespace import from_uint8

    m = re.fullmatch(r"(train|test):(.*)", str(spec))
    if m and not Path(spec).exists():
        from ..data import FashionMNIST

        if not re.fullmatch(r"\d+", m[2]):
            raise DgnamError(f"{spec}: write {m[1]}:INDEX with INDEX >= 0, or give an image file")
        ds = FashionMNIST(m[1])
        i = int(m[2])
        if i >= len(ds):
            raise DgnamError(f"{spec}: Fashion-MNIST {m[1]} has images 0..{len(ds) - 1}")
        arr = ds.images[i].numpy()
        return from_uint8([arr], space), arr
    from ..data import open_image

    # at its own size, upright as viewers show it: HxW for a gray file, HxWx3 otherwise; unreadable: one line
    arr = np.asarray(open_image(Path(spec)))
    return from_uint8([arr], space), arr


def _images(specs: list[str], space) -> torch.Tensor:
    import torch

    return torch.cat([read_image(s, space)[0] for s in specs])


@app.command(rich_help_panel=CODES)
def encode(
    images: list[str] = typer.Argument(..., help="image files (any size; resized to the model's input), or "
                                                 "test:INDEX / train:INDEX for Fashion-MNIST images"),
    model: str = typer.Option("fmnist-cnn", help="the encoder: the model whose layer the generator inverts"),
    layer: str = typer.Option("fc6"),
    out: Path = typer.Option(Path("codes.safetensors")),
    arch: Optional[str] = typer.Option(None, help=arch_help("--model")),
    device: str = device_option("the encoder runs"),
) -> None:
    """Encode real images into codes (for `visualize --init codes.safetensors`, the paper's start from a real image)."""
    from ..units import encode as encode_layer
    from ..weights import save_safetensors
    from ..zoo.registry import model_weights_sha256

    net = model_arg(model, arch).to(device_arg(device))
    codes = encode_layer(net, layer, _images(images, declared_space(net, model, "encode")))
    # the model as a generator's card names its encoder (a zoo name, or a file's resolved path), so that
    # `visualize --init` can check the codes are of the layer the generator inverts
    source = getattr(net, "dgnam_source", None) or {}
    ident = source.get("spec") or getattr(net, "zoo_name", None) or model
    sha = model_weights_sha256(net) or ""
    save_safetensors({"codes": codes}, out, metadata={"model": ident, "arch": source.get("arch") or "", "layer": layer,
                                                      "weights_sha256": sha,
                                                      "images": [str(p) for p in images]})
    typer.echo(f"wrote {counted(len(codes), 'code')} of {codes.shape[1]} components to {out}")


@app.command("code-stats", rich_help_panel=CODES)
def code_stats(
    model: str = typer.Option("fmnist-cnn"),
    layer: str = typer.Option("fc6"),
    data: Optional[str] = typer.Option(None, help=DATA_HELP),
    split: str = typer.Option("train", help="train or test: Fashion-MNIST's, or a folder's train/ or test/ (a "
                                            "plain image folder has no test images of its own)"),
    limit: Optional[int] = typer.Option(None, help=LIMIT_HELP),
    out: Path = typer.Option(Path("codestats.safetensors")),
    arch: Optional[str] = typer.Option(None, help=arch_help("--model")),
    device: str = device_option("the encoder runs"),
) -> None:
    """Measure CodeStats (per-component mean, std, percentiles) of LAYER over a data set."""
    from ..priors import CodeStats
    from ..units import encode as encode_layer

    net = model_arg(model, arch).to(device_arg(device))
    space = declared_space(net, model, "code-stats")
    ds = dataset_arg(data, split, space)  # a plain folder's --split test: refused
    x, _ = ds.tensors(limit)
    stats = CodeStats.from_codes(encode_layer(net, layer, space.encode(x)))
    stats.save(out)
    u = stats.upper()
    typer.echo(f"{stats.count} images, {stats.dim} components; mean {stats.mean.mean():.3f}, U=mean+3std: "
               f"median {u.median():.3f}, max {u.max():.3f}; fraction of components active on under 1% of "
               f"the images (99th percentile 0) {(stats.percentiles[99.0] == 0).float().mean():.3f} -> {out}")
