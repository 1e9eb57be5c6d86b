"""Transformations between the generator and the target: random jitter, scale, rotation and padding.

Applied to the image in the target's input space before the target sees it, for any method (pixel AM, Lucid's
Fourier parametrization, DGN-AM), so the optimized image must excite the unit under small shifts and zooms rather
than through one fragile pixel pattern (Mordvintsev et al. 2015; Olah et al. 2017, "Feature Visualization").

Randomness is a function of ``(seed, step)`` only, and every batch item gets the same draw at a step, so which units
and restarts share a batch never changes what is drawn (the engine's batching rule; float rounding aside, see
:mod:`dgnam.optimize`). After the chain the image is brought
back to the target's size by the target space's own fit (centre crop or resize), so fixed-size targets work.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol, Sequence

import torch
import torch.nn.functional as F

from .errors import DgnamError


class Transform(Protocol):
    """``t(x, step) -> x'`` on a batch ``(B, C, H, W)`` in the target's input space."""

    def __call__(self, x: torch.Tensor, step: int) -> torch.Tensor: ...


def _rng(seed: int, step: int, salt: int) -> torch.Generator:
    return torch.Generator().manual_seed((seed * 1_000_003 + step * 7919 + salt) % (2**63 - 1))


@dataclass
class Pad:
    """Pad every side by ``pixels``: ``mode`` ``"constant"`` (``value`` in the target's raw space: 0 is the mean
    colour of a normalized space) or ``"reflect"``. Lucid pads by 12 (in a 224 image) before jittering."""

    pixels: int
    mode: str = "constant"
    value: float = 0.0

    def __call__(self, x: torch.Tensor, step: int) -> torch.Tensor:
        if self.pixels <= 0:
            return x
        p = self.pixels
        if self.mode == "constant":
            return F.pad(x, (p, p, p, p), mode="constant", value=self.value)
        return F.pad(x, (p, p, p, p), mode=self.mode)


@dataclass
class Jitter:
    """Shift by a random integer offset in ``0..pixels`` in each direction: Lucid's ``jitter(d)``, a random crop of
    side ``H - d`` (the image shrinks by ``pixels`` in all)."""

    pixels: int
    seed: int = 0

    def __call__(self, x: torch.Tensor, step: int) -> torch.Tensor:
        if self.pixels <= 0:
            return x
        j = self.pixels
        dy, dx = torch.randint(0, j + 1, (2,), generator=_rng(self.seed, step, 1)).tolist()
        h, w = x.shape[-2:]
        return x[..., dy : h - j + dy, dx : w - j + dx]


@dataclass
class RandomScale:
    """Zoom by a factor drawn from ``scales`` (Lucid: 1 + (i - 5) / 50 for i in 0..10), bilinear."""

    scales: Sequence[float]
    seed: int = 0

    def __call__(self, x: torch.Tensor, step: int) -> torch.Tensor:
        i = int(torch.randint(0, len(self.scales), (1,), generator=_rng(self.seed, step, 2)))
        s = float(self.scales[i])
        if s == 1.0:
            return x
        h, w = x.shape[-2:]
        return F.interpolate(x, size=(max(1, round(h * s)), max(1, round(w * s))), mode="bilinear", align_corners=False)


@dataclass
class RandomRotate:
    """Rotate about the centre by an angle (degrees) drawn from ``angles`` (Lucid: -10..10, 0 more often), bilinear, zeros
    (the mean colour of a normalized space) outside."""

    angles: Sequence[float]
    seed: int = 0

    def __call__(self, x: torch.Tensor, step: int) -> torch.Tensor:
        i = int(torch.randint(0, len(self.angles), (1,), generator=_rng(self.seed, step, 3)))
        a = math.radians(float(self.angles[i]))
        if a == 0.0:
            return x
        theta = torch.tensor([[math.cos(a), -math.sin(a), 0.0], [math.sin(a), math.cos(a), 0.0]], dtype=x.dtype,
                             device=x.device).expand(len(x), 2, 3)
        grid = F.affine_grid(theta, list(x.shape), align_corners=False)
        return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


#: Lucid's ``transforms.standard_transforms`` (lucid/optvis/transform.py), in pixels of a 224 image:
#: pad 12, jitter 8, scale 1 + (i - 5) / 50, rotate by one of ``list(range(-10, 11)) + 5 * [0]`` degrees (0 drawn
#: 6 times in 26), jitter 4. Deviations: the pad is the mean colour (Lucid: 0.5 grey), scaled sizes are rounded
#: (Lucid truncates), rotation is bilinear (TF's default is nearest).
LUCID_PAD = 12
LUCID_JITTER = (8, 4)
LUCID_SCALES = tuple(1 + (i - 5) / 50 for i in range(11))
LUCID_ANGLES = tuple(range(-10, 11)) + 5 * (0,)


def standard_transforms(size: int = 224, seed: int = 0) -> list[Transform]:
    """Lucid's standard chain, its pixel amounts scaled from 224 to an image side of ``size``."""
    if size <= 0:
        raise DgnamError(f"image size {size} must be positive")
    k = size / 224

    def px(v: int) -> int:
        return max(1, round(v * k))

    return [Pad(px(LUCID_PAD)), Jitter(px(LUCID_JITTER[0]), seed), RandomScale(LUCID_SCALES, seed),
            RandomRotate(LUCID_ANGLES, seed), Jitter(px(LUCID_JITTER[1]), seed + 1)]
