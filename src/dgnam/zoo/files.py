"""Models from local weight files: ``--model FILE --arch NAME``.

``.safetensors`` and plain PyTorch state dicts (``weights_only=True``) are read here; other formats (Caffe) add
their readers to ``READERS`` by suffix.
"""

from __future__ import annotations

import inspect
import json
import math
from functools import partial
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from ..errors import DgnamError
from ..modules import keeps_rng
from ..weights import check_fits, load_into, load_state_dict
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


def card_beside(path: Path) -> dict:
    """The card `dgnam train` writes beside its weights (``NAME.json``); ``{}`` when there is none (or that file holds
    no JSON object, so is no card). A damaged card is an error: read as none, a colour classifier's weights were
    refused as the wrong architecture, which named the wrong fix."""
    card = path.with_suffix(".json")
    if not card.is_file():
        return {}
    try:
        data = json.loads(card.read_text())
    except (OSError, ValueError) as e:
        raise DgnamError(f"the card {card} beside {path.name} cannot be read ({type(e).__name__}): restore it (the "
                         f"command that made the weights writes it again), or remove it") from None
    return data if isinstance(data, dict) else {}


def card_arch(path: Path) -> str | None:
    """The zoo architecture that the card beside ``path`` names (``arch``, a name: `dgnam train classifier` and
    `train generator` write it, as `dgnam convert` does), so that the file loads without ``--arch``; None without a
    card, or for a card without it (older cards; a DAE's ``arch`` holds its sizes)."""
    if not path.is_file():
        return None
    arch = card_beside(path).get("arch")
    return arch if isinstance(arch, str) and arch else None


def _card_classes(path: Path) -> list[str] | None:
    """The class names in the card `dgnam train classifier` writes beside its weights, if any."""
    classes = card_beside(path).get("classes")
    return [str(c) for c in classes] if isinstance(classes, list) and classes else None


def _card_layer(path: Path) -> str | None:
    """The encoder layer a generator inverts, from the card `dgnam train generator` writes beside its weights."""
    inv = card_beside(path).get("inverts")
    return str(inv["layer"]) if isinstance(inv, dict) and inv.get("layer") else None


def card_encoder_sha256(path: Path) -> str | None:
    """The SHA-256 of the encoder weights a generator inverts, from its card (``inverts.weights_sha256``)."""
    inv = card_beside(path).get("inverts")
    sha = inv.get("weights_sha256") if isinstance(inv, dict) else None
    return sha if isinstance(sha, str) and sha else None


def _card_code_lower(path: Path) -> float | None:
    """The code's lower end recorded in a generator's card: 0 for a ReLU layer's codes, None for a layer whose codes
    go below 0 (`dgnam train generator` measures it). A card without it (older, or from elsewhere) is the paper's 0."""
    from ..priors import DGNAM_CODE_LOWER, is_code_lower

    card = card_beside(path)
    if "code_lower" not in card:
        return DGNAM_CODE_LOWER
    v = card["code_lower"]
    if not is_code_lower(v):
        raise DgnamError(f"the card beside {path.name} ({path.with_suffix('.json').name}) gives code_lower {v!r}: "
                         f"give a number or null, or remove that file")
    return None if v is None else float(v)


def _card_space(path: Path, kind: str):
    """The image space recorded in the card `dgnam train` writes beside its weights: a classifier's input space, a
    generator's output space (a colour model trained with ``--color RGB``, or on a colour encoder). ``None`` when the
    card has none (older cards, other files): the architecture's own space holds."""
    from ..imagespace import ImageSpace

    d = card_beside(path).get("input_space" if kind == "classifier" else "space")
    if not isinstance(d, dict):
        return None
    try:
        return ImageSpace.from_dict(d)
    except (DgnamError, KeyError, TypeError, ValueError):
        raise DgnamError(f"the card beside {path.name} ({path.with_suffix('.json').name}) has an unreadable image "
                         f"space: fix or remove that file") from None


