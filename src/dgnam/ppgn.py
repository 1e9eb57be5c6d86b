"""PPGN-h sampling (Nguyen et al. 2017, "Plug & Play Generative Networks") and PPGN inpainting.

DGN-AM climbs to one optimum per restart. PPGN-h turns the same generator into a sampler: a Markov chain on the
generator's code ``h`` whose update adds a learned prior on ``h`` to the conditioning gradient, and which keeps a
sample every few steps, so one chain yields many images of a class and can walk from one class to the next.

Each step (the released ``sampler.py``, Eq. 11 of the paper)::

    d  = eps1 * (R(h) - h)                      # prior: a denoising autoencoder R on codes (Alain & Bengio 2014:
                                                #        R(h) - h ~ sigma^2 d log p(h) / dh)
       + eps2 * d score(G(h)) / dh              # condition: log p(class | G(h)) of the condition network
       + N(0, eps3^2)                           # noise
       (+ eps4 * d context / dh)                # inpainting only: pull the generated pixels outside the hole
                                                #                  toward the real ones
    h += lr / mean|d| * d                       # every step has the same mean absolute size lr
    h  = clip(h, 0, U)                          # the code range, as DGN-AM (released: [0, 30], see below)

The published defaults are the named constants below (eps1 = 1e-5, eps2 = 1, eps3 = 1e-17, lr = 1, 200 iterations
for a class; for hidden units 1000 iterations, restarting every 100 from h ~ N(0, 1) with eps1 redrawn in
[1e-6, 1e-2]). What they imply, and what ``benchmarks/ppgn.py`` measures: with the step normalized by ``mean|d|``,
only the *direction* of ``d`` matters. The class gradient of a confident classifier is orders of magnitude larger
than ``1e-5 (R(h) - h)``, so at the published eps1 the DAE term steers the chain only where the class gradient
vanishes (the class probability saturates), and ``eps3 = 1e-17`` adds no noise at all: the chain is deterministic
given its start. Its diversity comes from the fixed step length (the chain never settles: every step moves ``h`` by
``lr`` on average) and from resets. Every term is an option (``PPGNConfig``), so stronger priors or noise can be tried,
but the defaults stay the published ones.

Measured on the embedded models (``benchmarks/ppgn.py``): the DAE term is about 4e-4 of the class term along a
published chain, so it contributes almost nothing. At ``lr = 1`` the judge recognizes about two thirds of the
samples. The chains are more diverse than DGN-AM restarts, and smaller steps trade that diversity for accuracy
(lr 0.3, eps1 0: judge 0.96, diversity below DGN-AM's). No setting of the sweep gives both. Noise does not add
diversity either: at the bound-scaled lr, eps3 from 1e-4 to 1e-1 lowers it step by step, because once the class
probability saturates the noise takes over the normalized step.

Two details of the released code differ from Eq. 11 as written, and both are options here, measured in
``benchmarks/ppgn.py``: its class gradient is ``(1 - p_y) d logit_y`` rather than ``d log p(y | x)``
(``ClassCondition(score="released")``), and its prior is ``E(G(h)) - h``, the generator and encoder used as the
autoencoder (:class:`JointPrior`), rather than a separately trained DAE. Inpainting has its own released settings:
21 updates whose step falls linearly from 1 to 1e-32, without noise (:meth:`PPGNConfig.for_inpainting`).

The conditioning term is pluggable: any differentiable score of the image (a :class:`Condition`, e.g.
:class:`ClassCondition`, :class:`UnitCondition`, or your own callable ``(images, space) -> (B,)``). The paper also
conditions on captions through an image-captioning network (LRCN); no captioning network can be loaded offline
here, so caption conditioning is not provided: plug a captioner's log-likelihood in as a Condition to get it.
"""

from __future__ import annotations

import json
import math
import re
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterator, Protocol, Sequence

import torch
from torch import nn

from .defaults import CHECKPOINT_EVERY
from .display import compact_repr, png_bytes, progress_bar
from .errors import DgnamError, is_int, noting_interrupt
from .generators import Generator, require_generator
from .imagespace import ImageSpace, convert, to_uint8
from .modules import frozen, module_device, module_dtype, require_module, unwrapped
from .priors import DGNAM_CLIP_BOUND, DGNAM_CODE_LOWER, ClipCode, checked_bounds
from .units import (DGNAM_RELU_GRADIENT, LayerReader, Unit, check_relu_gradient, encode, named_like, output_tensor,
                    parse_units, require_plain_units, resolve_units, unit_activations, warn_if_numbered_elsewhere)

if TYPE_CHECKING:
    from PIL import Image

#: Published PPGN-h sampling settings (Nguyen et al. 2017, released ``sampling_class.sh`` / ``sampler.py``).
PPGN_EPS1 = 1e-5  # weight of the DAE prior term R(h) - h
PPGN_EPS2 = 1.0  # weight of the condition gradient d log p(y | G(h)) / dh
PPGN_EPS3 = 1e-17  # standard deviation of the noise
PPGN_EPS4 = 1e-9  # weight of the inpainting context term (released inpainting script)
PPGN_LR = 1.0  # step size; the step is lr / mean|d| * d
PPGN_CLASS_STEPS = 200  # iterations for a class
PPGN_UNIT_STEPS = 1000  # iterations for a hidden unit ...
PPGN_UNIT_RESET_EVERY = 100  # ... restarting every 100 iterations
PPGN_RESET_EPS1 = (1e-6, 1e-2)  # eps1 is redrawn uniformly in this range at each reset
# Deviations from the released code, each kept for a reason:
# * the released ``sampler.py`` clips h to [0, 30] (a bound for CaffeNet's fc6, whose per-component
#   DGN-AM bounds U have a median of 12); here each component is clipped to [0, U_i], the DGN-AM bound measured on
#   the generator's own codes, because a fixed 30 means nothing for another layer's scale;
# * a step count n here is n updates; the released loop runs i = 0..n_iters, n_iters + 1 updates (so 200 here is
#   one update fewer than its n_iters = 200, and inpainting's 21 is its n_iters = 20);
# * the released class script saves G(h) every 5 steps from the start, before each update;
#   here a sample is the image after an update, kept every ``keep_every`` steps after a burn-in
#   (:meth:`PPGNConfig.for_samples` spaces n samples over the chain), and no sample is dropped (the released
#   hidden-unit script saves every 10 steps and keeps those whose condition probability is above 0.98).
#: Released inpainting settings (``7_inpainting.sh``, "the same params as used for inpainting experiments in the
#: paper"): ``n_iters = 20`` runs iterations i = 0..20 of ``sampler.py``, i.e. 21 updates, with the step size falling
#: linearly from lr = 1 to ``lr_end = 1e-32`` (``lr + (lr_end - lr) * i / n_iters``) and no noise (eps3 = 0).
PPGN_INPAINT_STEPS = 21
PPGN_INPAINT_LR_END = 1e-32
PPGN_INPAINT_EPS3 = 0.0
#: Released inpainting: a 100 x 100 hole in a 227 x 227 image; scaled to the image's size here.
INPAINT_HOLE_FRACTION = 100 / 227

#: The zoo's code DAE of the embedded default generator (``dgnam models`` lists it; its card records how it was made).
ZOO_DAE = "fmnist-dae-fc6"


# --------------------------------------------------------------------------------------------------------------------
# The prior: a denoising autoencoder on codes


