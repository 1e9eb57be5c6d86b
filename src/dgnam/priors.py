"""What keeps images natural: priors on the generator's code (DGN-AM) and, through the same two hooks, on pixels.

A prior acts in the one optimization loop (:func:`dgnam.optimize.optimize`) in one or both ways:

* ``penalty(code, image)`` returns a per-item value subtracted from the objective before the gradient is taken
  (the paper's ``lambda ||y||^2``, total variation, ...);
* ``after_step(code, state)`` edits the code in place after each step (the released code's decay ``y *= 0.99``, the
  clip to ``[0, U]``, a blur every N steps, ...).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import torch

from .errors import DgnamError

#: DGN-AM code prior, from the paper (Nguyen et al. 2016, Sec. 2) and its released code (``act_max.py``,
#: ``settings.py``): L2 penalty weight lambda ~ 0.005, which the released code applies as a multiplicative decay of
#: the code by 0.99 after each step; each component clipped to [0, U_i], U_i = mean + 3 std of the code over images.
DGNAM_L2_LAMBDA = 0.005
DGNAM_DECAY = 0.99
DGNAM_CLIP_STDS = 3.0
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
        return {"prior": type(self).__name__, **{k: v for k, v in vars(self).items() if not isinstance(v, torch.Tensor)}}


@dataclass
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

    def upper(self, kind: str = "mean+3std") -> torch.Tensor:
        """The clip bound U per component: ``"mean+Kstd"`` (K any number), ``"pNN"`` (a stored percentile) or
        ``"bounds"`` (the explicit bounds)."""
        if self.bounds is not None and kind in ("bounds", "mean+3std"):
            return self.bounds
        if kind.startswith("mean+") and kind.endswith("std"):
            k = float(kind[5:-3])
            return self.mean + k * self.std
        if kind.startswith("p"):
            p = float(kind[1:])
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
        pct = {float(k[1:]): v for k, v in t.items() if k.startswith("p")}
        if "mean" not in t or "std" not in t:
            raise DgnamError(f"{path} is not a CodeStats file (needs 'mean' and 'std' tensors)")
        return cls(mean=t["mean"], std=t["std"], percentiles=pct, count=int(meta.get("count", 0)), bounds=t.get("bounds"))


def _chunked_quantile(codes: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    return torch.stack([torch.quantile(codes[:, i], q) for i in range(codes.shape[1])], 1)


class ClipCode(Prior):
    """Clip every code component to ``[lower, upper_i]`` after each step (DGN-AM: lower 0 because the inverted layer
    is a ReLU output, upper U_i from :class:`CodeStats`). ``upper=None`` clips only from below."""

    def __init__(self, upper: torch.Tensor | None, lower: float = 0.0) -> None:
        self.upper = upper
        self.lower = lower

    def after_step(self, code: torch.Tensor, state: StepState) -> None:
        up = None if self.upper is None else self.upper.to(code.device, code.dtype).view(1, *code.shape[1:])
        code.clamp_(min=self.lower)
        if up is not None:
            torch.minimum(code, up, out=code)


class L2Decay(Prior):
    """Multiply the code by ``factor`` after each step: the released code's form of the L2 prior."""

    def __init__(self, factor: float = DGNAM_DECAY) -> None:
        self.factor = factor

    def after_step(self, code: torch.Tensor, state: StepState) -> None:
        code.mul_(self.factor)


class L2Penalty(Prior):
    """Subtract ``lam * ||code||^2`` from the objective: the paper's form of the L2 prior."""

    def __init__(self, lam: float = DGNAM_L2_LAMBDA) -> None:
        self.lam = lam

    def penalty(self, code: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
        return self.lam * code.flatten(1).pow(2).sum(1)


def dgnam_code_priors(
    stats: CodeStats | None, clip: bool = True, l2: str = "decay", bound: str = "mean+3std",
    decay: float = DGNAM_DECAY, lam: float = DGNAM_L2_LAMBDA,
) -> list[Prior]:
    """The DGN-AM code prior: clip to ``[0, U]`` then the L2 prior (``l2`` = ``"decay"``, ``"penalty"`` or ``"none"``).

    The order (clip, then decay) is the released code's. Without stats only the lower bound 0 is applied.
    """
    priors: list[Prior] = []
    if clip:
        priors.append(ClipCode(stats.upper(bound) if stats is not None else None, lower=0.0))
    if l2 == "decay":
        priors.append(L2Decay(decay))
    elif l2 == "penalty":
        priors.append(L2Penalty(lam))
    elif l2 != "none":
        raise DgnamError(f"unknown L2 form {l2!r}: use decay, penalty or none")
    return priors
