"""One optimization loop for every method: gradient ascent on a generator's code to excite chosen units.

DGN-AM (Nguyen et al. 2016) is this loop with a learned generator and its code prior; pixel-space AM is the same loop
with :class:`~dgnam.generators.PixelGenerator`. Each batch item has its own unit and its own step size, and the target
runs in eval mode, so no batch item's step depends on another's: a batch of units x restarts computes what running
them one at a time computes. Only float rounding differs with the batch's shape, and DGN-AM's lr of 8 amplifies it
over 200 steps into visibly different images, so a run reproduces exactly at its own batch size (``results.json``
records it).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Callable, Sequence

import torch
from torch import nn

from .errors import DgnamError
from .generators import Generator
from .imagespace import ImageSpace, convert, fit_size
from .priors import Prior, StepState
from .transforms import Transform
from .units import DGNAM_RELU_GRADIENT, LayerReader, Unit, check_relu_gradient, unit_activations

#: DGN-AM defaults from the released code (``act_max.py`` with the settings of the paper's figures): 200 iterations,
#: step size falling linearly from 8.0 to 1e-10, each step normalized by the mean absolute gradient.
DGNAM_STEPS = 200
DGNAM_LR_START = 8.0
DGNAM_LR_END = 1e-10
#: Median of the released CaffeNet fc6 bounds (``act_range/3x/fc6.txt`` of the DGN-AM release; integers 3..17):
#: the code scale for which ``DGNAM_LR_START`` was chosen.
RELEASED_FC6_MEDIAN_BOUND = 12.0
#: Adam's defaults in TensorFlow 1 (``tf.train.AdamOptimizer``), which Lucid uses.
ADAM_BETAS = (0.9, 0.999)
ADAM_EPS = 1e-8


@dataclass
class AMConfig:
    """Step settings of the loop.

    ``normalize="mean_abs"`` is the released rule ``y += lr / mean|g| * g`` (per batch item); ``"none"`` uses the raw
    gradient (Yosinski et al.'s constant-lr setting). ``lr_policy`` is ``"linear"`` (lr_start -> lr_end over the
    run) or ``"constant"`` (lr_start); ``"progress"`` (Yosinski et al.) scales the raw step so that the objective would
    rise by ``progress`` under a linear model, capped at ``lr_start`` (a raw step: with ``normalize="none"`` only).
    ``optimizer="adam"`` replaces the normalized step by Adam (Lucid's optimizer: ``tf.train.AdamOptimizer(0.05)``
    with TensorFlow's default betas and epsilon); its moments are kept per element, so batching still changes nothing
    but float rounding. ``relu_gradient`` is how a unit read at an ``nn.ReLU``'s (or ``nn.ReLU6``'s) output is differentiated: ``"pre"``
    (the released code's, :data:`dgnam.units.RELU_GRADIENTS`) through the ReLU's input, ``"exact"`` through the ReLU.
    """

    steps: int = DGNAM_STEPS
    lr_start: float = DGNAM_LR_START
    lr_end: float = DGNAM_LR_END
    lr_policy: str = "linear"
    normalize: str = "mean_abs"
    progress: float = 2.0
    optimizer: str = "sgd"
    adam_betas: tuple[float, float] = ADAM_BETAS
    adam_eps: float = ADAM_EPS
    relu_gradient: str = DGNAM_RELU_GRADIENT

    def __post_init__(self) -> None:
        # checked when made: a run refused at its first step would leave a folder that its corrected call must resume
        for name, value, allowed in (("optimizer", self.optimizer, ("sgd", "adam")),
                                     ("lr_policy", self.lr_policy, ("linear", "constant", "progress")),
                                     ("normalize", self.normalize, ("mean_abs", "none"))):
            if value not in allowed:
                raise DgnamError(f"unknown {name} {value!r}: use {', '.join(allowed)}")
        check_relu_gradient(self.relu_gradient)

    def lr(self, step: int) -> float:
        if self.lr_policy == "linear":
            return self.lr_start + (self.lr_end - self.lr_start) * step / self.steps
        if self.lr_policy in ("constant", "progress"):
            return self.lr_start
        raise DgnamError(f"unknown lr policy {self.lr_policy!r}: use linear, constant or progress")

    def to_dict(self) -> dict:
        return asdict(self)


def bound_scaled_lr(upper: torch.Tensor, lr: float = DGNAM_LR_START) -> float:
    """The starting learning rate that moves a code with bounds ``upper`` by the same fraction of a typical bound per
    step as the released ``lr`` moves CaffeNet's fc6 code: ``lr * median(upper) / 12``.

    The released step ``lr / mean|g| * g`` changes each component by ``lr`` on average whatever the code's scale, so
    the published 8.0 is too large for a generator whose bounds are smaller than CaffeNet fc6's (the step-size
    table in benchmarks/RESULTS.md); this is a deviation from the paper, to be chosen explicitly.
    """
    median = upper.flatten().float().median()
    if not float(median) > 0 or not math.isfinite(float(median)):  # (a sparse layer, or statistics of few images)
        raise DgnamError(f"the median code bound is {float(median):g}, so the bound-scaled learning rate would be "
                         f"{lr * float(median) / RELEASED_FC6_MEDIAN_BOUND:g}: recompute the code statistics over more "
                         f"real images, or give the learning rate yourself (--lr)")
    return float(lr * median / RELEASED_FC6_MEDIAN_BOUND)  # in float32, as the published figures were made


@dataclass
class AMResult:
    """Per batch item: final and best code, activation, and the step at which the best was seen. Activations are raw;
    the best is the highest objective, so for a minimized unit (``sign=-1``) the lowest activation. Of equal
    objectives the latest is kept: a capped unit (a ReLU6 at 6) reaches its cap within a few steps, while the image
    goes on changing under the steps that follow the ReLU's input (``relu_gradient="pre"``); keeping the first step
    at the cap kept an image of noise as the best."""

    codes: torch.Tensor
    best_codes: torch.Tensor
    activations: torch.Tensor
    best_activations: torch.Tensor
    best_steps: torch.Tensor
    history: list[torch.Tensor] = field(default_factory=list)  # activation per step, each (B,)
    #: per item, the step at which its code or activation became NaN/inf (-1: never). Such an item is kept at its
    #: last finite code from then on, so that one diverging unit does not cost the batch (or, on resume, the run).
    diverged_steps: torch.Tensor | None = None
    #: per item, whether the activation kept its start value through the run: the unit did not respond to any step
    #: (a ReLU unit that is 0 on every image the generator makes, say)
    unchanged: torch.Tensor | None = None




class Pipeline(nn.Module):
    """code -> generator image -> target's input space -> transforms -> activations of the requested units."""

    def __init__(self, generator: Generator, model: nn.Module, units: Sequence[Unit], target_space: ImageSpace,
                 transforms: Sequence[Transform] = ()) -> None:
        super().__init__()
        self.generator = generator
        self.reader = LayerReader(model, [u.layer for u in units])
        self.target_space = target_space
        self.transforms = list(transforms)

    def images(self, codes: torch.Tensor) -> torch.Tensor:
        return self.generator(codes)

    def activations(self, units: Sequence[Unit], raw: torch.Tensor, step: int | None = None,
                     relu_gradient: str = "exact") -> torch.Tensor:
        """Activations of ``units`` on generator images ``raw``; the transforms run when ``step`` is given (during
        optimization), and their output is brought back to the target's size by its space's fit. ``relu_gradient``
        as in :class:`AMConfig` (it changes the gradient only)."""
        x = convert(raw, self.generator.space, self.target_space)
        if step is not None and self.transforms:
            for t in self.transforms:
                x = t(x, step)
            x = fit_size(x, self.target_space.size, self.target_space.fit)
        return unit_activations(self.reader(x, relu_gradient), units)


