"""What keeps images natural: priors on the generator's code (DGN-AM) and, through the same two hooks, on pixels.

A prior acts in the one optimization loop (:func:`dgnam.optimize.optimize`) in one or both ways:

* ``penalty(code, image)`` returns a per-item value subtracted from the objective before the gradient is taken
  (the paper's ``lambda ||y||^2``, total variation, ...);
* ``after_step(code, state)`` edits the code in place after each step (the released code's decay ``y *= 0.99``, the
  clip to ``[0, U]``, a blur every N steps, ...).
"""

from __future__ import annotations

import math
import numbers
import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Sequence

import torch
import torch.nn.functional as F

from .display import compact_repr
from .errors import DgnamError

if TYPE_CHECKING:
    from .imagespace import ImageSpace

#: DGN-AM code prior, from the paper (Nguyen et al. 2016, Sec. 2) and its released code (``act_max.py``,
#: ``settings.py``): L2 penalty weight lambda ~ 0.005, which the released code applies as a multiplicative decay of
#: the code by 0.99 after each step; each component clipped to [0, U_i], U_i = mean + 3 std of the code over images.
DGNAM_L2_LAMBDA = 0.005
DGNAM_DECAY = 0.99
#: The paper's clip bound U_i = mean + 3 std of component i over real images' codes, as a :meth:`CodeStats.upper`
#: kind (the default everywhere a bound is chosen).
DGNAM_CLIP_BOUND = "mean+3std"
#: The clip's lower end, 0: the code DGN-AM optimizes is the output of a ReLU layer (the paper's fc6, [0, U_i]).
#: A generator of an unbounded latent, such as a GAN's Gaussian z, has none: ``LearnedGenerator(code_lower=None)``.
DGNAM_CODE_LOWER = 0.0
#: Percentiles that :class:`CodeStats` keeps per component.
CODE_PERCENTILES = (1.0, 5.0, 25.0, 50.0, 75.0, 95.0, 99.0, 99.9)


@dataclass
class StepState:
    """What a prior may look at after a step."""

    step: int
    steps: int
    lr: float
    grad: torch.Tensor  # gradient of the objective with respect to the code, before the step


class Prior:
    """Base class: override ``penalty`` and/or ``after_step``."""

    def penalty(self, code: torch.Tensor, image: torch.Tensor) -> torch.Tensor | None:
        return None

    def after_step(self, code: torch.Tensor, state: StepState) -> None:
        return None

    def to_dict(self) -> dict:
        """The prior's settings for ``results.json``; a tensor (a clip's bounds) by its digest, so that a resume with
        other bounds is refused."""
        from .weights import json_safe

        return {"prior": type(self).__name__, **json_safe(vars(self))}


