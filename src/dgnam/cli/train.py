"""``dgnam train classifier|generator``."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Optional

import typer

from ..errors import DgnamError
from . import train_app
from .common import (DATA_HELP, LIMIT_HELP, arch_help, declared_space, device_arg, device_option, model_arg,
                     seed_option, writable_folder)


def train_test(data: Optional[str], size: tuple[int, int], channels: int, seed: int, limit: Optional[int] = None,
               test_limit: Optional[int] = None):
    """Train and test ``(x, y)``, the class names and where the test images come from. Fashion-MNIST has a test
    split, and so has a folder with train/ and test/; a plain image folder has none (``load_dataset`` returns the same
    images for "test"), so a seeded share of each class is held out: testing on the training images reported their
    fit, not a test figure. ``limit`` takes that many training images (before a hold-out; see ``LIMIT_HELP``)."""
    from ..data import ImageFolder, load_dataset
    from ..train.common import HOLD_OUT, hold_out

    tr = load_dataset(data, "train", size, channels)
    if not isinstance(tr, ImageFolder) or tr.split is not None:
        te = load_dataset(data, "test", size, channels)
        return tr.tensors(limit), te.tensors(test_limit), list(tr.classes), f"{data or 'fashion-mnist'} test split"
    x, y = tr.tensors(limit)
    i_tr, i_te = hold_out(y, HOLD_OUT, seed)
    i_te = i_te[:test_limit] if test_limit else i_te
    test = f"{HOLD_OUT:.0%} of each class held out of {data} (seed {seed}, {len(i_te)} images)"
    return (x[i_tr], y[i_tr]), (x[i_te], y[i_te]), list(tr.classes), test


@train_app.command("classifier")
def classifier(
    arch: str = typer.Option(..., help="zoo architecture: fmnist-cnn or fmnist-judge"),
    name: Optional[str] = typer.Option(None, help="name of the trained model, its files' names (default: ARCH)"),
    data: Optional[str] = typer.Option(None, help=DATA_HELP),
    limit: Optional[int] = typer.Option(None, help=LIMIT_HELP),
    epochs: int = typer.Option(10),
    batch_size: int = typer.Option(128),
    lr: float = typer.Option(2e-3),
    seed: int = seed_option(),
    out: Path = typer.Option(Path("checkpoints"), help="folder for weights, card and the resumable checkpoint"),
    device: str = device_option("the training runs"),
    fresh: bool = typer.Option(False, help="ignore an existing checkpoint instead of resuming from it"),
    color: Optional[str] = typer.Option(None, help="GRAY or RGB: the colour the model sees (default: the "
                                                   "architecture's, GRAY for fmnist-*). RGB keeps a folder's colour, "
                                                   "normalized with its training images' mean and std"),
    augment: bool = typer.Option(True, "--augment/--no-augment", help="random shifts of up to 2 px and horizontal "
                                 "flips of the training images (label-preserving for clothing); --no-augment for "
                                 "classes that a mirror image changes (text, digits, left/right)"),
) -> None:
    """Train a classifier into OUT/NAME.safetensors (+ card NAME.json); an interrupted run resumes from OUT/NAME-ckpt.
    A folder with train/ and test/ tests on test/; a plain image folder has no test split, so 10% of each class is held
    out to test on. The model gets one output per class of a folder. Images are read at the architecture's input size (28x28 for fmnist-*).
    Training images are shifted and mirrored at random (--no-augment: neither)."""
    import torch

    from ..data import is_fashion_mnist
    from ..train.classifier import ClassifierConfig, train_classifier
    from ..zoo import get_entry

    entry = get_entry(arch)
    if entry.kind != "classifier":
        raise DgnamError(f"{arch} is a {entry.kind}, not a classifier")
    cfg = ClassifierConfig(epochs=epochs, batch_size=batch_size, lr=lr, seed=seed, augment=augment,
                           device=str(device_arg(device)))
    cfg.validate()  # before the data is read
    space, kw = entry.space, {}
    if color is not None:  # only a colour the user asked for; the architecture's own (BGR for caffenet) stays
        color = color.upper()
        if color not in ("GRAY", "RGB"):
            raise DgnamError(f"--color {color}: use GRAY or RGB")
        channels = 1 if color == "GRAY" else 3
        if channels == 3 and is_fashion_mnist(data):
            raise DgnamError("--color RGB: Fashion-MNIST is gray; give a colour image folder with --data")
        if channels != space.channels:
            if not entry.takes("channels"):
                raise DgnamError(f"{arch} takes {space.color} images only: drop --color")
            kw = {"channels": channels}
    train, test, classes, test_name = train_test(data, space.size, kw.get("channels", space.channels), seed, limit)
    if len(classes) < 2:
        raise DgnamError(f"{data} holds one class ({classes[0]}): a classifier needs one sub-folder per class, "
                         f"two or more")
    if kw:  # the data's own normalization, as the zoo's spaces use their training set's
        dims = [0, 2, 3]
        space = dataclasses.replace(space, color="GRAY" if kw["channels"] == 1 else "RGB",
                                    mean=tuple(train[0].mean(dims).tolist()),
                                    std=tuple(train[0].std(dims).clamp_min(1e-3).tolist()))
    own_classes = entry.classes is None or list(entry.classes) != classes
    torch.manual_seed(seed)
    model = entry.build_for_classes(len(classes), **kw) if own_classes else entry.build(**kw)
    name = name or arch
    folder = not is_fashion_mnist(data)
    folder_hint = "; --color RGB keeps a folder's colour" if space.color == "GRAY" and folder else ""
    writable = writable_folder(out)  # before the note: a refusal is one line
    typer.echo(f"images read as {space.channels}x{space.size[0]}x{space.size[1]} {space.color} ({arch}'s input "
               f"size{folder_hint})", err=True)
    card = train_classifier(model, space, train, test, writable, name, cfg, resume=not fresh,
                            data_name=data or "fashion-mnist", classes=classes, test_name=test_name, arch=arch)
    typer.echo(f"{name}: test accuracy {card['metrics']['test_accuracy']:.4f} in {card['training_seconds']:.0f} s "
               f"-> {out}/{name}.safetensors (load it with --model {out}/{name}.safetensors: its card names {arch})")


def default_name(zoo_name: str, encoder: str, encoder_arch: Optional[str], layer: str, kind: str) -> str:
    """A trained model's default name: the zoo entry's (``fmnist-g-fc6``, ``fmnist-dae-fc6``) only when it inverts or
    denoises what that entry does (the zoo encoder named as such, the same layer), else ``KIND-LAYER`` (``g-fc5``,
    ``dae-fc5``). A file named like a zoo entry is taken for it in places, and a second layer's training into the
    same folder found the first's checkpoint and was refused as 'different settings'."""
    from ..zoo import get_entry

    entry = get_entry(zoo_name)
    if encoder_arch is None and encoder == entry.encoder and layer == entry.encoder_layer:
        return zoo_name
    return f"{kind}-{layer}"


