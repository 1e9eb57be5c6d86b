"""The ``dgnam`` command line."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer

from .errors import DgnamError

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Synthesize the preferred inputs of neurons (DGN-AM).")
train_app = typer.Typer(no_args_is_help=True, help="Train zoo models: classifiers, generators.")
app.add_typer(train_app, name="train")


@train_app.command("classifier")
def train_classifier_cmd(
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
    """Train a classifier; resumes from OUT/ARCH-ckpt when interrupted."""
    from .data import load_dataset
    from .train.classifier import ClassifierConfig, train_classifier
    from .zoo import get_entry

    entry = get_entry(arch)
    if entry.kind != "classifier":
        raise DgnamError(f"{arch} is a {entry.kind}, not a classifier")
    tr, te = load_dataset(data, "train", entry.space.size, entry.space.channels), load_dataset(data, "test", entry.space.size, entry.space.channels)
    cfg = ClassifierConfig(epochs=epochs, batch_size=batch_size, lr=lr, seed=seed, device=device)
    torch_seed(seed)
    card = train_classifier(entry.build(), entry.space, tr.tensors(), te.tensors(), out, arch, cfg, resume=not fresh,
                            data_name=data or "fashion-mnist")
    typer.echo(f"{arch}: test accuracy {card['metrics']['test_accuracy']:.4f} in {card['training_seconds']:.0f} s -> {out}/{arch}.safetensors")


def torch_seed(seed: int) -> None:
    import torch

    torch.manual_seed(seed)


def main() -> None:
    try:
        app()
    except DgnamError as e:
        typer.secho(f"error: {e}", fg=typer.colors.RED, err=True)
        sys.exit(2)


if __name__ == "__main__":
    main()