@dataclass(repr=False)
class CodeStats:
    """Per-component statistics of a generator's code over real images: mean, std and percentiles.

    ``upper()`` gives the DGN-AM clip bound ``U`` (mean + 3 std by default, as the paper; or a percentile, or a
    released ``act_range`` bound file loaded with :meth:`from_bounds`).
    """

    mean: torch.Tensor
    std: torch.Tensor
    percentiles: dict[float, torch.Tensor] = field(default_factory=dict)
    count: int = 0
    bounds: torch.Tensor | None = None  # explicit upper bounds (released act_range files)

    __repr__ = compact_repr  # a 4096-component code's statistics printed pages of numbers

    @classmethod
    def from_codes(cls, codes: torch.Tensor, percentiles: Sequence[float] = CODE_PERCENTILES) -> "CodeStats":
        codes = codes.flatten(1).double()
        q = torch.tensor([p / 100.0 for p in percentiles], dtype=codes.dtype)
        qs = torch.quantile(codes, q, dim=0) if len(codes) <= 16_000_000 // max(1, codes.shape[1]) else _chunked_quantile(codes, q)
        return cls(
            mean=codes.mean(0).float(), std=codes.std(0, unbiased=False).float(),
            percentiles={float(p): qs[i].float() for i, p in enumerate(percentiles)}, count=len(codes),
        )

    @classmethod
    def from_bounds(cls, upper: torch.Tensor) -> "CodeStats":
        """Stats that carry only an upper bound per component (the released ``act_range/*/fc6.txt`` files)."""
        upper = upper.flatten().float()
        return cls(mean=torch.zeros_like(upper), std=torch.zeros_like(upper), bounds=upper)

    def upper(self, kind: str = DGNAM_CLIP_BOUND) -> torch.Tensor:
        """The clip bound U per component: ``"mean+Kstd"`` (K any number), ``"pNN"`` (a stored percentile) or
        ``"bounds"`` (the explicit bounds)."""
        if self.bounds is not None and kind in ("bounds", DGNAM_CLIP_BOUND):
            return self.bounds
        try:  # a number where K or NN stands ("mean+std" or "p" was float's "could not convert string to float: ''")
            k = float(kind[5:-3]) if kind.startswith("mean+") and kind.endswith("std") else None
            p = float(kind[1:]) if kind.startswith("p") else None
        except ValueError:
            k = p = math.nan
        if k is not None and math.isfinite(k):
            return self.mean + k * self.std
        if p is not None and math.isfinite(p):
            if p not in self.percentiles:
                raise DgnamError(f"percentile {p} not in these code stats; have {sorted(self.percentiles)}")
            return self.percentiles[p]
        raise DgnamError(f"unknown bound {kind!r}: use mean+3std, pNN or bounds")

    @property
    def dim(self) -> int:
        return self.mean.numel()

    def save(self, path: str | os.PathLike) -> None:
        from .weights import save_safetensors

        tensors = {"mean": self.mean, "std": self.std}
        tensors.update({f"p{p:g}": v for p, v in self.percentiles.items()})
        if self.bounds is not None:
            tensors["bounds"] = self.bounds
        save_safetensors(tensors, path, metadata={"count": str(self.count)})

    @classmethod
    def load(cls, path: str | os.PathLike) -> "CodeStats":
        from safetensors import safe_open

        from .weights import load_state_dict

        t = load_state_dict(path)
        with safe_open(str(path), "pt") as f:
            meta = f.metadata() or {}
        if "mean" not in t or "std" not in t:
            raise DgnamError(f"{path} is not a CodeStats file (needs 'mean' and 'std' tensors)")
        # a file from elsewhere: a key "pad", a count "abc" or a std of another size were tracebacks far from here
        try:
            pct = {float(k[1:]): v for k, v in t.items() if k.startswith("p")}
            count = int(meta.get("count", 0))
        except ValueError:
            pct, count = None, 0
        used = [t["mean"], t["std"], *(pct or {}).values(), *([t["bounds"]] if "bounds" in t else [])]
        if pct is None or count < 0 or any(v.numel() != t["mean"].numel() for v in used):
            raise DgnamError(f"{path} is not a CodeStats file (tensors mean, std, pNN and bounds of one size, a count "
                             f">= 0): recompute it with `dgnam code-stats`")
        return cls(mean=t["mean"], std=t["std"], percentiles=pct, count=count, bounds=t.get("bounds"))