def _nonfinite(acts: torch.Tensor, codes: torch.Tensor) -> torch.Tensor:
    """Per batch item: whether its activation or code is NaN/inf."""
    return ~torch.isfinite(acts) | ~torch.isfinite(codes.flatten(1)).all(1)


def _check_finite(acts: torch.Tensor, codes: torch.Tensor, units: Sequence[Unit], step: int) -> None:
    bad = _nonfinite(acts, codes)
    if bad.any():
        names = sorted({units[i].address for i in bad.nonzero().flatten().tolist()})
        if step == 0:
            raise DgnamError(f"NaN/inf in the start code or its activation for unit(s) {', '.join(names)}: check the "
                             f"model (it gives NaN/inf on these images) and the start codes")
        raise DgnamError(f"NaN/inf in the code or activation at step {step} for unit(s) {', '.join(names)}: "
                         f"lower the learning rate or check the model")


def optimize(
    pipeline: Pipeline,
    units: Sequence[Unit],
    codes: torch.Tensor,
    config: AMConfig,
    priors: Sequence[Prior] = (),
    on_step: Callable[[int], None] | None = None,
    keep_history: bool = False,
) -> AMResult:
    """Maximize ``units[b]`` on ``G(codes[b])`` for every batch item b (a unit with ``sign=-1``: maximize minus its
    activation, so the same steps, priors and best-keeping minimize it). The result's activations are the raw ones,
    whatever the sign: a minimized unit's fall, its best the lowest seen.

    The reported result is the last code (the released code reports instead the last iteration's image G(h) plus
    that iteration's image-space step, before the code update: at that step's lr of 0.04 of 8 the two barely differ,
    and only a code can be saved and resumed); the code with the highest activation seen is kept too (with
    transforms, seen on the step's transformed view; its reported activation is then that of the untransformed image,
    and the final code replaces it when the final image scores higher).

    An item whose code, activation or gradient turns NaN/inf during the run is kept at its last finite code from
    then on and reported in ``diverged_steps``; the others go on. At the start code there is nothing finite to keep,
    so NaN/inf there is an error.
    """
    if len(units) != len(codes):
        raise DgnamError(f"{len(units)} units for {len(codes)} codes: give one unit per code")
    codes = pipeline.generator.check_codes(codes).detach().clone()
    b = len(codes)
    best_codes = codes.clone()
    best_acts = torch.full((b,), -float("inf"), device=codes.device)
    best_steps = torch.zeros(b, dtype=torch.long)
    diverged = torch.full((b,), -1, dtype=torch.long)
    frozen = torch.zeros(b, dtype=torch.bool, device=codes.device)
    prev_codes, prev_acts = codes, None
    start_acts, changed = None, torch.zeros(b, dtype=torch.bool, device=codes.device)
    history = []
    if config.optimizer not in ("sgd", "adam"):
        raise DgnamError(f"unknown optimizer {config.optimizer!r}: use sgd or adam")
    if config.lr_policy == "progress" and (config.normalize != "none" or config.optimizer != "sgd"):
        # a normalized or Adam step has its own size: the progress rule, which sizes the raw gradient's step, would
        # silently be a constant lr
        raise DgnamError(f"lr_policy='progress' sizes the raw gradient's step (Yosinski et al.): use it with "
                         f"normalize='none' and optimizer='sgd', not normalize={config.normalize!r}, "
                         f"optimizer={config.optimizer!r}")
    negated = torch.tensor([u.sign < 0 for u in units], device=codes.device)

    def signed(acts: torch.Tensor) -> torch.Tensor:
        """The objective of each item from its activation, and back (the sign is its own inverse)."""
        return torch.where(negated, -acts, acts)

    adam_m = torch.zeros_like(codes) if config.optimizer == "adam" else None
    adam_v = torch.zeros_like(codes) if config.optimizer == "adam" else None
    for step in range(config.steps):
        codes.requires_grad_(True)
        raw = pipeline.images(codes)
        acts = signed(pipeline.activations(units, raw, step, config.relu_gradient))  # from here on, what is maximized
        if not acts.requires_grad:  # torch's error ("element 0 of tensors does not require grad") names no fix, and
            # a penalty prior would hide it: the loop would optimize the prior alone
            raise DgnamError(f"unit(s) {', '.join(sorted({u.address for u in units}))} do not depend differentiably "
                             f"on the image (the model computes them under torch.no_grad() or detaches its input): "
                             f"activation maximization needs their gradient, so remove that from the forward")
        objective = acts
        for p in priors:
            pen = p.penalty(codes, raw)
            if pen is not None:
                objective = objective - pen
        (grad,) = torch.autograd.grad(objective.sum(), codes)
        codes = codes.detach()
        acts = acts.detach()
        if prev_acts is None:  # the start: nothing finite to keep
            _check_finite(acts, codes, units, step)
        new_bad = (_nonfinite(acts, codes) | ~torch.isfinite(grad.flatten(1)).all(1)) & ~frozen
        if new_bad.any():
            # keep such an item where it last was finite: its code as of this step when only the gradient broke,
            # else the previous step's code and activation
            back = new_bad & _nonfinite(acts, codes)
            codes = torch.where(back.view(-1, *[1] * (codes.dim() - 1)), prev_codes, codes)
            acts = torch.where(back, prev_acts, acts) if prev_acts is not None else acts
            frozen |= new_bad
            diverged[new_bad.cpu()] = step
        if frozen.any():
            grad = torch.where(frozen.view(-1, *[1] * (grad.dim() - 1)), torch.zeros_like(grad), grad)
            acts = torch.where(frozen & ~torch.isfinite(acts), -float("inf"), acts)
        prev_codes, prev_acts = codes.clone(), acts.clone()
        start_acts = acts.clone() if start_acts is None else start_acts
        changed |= acts != start_acts
        better = (acts > best_acts) | ((acts == best_acts) & ~frozen)  # ties: the latest (AMResult); a kept item stays
        best_acts = torch.where(better, acts, best_acts)
        best_codes[better] = codes[better]
        best_steps[better.cpu()] = step
        if keep_history:
            history.append(signed(acts).cpu())
        lr = config.lr(step)
        with torch.no_grad():
            flat = grad.flatten(1)
            if adam_m is not None:
                b1, b2 = config.adam_betas
                adam_m.mul_(b1).add_(grad, alpha=1 - b1)
                adam_v.mul_(b2).addcmul_(grad, grad, value=1 - b2)
                update = (adam_m / (1 - b1 ** (step + 1))) / ((adam_v / (1 - b2 ** (step + 1))).sqrt() + config.adam_eps)
                codes += lr * update
            elif config.normalize == "mean_abs":
                scale = flat.abs().mean(1)
                step_size = torch.where(scale > 0, lr / scale.clamp_min(1e-30), torch.zeros_like(scale))
            elif config.normalize == "none":
                step_size = torch.full((b,), lr, device=codes.device)
                if config.lr_policy == "progress":
                    # Yosinski et al.: choose the step so that the objective would rise by `progress` under a
                    # linear model (progress = step * |g|^2), never more than lr_start.
                    gg = flat.pow(2).sum(1)
                    step_size = torch.where(gg > 0, (config.progress / gg.clamp_min(1e-30)).clamp(max=lr), step_size)
            else:
                raise DgnamError(f"unknown step normalization {config.normalize!r}: use mean_abs or none")
            if adam_m is None:
                codes += step_size.view(-1, *[1] * (codes.dim() - 1)) * grad
            state = StepState(step=step, steps=config.steps, lr=lr, grad=grad)
            for p in priors:
                p.after_step(codes, state)
            if frozen.any():  # a prior's decay or clip must not move a kept code either
                codes.copy_(torch.where(frozen.view(-1, *[1] * (codes.dim() - 1)), prev_codes, codes))
        if on_step is not None:
            on_step(step)
    with torch.no_grad():
        final = signed(pipeline.activations(units, pipeline.images(codes)))
        if pipeline.transforms:  # the best was picked on randomly transformed views: report it on the image as shown
            best_acts = signed(pipeline.activations(units, pipeline.images(best_codes)))
    if prev_acts is None:
        _check_finite(final, codes, units, config.steps)
    back = _nonfinite(final, codes) & ~frozen  # the last update broke it: keep the last step's code
    if back.any():
        codes = torch.where(back.view(-1, *[1] * (codes.dim() - 1)), prev_codes, codes)
        final = torch.where(back, prev_acts, final)
        diverged[back.cpu()] = config.steps
    changed |= final != (final if start_acts is None else start_acts)
    better = (final > best_acts) | ((final == best_acts) & ~frozen)
    best_acts = torch.where(better, final, best_acts)
    best_codes[better] = codes[better]
    best_steps[better.cpu()] = config.steps
    if keep_history:
        history.append(signed(final).cpu())
    return AMResult(codes=codes, best_codes=best_codes, activations=signed(final), best_activations=signed(best_acts),
                    best_steps=best_steps, history=history, diverged_steps=diverged,
                    unchanged=~changed.cpu() if config.steps else torch.zeros(b, dtype=torch.bool))
