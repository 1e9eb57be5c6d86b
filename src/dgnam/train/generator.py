"""Train a DeePSiM generator (Dosovitskiy & Brox 2016) that inverts one layer of an encoder.

The loss is the paper's sum of three terms: an image-space L2 loss, a feature-space L2 loss in a comparator network
(here the encoder's own convolutional features, as DeePSiM used AlexNet), and an adversarial loss from a
discriminator that sees the image together with the encoder features (the code), so it judges whether the two belong
together. As in the released training code, the discriminator is not updated while it is far ahead of the generator.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from ..display import progress_bar
from ..errors import DgnamError, warn
from ..imagespace import ImageSpace, convert
from ..modules import as_device, frozen, keeps_rng, unwrapped
from ..priors import DGNAM_CODE_LOWER, CodeStats
from ..units import LayerReader, encode, layer_shapes
from ..weights import save_safetensors, sha256, tensor_digest
from ..zoo.registry import model_weights_sha256
from .common import (Checkpoint, Timer, batches, check_ranges, cosine_lr, locks_training, provenance, set_lr,
                     training_settings, write_card)


@dataclass
class GeneratorConfig:
    #: Longer training sharpens reconstructions but makes the generator a worse prior for DGN-AM: at the published
    #: step size the reachable activation and the judge's agreement fall with training steps (about 1,000 steps did
    #: best on Fashion-MNIST, 5,600 steps halved the judge accuracy; benchmarks/generator_training.py). The shipped
    #: fmnist-g-fc6 is trained for 1 epoch of 60k images (937 steps). ``None`` (the default): as many epochs as
    #: make about :data:`PRIOR_TRAIN_STEPS` optimizer steps on the training images given (:func:`epochs_for_steps`).
    epochs: int | None = None
    batch_size: int = 64
    lr: float = 3e-4
    betas: tuple[float, float] = (0.5, 0.999)
    #: Loss weights. DeePSiM (fc6 generator) used lambda_feat 0.01, lambda_adv 100, lambda_img 2e-6 on 0..255 pixels
    #: and raw AlexNet features. Ours are on other scales: the image loss is the MSE of [0, 1] pixels and the feature
    #: loss is divided by the mean square of the real features (scale-free), so the weights are not comparable.
    w_img: float = 1.0
    w_feat: float = 0.1
    w_adv: float = 0.005
    #: Skip the discriminator update while its loss is below this (it is far ahead), as DeePSiM's solver does.
    d_skip_below: float = 0.3
    #: The layer of E whose features the feature loss compares (DeePSiM's comparator); None: chosen by
    #: :func:`default_comparator_layer` (fmnist-cnn's conv stack ``features``, as the shipped prior was trained).
    comparator_layer: str | None = None
    seed: int = 0
    device: str = "cpu"

    def validate(self) -> None:
        check_ranges(self, {"batch_size": 1, "w_img": 0, "w_feat": 0, "w_adv": 0})
        if self.epochs is not None:  # (None: chosen from the data's size)
            check_ranges(self, {"epochs": 1})


#: Optimizer steps that made the best DGN-AM prior on Fashion-MNIST (benchmarks/generator_training.py: 936-937 steps,
#: 1 epoch of 60k or 3 of 20k images at batch 64, against 1,872-5,622 steps, which sharpen the reconstructions but
#: lower the logit DGN-AM reaches and the judge's agreement). A default for other data too, not a law: check a
#: generator of your own with that script.
PRIOR_TRAIN_STEPS = 1000


def epochs_for_steps(n_images: int, batch_size: int, steps: int = PRIOR_TRAIN_STEPS) -> int:
    """The whole number of epochs whose optimizer steps (``n_images // batch_size`` each, as the trainer runs them)
    come nearest ``steps``, at least 1: 1 for 60k Fashion-MNIST images at batch 64 (937 steps), 2 for 30k (938), 3
    for 20k (936), the budgets of the shipped and the benchmarks' generators."""
    per_epoch = max(1, n_images // batch_size)
    return max(1, round(steps / per_epoch))


@keeps_rng(cuda=True)  # it seeds torch for its own init and dropout; the caller's stream is kept
@locks_training
def train_generator(
    encoder: nn.Module,
    layer: str,
    encoder_space: ImageSpace,
    generator: nn.Module,
    discriminator: nn.Module,
    gen_space: ImageSpace,
    train_x01: torch.Tensor,
    test_x01: torch.Tensor,
    out: str | Path,
    name: str,
    config: GeneratorConfig = GeneratorConfig(),
    resume: bool = True,
    data_name: str = "fashion-mnist",
    progress: bool = True,
    test_name: str | None = None,
    arch: str | None = None,
) -> dict:
    """Train ``generator`` to invert ``encoder``'s ``layer``; checkpoints every epoch in ``out`` and resumes.
    ``test_name`` says in the card where the test images come from, ``arch`` the zoo architecture ``generator`` was
    built as (by which ``load_model`` finds it).

    Writes ``out/NAME.safetensors``, the code statistics ``out/NAME.codestats.safetensors`` (of the layer over the
    training images) and the card ``out/NAME.json``; returns the card.
    """
    config.validate()
    if config.epochs is None:  # recorded resolved: the checkpoint and the card say how many epochs ran
        config = replace(config, epochs=epochs_for_steps(len(train_x01), config.batch_size, PRIOR_TRAIN_STEPS))
    dev = as_device(config.device)
    # (the card names the encoder it records, not a compile or DataParallel wrapper)
    encoder = unwrapped(encoder, "encoder")
    if config.comparator_layer is None:  # recorded resolved too
        config = replace(config, comparator_layer=default_comparator_layer(encoder, layer,
                                                                           encoder_space.encode(train_x01[:1])))
    with frozen(encoder, dev):  # E is borrowed: frozen for the training, given back as it was (mode, grads, device)
        return _train_generator(encoder, layer, encoder_space, generator, discriminator, gen_space, train_x01,
                                test_x01, Path(out), name, config, resume, data_name, progress, test_name, dev, arch)


def default_comparator_layer(encoder: nn.Module, layer: str, example: torch.Tensor) -> str:
    """The comparator layer of a generator inverting ``layer`` of ``encoder`` when none is given: its ``features``
    layer where it has one (fmnist-cnn's conv stack, the shipped prior's), else the deepest top-level layer with a
    spatial output (C x H x W, more than one position) that runs before ``layer`` (a ResNet's ``layer4`` under its
    ``avgpool``: DeePSiM compares conv features), else ``layer`` itself (an encoder with no conv layer before it)."""
    rows = layer_shapes(encoder, example)
    names = [n for n, _t, _s in rows]
    if "features" in names:
        return "features"
    before = rows[: names.index(layer)] if layer in names else []
    spatial = [n for n, _t, s in before if "." not in n and len(s) == 3 and s[1] * s[2] > 1]
    return spatial[-1] if spatial else layer


def _train_generator(encoder: nn.Module, layer: str, encoder_space: ImageSpace, generator: nn.Module,
                     discriminator: nn.Module, gen_space: ImageSpace, train_x01: torch.Tensor, test_x01: torch.Tensor,
                     out: Path, name: str, config: GeneratorConfig, resume: bool, data_name: str, progress: bool,
                     test_name: str | None, dev: torch.device, arch: str | None) -> dict:
    torch.manual_seed(config.seed)
    generator.to(dev)
    discriminator.to(dev)
    comparator = LayerReader(encoder, [config.comparator_layer])

    # The encoder is frozen: codes and comparator features of real images are computed once.
    x_train = encoder_space.encode(train_x01)
    generator.eval()
    with torch.no_grad():  # the card records gen_space as its output: a generator drawing other images would load as
        drawn = tuple(generator(encode(encoder, layer, x_train[:1]).to(dev)).shape[1:])  # another architecture, or
    if drawn != gen_space.shape:  # train against a space that decodes its images wrongly
        raise DgnamError(f"the generator draws {'x'.join(map(str, drawn))} images but gen_space says "
                         f"{'x'.join(map(str, gen_space.shape))}: give the space of its output (channels x size)")
    codes = encode(encoder, layer, x_train)
    stats = CodeStats.from_codes(codes)
    feats = encode(encoder, config.comparator_layer, x_train)
    feat_scale = feats.pow(2).mean().clamp_min(1e-12)

    opt_g = torch.optim.Adam(generator.parameters(), lr=config.lr, betas=config.betas)
    opt_d = torch.optim.Adam(discriminator.parameters(), lr=config.lr, betas=config.betas)
    ckpt = Checkpoint(out / f"{name}-ckpt", training_settings(
        config, layer=layer, code_dim=codes.shape[1], generator=type(generator).__name__, space=gen_space.to_dict(),
        discriminator=type(discriminator).__name__, encoder=tensor_digest(list(encoder.state_dict().values())),
        train_images=tensor_digest([train_x01]), test_images=tensor_digest([test_x01])))
    modules, optims = {"generator": generator, "discriminator": discriminator}, {"opt_g": opt_g, "opt_d": opt_d}
    epoch0, history, elapsed = ckpt.resume(modules, optims, name) if resume else (0, [], 0.0)
    n = len(codes)
    steps_per_epoch = max(1, n // config.batch_size)
    total = steps_per_epoch * config.epochs
    timer = Timer(elapsed)
    for epoch in range(epoch0, config.epochs):
        generator.train()
        discriminator.train()
        sums = {"img": 0.0, "feat": 0.0, "adv": 0.0, "d": 0.0}
        k = d_updates = 0
        bar = progress_bar(batches(n, config.batch_size, config.seed, epoch), total=steps_per_epoch,
                           desc=f"{name} epoch {epoch + 1}/{config.epochs}", show=progress, leave=False)
        for i, idx in enumerate(bar):
            lr = cosine_lr(config.lr, epoch * steps_per_epoch + i, total)
            set_lr(opt_g, lr)
            set_lr(opt_d, lr)
            code = codes[idx].to(dev)
            x = x_train[idx].to(dev)
            fake = convert(generator(code), gen_space, encoder_space)  # in E's input space (crop 32 -> 28 etc.)

            # discriminator: real (image, code) pairs vs generated ones
            d_real = discriminator(x, code)
            d_fake = discriminator(fake.detach(), code)
            loss_d = F.binary_cross_entropy_with_logits(d_real, torch.ones_like(d_real)) + \
                F.binary_cross_entropy_with_logits(d_fake, torch.zeros_like(d_fake))
            if loss_d.item() > config.d_skip_below:
                opt_d.zero_grad(set_to_none=True)
                loss_d.backward()
                opt_d.step()
                d_updates += 1

            # generator: image + feature + adversarial losses
            loss_img = F.mse_loss(encoder_space.decode(fake), encoder_space.decode(x))
            loss_feat = F.mse_loss(comparator(fake)[config.comparator_layer].flatten(1), feats[idx].to(dev)) / feat_scale
            g_fake = discriminator(fake, code)
            loss_adv = F.binary_cross_entropy_with_logits(g_fake, torch.ones_like(g_fake))
            loss_g = config.w_img * loss_img + config.w_feat * loss_feat + config.w_adv * loss_adv
            opt_g.zero_grad(set_to_none=True)
            loss_g.backward()
            opt_g.step()

            for key, v in (("img", loss_img), ("feat", loss_feat), ("adv", loss_adv), ("d", loss_d)):
                sums[key] += v.item()
            k += 1
            bar.set_postfix(img=f"{sums['img'] / k:.4f}", feat=f"{sums['feat'] / k:.4f}", d=f"{sums['d'] / k:.3f}")
        rec = {"epoch": epoch + 1, **{f"loss_{key}": v / max(k, 1) for key, v in sums.items()},
               "d_update_fraction": d_updates / max(k, 1)}
        rec.update(_reconstruction_metrics(encoder, layer, generator, gen_space, encoder_space, test_x01, dev))
        history.append(rec)
        if progress:
            tqdm.write(f"{name} epoch {epoch + 1}: " + ", ".join(f"{a} {b:.4f}" for a, b in rec.items() if a != "epoch"))
        ckpt.save_state(modules, optims, epoch + 1, history, timer.seconds)
    generator.eval()
    encoder_sha = model_weights_sha256(encoder)
    weights = out / f"{name}.safetensors"
    save_safetensors(generator.state_dict(), weights)
    stats_path = out / f"{name}.codestats.safetensors"
    stats.save(stats_path)
    card = {
        "name": name,
        "kind": "generator",
        "architecture": type(generator).__name__,
        **({"arch": arch} if arch else {}),  # the zoo architecture: `--generator FILE` needs no --generator-arch
        "space": gen_space.to_dict(),  # its output space; loading the file restores it (a colour generator)
        # a zoo name, or how to load a user's encoder again (its file and architecture, or its factory), so that
        # `sample --prior joint`, `inpaint` and `facets` find it without --encoder
        # and the SHA-256 of its weights: an encoder file retrained in place is no longer the one G inverts
        "inverts": {"layer": layer, "encoder": getattr(encoder, "zoo_name", type(encoder).__name__),
                    **({"source": encoder.dgnam_source} if getattr(encoder, "dgnam_source", None) else {}),
                    **({"weights_sha256": encoder_sha} if encoder_sha else {})},
        # the clip's lower end, measured: 0 for a ReLU layer's codes (the paper's [0, U]), none for a layer whose
        # codes go below 0 (a conv or linear output before its ReLU), which a clip at 0 would cut in half
        "code_lower": DGNAM_CODE_LOWER if bool((codes >= 0).all()) else None,
        "data": data_name,
        "test": test_name,
        "metrics": history[-1] if history else {},
        "history": history,
        "code_stats": {"file": stats_path.name, "sha256": sha256(stats_path), "images": stats.count,
                       "mean_of_means": float(stats.mean.mean()),
                       "median_U": float(stats.upper().median()),
                       "never_active_fraction": float((stats.percentiles[99.0] == 0).float().mean())},
        **provenance(config, timer, weights),
    }
    write_card(out / f"{name}.json", card)
    spread = history[-1].get("test_spread") if history else None
    if spread is not None and spread < MIN_RECONSTRUCTION_SPREAD:
        warn(f"{name} draws nearly the same image whatever its code: its reconstructions of the test images vary "
             f"{spread:.1%} as much as the images do (test_spread in its card), so as a prior it shows no unit's "
             f"preference; train it longer (more epochs, or more images)")
    return card


#: Below this ``test_spread`` (reconstructions' variation across images over the images' own) a trained generator is
#: reported as drawing one image for every code; the shipped fmnist-g-fc6 reads 0.78, one trained for 4 steps 1e-4.
MIN_RECONSTRUCTION_SPREAD = 0.1


@torch.no_grad()
def _reconstruction_metrics(encoder, layer, generator, gen_space, encoder_space, test_x01, dev, n: int = 1000) -> dict:
    """Image MSE of reconstructions of test images, and how often the encoder classifies the reconstruction as it
    classifies the original (a judge-independent recognisability check; the judge is evaluated in the tests)."""
    generator.eval()
    x = encoder_space.encode(test_x01[:n]).to(dev)
    layer_codes = encode(encoder, layer, x)
    rec = convert(generator(layer_codes.to(dev)), gen_space, encoder_space)
    agree = (encoder(rec).argmax(1) == encoder(x).argmax(1)).float().mean().item()
    r01, x01 = encoder_space.decode(rec), encoder_space.decode(x)
    mse01 = F.mse_loss(r01, x01).item()
    # how much the reconstructions differ from each other, against how much the images do (per pixel, across the
    # images): near 0 when G draws one image whatever the code (trained too briefly, or collapsed); 0.78 for the
    # shipped fmnist-g-fc6
    spread = (r01.std(0).mean() / x01.std(0).mean().clamp_min(1e-12)).item() if len(x) > 1 else float("nan")
    generator.train()
    return {"test_mse01": mse01, "test_encoder_agreement": agree, "test_spread": spread}