def _chunked_quantile(codes: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    return torch.stack([torch.quantile(codes[:, i], q) for i in range(codes.shape[1])], 1)


def is_code_lower(value) -> bool:
    """Whether ``value`` can be a code's lower end: a finite number, or None for a code without one."""
    return value is None or (isinstance(value, numbers.Real) and not isinstance(value, bool)
                             and math.isfinite(value))


def checked_bounds(upper: torch.Tensor, code_shape: Sequence[int] | None = None,
                   lower: float | None = DGNAM_CODE_LOWER) -> torch.Tensor:
    """``upper`` as a code's clip bounds, refused in one line when they cannot be: another size than the code's,
    NaN/inf, below ``lower``, or all at ``lower`` (every image would be G(lower): nothing left to optimize)."""
    n = upper.numel()
    if code_shape is not None and n != math.prod(code_shape):
        raise DgnamError(f"the code bounds have {n} components for a code of {math.prod(code_shape)}: give code "
                         f"statistics of this generator's code (`dgnam code-stats` over its encoder layer)")
    bad = int((~torch.isfinite(upper)).sum())
    low = 0 if lower is None else int((upper < lower).sum())
    if bad:
        raise DgnamError(f"{bad} of the {n} code bounds are NaN/inf: recompute the code statistics (`dgnam "
                         f"code-stats`)")
    if low:  # the clip [lower, U] would be empty for them
        raise DgnamError(f"{low} of the {n} code bounds are below the clip's lower end {lower:g}: a code that is not "
                         f"a ReLU output needs its own lower end, the generator's code_lower (LearnedGenerator(..., "
                         f"code_lower=-3.0), None for none; a ClipCode prior's lower=)")
    if n and lower is not None and bool((upper == lower).all()):
        raise DgnamError(f"every code bound is {lower:g}, so every image would be G({lower:g}): recompute the code "
                         f"statistics over real images that drive the layer (`dgnam code-stats`, more --limit)")
    return upper


class ClipCode(Prior):
    """Clip every code component to ``[lower, upper_i]`` after each step (DGN-AM: lower 0 because the inverted layer
    is a ReLU output, upper U_i from :class:`CodeStats`). ``upper=None`` clips only from below, ``lower=None`` only
    from above (a latent without a lower end)."""

    def __init__(self, upper: torch.Tensor | None, lower: float | None = DGNAM_CODE_LOWER) -> None:
        if upper is None and lower is None:
            raise DgnamError("ClipCode(None, lower=None) clips nothing: give the bounds U, a lower end, or drop it")
        self.upper = None if upper is None else checked_bounds(upper, lower=lower)
        self.lower = lower

    def after_step(self, code: torch.Tensor, state: StepState) -> None:
        self.clip_(code)

    def clip_(self, code: torch.Tensor) -> None:
        """Clip ``code`` (a batch of codes) in place."""
        if self.upper is not None and self.upper.numel() != code[0].numel():
            checked_bounds(self.upper, code.shape[1:], self.lower)  # the one-line error
        if self.lower is not None:
            code.clamp_(min=self.lower)
        if self.upper is not None:
            torch.minimum(code, self.upper.to(code.device, code.dtype).view(1, *code.shape[1:]), out=code)


class L2Decay(Prior):
    """Multiply the code by ``factor`` after each step: the released code's form of the L2 prior."""

    def __init__(self, factor: float = DGNAM_DECAY) -> None:
        self.factor = factor

    def after_step(self, code: torch.Tensor, state: StepState) -> None:
        code.mul_(self.factor)


class L2Penalty(Prior):
    """Subtract ``lam * ||code||`` from the objective: the paper's form of the L2 prior (Eq. 2, the norm itself, not
    its square). ``squared=True`` subtracts ``lam * ||code||^2``, the usual weight-decay form, whose pull grows with
    the code (its gradient ``2 lam y`` against the norm's ``lam y / ||y||``)."""

    def __init__(self, lam: float = DGNAM_L2_LAMBDA, squared: bool = False) -> None:
        self.lam = lam
        self.squared = squared

    def penalty(self, code: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
        sq = code.flatten(1).pow(2).sum(1)
        return self.lam * (sq if self.squared else (sq + 1e-12).sqrt())  # (the norm's gradient is finite at 0)


def dgnam_code_priors(
    stats: CodeStats | None, clip: bool = True, l2: str = "decay", bound: str = DGNAM_CLIP_BOUND,
    decay: float = DGNAM_DECAY, lam: float = DGNAM_L2_LAMBDA, lower: float | None = DGNAM_CODE_LOWER,
) -> list[Prior]:
    """The DGN-AM code prior: clip to ``[lower, U]`` (the paper's ``[0, U]``) then the L2 prior (``l2`` =
    ``"decay"``, ``"penalty"`` or ``"none"``).

    The order (clip, then decay) is the released code's. Without stats only the lower end is applied; with
    ``lower=None`` (an unbounded latent) only U, and without stats either, no clip.
    """
    priors: list[Prior] = []
    if clip and (stats is not None or lower is not None):
        priors.append(ClipCode(stats.upper(bound) if stats is not None else None, lower=lower))
    if l2 == "decay":
        priors.append(L2Decay(decay))
    elif l2 == "penalty":
        priors.append(L2Penalty(lam))
    elif l2 != "none":
        raise DgnamError(f"unknown L2 form {l2!r}: use decay, penalty or none")
    return priors


# --------------------------------------------------------------------------------------------------------------------
# Pixel-space priors (Yosinski et al. 2015, "Understanding Neural Networks Through Deep Visualization", Sec. 3;
# Mahendran & Vedaldi 2015 for total variation and the alpha-norm). They act on the code of a pixel generator, which
# is the image itself; in a mean-subtracted space (Caffe's, or a normalized one) zero is the mean colour, so decay and
# the clips pull pixels toward the mean, as in the published code.


#: ``scipy.ndimage.gaussian_filter``'s defaults, which Yosinski et al.'s code uses for its blur: the kernel is cut
#: at 4 sigma, and the image is extended by mirroring with its edge pixel repeated (scipy's ``mode="reflect"``).
BLUR_TRUNCATE = 4.0


def _pad_symmetric(x: torch.Tensor, r: int, dim: int) -> torch.Tensor:
    """Extend ``dim`` by ``r`` on both sides as ``d c b a | a b c d | d c b a``, repeating the reflection when ``r``
    exceeds the side (scipy's ``reflect``; torch's ``reflect`` pad is scipy's ``mirror``, without the edge pixel
    repeated, and cannot pad more than the side)."""
    n = x.shape[dim]
    i = torch.arange(-r, n + r, device=x.device) % (2 * n)
    return x.index_select(dim, torch.where(i < n, i, 2 * n - 1 - i))


def gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of ``(B, C, H, W)``, ``sigma`` in pixels (identity for ``sigma <= 0``): the same as
    ``scipy.ndimage.gaussian_filter`` with its defaults, applied per image and channel, as in Yosinski et al.'s code
    (their "blur radius"), for any sigma."""
    if sigma <= 0:
        return x
    r = int(BLUR_TRUNCATE * sigma + 0.5)  # scipy's radius
    t = torch.arange(-r, r + 1, dtype=x.dtype, device=x.device)
    k = torch.exp(-0.5 * (t / sigma) ** 2)
    k = k / k.sum()
    c = x.shape[1]
    x = F.conv2d(_pad_symmetric(x, r, -1), k.view(1, 1, 1, -1).repeat(c, 1, 1, 1), groups=c)  # each axis padded
    return F.conv2d(_pad_symmetric(x, r, -2), k.view(1, 1, -1, 1).repeat(c, 1, 1, 1), groups=c)  # just before its pass


def _check_image_code(code: torch.Tensor, what: str) -> None:
    if code.dim() != 4:
        raise DgnamError(f"{what} acts on images (B, C, H, W) but the code has shape {tuple(code.shape)}: "
                         f"use it with a pixel generator")


class Blur(Prior):
    """Gaussian blur of the image every ``every`` steps (Yosinski et al.: radius 0.5 or 1.0 every 4 steps)."""

    def __init__(self, sigma: float, every: int = 1) -> None:
        if every < 1:
            raise DgnamError(f"blur every {every} steps: give 1 or more")
        self.sigma = sigma
        self.every = every

    def after_step(self, code: torch.Tensor, state: StepState) -> None:
        _check_image_code(code, "Blur")
        if self.sigma > 0 and state.step % self.every == 0:
            code.copy_(gaussian_blur(code, self.sigma))


def _zero_below_percentile(code: torch.Tensor, score: torch.Tensor, percentile: float) -> None:
    """Zero (all channels of) the pixels whose ``score`` (B, H, W) is among the lowest ``percentile`` % per image."""
    flat = score.flatten(1)
    n = flat.shape[1]
    k = int(round(n * percentile / 100.0))
    if k <= 0:
        return
    idx = flat.argsort(dim=1)[:, :k]  # exactly k pixels per image, ties broken by position
    mask = torch.ones_like(flat, dtype=torch.bool).scatter_(1, idx, False).view_as(score)
    code.mul_(mask.unsqueeze(1).to(code.dtype))


class _ClipSmallPixels(Prior):
    """Zero the ``percentile`` % of pixels with the lowest :meth:`score` after each step."""

    def __init__(self, percentile: float) -> None:
        if not 0 <= percentile <= 100:
            raise DgnamError(f"percentile {percentile} must be in [0, 100]")
        self.percentile = percentile

    def score(self, code: torch.Tensor, state: StepState) -> torch.Tensor:
        raise NotImplementedError

    def after_step(self, code: torch.Tensor, state: StepState) -> None:
        _check_image_code(code, type(self).__name__)
        _zero_below_percentile(code, self.score(code, state), self.percentile)


class ClipSmallNorm(_ClipSmallPixels):
    """Set to zero the ``percentile`` % of pixels with the smallest norm over colour channels (Yosinski et al.'s
    "clipping pixels with small norm")."""

    def score(self, code: torch.Tensor, state: StepState) -> torch.Tensor:
        return code.norm(dim=1)


class ClipSmallContribution(_ClipSmallPixels):
    """Set to zero the ``percentile`` % of pixels with the smallest contribution to the activation under a linear
    model, ``|sum_c x_c * dA/dx_c|`` (Yosinski et al.'s "clipping pixels with small contribution")."""

    def score(self, code: torch.Tensor, state: StepState) -> torch.Tensor:
        return (code * state.grad).sum(1).abs()


class ClipToSpace(Prior):
    """Clip every pixel to the valid range of ``space`` (0..1 decoded: 0..255 in Caffe units) after each step: the
    released deep-visualization-toolbox optimizer crops its image to [0, 255] at the start of every iteration, after
    the previous iteration's regularizers."""

    def __init__(self, space: "ImageSpace") -> None:
        self.space = space

    def after_step(self, code: torch.Tensor, state: StepState) -> None:
        _check_image_code(code, "ClipToSpace")
        ends = torch.cat([torch.zeros(1, self.space.channels, 1, 1), torch.ones(1, self.space.channels, 1, 1)])
        lo, hi = self.space.encode(ends.to(code.device, code.dtype))
        torch.maximum(code, torch.minimum(lo, hi), out=code)  # a space's encoding increases with the pixel, but
        torch.minimum(code, torch.maximum(lo, hi), out=code)  # the order costs nothing to be sure of

    def to_dict(self) -> dict:
        return {"prior": type(self).__name__, "space": self.space.to_dict()}


class TotalVariation(Prior):
    """Subtract ``weight * sum((dx^2 + dy^2)^(beta/2))`` over the image (Mahendran & Vedaldi 2015; beta 1 is the
    usual anisotropic-free TV, beta 2 its smooth form)."""

    def __init__(self, weight: float, beta: float = 1.0) -> None:
        self.weight = weight
        self.beta = beta

    def penalty(self, code: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
        dx = image[..., :-1, 1:] - image[..., :-1, :-1]
        dy = image[..., 1:, :-1] - image[..., :-1, :-1]
        tv = (dx.pow(2) + dy.pow(2) + 1e-12).pow(self.beta / 2)
        return self.weight * tv.flatten(1).sum(1)


class AlphaNorm(Prior):
    """Subtract ``weight * sum |x|^alpha`` over the image (Mahendran & Vedaldi 2015: alpha = 6 keeps pixels in range
    without the blur of a plain L2 penalty)."""

    def __init__(self, weight: float, alpha: float = 6.0) -> None:
        self.weight = weight
        self.alpha = alpha

    def penalty(self, code: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
        return self.weight * image.abs().pow(self.alpha).flatten(1).sum(1)