@keeps_rng()  # the architecture's random init is replaced by the file's weights
def load_file_model(path: Path, arch: str) -> nn.Module:
    """A zoo architecture with the weights of ``path``. A classifier trained on a folder gets its classes from the
    card beside the file. A generator gets the code statistics found beside it (without them DGN-AM's clip to
    ``[0, U]`` would have no upper bound), and their size sets its code size: the same architecture inverts other
    layers (`dgnam train generator --layer fc5`)."""
    if not path.is_file():
        raise DgnamError(f"weights file {path} does not exist")
    named = card_arch(path)
    if named is not None:
        try:
            get_entry(named)
        except DgnamError:
            raise DgnamError(f"the card beside {path.name} names the architecture {named!r}, which this dgnam does not "
                             f"have (`dgnam models` lists them): fix the card's \"arch\"") from None
        if named != arch:  # the card was written with the weights: they are not an `arch`
            raise DgnamError(f"the card beside {path.name} says it holds {named}, not {arch}: drop the architecture "
                             f"option (the card's is used), or give {named}")
    entry = get_entry(arch)
    takes = list(inspect.signature(entry.build).parameters)
    classes = _card_classes(path) if entry.kind == "classifier" else None
    stats, problem = None, None
    if entry.kind == "generator" and code_stats_beside(path).is_file():
        from .registry import load_code_stats_checked

        recorded = card_beside(path).get("code_stats")  # (a card from elsewhere may hold anything there)
        recorded = recorded.get("sha256") if isinstance(recorded, dict) else None
        stats, problem = load_code_stats_checked(code_stats_beside(path), recorded, path.stem)
    code_shape = entry.code_shape
    space = _card_space(path, entry.kind)
    # a colour model of a gray architecture: built with the card's channels (the builder takes them); a generator
    # trained for a larger encoder input, with the card's output size
    kw = {"channels": space.channels} if space is not None and entry.takes("channels") else {}
    if space is not None and entry.kind == "generator" and entry.takes("size"):
        kw["size"] = space.size[0]
        try:
            if space.size[0] != space.size[1]:
                raise DgnamError(f"{space.size[0]}x{space.size[1]} is not square")
            with torch.device("meta"):
                entry.build(**kw)
        except DgnamError as e:
            raise DgnamError(f"the card beside {path.name} ({path.with_suffix('.json').name}) gives an output size "
                             f"{arch} cannot be built with ({e}): fix or remove that file") from None
    if classes and not entry.takes("num_classes") and len(classes) != len(entry.classes or ()):
        # an older `train classifier` trained such a head's first outputs on the card's classes
        raise DgnamError(f"{path.name} holds {arch}'s fixed head, trained by an older `dgnam train classifier` on "
                         f"the {len(classes)} classes of its card: neither the head's names nor the card's fit all its "
                         f"outputs; retrain it with an architecture that takes a class count (fmnist-cnn, "
                         f"fmnist-judge)")
    if classes and not entry.takes("num_classes"):
        make = partial(entry.build, **kw)  # the card names every output of the fixed head (its own names, say)
    elif classes:
        make = partial(entry.build_for_classes, len(classes), **kw)  # trained on a folder's classes (`dgnam train`)
    elif stats is not None and len(code_shape or ()) == 1 and stats.mean.numel() != code_shape[0] and takes:
        code_shape = (stats.mean.numel(),)
        make = partial(entry.build, code_shape[0], **kw)
    else:
        make = partial(entry.build, **kw)
    what = f"{path.name} as {arch}"
    try:
        state = read_state_dict(path, arch)  # no larger than the file
        try:  # the architecture's shapes first, on the meta device (no memory): a card's class count or the size of
            with torch.device("meta"):  # the code statistics beside the file that the weights do not fit is refused
                probe = make()  # before it is built (3,000,000 classes in a card were a 3 GB head, then refused)
        except Exception:  # an architecture that cannot be built there: checked when it is loaded, as before
            probe = None
        if probe is not None:
            check_fits(probe, state, what=what)
        net = make()
        load_into(net, state, what=what)
    except DgnamError:
        if stats is not None and tuple(code_shape) != tuple(entry.code_shape or ()):  # the stats set the code size
            raise DgnamError(f"the code statistics beside {path.name} ({code_stats_beside(path).name}) are "
                             f"{code_shape[0]}-d, but these weights do not take {code_shape[0]}-d codes: replace or "
                             f"remove that file (it must be the statistics of the layer this generator inverts)"
                             ) from None
        raise
    model = wrap(entry, net, with_stats=False, name=path.stem)
    if space is not None:
        if entry.kind == "generator":
            model.space = space
        else:
            model.input_space = space
    if classes:
        model.classes = tuple(classes)
    if entry.kind == "generator":
        # the layer it inverts: its card's, else the architecture's when the code is that layer's size (else unknown,
        # rather than the architecture's layer for a generator of another one: PPGN checks its DAE against this)
        model.code_layer = _card_layer(path) or (entry.encoder_layer if tuple(code_shape) == tuple(entry.code_shape)
                                                 else None)
        model.code_shape = tuple(code_shape)
        model.code_encoder_sha256 = card_encoder_sha256(path)  # whose codes: PPGN checks a DAE's against it
        model.code_lower = _card_code_lower(path)
        if stats is not None and stats.mean.numel() == math.prod(code_shape):  # else not this generator's: ignored
            model.code_stats = stats
        from .registry import flag_code_stats

        flag_code_stats(model, problem)
    return model