class CodeDAE(nn.Module):
    """R: a small MLP code -> code, trained to remove Gaussian noise from codes of real images (``dgnam train dae``).

    PPGN-h's DAE is a fully connected network on fc6; this one is scaled to the 256-d Fashion-MNIST code. The output
    layer is linear (not a ReLU) so that ``R(h) - h`` can point below zero as well as above.
    """

    def __init__(self, dim: int = 256, hidden: int = 512, layers: int = 2) -> None:
        super().__init__()
        if dim < 1 or hidden < 1 or layers < 1:
            raise DgnamError(f"CodeDAE needs positive sizes, got dim={dim}, hidden={hidden}, layers={layers}")
        self.dim, self.hidden, self.layers = dim, hidden, layers
        self.code_layer: str | None = None  # the layer whose codes it was trained on (set by load_dae from the card)
        self.code_encoder_sha256: str | None = None  # the SHA-256 of that encoder's weights (load_dae, from the card)
        self.source: str | None = None  # the file load_dae read it from (absolute): a sample run's results.json names it
        mods: list[nn.Module] = []
        d = dim
        for _ in range(layers):
            mods += [nn.Linear(d, hidden), nn.ReLU(inplace=True)]
            d = hidden
        mods.append(nn.Linear(d, dim))
        self.net = nn.Sequential(*mods)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.net(h.flatten(1)).view_as(h)

    def arch(self) -> dict:
        return {"dim": self.dim, "hidden": self.hidden, "layers": self.layers}


def load_dae(path: str | Path | None = None) -> CodeDAE:
    """Load a code DAE: a zoo name (``dgnam models``, kind ``dae``) or ``NAME.safetensors`` with its card
    ``NAME.json`` beside it (or in ``zoo/cards``), checked against the card's SHA-256.

    ``None`` loads the zoo's ``fmnist-dae-fc6``, the DAE of ``fmnist-g-fc6``'s fc6 codes.
    """
    from .weights import load_into, load_state_dict
    from .zoo.registry import CARDS_DIR, create_model, get_entry, is_weights_file, list_models

    if path is None or (not is_weights_file(str(path)) and str(path) in list_models()):
        name = ZOO_DAE if path is None else str(path)
        if get_entry(name).kind != "dae":
            raise DgnamError(f"{name} is a {get_entry(name).kind}, not a code DAE: `dgnam models` lists the DAEs "
                             f"(kind dae), or give a file from `dgnam train dae`")
        dae = create_model(name)
        assert isinstance(dae, CodeDAE)
        return dae
    if not Path(path).exists():
        raise DgnamError(f"code DAE {path} does not exist: give a zoo DAE (`dgnam models`) or a .safetensors file "
                         f"from `dgnam train dae`")
    path = Path(path)
    card_path = next((p for p in (path.with_suffix(".json"), CARDS_DIR / f"{path.stem}.json") if p.exists()), None)
    card = json.loads(card_path.read_text()) if card_path is not None else {}
    state = load_state_dict(path, card.get("sha256"))
    arch = card.get("arch")
    if arch is None:  # no card: infer the sizes from the tensors
        lin = sorted(k for k in state if k.endswith(".weight"))
        if not lin:
            raise DgnamError(f"{path} holds no CodeDAE weights; make one with `dgnam train dae`")
        first = state[lin[0]]
        arch = {"dim": first.shape[1], "hidden": first.shape[0], "layers": len(lin) - 1}
    dae = CodeDAE(**arch)
    load_into(dae, state, what=f"code DAE {path.name}")
    codes = card.get("codes") if isinstance(card.get("codes"), dict) else {}
    dae.code_layer = codes.get("layer")  # which layer's codes it denoises, when its card says
    sha = codes.get("weights_sha256")  # ... of which encoder weights
    dae.code_encoder_sha256 = sha if isinstance(sha, str) and sha else None
    dae.source = str(path.resolve())
    return dae.eval()


class JointPrior(nn.Module):
    """``h -> E(G(h))``: the generator and its encoder as one autoencoder on codes, the prior the released
    ``sampler.py`` uses (the paper's Joint PPGN-h, whose G and E were trained together); pass it as ``dae`` to get
    the prior term ``E(G(h)) - h``. The trained :class:`CodeDAE` is what the issue's PPGN-h asks for and the default.
    In inpainting the released code encodes G(h) with the real pixels pasted outside the hole; this prior encodes
    G(h) itself.
    """

    def __init__(self, generator: Generator, encoder: nn.Module, layer: str) -> None:
        super().__init__()
        self.generator, self.encoder, self.layer = generator, encoder, layer
        self.space = getattr(encoder, "input_space", None)
        if self.space is None:
            raise DgnamError("the encoder has no input_space: set encoder.input_space = ImageSpace(...)")
        self.reader = LayerReader(encoder, [layer])

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        x = convert(self.generator(h), self.generator.space, self.space)
        return self.reader(x)[self.layer].flatten(1).view_as(h)


def check_prior(dae: nn.Module | None, generator: Generator, layer: str | None = None) -> None:
    """A :class:`CodeDAE` must take the generator's codes: a DAE trained on another layer's codes gets a one-line
    error here, not a shape error from inside torch at the first step (another size) or a silently wrong prior (same
    size). The generator's layer is ``layer`` or its ``code_layer``; the DAE's comes from its card. Either unknown:
    only the size is checked. Where both know the encoder weights whose codes they take (``code_encoder_sha256``,
    from a card or a zoo entry), those must be the same: the embedded DAE of fmnist-cnn's fc6 with a generator of your
    own encoder's fc6 (the same size and name) is refused here as `dgnam sample` refuses it. A zoo name or another
    non-module given for either is one line too."""
    require_generator(generator)
    if dae is not None:
        require_module(dae, "dae")
    if not isinstance(dae, CodeDAE):
        return
    name = getattr(generator, "name", "the generator")
    n = int(torch.Size(generator.code_shape).numel())
    if dae.dim != n:
        raise DgnamError(f"the code DAE takes {dae.dim}-d codes but {name}'s code is {n}-d: pass the DAE of the layer "
                         f"the generator inverts (dgnam train dae --layer LAYER)")
    have, want = getattr(dae, "code_encoder_sha256", None), getattr(generator, "code_encoder_sha256", None)
    if have and want and have != want:  # the same layer of another network (the embedded DAE for your generator)
        what = f"the embedded code DAE ({dae.zoo_name})" if getattr(dae, "zoo_name", None) else "the code DAE"
        raise DgnamError(f"{what} denoises codes of other encoder weights than the ones {name} inverts (their SHA-256 "
                         f"differ): pass the DAE of that encoder (dgnam train dae --encoder ENCODER --layer LAYER), "
                         f"or JointPrior(generator, encoder, layer)")
    given = layer is not None
    layer = layer or getattr(generator, "code_layer", None)
    if layer is not None and dae.code_layer is not None and dae.code_layer != layer:
        if given:  # the encoder layer the codes come from here: either it or the DAE is not the generator's
            raise DgnamError(f"the code DAE was trained on {dae.code_layer} codes, but the codes here come from layer "
                             f"{layer!r}: give the encoder layer {name} inverts (--encoder-layer), or the DAE of "
                             f"{layer!r} (dgnam train dae --layer {layer})")
        raise DgnamError(f"the code DAE was trained on {dae.code_layer} codes but {name} inverts {layer}: pass the DAE "
                         f"of that layer (dgnam train dae --layer {layer})")


def prior_term(dae: nn.Module, h: torch.Tensor) -> torch.Tensor:
    """``R(h) - h``: the DAE's estimate of the direction toward likelier codes (no gradient through R)."""
    with torch.no_grad():
        return dae(h) - h


# --------------------------------------------------------------------------------------------------------------------
# Conditions: any differentiable score of an image


class Condition(Protocol):
    """A differentiable score of images to raise: ``(images, space) -> (B,)``, ``images`` raw in ``space``.

    Classes, hidden units and inpainting all plug in through this. (A caption's log-likelihood under an image
    captioner would too; none is available offline, so none is shipped.)
    """

    def __call__(self, images: torch.Tensor, space: ImageSpace) -> torch.Tensor: ...


#: What a :class:`ClassCondition` raises (see there).
CLASS_SCORES = ("log_prob", "logit", "released")


