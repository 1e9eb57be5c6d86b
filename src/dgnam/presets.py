"""Published pixel-space methods as named presets: Yosinski et al.'s four settings, Lucid, and pixel L2 + blur.

Each registers itself in :mod:`dgnam.methods`, so ``dgnam visualize --prior NAME`` runs it, ``dgnam priors`` lists
it and ``benchmarks/quality.py`` compares it with DGN-AM.

Yosinski et al.'s settings are published in Caffe's pixel units (0..255, mean subtracted). They run here in exactly
those units on any target: the pixel generator's space is the target's image in 0..255 minus the target's mean colour
(an :class:`~dgnam.imagespace.ImageSpace` declaration, converted to the target's normalization by the engine), so a
learning rate of 100, a decay of 0.3 or a blur radius of 1 mean what they meant in the paper. Blur radii are in pixels
of the target's input, as published for 227-px CaffeNet; on a 28-px target they are relatively 8x stronger.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .generators import FourierGenerator, Generator, PixelGenerator
from .imagespace import ImageSpace
from .methods import Method, MethodSpec, register_method
from .optimize import AMConfig
from .priors import Blur, ClipSmallContribution, ClipSmallNorm, ClipToSpace, L2Decay, Prior
from .transforms import standard_transforms


@dataclass(frozen=True)
class YosinskiSetting:
    """One row of Table 1 of Yosinski et al. 2015 ("Understanding Neural Networks Through Deep Visualization"),
    in Caffe pixel units. ``lr_policy`` is ``"progress"`` (step chosen so the activation would rise by ``progress``
    under a linear model, at most ``lr``) or ``"constant"``."""

    decay: float
    blur_radius: float
    blur_every: int
    small_norm_percentile: float
    small_contribution_percentile: float
    iterations: int
    lr_policy: str
    lr: float
    progress: float = 2.0


#: Table 1 of Yosinski et al. 2015, the four settings (their 3rd is the one used for most of the paper's images).
YOSINSKI_SETTINGS: dict[int, YosinskiSetting] = {
    1: YosinskiSetting(decay=0.0, blur_radius=0.5, blur_every=4, small_norm_percentile=50,
                       small_contribution_percentile=0, iterations=500, lr_policy="progress", lr=100.0, progress=2.0),
    2: YosinskiSetting(decay=0.3, blur_radius=0.0, blur_every=0, small_norm_percentile=20,
                       small_contribution_percentile=0, iterations=750, lr_policy="constant", lr=100.0),
    3: YosinskiSetting(decay=0.0001, blur_radius=1.0, blur_every=4, small_norm_percentile=0,
                       small_contribution_percentile=0, iterations=1000, lr_policy="constant", lr=100.0),
    4: YosinskiSetting(decay=0.0, blur_radius=0.5, blur_every=4, small_norm_percentile=0,
                       small_contribution_percentile=90, iterations=1000, lr_policy="progress", lr=1e8, progress=2.0),
}
#: Initial image: the mean colour plus N(0, 10^2) noise in 0..255 units (our reading of the released
#: ``deep-visualization-toolbox`` optimizer's random start).
YOSINSKI_INIT_STD_255 = 10.0


def caffe_units_space(target: ImageSpace) -> ImageSpace:
    """The target's image in Caffe's pixel units: 0..255 minus the target's mean colour (0 = the mean colour)."""
    mean01 = target.decode(torch.zeros(1, target.channels, 1, 1))  # raw 0 is the mean colour, decoded to RGB
    if target.color == "BGR":  # ImageSpace.mean is in the space's own channel order
        mean01 = mean01.flip(1)
    mean01 = mean01.flatten().tolist()
    return ImageSpace(size=target.size, color=target.color, lo=0.0, hi=255.0, mean=tuple(255.0 * m for m in mean01),
                      fit=target.fit)


def yosinski_priors(s: YosinskiSetting, space: ImageSpace | None = None) -> list[Prior]:
    """The regularizers of one setting, in the released code's order: decay, blur, then the pixel clips; with
    ``space``, then the crop of every pixel to its valid range that the released optimizer makes before each
    iteration's forward pass."""
    priors: list[Prior] = []
    if s.decay > 0:
        priors.append(L2Decay(1.0 - s.decay))
    if s.blur_radius > 0 and s.blur_every > 0:
        priors.append(Blur(s.blur_radius, s.blur_every))
    if s.small_norm_percentile > 0:
        priors.append(ClipSmallNorm(s.small_norm_percentile))
    if s.small_contribution_percentile > 0:
        priors.append(ClipSmallContribution(s.small_contribution_percentile))
    if space is not None:
        priors.append(ClipToSpace(space))
    return priors


def yosinski_config(s: YosinskiSetting) -> AMConfig:
    """Raw-gradient steps (no normalization) with the published learning-rate policy."""
    return AMConfig(steps=s.iterations, lr_start=s.lr, lr_policy=s.lr_policy, normalize="none", progress=s.progress)


def _yosinski(k: int):
    def build(space: ImageSpace, generator: Generator | None, seed: int = 0) -> MethodSpec:
        s = YOSINSKI_SETTINGS[k]
        g = PixelGenerator(caffe_units_space(space), init_std=YOSINSKI_INIT_STD_255 / 255.0, init_center="mean")
        return MethodSpec(generator=g, priors=yosinski_priors(s, g.space), config=yosinski_config(s))

    return build


for _k, _s in YOSINSKI_SETTINGS.items():
    register_method(Method(
        f"yosinski{_k}",
        f"pixel AM, Yosinski et al. 2015 setting {_k}: decay {_s.decay:g}, blur {_s.blur_radius:g} every "
        f"{_s.blur_every}, small-norm clip {_s.small_norm_percentile:g}%, small-contribution clip "
        f"{_s.small_contribution_percentile:g}%, {_s.iterations} it, {_s.lr_policy} lr {_s.lr:g}",
        _yosinski(_k), source="Yosinski et al. 2015, Table 1",
    ))


def _lucid(space: ImageSpace, generator: Generator | None, seed: int = 0) -> MethodSpec:
    g = FourierGenerator(space.size, channels=space.channels)
    return MethodSpec(generator=g, priors=[], config=g.default_config(),
                      transforms=standard_transforms(max(space.size), seed=seed))


register_method(Method(
    "lucid", "Fourier parametrization + decorrelated colour + jitter/scale/rotate, Adam lr 0.05, 512 steps",
    _lucid, source="Olah et al. 2017 (Lucid: Fourier image, decorrelated colour, standard_transforms)",
))

#: ``pixel-l2-blur``: the plain pixel loop with Yosinski et al.'s setting-3 regularizers (decay 1e-4 per step,
#: Gaussian blur of radius 1 every 4 steps): the classic "L2 + blur" baseline at the DGN-AM step schedule.
PIXEL_L2_BLUR = YOSINSKI_SETTINGS[3]


def _pixel_l2_blur(space: ImageSpace, generator: Generator | None, seed: int = 0) -> MethodSpec:
    g = PixelGenerator(space)
    s = PIXEL_L2_BLUR
    return MethodSpec(generator=g, priors=[L2Decay(1.0 - s.decay), Blur(s.blur_radius, s.blur_every)],
                      config=g.default_config())


register_method(Method(
    "pixel-l2-blur", "plain pixel loop + L2 decay 1e-4 + Gaussian blur radius 1 every 4 steps", _pixel_l2_blur,
    source="Yosinski et al. 2015 setting 3 regularizers",
))
