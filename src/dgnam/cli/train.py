"""``dgnam train classifier|generator``."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import torch
import typer

from ..errors import DgnamError
from . import train_app


@train_app.command("classifier")
def classifier(
    arch: str = typer.Option(..., help="zoo architecture: fmnist-cnn or fmnist-judge"),
    data: Optional[str] = typer.Option(None, help="fashion-mnist (default), fashion-mnist:DIR, or an image folder"),
    epochs: int = typer.Option(10),
    batch_size: int = typer.Option(128),
    lr: float = typer.Option(2e-3),
    seed: int = typer.Option(0),
    out: Path = typer.Option(Path("checkpoints"), help="folder for weights, card and the resumable checkpoint"),
    device: str = typer.Option("cpu"),
    fresh: bool = typer.Option(False, help="ignore an existing checkpoint instead of resuming from it"),
) -> None:
    """Train a classifier; an interrupted run resumes from OUT/ARCH-ckpt."""
    from ..data import load_dataset
    from ..train.classifier import ClassifierConfig, train_classifier
    from ..zoo import get_entry

    entry = get_entry(arch)
    if entry.kind != "classifier":
        raise DgnamError(f"{arch} is a {entry.kind}, not a classifier")
    size, ch = entry.space.size, entry.space.channels
    tr, te = load_dataset(data, "train", size, ch), load_dataset(data, "test", size, ch)
    torch.manual_seed(seed)
    cfg = ClassifierConfig(epochs=epochs, batch_size=batch_size, lr=lr, seed=seed, device=device)
    card = train_classifier(entry.build(), entry.space, tr.tensors(), te.tensors(), out, arch, cfg, resume=not fresh,
                            data_name=data or "fashion-mnist")
    typer.echo(f"{arch}: test accuracy {card['metrics']['test_accuracy']:.4f} in {card['training_seconds']:.0f} s "
               f"-> {out}/{arch}.safetensors")