def class_indices(model: nn.Module, classes: Sequence[int | str]) -> list[int]:
    """Class indices from indices or names (``model.classes``, matched without regard to case, as `dgnam sample
    --class` and units such as ``logits:Sandal`` take them); an index past a named model's classes is refused here (a
    model without names is checked against its logits by the condition)."""
    named = list(getattr(unwrapped(model), "classes", None) or [])
    lowered = [str(c).lower() for c in named]
    out = []
    for c in classes:
        if is_int(c) or (isinstance(c, str) and re.fullmatch(r"\d+", c.strip())):
            i = int(c)
            if i < 0 or (lowered and i >= len(lowered)):
                upper = f"0..{len(lowered) - 1}" if lowered else "0 and up"
                other = named_like(i, named)
                hint = f" (the class named '{i}' is index {other}: give {other})" if other is not None else ""
                raise DgnamError(f"class {i} out of range: the model has classes {upper}{hint}")
            warn_if_numbered_elsewhere(i, named, "class")
            out.append(i)
        elif isinstance(c, str) and c.strip().lower() in lowered:
            out.append(lowered.index(c.strip().lower()))
        elif not isinstance(c, str):
            raise DgnamError(f"class {c!r}: give an index or a class name")
        elif lowered:
            raise DgnamError(f"unknown class {c!r}: give an index or one of {', '.join(map(str, named))}")
        else:
            raise DgnamError(f"unknown class {c!r}: the model has no class names, give an index")
    return out


class ClassCondition:
    """``log p(class_b | image_b)`` of a classifier (PPGN's ``eps2`` term, Eq. 11): one class per chain.

    ``score`` picks the gradient: ``"log_prob"`` (default) is the paper's ``d log p(y | x) / dx``; ``"logit"`` the
    class logit's (what DGN-AM maximizes); ``"released"`` what the released ``sampling_class.py`` back-propagates:
    ``(1 - p_y) d logit_y / dx``, the log-softmax gradient without its ``-p_j d logit_j / dx`` terms. Because the
    sampler normalizes the step, that shortened gradient points along the logit's and only shrinks as ``p_y -> 1``,
    which lets the DAE term steer a chain that is confident of its class.
    """

    def __init__(self, model: nn.Module, classes: int | str | Sequence[int | str] | torch.Tensor,
                 score: str = "log_prob", input_space: ImageSpace | None = None) -> None:
        if score not in CLASS_SCORES:
            raise DgnamError(f"unknown class score {score!r}: use one of {', '.join(CLASS_SCORES)}")
        self.model = model = unwrapped(model)
        self.space = input_space or getattr(model, "input_space", None)
        if self.space is None:
            raise DgnamError("the condition model has no input_space: pass input_space=ImageSpace(...)")
        if isinstance(classes, (str, int)):  # one class: "Sandal" or 5
            classes = [classes]
        if not isinstance(classes, torch.Tensor):  # names as `dgnam sample --class` and units take them
            classes = class_indices(model, list(classes))
        self.classes = torch.as_tensor(classes, dtype=torch.long).flatten()
        self.score = score

    def logits(self, images: torch.Tensor, space: ImageSpace) -> torch.Tensor:
        out = self.model(convert(images, space, self.space).to(module_dtype(self.model)))
        return output_tensor(out, "the condition model")

    def __call__(self, images: torch.Tensor, space: ImageSpace) -> torch.Tensor:
        logits = self.logits(images, space)
        cls = _per_item(self.classes, len(images)).to(logits.device)
        if int(cls.max()) >= logits.shape[1] or int(cls.min()) < 0:
            raise DgnamError(f"class index out of range: the condition model has classes 0..{logits.shape[1] - 1}")
        logit = logits.gather(1, cls[:, None]).squeeze(1)
        if self.score == "logit":
            return logit
        logp = logits.log_softmax(1).gather(1, cls[:, None]).squeeze(1)
        if self.score == "log_prob":
            return logp
        # value log p (for reporting), gradient (1 - p) d logit
        return logp.detach() + (1 - logp.exp()).detach() * (logit - logit.detach())

    @torch.no_grad()
    def probs(self, images: torch.Tensor, space: ImageSpace) -> torch.Tensor:
        """p(class_b | image_b), for reporting (the model in eval mode, then given back as it was)."""
        dev = module_device(self.model, images.device)
        with _borrowed([self.model], dev):
            logits = self.logits(images.to(dev), space)
        cls = _per_item(self.classes, len(images)).to(logits.device)
        return logits.softmax(1).gather(1, cls[:, None]).squeeze(1)


class UnitCondition:
    """The activation of a unit of a model, e.g. a hidden conv channel: ``units[b]`` for chain b. ``units`` as
    :func:`~dgnam.units.parse_units` takes them (``"features.3:5"``, Units, a list); they are checked against the
    model's layers here, so a wrong layer or channel fails before any sampling. ``relu_gradient`` as in
    :class:`dgnam.AMConfig`: a unit at a ReLU's output follows its input's gradient by default (``"pre"``), so a
    chain whose unit falls to 0 still moves."""

    def __init__(self, model: nn.Module, units: str | Unit | Sequence[str | Unit],
                 input_space: ImageSpace | None = None, relu_gradient: str = DGNAM_RELU_GRADIENT) -> None:
        self.relu_gradient = check_relu_gradient(relu_gradient)
        self.model = model = unwrapped(model)
        self.space = input_space or getattr(model, "input_space", None)
        if self.space is None:
            raise DgnamError("the condition model has no input_space: pass input_space=ImageSpace(...)")
        example = self.space.encode(torch.full((1, *self.space.shape), 0.5))
        self.units = resolve_units(model, parse_units(units), example)
        require_plain_units(self.units, "a PPGN unit condition")
        self.reader = LayerReader(model, [u.layer for u in self.units])

    def __call__(self, images: torch.Tensor, space: ImageSpace) -> torch.Tensor:
        units = self.units if len(self.units) == len(images) else self.units[:1] * len(images)
        return unit_activations(self.reader(convert(images, space, self.space), self.relu_gradient), units)


def _per_item(values: torch.Tensor, n: int) -> torch.Tensor:
    if len(values) == n:
        return values
    if len(values) == 1:
        return values.expand(n)
    raise DgnamError(f"{len(values)} classes for {n} chains: give one class, or one per chain")


# --------------------------------------------------------------------------------------------------------------------
# The sampler


