"""Train PPGN-h's prior: a denoising autoencoder R on a generator's codes, resumably.

R sees codes of real images (the encoder layer the generator inverts) plus Gaussian noise and learns to return the
clean code. For small noise, ``R(h) - h`` approximates ``sigma^2 d log p(h) / dh`` (Alain & Bengio 2014), the prior
term of the PPGN sampler (:mod:`dgnam.ppgn`). The codes are computed once (the encoder is frozen), so training is a
small MLP on 256-d vectors: a few minutes on two CPU cores.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from ..display import progress_bar
from ..errors import DgnamError
from ..modules import as_device, keeps_rng
from ..weights import save_safetensors, tensor_digest
from .common import (Checkpoint, Timer, batches, check_ranges, cosine_lr, locks_training, provenance, set_lr,
                     training_settings, write_card)


@dataclass
class DAEConfig:
    """``noise_std`` is the absolute standard deviation of the Gaussian noise added to codes. 1.0 is about 0.7 of
    the mean per-component std of fmnist-cnn's fc6 codes (1.36): large enough that R also pulls the sampler's random
    starts (h ~ N(0, 1), clipped) toward real codes, small enough that R(h) - h still points along the data."""

    epochs: int = 30
    batch_size: int = 256
    lr: float = 1e-3
    weight_decay: float = 0.0
    noise_std: float = 1.0
    hidden: int = 512
    layers: int = 2
    seed: int = 0
    device: str = "cpu"

    def validate(self) -> None:
        check_ranges(self, {"epochs": 1, "batch_size": 1, "noise_std": 0, "hidden": 1, "layers": 1})

    def check_count(self, n: int) -> None:
        """Refuse ``n`` training codes that do not fill one batch (the command line asks before it encodes them)."""
        if n < self.batch_size:
            raise DgnamError(f"{n} training codes (one per image) do not fill one batch of {self.batch_size}: lower "
                             f"--batch-size (to {max(n // 4, 1)}, say, for a few steps per epoch), or give more images "
                             f"(a larger --limit, if one is set)")


@torch.no_grad()
def dae_metrics(dae: torch.nn.Module, codes: torch.Tensor, noise_std: float, seed: int = 12345) -> dict:
    """Denoising MSE on ``codes`` against the noisy input's own MSE (the identity's), and the mean ``||R(h) - h||``
    on clean real codes versus on the sampler's random starts (h ~ N(0, 1) clipped at 0): R should barely move the
    first and pull the second."""
    dae.eval()
    dev = next(dae.parameters()).device
    g = torch.Generator().manual_seed(seed)
    h = codes.to(dev)
    noisy = h + noise_std * torch.randn(h.shape, generator=g).to(dev)
    rand = torch.randn(h.shape, generator=g).to(dev).clamp_min(0)
    return {
        "denoise_mse": F.mse_loss(dae(noisy), h).item(),
        "noisy_input_mse": F.mse_loss(noisy, h).item(),
        "prior_norm_real": (dae(h) - h).norm(dim=1).mean().item(),
        "prior_norm_random_start": (dae(rand) - rand).norm(dim=1).mean().item(),
    }


@keeps_rng(cuda=True)  # it seeds torch for its own init and dropout; the caller's stream is kept
@locks_training
def train_dae(
    train_codes: torch.Tensor,
    test_codes: torch.Tensor,
    out: str | Path,
    name: str,
    config: DAEConfig = DAEConfig(),
    resume: bool = True,
    source: dict | None = None,
    progress: bool = True,
) -> dict:
    """Train a :class:`~dgnam.ppgn.CodeDAE` on ``train_codes`` (N, D); checkpoint every epoch into ``out`` and resume.

    Writes ``out/NAME.safetensors`` and the card ``out/NAME.json`` (with ``arch``, which :func:`dgnam.ppgn.load_dae`
    reads); returns the card. ``source`` (e.g. ``{"encoder": "fmnist-cnn", "layer": "fc6"}``) goes into the card.
    """
    from ..ppgn import CodeDAE

    config.validate()
    if train_codes.dim() != 2:
        raise DgnamError(f"train codes have shape {tuple(train_codes.shape)}: give one code per row, (N, D)")
    config.check_count(len(train_codes))
    out = Path(out)
    torch.manual_seed(config.seed)
    dev = as_device(config.device)
    dae = CodeDAE(train_codes.shape[1], config.hidden, config.layers).to(dev)
    opt = torch.optim.Adam(dae.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    ckpt = Checkpoint(out / f"{name}-ckpt", training_settings(
        config, code_dim=train_codes.shape[1], train_codes=tensor_digest([train_codes]),
        test_codes=tensor_digest([test_codes])))
    epoch0, history, elapsed = ckpt.resume({"model": dae}, {"optim": opt}, name) if resume else (0, [], 0.0)
    n = len(train_codes)
    steps_per_epoch = max(1, n // config.batch_size)
    total = steps_per_epoch * config.epochs
    timer = Timer(elapsed)
    for epoch in range(epoch0, config.epochs):
        dae.train()
        g = torch.Generator().manual_seed((config.seed * 7919 + epoch) % 2**64)  # the noise of a resumed epoch is the same
        bar = progress_bar(batches(n, config.batch_size, config.seed, epoch), total=steps_per_epoch,
                           desc=f"{name} epoch {epoch + 1}/{config.epochs}", show=progress, leave=False)
        run_loss, k = 0.0, 0
        for i, idx in enumerate(bar):
            set_lr(opt, cosine_lr(config.lr, epoch * steps_per_epoch + i, total, warmup=steps_per_epoch // 4))
            h = train_codes[idx]
            noisy = h + config.noise_std * torch.randn(h.shape, generator=g)
            loss = F.mse_loss(dae(noisy.to(dev)), h.to(dev))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            run_loss += loss.item()
            k += 1
            bar.set_postfix(loss=f"{run_loss / k:.4f}")
        rec = {"epoch": epoch + 1, "train_loss": run_loss / max(k, 1), **dae_metrics(dae, test_codes, config.noise_std)}
        history.append(rec)
        if progress:
            tqdm.write(f"{name} epoch {epoch + 1}: " + ", ".join(f"{a} {b:.4f}" for a, b in rec.items() if a != "epoch"))
        ckpt.save_state({"model": dae}, {"optim": opt}, epoch + 1, history, timer.seconds)
    dae.eval()
    weights = out / f"{name}.safetensors"
    save_safetensors(dae.state_dict(), weights)
    card = {
        "name": name,
        "kind": "dae",
        "architecture": type(dae).__name__,
        "arch": dae.arch(),
        "codes": source or {},
        "data": (source or {}).get("data", "fashion-mnist"),
        "metrics": {**(history[-1] if history else {}), "test_codes": len(test_codes)},
        "history": history,
        **provenance(config, timer, weights),
    }
    write_card(out / f"{name}.json", card)
    return card
