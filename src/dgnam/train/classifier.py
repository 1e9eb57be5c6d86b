"""Train a classifier (a target Phi or a judge) on Fashion-MNIST or an image folder, resumably."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from ..display import progress_bar
from ..imagespace import ImageSpace
from ..modules import as_device, keeps_rng
from ..weights import save_safetensors, tensor_digest
from .common import (Checkpoint, Timer, batches, check_ranges, cosine_lr, locks_training, provenance, set_lr,
                     training_settings, write_card)

@dataclass
class ClassifierConfig:
    epochs: int = 10
    batch_size: int = 128
    lr: float = 2e-3
    weight_decay: float = 1e-4
    seed: int = 0
    augment: bool = True  # random +-2 px shift and horizontal flip
    device: str = "cpu"

    def validate(self) -> None:
        check_ranges(self, {"epochs": 1, "batch_size": 1})


def augment(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """Random shifts of up to 2 pixels and horizontal flips (both label-preserving for clothing)."""
    b, _, h, w = x.shape
    pad = F.pad(x, (2, 2, 2, 2))
    dy, dx = torch.randint(0, 5, (2,), generator=g).tolist()
    x = pad[:, :, dy : dy + h, dx : dx + w]
    flip = torch.rand(b, generator=g) < 0.5
    return torch.where(flip.view(-1, 1, 1, 1), x.flip(-1), x)


@torch.no_grad()
def accuracy(model: nn.Module, x01: torch.Tensor, y: torch.Tensor, space: ImageSpace, batch_size: int = 500) -> float:
    """Top-1 accuracy of ``model`` on images in [0, 1]."""
    model.eval()
    dev = next(model.parameters()).device
    correct = 0
    for i in range(0, len(y), batch_size):
        logits = model(space.encode(x01[i : i + batch_size].to(dev)))
        correct += (logits.argmax(1).cpu() == y[i : i + batch_size]).sum().item()
    return correct / len(y)


@keeps_rng(cuda=True)  # it seeds torch for its own init and dropout; the caller's stream is kept
@locks_training
def train_classifier(
    model: nn.Module,
    space: ImageSpace,
    train: tuple[torch.Tensor, torch.Tensor],
    test: tuple[torch.Tensor, torch.Tensor],
    out: str | Path,
    name: str,
    config: ClassifierConfig = ClassifierConfig(),
    resume: bool = True,
    data_name: str = "fashion-mnist",
    progress: bool = True,
    classes: Sequence[str] | None = None,
    test_name: str | None = None,
    arch: str | None = None,
) -> dict:
    """Train ``model`` with AdamW and a cosine schedule; checkpoint every epoch into ``out`` and resume from it.

    Writes ``out/NAME.safetensors`` and the model card ``out/NAME.json``; returns the card. ``classes`` (the name of
    each output) and ``test_name`` (where the test images come from) go into the card, since weights alone say
    neither; so does ``arch``, the zoo architecture ``model`` was built as, by which ``load_model`` finds it.
    """
    config.validate()
    out = Path(out)
    torch.manual_seed(config.seed)
    dev = as_device(config.device)
    model.to(dev)
    opt = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    ckpt = Checkpoint(out / f"{name}-ckpt", training_settings(
        config, architecture=type(model).__name__, outputs=len(classes) if classes is not None else None,
        train_images=tensor_digest(list(train)), test_images=tensor_digest(list(test))))
    epoch0, history, elapsed = ckpt.resume({"model": model}, {"optim": opt}, name) if resume else (0, [], 0.0)
    x, y = train
    steps_per_epoch = max(1, len(y) // config.batch_size)
    total = steps_per_epoch * config.epochs
    timer = Timer(elapsed)
    for epoch in range(epoch0, config.epochs):
        model.train()
        g = torch.Generator().manual_seed((config.seed * 7919 + epoch) % 2**64)
        bar = progress_bar(batches(len(y), config.batch_size, config.seed, epoch), total=steps_per_epoch,
                           desc=f"{name} epoch {epoch + 1}/{config.epochs}", show=progress, leave=False)
        run_loss, n = 0.0, 0
        for i, idx in enumerate(bar):
            set_lr(opt, cosine_lr(config.lr, epoch * steps_per_epoch + i, total, warmup=steps_per_epoch // 4))
            xb = x[idx]
            if config.augment:
                xb = augment(xb, g)
            logits = model(space.encode(xb.to(dev)))
            loss = F.cross_entropy(logits, y[idx].to(dev))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            run_loss += loss.item()
            n += 1
            bar.set_postfix(loss=f"{run_loss / n:.4f}")
        acc = accuracy(model, test[0], test[1], space)
        history.append({"epoch": epoch + 1, "train_loss": run_loss / max(n, 1), "test_accuracy": acc})
        if progress:
            tqdm.write(f"{name} epoch {epoch + 1}: loss {run_loss / max(n, 1):.4f}, test accuracy {acc:.4f}")
        ckpt.save_state({"model": model}, {"optim": opt}, epoch + 1, history, timer.seconds)
    model.eval()
    weights = out / f"{name}.safetensors"
    save_safetensors({k: v for k, v in model.state_dict().items()}, weights)
    card = {
        "name": name,
        "kind": "classifier",
        "architecture": type(model).__name__,
        **({"arch": arch} if arch else {}),  # the zoo architecture: `--model FILE` needs no --arch
        "data": data_name,
        "input_space": space.to_dict(),  # loading the file restores it (a colour model of a gray architecture)
        "classes": list(classes) if classes is not None else None,
        "test": test_name,
        "metrics": {"test_accuracy": history[-1]["test_accuracy"] if history else None, "test_images": len(test[1]),
                    "train_images": len(train[1])},
        "history": history,
        **provenance(config, timer, weights),
    }
    write_card(out / f"{name}.json", card)
    return card