@dataclass
class PPGNConfig:
    """Sampler settings; the defaults are the published ones for a class (see the module docstring).

    A chain runs ``steps`` iterations per condition and keeps the image after iteration t (1-based) when
    ``t > burn_in`` and ``(t - burn_in) % keep_every == 0``. ``reset_every > 0`` restarts the chain from
    ``h ~ N(0, 1)`` every so many iterations, redrawing eps1 uniformly in ``reset_eps1`` (the published hidden-unit
    setting). ``bound`` is the code range's upper end ``U`` (:meth:`CodeStats.upper`). ``lr_end`` makes the step size
    fall linearly from ``lr`` at the first iteration to ``lr_end`` at the last, as the released ``lr_end`` does
    (``None``: constant, the released class-sampling setting); with several conditions the schedule restarts with each.
    """

    eps1: float = PPGN_EPS1
    eps2: float = PPGN_EPS2
    eps3: float = PPGN_EPS3
    eps4: float = PPGN_EPS4
    lr: float = PPGN_LR
    lr_end: float | None = None
    steps: int = PPGN_CLASS_STEPS
    keep_every: int = 1
    burn_in: int = 0
    reset_every: int = 0
    reset_eps1: tuple[float, float] = PPGN_RESET_EPS1
    bound: str = DGNAM_CLIP_BOUND
    seed: int = 0

    @classmethod
    def for_unit(cls, **kw) -> "PPGNConfig":
        """The published hidden-unit setting: 1000 iterations, reset every 100."""
        return cls(**{"steps": PPGN_UNIT_STEPS, "reset_every": PPGN_UNIT_RESET_EVERY, **kw})

    @classmethod
    def for_inpainting(cls, **kw) -> "PPGNConfig":
        """The released inpainting setting: 21 updates, step size 1 -> 1e-32 linearly, no noise, eps4 = 1e-9."""
        return cls(**{"steps": PPGN_INPAINT_STEPS, "lr_end": PPGN_INPAINT_LR_END, "eps3": PPGN_INPAINT_EPS3, **kw})

    def step_size(self, t: int) -> float:
        """The step size at iteration ``t`` (0-based) of a condition's ``steps``."""
        if self.lr_end is None or self.steps == 1:
            return self.lr
        return self.lr + (self.lr_end - self.lr) * t / (self.steps - 1)

    @classmethod
    def for_samples(cls, n: int, steps: int = PPGN_CLASS_STEPS, burn_in: int | None = None, **kw) -> "PPGNConfig":
        """Keep exactly ``n`` evenly spaced samples of a ``steps``-long chain: ``keep_every = (steps - burn_in) // n``,
        the last of them at the last iteration (the burn-in grows by the remainder of that division).

        The default burn-in is ``steps // 4``: the first iterations leave the random start, whose images are not yet
        of the class (``benchmarks/ppgn.py`` shows how fast the class probability rises).
        """
        if n < 1:
            raise DgnamError(f"--n {n}: ask for at least one sample")
        burn = steps // 4 if burn_in is None else burn_in
        if steps < 1 or burn < 0:
            raise DgnamError(f"--steps {steps}, --burn-in {burn}: give steps >= 1 and burn-in >= 0")
        if burn >= steps:
            raise DgnamError(f"--burn-in {burn} leaves none of the {steps} iterations: lower --burn-in or raise --steps")
        if steps - burn < n:
            raise DgnamError(f"{n} samples do not fit in {steps - burn} iterations after burn-in {burn}: "
                             f"raise --steps to at least {burn + n} or lower --n")
        every = (steps - burn) // n
        return cls(steps=steps, burn_in=steps - n * every, keep_every=every, **kw)

    def validate(self) -> None:
        if not is_int(self.seed):  # None * 1_000_003: a TypeError inside the sampler
            raise DgnamError(f"PPGN seed={self.seed!r}: give an int (any int: it is taken modulo 2**64)")
        if self.steps < 1 or self.keep_every < 1 or self.burn_in < 0 or self.reset_every < 0:
            raise DgnamError(f"PPGN settings need steps >= 1, keep_every >= 1, burn_in >= 0, reset_every >= 0 "
                             f"(got {self.steps}, {self.keep_every}, {self.burn_in}, {self.reset_every})")
        values = (self.lr, self.eps1, self.eps2, self.eps3, self.eps4) + (() if self.lr_end is None else (self.lr_end,))
        if not all(math.isfinite(v) for v in values) or self.lr <= 0 or (self.lr_end is not None and self.lr_end < 0) \
                or min(self.eps1, self.eps2, self.eps3, self.eps4) < 0:  # (NaN passes the comparisons)
            raise DgnamError(f"PPGN lr must be > 0, lr_end >= 0 and eps1..eps4 >= 0, each finite (got lr={self.lr}, "
                             f"lr_end={self.lr_end}, eps1..eps4={self.eps1}, {self.eps2}, {self.eps3}, {self.eps4})")

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(repr=False)
class Chain:
    """What :func:`sample` returns.

    ``codes`` (B, S, *code) and ``images`` (B, S, C, H, W, in the generator's space ``space``) are the kept samples
    of each of the B chains, taken after iterations ``steps`` (S,); ``scores`` (B, S) is the condition's score of each
    and ``segment`` (S,) which condition was active. ``score_history`` and ``prior_history`` (B, T) follow every
    iteration: the score of G(h) before the step and ``||R(h) - h||``. ``out`` is the run folder that
    ``sample(..., out=)`` wrote (:func:`save_samples`), else ``None``. In a notebook a chain shows its first chain's
    samples (:meth:`grid`).
    """

    codes: torch.Tensor
    images: torch.Tensor
    steps: torch.Tensor
    scores: torch.Tensor
    segment: torch.Tensor
    score_history: torch.Tensor
    prior_history: torch.Tensor
    final_codes: torch.Tensor
    config: PPGNConfig = field(default_factory=PPGNConfig)
    space: ImageSpace | None = None
    out: Path | None = None

    __repr__ = compact_repr

    def grid(self, chain: int = 0, names: Sequence[str] | None = None) -> "Image.Image":
        """Chain ``chain``'s kept samples in rows of ten, each captioned ``iteration:score``: the figure `dgnam
        sample` writes as ``samples.png`` (whose captions give a class's probability, which needs the model). A
        chain through several conditions starts each condition's samples on a row of its own, labelled with its
        name from ``names`` (one per condition; default ``condition I``), as ``samples.png`` does: drawn as one run
        of images, the figure did not say where the chain changed its target."""
        from .images import wrapped_grid

        arrays = to_uint8(self.images[chain], _space_of(self))
        captions = [f"{int(t)}:{float(v):.2f}" for t, v in zip(self.steps, self.scores[chain])]
        count = int(self.segment.max()) + 1 if len(self.segment) else 0
        if names is not None and len(names) < count:
            raise DgnamError(f"{len(names)} names for the chain's {count} conditions: give one name per condition")
        if names is None and count <= 1:
            return wrapped_grid(arrays, captions)
        names = [str(n) for n in names] if names is not None else [f"condition {i}" for i in range(count)]
        return wrapped_grid(arrays, captions, groups=self.segment.tolist(), names=names)

    def _repr_png_(self) -> bytes:
        return png_bytes(self.grid())


def code_clip(generator: Generator, bound: str = DGNAM_CLIP_BOUND) -> ClipCode | None:
    """The code range a chain is clipped to after each step: ``[code_lower, U]`` of the generator, 0 for a ReLU
    layer's code (the paper's) and U from its code statistics, each where it has one; None when it has neither. A
    generator that declares no ``code_lower`` (a plain :class:`Generator` subclass) has no lower end: visualize's
    default priors do not clip its code, and neither does a chain."""
    stats = getattr(generator, "code_stats", None)
    lower = getattr(generator, "code_lower", None)
    if stats is None and lower is None:
        return None
    upper = None if stats is None else checked_bounds(stats.upper(bound), generator.code_shape, lower)
    return ClipCode(upper, lower)


def _normalized_step(h: torch.Tensor, d: torch.Tensor, lr: float) -> None:
    """``h += lr / mean|d| * d`` per chain (a chain whose d is exactly 0 does not move)."""
    scale = d.flatten(1).abs().mean(1)
    size = torch.where(scale > 0, lr / scale.clamp_min(1e-30), torch.zeros_like(scale))
    h += size.view(-1, *[1] * (h.dim() - 1)) * d


@contextmanager
def _borrowed(modules: Sequence[nn.Module | None], device: torch.device) -> Iterator[None]:
    """Each module (a generator, the DAE, a condition's model) in eval mode for the chain, then as the caller had it
    (:func:`dgnam.modules.frozen`): sampling must not leave the user's classifier in eval mode or frozen."""

    with ExitStack() as stack:
        seen: set[int] = set()
        for m in modules:
            if isinstance(m, nn.Module) and id(m) not in seen:
                seen.add(id(m))
                stack.enter_context(frozen(m, device))
        yield


def _step(h: torch.Tensor, d: torch.Tensor, dae: nn.Module | None, eps1: torch.Tensor, config: PPGNConfig,
          rng: "_Noise", clip: ClipCode | None, t: int, where: str) -> torch.Tensor | None:
    """One sampler update in place: add the prior ``eps1 (R(h) - h)`` and the noise ``N(0, eps3^2)`` to the condition
    (and context) direction ``d``, step ``lr_t / mean|d| * d`` and clip to the code range. Returns ``||R(h) - h||``
    per chain (None without a DAE)."""
    r = None
    if dae is not None:
        r = prior_term(dae, h)
        d = d + eps1.view(-1, *[1] * (h.dim() - 1)) * r
    if config.eps3 > 0:
        d = d + config.eps3 * rng.normal(tuple(h.shape[1:])).to(h.device)
    _normalized_step(h, d, config.step_size(t))
    if clip is not None:
        clip.clip_(h)
    if not torch.isfinite(h).all():
        raise DgnamError(f"NaN/inf in the {where}: lower --lr or check the models")
    return None if r is None else r.flatten(1).norm(dim=1)