@train_app.command("generator")
def generator(
    encoder: str = typer.Option("fmnist-cnn", help="the encoder E (zoo name, import path, or weights file: "
                                "--encoder-arch if its card does not name it)"),
    layer: str = typer.Option("fc6", help="the layer of E to invert: its output is the code"),
    arch: str = typer.Option("fmnist-g-fc6", help="zoo generator whose architecture to train (code size follows LAYER)"),
    name: Optional[str] = typer.Option(None, help="name of the trained model (default: ARCH when it inverts what the "
                                       "zoo's ARCH inverts, fmnist-cnn's fc6; else g-LAYER)"),
    data: Optional[str] = typer.Option(None, help=DATA_HELP),
    epochs: Optional[int] = typer.Option(None, help="passes over the data (default: the number nearest 1,000 "
                                         "optimizer steps, which did best for a DGN-AM prior on Fashion-MNIST: 1 epoch "
                                         "of 60k images at batch 64, as fmnist-g-fc6; longer training hurts DGN-AM, "
                                         "benchmarks/generator_training.py)"),
    batch_size: int = typer.Option(64),
    lr: float = typer.Option(3e-4),
    w_img: float = typer.Option(1.0, help="weight of the image-space L2 loss"),
    w_feat: float = typer.Option(0.1, help="weight of the comparator feature loss (relative to the features' scale)"),
    w_adv: float = typer.Option(0.005, help="weight of the adversarial loss"),
    comparator_layer: Optional[str] = typer.Option(None, help="layer of E whose features the feature loss compares "
                                                   "(DeePSiM's comparator; default: E's features layer where it has "
                                                   "one, as fmnist-cnn, else its deepest conv layer before LAYER); "
                                                   "LAYER itself makes G(y) encode back to y"),
    size: Optional[int] = typer.Option(None, help="side of the generator's images: fmnist-g-fc6 draws 32 px "
                                       "(upsampled to a larger E input) or, with one more stage per doubling, 64, 128 "
                                       "or 256, up to the smallest that covers E's input, which is centre-cropped "
                                       "from it (64 for a 56 or 64 px input); not shown to help yet "
                                       "(benchmarks/generator_size.py)"),
    limit: Optional[int] = typer.Option(None, help=LIMIT_HELP),
    seed: int = seed_option(),
    out: Path = typer.Option(Path("checkpoints")),
    device: str = device_option("the training runs"),
    fresh: bool = typer.Option(False, help="ignore an existing checkpoint instead of resuming from it"),
    encoder_arch: Optional[str] = typer.Option(None, help=arch_help("--encoder")),
) -> None:
    """Train a DeePSiM generator inverting LAYER of ENCODER (image + feature + adversarial losses); resumable."""
    import torch

    from ..train.generator import GeneratorConfig, train_generator
    from ..units import encode
    from ..zoo import get_entry
    from ..zoo.fmnist import GENERATOR_SIZES, FashionDiscriminator, generator_size_for

    entry = get_entry(arch)
    if entry.kind != "generator":
        raise DgnamError(f"{arch} is a {entry.kind}, not a generator")
    name = name or default_name(arch, encoder, encoder_arch, layer, "g")
    cfg = GeneratorConfig(epochs=epochs, batch_size=batch_size, lr=lr, w_img=w_img, w_feat=w_feat, w_adv=w_adv,
                          comparator_layer=comparator_layer, seed=seed, device=str(device_arg(device)))
    cfg.validate()  # before the data is read
    enc = model_arg(encoder, encoder_arch, flag="--encoder")
    space = declared_space(enc, encoder, "train generator")
    from ..units import LayerReader

    for flag, name_ in (("--layer", layer), ("--comparator-layer", comparator_layer)):
        if name_ is None:  # (chosen by the trainer)
            continue
        try:  # before the data is read
            LayerReader(enc, [name_])
        except DgnamError as e:
            raise DgnamError(f"{flag} {name_} of {encoder}: {e}") from None
    gen_space, kw = entry.space, {}
    if space.channels != gen_space.channels and entry.takes("channels"):
        # a colour encoder gets a colour generator (its images are the encoder's colour)
        gen_space = dataclasses.replace(gen_space, color="GRAY" if space.channels == 1 else "RGB")
        kw = {"channels": space.channels}
    if size is not None and not entry.takes("size"):
        raise DgnamError(f"--size: {arch} draws {gen_space.size[0]}x{gen_space.size[1]} images only; leave --size "
                         f"out, or train fmnist-g-fc6, whose size is chosen")
    if entry.takes("size"):
        # --size: a generator that draws at a larger encoder input's resolution instead of being upsampled to it
        cover = generator_size_for(max(space.size))
        side = size if size is not None else max(gen_space.size)
        if side not in GENERATOR_SIZES or side > cover:
            raise DgnamError(f"--size {side}: {arch} draws {', '.join(map(str, GENERATOR_SIZES))} px images, and E's "
                             f"{space.size[0]}x{space.size[1]} input is centre-cropped from them: choose one up to "
                             f"{cover} (a larger one would show E only its centre)")
        if side != max(gen_space.size):
            gen_space = dataclasses.replace(gen_space, size=(side, side))
            kw["size"] = side
    (x_tr, _), (x_te, _), _, test_name = train_test(data, space.size, space.channels, seed, limit, 1000)
    code_dim = encode(enc, layer, space.encode(x_tr[:2])).shape[1]
    torch.manual_seed(seed)
    gen = entry.build(code_dim, **kw)
    # the discriminator judges the encoder's images (the generator's, converted): their channels
    disc = FashionDiscriminator(code_dim, channels=space.channels)
    card = train_generator(enc, layer, space, gen, disc, gen_space, x_tr, x_te, writable_folder(out),
                           name, cfg, resume=not fresh, data_name=data or "fashion-mnist", test_name=test_name,
                           arch=arch)
    m = card["metrics"]
    typer.echo(f"{name} ({gen_space.size[0]}x{gen_space.size[1]} {gen_space.color}): test image MSE "
               f"{m.get('test_mse01', float('nan')):.4f}, encoder agreement on reconstructions "
               f"{m.get('test_encoder_agreement', float('nan')):.3f} in {card['training_seconds']:.0f} s -> "
               f"{out}/{name}.safetensors (use it with --generator {out}/{name}.safetensors)")