class _Noise:
    """Per-chain seeded draws, so a chain's path does not depend on which other chains share its batch."""

    def __init__(self, seed: int, n: int) -> None:
        # modulo 2**64, as torch reads a negative seed: the same draws for every seed it took, and a seed over about
        # 1.8e13 (a timestamp) no longer overflows torch's 64 bits ("Overflow when unpacking long long")
        self.gens = [torch.Generator().manual_seed((seed * 1_000_003 + i) % 2**64) for i in range(n)]

    def normal(self, shape: tuple[int, ...]) -> torch.Tensor:
        return torch.stack([torch.randn(shape, generator=g) for g in self.gens])

    def uniform(self, lo: float, hi: float) -> torch.Tensor:
        return torch.stack([lo + (hi - lo) * torch.rand((), generator=g) for g in self.gens])


def _chain_key(generator: Generator, dae: nn.Module | None, conds: Sequence[Condition], n_chains: int,
               config: PPGNConfig, init: torch.Tensor | None) -> str:
    """A digest of everything that decides a chain's path (settings, weights, code bounds, conditions, start), so
    that a checkpoint is only ever continued by the same chain."""
    import hashlib

    from .weights import tensor_digest

    def cond_key(c) -> dict:
        model = getattr(c, "model", None)
        classes = getattr(c, "classes", None)
        score, space = getattr(c, "score", None), getattr(c, "space", None)
        return {"type": type(c).__qualname__, "score": score if isinstance(score, str) else None,
                "space": space.to_dict() if isinstance(space, ImageSpace) else None,
                "classes": None if classes is None else [int(v) for v in torch.as_tensor(classes).flatten()],
                "units": [u.address for u in getattr(c, "units", ())],
                # named when not "exact", the rule of chains written before it existed, so that those still resume
                **({"relu_gradient": c.relu_gradient} if getattr(c, "relu_gradient", "exact") != "exact" else {}),
                "model": None if model is None else tensor_digest(model.state_dict().values())}

    stats = getattr(generator, "code_stats", None)
    doc = {"config": config.to_dict(), "n_chains": n_chains, "conditions": [cond_key(c) for c in conds],
           "generator": tensor_digest(generator.state_dict().values()),
           "dae": None if dae is None else tensor_digest(dae.state_dict().values()),
           "upper": None if stats is None else tensor_digest([stats.upper(config.bound)]),
           "init": None if init is None else tensor_digest([torch.as_tensor(init)])}
    lower = getattr(generator, "code_lower", None)  # (as code_clip reads it)
    if lower != DGNAM_CODE_LOWER:  # (named only when not the paper's 0, so that earlier checkpoints still resume)
        doc["lower"] = lower
    return hashlib.sha256(json.dumps(doc, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _write_chain_checkpoint(path: Path, state: dict) -> None:
    """Write atomically: a kill while writing leaves the previous checkpoint whole."""
    from .atomic import write_atomic

    write_atomic(path, lambda tmp: torch.save(state, tmp))


#: How many samples `save_samples` shows the condition's model at once for their p(class) (a 1000-sample chain of
#: 224 px images in one forward pass would take gigabytes; one at a time, a pass per sample).
SAVE_PROBS_BATCH = 64

#: What a chain checkpoint holds, by type (its ``key`` is checked on its own).
CHAIN_STATE = {"t_global": int, "h": torch.Tensor, "eps1": torch.Tensor, "rng": list, "kept_codes": list,
               "kept_images": list, "kept_scores": list, "kept_steps": list, "kept_seg": list, "score_hist": list,
               "prior_hist": list}


def _read_chain_checkpoint(path: Path, key: str, h: torch.Tensor | None = None, total: int | None = None) -> dict:
    """The state of the chain ``key`` from ``path``; refused in one line when it is another chain's, or not a state
    this chain can continue (a file from elsewhere with the right key but missing fields or codes of another shape
    failed deep in the chain). ``h``: the chain's codes, whose shape the state's must have; ``total``: its steps."""
    if not path.is_file():  # a FIFO or a folder there: the read never returned, or failed with a traceback
        raise DgnamError(f"the chain checkpoint {path} is not a plain file: delete it to start over")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)  # never unpickles code
    except Exception as e:  # noqa: BLE001  (a damaged file: torch raises several kinds)
        raise DgnamError(f"the chain checkpoint {path} cannot be read ({type(e).__name__}): delete it to start over"
                         ) from None
    if not isinstance(state, dict) or state.get("key") != key:
        raise DgnamError(f"the chain checkpoint {path} is of another chain (other settings, weights, conditions or "
                         f"start): delete it to start over, or continue it with the settings it was made with (a "
                         f"unit's chain written before 2026-12-02: --relu-gradient exact)")
    bad = [k for k, kind in CHAIN_STATE.items() if not isinstance(state.get(k), kind)]
    if not bad and h is not None and (state["h"].shape != h.shape or state["eps1"].shape != h.shape[:1]
                                      or len(state["rng"]) != len(h)
                                      or not all(isinstance(g, torch.Tensor) for g in state["rng"])):
        bad = ["h", "eps1", "rng"]
    if not bad and total is not None and not 0 <= state["t_global"] <= total:
        bad = ["t_global"]
    if bad:
        raise DgnamError(f"the chain checkpoint {path} is no state of this chain ({', '.join(bad[:3])}): delete it "
                         f"to start over")
    return state


def sample(
    generator: Generator,
    dae: nn.Module | None,
    conditions: Condition | Sequence[Condition],
    n_chains: int = 1,
    config: PPGNConfig | None = None,
    init: torch.Tensor | None = None,
    progress: bool = False,
    on_step: Callable[[int], None] | None = None,
    checkpoint: str | Path | None = None,
    checkpoint_every: int = CHECKPOINT_EVERY,
    out: str | Path | None = None,
) -> Chain:
    """Run ``n_chains`` PPGN-h chains on ``generator``'s code, conditioned on each of ``conditions`` in turn.

    With several conditions the chain continues from where the previous one left it (``config.steps`` iterations
    each): it moves from one class to the next. ``init`` (codes, one per chain or one for all) replaces the random
    start ``h ~ N(0, 1)`` of the released code. ``dae=None`` is the same as ``eps1 = 0``.

    ``config`` defaults to ``PPGNConfig()``, the published class setting: 200 iterations, every one kept, the first
    from the random start. `dgnam sample` keeps ``--n`` (50) after a burn-in, as
    ``PPGNConfig.for_samples(n)`` does, and for a hidden unit runs ``PPGNConfig.for_unit()`` (1000 iterations, a reset
    every 100); pass those for the same chains as the command line's.

    With ``checkpoint`` (a file), the chain's whole state is written there every ``checkpoint_every`` iterations and
    at the end of each condition, and an existing checkpoint is continued: a killed chain resumes where it was
    written and ends exactly as an uninterrupted one. A checkpoint of another chain (other settings, weights,
    conditions or start) is refused. The file is left in place; delete it once the samples are saved. An interrupt
    (Ctrl-C, a notebook's stop button) goes on as a ``KeyboardInterrupt`` whose note says where the checkpoint
    holds the chain; without ``checkpoint`` nothing is kept.

    With ``out`` (a folder, made if missing), the samples are also written there as `dgnam sample` writes its run
    (:func:`save_samples`: ``images/``, ``samples.png``, ``codes.safetensors``, ``results.json``), which
    :func:`dgnam.evaluate_run` and `dgnam evaluate` score, once the chain is done; the chain's ``out`` says where. It
    takes one chain (``n_chains=1``) and a folder that holds no run yet (a ``checkpoint`` inside it aside).
    """
    config = config or PPGNConfig()
    config.validate()
    conds = [conditions] if callable(conditions) else list(conditions)
    if not conds:
        raise DgnamError("no condition given: pass a ClassCondition, a UnitCondition or a callable (images, space) -> (B,)")
    if n_chains < 1:
        raise DgnamError(f"n_chains={n_chains}: run at least one chain")
    check_prior(dae, generator)
    if isinstance(checkpoint_every, bool) or not isinstance(checkpoint_every, int) or checkpoint_every < 1:
        raise DgnamError(f"checkpoint_every={checkpoint_every!r}: give a whole number of iterations >= 1")
    if out is not None:
        return _sample_into(Path(out), generator, dae, conds, n_chains, config, init, progress, on_step, checkpoint,
                            checkpoint_every)
    dev = module_device(generator)
    with _borrowed([generator, dae, *(getattr(c, "model", None) for c in conds)], dev):
        rng = _Noise(config.seed, n_chains)
        if init is None:
            h = rng.normal(generator.code_shape).to(dev)
        else:
            h = generator.check_codes(torch.as_tensor(init).to(dev).float())
            if len(h) not in (1, n_chains):
                raise DgnamError(f"init has {len(h)} codes for {n_chains} chains: give one, or one per chain")
            h = h.expand(n_chains, *generator.code_shape).clone()
        clip = code_clip(generator, config.bound)
        eps1 = torch.full((n_chains,), float(config.eps1), device=dev)

        kept_codes, kept_images, kept_steps, kept_scores, kept_seg = [], [], [], [], []
        score_hist, prior_hist = [], []
        total = config.steps * len(conds)
        t_global = 0
        key = None
        if checkpoint is not None:
            checkpoint = Path(checkpoint)
            key = _chain_key(generator, dae, conds, n_chains, config, init)
            if checkpoint.exists():
                state = _read_chain_checkpoint(checkpoint, key, h, total)
                t_global, h, eps1 = int(state["t_global"]), state["h"].to(dev), state["eps1"].to(dev)
                for g, st in zip(rng.gens, state["rng"]):
                    g.set_state(st)
                kept_codes, kept_images, kept_scores = state["kept_codes"], state["kept_images"], state["kept_scores"]
                kept_steps, kept_seg = list(state["kept_steps"]), list(state["kept_seg"])
                score_hist, prior_hist = state["score_hist"], state["prior_hist"]

        saved_at = t_global if checkpoint is not None and checkpoint.exists() else None  # what the file holds

        def save_state() -> None:
            nonlocal saved_at
            _write_chain_checkpoint(checkpoint, {
                "key": key, "t_global": t_global, "h": h.cpu(), "eps1": eps1.cpu(),
                "rng": [g.get_state() for g in rng.gens], "kept_codes": kept_codes, "kept_images": kept_images,
                "kept_scores": kept_scores, "kept_steps": kept_steps, "kept_seg": kept_seg,
                "score_hist": score_hist, "prior_hist": prior_hist})
            saved_at = t_global

        bar = progress_bar(total=total, initial=t_global, desc=f"PPGN ({n_chains} chains)", unit="step",
                           show=progress)
        start = t_global

        def interrupted() -> str:
            if checkpoint is None:
                return (f"sample was interrupted at iteration {t_global} of {total}; nothing is kept without "
                        f"checkpoint=FILE, which saves the chain every {checkpoint_every} iterations (the same call "
                        f"then continues it)")
            held = (f"{checkpoint} holds the chain at iteration {saved_at}: the same call continues from there"
                    if saved_at is not None else f"{checkpoint} is first written at iteration "
                    f"{min(checkpoint_every, config.steps)}, so the same call starts over")
            return f"sample was interrupted at iteration {t_global} of {total}; {held}"

        with bar, noting_interrupt(interrupted):
            for seg, cond in enumerate(conds):
                for t in range(config.steps):
                    if seg * config.steps + t < start:  # done before the checkpoint
                        continue
                    if config.reset_every and t > 0 and t % config.reset_every == 0:
                        h = rng.normal(generator.code_shape).to(dev)
                        eps1 = rng.uniform(*config.reset_eps1).to(dev)
                    h.requires_grad_(True)
                    score = cond(generator(h), generator.space)
                    (d_cond,) = torch.autograd.grad(score.sum(), h)
                    h = h.detach()
                    score_hist.append(score.detach().cpu())
                    r = _step(h, config.eps2 * d_cond, dae, eps1, config, rng, clip, t,
                              f"PPGN code at iteration {t_global}")
                    prior_hist.append(torch.full((n_chains,), float("nan")) if r is None else r.cpu())
                    t_global += 1
                    n = t + 1
                    if n > config.burn_in and (n - config.burn_in) % config.keep_every == 0:
                        with torch.no_grad():
                            img = generator(h)
                            s = cond(img, generator.space)
                        kept_codes.append(h.cpu().clone())
                        kept_images.append(img.cpu())
                        kept_scores.append(s.cpu())
                        kept_steps.append(t_global)
                        kept_seg.append(seg)
                    bar.update(1)
                    if checkpoint is not None and (t_global % checkpoint_every == 0 or n == config.steps):
                        save_state()
                    if on_step is not None:
                        on_step(t_global)
        if not kept_codes:
            raise DgnamError("the chain kept no sample: lower burn_in or keep_every, or raise steps "
                             "(PPGNConfig.for_samples keeps n)")
        return Chain(
            codes=torch.stack(kept_codes, 1), images=torch.stack(kept_images, 1), steps=torch.tensor(kept_steps),
            scores=torch.stack(kept_scores, 1), segment=torch.tensor(kept_seg),
            score_history=torch.stack(score_hist, 1),
            prior_history=torch.stack(prior_hist, 1), final_codes=h.cpu(), config=config, space=generator.space,
        )


def _sample_into(out: Path, generator: Generator, dae: nn.Module | None, conds: list[Condition], n_chains: int,
                 config: PPGNConfig, init: torch.Tensor | None, progress: bool, on_step: Callable[[int], None] | None,
                 checkpoint: str | Path | None, checkpoint_every: int) -> Chain:
    """:func:`sample` with ``out``: the folder checked before the chain runs (it may take hours), held locked while
    it runs, and written when it is done."""
    from .atomic import folder_lock
    from .run import check_fresh_dir

    if out.exists() and not out.is_dir():
        raise DgnamError(f"out={out} is a file: give a folder for the samples (it is made if missing)")
    if n_chains != 1:
        raise DgnamError(f"out= writes the run of one chain, as `dgnam sample` makes it; n_chains={n_chains} here: "
                         f"run n_chains=1, once per folder")
    describe_conditions(conds)  # a condition the run cannot name fails now, not after the chain
    # a checkpoint kept in the folder is the chain's own, not another run: the same call continues from it
    own = (Path(checkpoint).name,) if checkpoint is not None and Path(checkpoint).resolve().parent == out.resolve() \
        else ()
    with folder_lock(out, "sample"):  # a second writer of OUT is refused until the samples are in
        check_fresh_dir(out, own)
        chain = sample(generator, dae, conds, 1, config, init, progress, on_step, checkpoint, checkpoint_every)
        save_samples(chain, out, conds, generator, dae)
    chain.out = out
    return chain


def describe_conditions(conditions: Condition | Sequence[Condition]) -> tuple[list[str], list[Unit | None],
                                                                                nn.Module | None]:
    """How a run folder of samples names each condition (its records' ``condition``: a class's name, else its index;
    a unit's address; ``condition{i}`` for a callable of one's own), the unit of the target model each raises (a
    class is its ``logits:C``; ``None`` for a callable, whose samples `dgnam evaluate` cannot score, having no unit to
    score them by) and that model, the conditions' (``None`` when no condition has one). A run names one target:
    conditions of two models, and a :class:`ClassCondition` of one class per chain, are refused."""
    conds = [conditions] if callable(conditions) else list(conditions)
    models = list({id(m): m for m in (getattr(c, "model", None) for c in conds) if isinstance(m, nn.Module)}.values())
    if len(models) > 1:
        raise DgnamError("the conditions score images with different models, and a run folder names one target: "
                         "write the samples of each model's conditions into a folder of their own")
    names: list[str] = []
    units: list[Unit | None] = []
    for i, c in enumerate(conds):
        if isinstance(c, ClassCondition):
            if len(c.classes) != 1:
                raise DgnamError(f"condition {i} holds {len(c.classes)} classes, one per chain: a run folder holds "
                                 f"one chain's samples, so give each condition one class")
            k = int(c.classes[0])
            classes = getattr(c.model, "classes", None)
            names.append(classes[k] if classes and k < len(classes) else str(k))
            example = c.space.encode(torch.full((1, *c.space.shape), 0.5))
            units.append(resolve_units(c.model, parse_units(f"logits:{k}"), example)[0])
        elif isinstance(c, UnitCondition):
            names.append(c.units[0].address)
            units.append(c.units[0])
        else:
            names.append(f"condition{i}")
            units.append(None)
    return names, units, models[0] if models else None


def save_samples(chain: Chain, out: str | Path, conditions: Condition | Sequence[Condition], generator: Generator,
                 dae: nn.Module | None = None, *, names: Sequence[str] | None = None, model_name: str | None = None,
                 generator_name: str | None = None, dae_source: str | None = None, replace: bool = False
                 ) -> list[dict]:
    """Write a chain's samples (one chain's: ``n_chains=1``) into the folder ``out`` as `dgnam sample` does, so that
    :func:`dgnam.evaluate_run`, `dgnam evaluate` and :meth:`dgnam.Run.load` read it: ``images/sNNN_NAME.png``,
    ``samples.png`` (each condition's samples on rows of their own, captioned ``iteration:p(class)`` for a class,
    ``iteration:score`` otherwise), ``codes.safetensors`` and ``results.json`` (``config`` and one record per sample,
    with the ``unit``, ``unit_index`` and ``restart`` of a `visualize` record). Returns the records.

    ``conditions``, ``generator`` and ``dae`` are the ones the chain was sampled with (see :func:`describe_conditions`
    for what the records say of each condition; ``names`` replaces the condition names). What ``results.json`` calls
    the target, the generator and the DAE defaults to what the objects say (a zoo name, else the class name; a
    generator's ``name``; a DAE's zoo name, else the file :func:`load_dae` read): ``model_name``, ``generator_name``
    and ``dae_source`` give them as the command line does, by the spec it loaded them from. The folder is written
    staged and moved in complete, under its lock. A folder that holds a run already is refused, unless ``replace``:
    then the earlier samples and their evaluation are removed (`dgnam sample --overwrite`, which checks first that
    the run there is a sample run)."""
    from . import __version__
    from .atomic import folder_lock, write_json_atomic
    from .images import png_scale, save_image, save_png, wrapped_grid
    from .run import EVALUATION_FILES, move_in, staging_dir
    from .weights import save_safetensors, tensor_digest

    conds = [conditions] if callable(conditions) else list(conditions)
    if chain.images.shape[0] != 1:
        raise DgnamError(f"the chain holds {chain.images.shape[0]} chains' samples: a run folder holds one chain's, "
                         f"as `dgnam sample` makes it (sample with n_chains=1)")
    if len(chain.segment) and int(chain.segment.max()) >= len(conds):
        raise DgnamError(f"the chain ran {int(chain.segment.max()) + 1} conditions, {len(conds)} given: pass the "
                         f"conditions it was sampled with")
    described, units, model = describe_conditions(conds)
    names = described if names is None else [str(n) for n in names]
    if len(names) != len(conds):
        raise DgnamError(f"{len(names)} names for {len(conds)} conditions: give one name per condition")
    space = _space_of(chain)
    imgs = chain.images[0]
    arrs = to_uint8(imgs, space)
    records = []
    probs: list[float | None] = [None] * len(imgs)  # p(class) of each sample, a batch of a condition's at a time
    segment = chain.segment.to(torch.long)
    for s, cond in enumerate(conds):
        where = (segment == s).nonzero().flatten().tolist()
        for lo in range(0, len(where) if isinstance(cond, ClassCondition) else 0, SAVE_PROBS_BATCH):
            chunk = where[lo : lo + SAVE_PROBS_BATCH]
            for i, p in zip(chunk, cond.probs(imgs[chunk], space).tolist()):
                probs[i] = p
    final_out = Path(out)
    with folder_lock(final_out, "sample"):
        if (final_out / "results.json").exists() and not replace:
            raise DgnamError(f"{final_out} already holds a run: choose another folder, or pass replace=True to "
                             f"replace its samples")
        # everything is staged and moved in at the end: a kill while writing (or before) leaves an earlier run in
        # OUT whole, not its images deleted under a results.json that still lists them
        staged = staging_dir(final_out)
        scale = png_scale(space.size)
        kept = [0] * len(conds)
        for i, a in enumerate(arrs):
            seg = int(chain.segment[i])
            path = f"images/s{i:03d}_{re.sub(r'[^A-Za-z0-9]+', '-', names[seg]).strip('-')}.png"
            save_png(a, staged / path, scale)
            # unit / unit_index / restart / image_size as in `visualize`'s records, so that `dgnam evaluate` reads
            # the run
            unit = {} if units[seg] is None else {"unit": units[seg].address}
            rec = {"sample": i, "step": int(chain.steps[i]), "condition": names[seg], **unit, "unit_index": seg,
                   "restart": kept[seg], "score": float(chain.scores[0, i]), "image": path,
                   "image_size": list(space.size)}
            kept[seg] += 1
            if probs[i] is not None:
                rec["probability"] = probs[i]
            records.append(rec)
        save_image(wrapped_grid(arrs, [f"{r['step']}:{r.get('probability', r['score']):.2f}" for r in records],
                                groups=[r["unit_index"] for r in records],
                                names=[f"{u.address}\n{n}" if u is not None and n != u.address else n
                                       for u, n in zip(units, names)]),
                   staged / "samples.png")
        generator_name = generator_name or getattr(generator, "name", type(generator).__name__)
        save_safetensors({"codes": chain.codes[0]}, staged / "codes.safetensors",
                         metadata={"generator": generator_name})
        prior = ("none" if dae is None else "joint" if isinstance(dae, JointPrior) else "dae"
                 if isinstance(dae, CodeDAE) else type(dae).__name__)
        relus = [c.relu_gradient if isinstance(c, UnitCondition) else None for c in conds]
        relu = {r for r in relus if r is not None}
        spaces = [c.space for c in conds if isinstance(getattr(c, "space", None), ImageSpace)]
        target = spaces[0] if spaces else getattr(model, "input_space", None)
        run_config = {
            "model": model_name or (None if model is None else getattr(model, "zoo_name", type(model).__name__)),
            "model_source": getattr(model, "dgnam_source", None), "generator": generator_name, "method": "ppgn-h",
            "prior": prior,
            "dae": (dae_source or getattr(dae, "zoo_name", None) or getattr(dae, "source", None)) if prior == "dae"
            else None,
            "units": [None if u is None else u.address for u in units], "conditions": names,
            "sampler": chain.config.to_dict(),
            # how a unit's gradient was taken (one value when every unit condition took it alike)
            **({} if not relu else {"relu_gradient": relu.pop() if len(relu) == 1 else relus}),
            "target_space": None if target is None else target.to_dict(),
            # the weights themselves, as `visualize` records them: `evaluate` refuses a target file retrained in place
            # since (without them it scored the samples with the new weights, without a word)
            "weights": {"model": None if model is None else tensor_digest(model.state_dict().values()),
                        "generator": tensor_digest(generator.state_dict().values())}}
        write_json_atomic(staged / "results.json",
                          {"dgnam_version": __version__, "config": run_config, "records": records})
        # an earlier run's samples and its evaluation must not linger beside the new ones
        stale = ([*(final_out / "images").glob("s*.png"), *(final_out / n for n in EVALUATION_FILES)]
                 if replace else [])
        move_in(staged, final_out, stale=stale)
    return records


# --------------------------------------------------------------------------------------------------------------------
# Inpainting


def hole_mask(size: tuple[int, int], box: tuple[int, int, int, int] | None = None) -> torch.Tensor:
    """A (1, 1, H, W) float mask, 1 inside the hole ``box = (x, y, w, h)`` (pixels of the image), 0 outside.

    ``None`` is the released hole's size scaled to the image, a square of side ``100 / 227`` of the image, centred.
    The released ``util.get_mask`` draws the hole's position at random for each seed; centred, every run and the
    benchmark hold the same hole (``box`` puts it anywhere).
    """
    H, W = size
    if box is None:
        side = max(1, round(min(H, W) * INPAINT_HOLE_FRACTION))
        box = ((W - side) // 2, (H - side) // 2, side, side)
    x, y, w, h = _fitting_box(box, size)
    m = torch.zeros(1, 1, H, W)
    m[..., y : y + h, x : x + w] = 1.0
    return m


def _fitting_box(box: tuple[int, int, int, int], size: tuple[int, int], what: str = "image"
                 ) -> tuple[int, int, int, int]:
    """``box`` as four ints, or a one-line error when it does not lie inside an image of ``size`` (H, W)."""
    H, W = size
    x, y, w, h = (int(v) for v in box)
    if w < 1 or h < 1:
        raise DgnamError(f"mask {x},{y},{w},{h}: the hole's width and height must be at least 1 pixel")
    if x < 0 or y < 0 or x + w > W or y + h > H:
        raise DgnamError(f"mask {x},{y},{w},{h} does not fit in the {W}x{H} {what}: give x,y,w,h in its pixels with "
                         f"x+w <= {W}, y+h <= {H}")
    return x, y, w, h


def scale_box(box: tuple[int, int, int, int], src: tuple[int, int], dst: tuple[int, int],
              what: str = "image") -> tuple[int, int, int, int]:
    """The box ``(x, y, w, h)``, given in pixels of an image of size ``src`` (H, W), in pixels of that image resized
    whole to ``dst`` (how image files reach a model: :func:`dgnam.imagespace.from_uint8` resizes, never crops). The
    scaled box covers every pixel the given one touches, so a hole drawn on a large photo still hides all of it.
    ``what`` names the image in the error when the box does not fit it."""
    (sh, sw), (dh, dw) = src, dst
    x, y, w, h = _fitting_box(box, src, what)
    x0, y0 = math.floor(x * dw / sw), math.floor(y * dh / sh)
    x1, y1 = math.ceil((x + w) * dw / sw), math.ceil((y + h) * dh / sh)
    return x0, y0, x1 - x0, y1 - y0


def parse_box(text: str) -> tuple[int, int, int, int]:
    """``"x,y,w,h"`` -> a tuple of four ints."""
    try:
        x, y, w, h = (int(v) for v in text.split(","))
    except ValueError:
        raise DgnamError(f"--mask {text!r}: write x,y,w,h in pixels, e.g. 8,8,12,12") from None
    return x, y, w, h


@dataclass(repr=False)
class Inpainting:
    """What :func:`inpaint` returns, all raw in the target's space ``space``: ``masked`` (the input, hole filled with
    raw 0), ``result`` (generated pixels inside the hole, real ones outside), ``generated`` (the whole generated
    image) and ``start`` (the composite from the starting code, before any sampling), with the final ``codes`` and
    the condition's score per iteration. In a notebook it shows :meth:`grid`."""

    masked: torch.Tensor
    result: torch.Tensor
    generated: torch.Tensor
    start: torch.Tensor
    codes: torch.Tensor
    score_history: torch.Tensor
    space: ImageSpace | None = None

    __repr__ = compact_repr

    def grid(self) -> "Image.Image":
        """One row per image: masked, the start (the composite from the masked image's own code), the result and
        the whole generated image (`dgnam inpaint`'s figure shows masked, result and the original)."""
        from .images import grid

        space = _space_of(self)
        columns = (self.masked, self.start, self.result, self.generated)
        rows = [[to_uint8(t[i : i + 1], space)[0] for t in columns] for i in range(len(self.masked))]
        return grid(rows, col_labels=["masked", "start", "result", "generated"])

    def _repr_png_(self) -> bytes:
        return png_bytes(self.grid())


def _space_of(result: Chain | Inpainting) -> ImageSpace:
    if result.space is None:
        raise DgnamError(f"this {type(result).__name__} does not say its images' space (made by hand): set its "
                         f"space, e.g. to the generator's")
    return result.space


def mask_images(images: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Fill the hole with raw 0: the mean colour in a mean-subtracted space (as the released Caffe code's 0)."""
    return images * (1 - mask)


def inpaint(
    generator: Generator,
    dae: nn.Module | None,
    condition: Condition,
    images: torch.Tensor,
    mask: torch.Tensor,
    encoder: nn.Module,
    layer: str,
    space: ImageSpace | None = None,
    config: PPGNConfig | None = None,
) -> Inpainting:
    """PPGN inpainting (released ``7_inpainting.sh`` with ``sampler.py``): fill ``mask``'s hole in ``images`` (raw,
    in ``space``, the encoder's input space by default) with generated content that satisfies ``condition``.

    The chain starts from the code of the masked image (``encoder``'s ``layer``, the layer ``generator`` inverts).
    Each iteration pastes the generated pixels inside the hole and the real ones outside, so the condition's
    gradient reaches ``h`` only through the hole, and adds the context term ``eps4 (real - generated) * outside``
    back-propagated to ``h``, with pixel differences in 0..255 units as in the released code. ``mask`` is
    (1 or B, 1, H, W), 1 in the hole. ``config.reset_every`` is ignored: the chain keeps its start from the image.
    The default ``config`` is the released inpainting setting (:meth:`PPGNConfig.for_inpainting`: 21 updates whose
    step falls from 1 to 1e-32, no noise); the class-sampling setting's 200 constant steps of size 1 walk the fill far
    from its start (``benchmarks/ppgn.py`` measures both).
    """
    config = config or PPGNConfig.for_inpainting()
    config.validate()
    encoder = unwrapped(encoder, "encoder")
    space = space or getattr(encoder, "input_space", None)
    if space is None:
        raise DgnamError("the images' space is unknown: pass space=ImageSpace(...) (or set encoder.input_space)")
    if images.dim() != 4 or tuple(images.shape[1:]) != space.shape:
        raise DgnamError(f"images have shape {tuple(images.shape)}, expected (B, {space.channels}, {space.size[0]}, "
                         f"{space.size[1]}) in the encoder's input space")
    if mask.dim() != 4 or mask.shape[-2:] != images.shape[-2:] or mask.shape[0] not in (1, len(images)):
        raise DgnamError(f"mask has shape {tuple(mask.shape)}; give (1 or B, 1, H, W) matching the images")
    check_prior(dae, generator, layer)
    dev = module_device(generator)
    with _borrowed([generator, dae, encoder, getattr(condition, "model", None)], dev):
        images, mask = images.to(dev), mask.to(dev).float()
        outside = 1 - mask
        masked = mask_images(images, mask)
        enc_space = getattr(encoder, "input_space", None) or space  # the encoder reads its own encoding
        h = generator.check_codes(encode(encoder, layer, convert(masked, space, enc_space)).to(dev))
        clip = code_clip(generator, config.bound)
        rng = _Noise(config.seed, len(images))
        eps1 = torch.full((len(images),), float(config.eps1), device=dev)
        real255 = space.decode(images) * 255.0

        def composite(codes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            gen = convert(generator(codes), generator.space, space)
            return mask * gen + outside * images, gen

        with torch.no_grad():
            start, _ = composite(h)
        hist = []
        for t in range(config.steps):
            h.requires_grad_(True)
            comp, gen = composite(h)
            score = condition(comp, space)
            context = 0.5 * ((real255 - space.decode(gen) * 255.0) * outside).pow(2).flatten(1).sum(1)
            (d_cond,) = torch.autograd.grad(score.sum(), h, retain_graph=config.eps4 > 0)
            d_ctx = torch.autograd.grad(-context.sum(), h)[0] if config.eps4 > 0 else None
            h = h.detach()
            d = config.eps2 * d_cond
            if d_ctx is not None:
                d = d + config.eps4 * d_ctx
            hist.append(score.detach().cpu())
            _step(h, d, dae, eps1, config, rng, clip, t, f"inpainting code at iteration {t}")
        with torch.no_grad():
            result, gen = composite(h)
        return Inpainting(masked=masked.cpu(), result=result.cpu(), generated=gen.cpu(), start=start.cpu(),
                          codes=h.cpu(), score_history=torch.stack(hist, 1) if hist else torch.zeros(len(images), 0),
                          space=space)
