"""Image spaces: how a network's input (or a generator's output) encodes an image, declared as data.

A generator's output and a target's input are each described by an :class:`ImageSpace`. The engine converts between
them through a canonical form, ``x01``: RGB (or gray) in ``[0, 1]``, channel order RGB. Conversions are plain,
differentiable tensor arithmetic, so a Caffe generator (BGR, 0..255 minus the mean, 256 px) drives an ImageNet model in
torchvision's normalization (RGB, 0..1, mean/std, 224 px) without special cases.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, asdict
from typing import Literal, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from .errors import DgnamError

ColorOrder = Literal["RGB", "BGR", "GRAY"]
Fit = Literal["crop", "resize"]

# ITU-R BT.601 luma weights for RGB -> gray.
_LUMA = (0.299, 0.587, 0.114)


@dataclass(frozen=True)
class ImageSpace:
    """How an image is encoded as a tensor ``(B, C, H, W)``.

    ``raw = ((x01 * (hi - lo) + lo) - mean) / std`` per channel, in the space's channel ``color`` order, where ``x01``
    is the image in ``[0, 1]``. ``fit`` says how an image of another size is brought to ``size``: ``"crop"`` takes
    the centre crop when the source is at least as large (as Caffe's 256 -> 227), ``"resize"`` resamples bilinearly.
    """

    size: tuple[int, int]
    color: ColorOrder = "RGB"
    lo: float = 0.0
    hi: float = 1.0
    mean: tuple[float, ...] = (0.0,)
    std: tuple[float, ...] = (1.0,)
    fit: Fit = "crop"

    def __post_init__(self) -> None:
        size = (self.size, self.size) if isinstance(self.size, int) else tuple(self.size)  # size=32: a square
        if len(size) != 2 or any(int(s) < 1 for s in size):
            raise DgnamError(f"ImageSpace size {self.size!r}: give (height, width) in pixels, each >= 1")
        object.__setattr__(self, "size", tuple(int(s) for s in size))
        object.__setattr__(self, "mean", tuple(float(m) for m in self.mean))
        object.__setattr__(self, "std", tuple(float(s) for s in self.std))
        if self.color not in ("RGB", "BGR", "GRAY"):
            raise DgnamError(f"unknown colour order {self.color!r}: use RGB, BGR or GRAY")
        for name, vals in (("mean", self.mean), ("std", self.std)):
            if len(vals) not in (1, self.channels):
                raise DgnamError(f"ImageSpace {name} has {len(vals)} values; give 1 or {self.channels}")
        if any(v <= 0 for v in self.std):
            raise DgnamError(f"ImageSpace std {self.std}: every value must be > 0 (it divides)")
        if not all(math.isfinite(v) for v in (*self.mean, *self.std, self.lo, self.hi)):  # NaN passes the checks
            raise DgnamError(f"ImageSpace mean={self.mean}, std={self.std}, lo={self.lo}, hi={self.hi}: give finite "
                             f"numbers")
        if not self.hi > self.lo:
            raise DgnamError(f"ImageSpace lo={self.lo}, hi={self.hi}: hi must be above lo (the range 0..1 maps onto)")
        if self.fit not in ("crop", "resize"):
            raise DgnamError(f"ImageSpace fit {self.fit!r}: use crop or resize")

    @property
    def channels(self) -> int:
        return 1 if self.color == "GRAY" else 3

    @property
    def shape(self) -> tuple[int, int, int]:
        return (self.channels, *self.size)

    def _vec(self, vals: tuple[float, ...], like: torch.Tensor) -> torch.Tensor:
        v = torch.tensor(vals, dtype=like.dtype, device=like.device)
        return v.view(1, -1, 1, 1)

    def encode(self, x01: torch.Tensor) -> torch.Tensor:
        """``[0, 1]`` RGB/gray (already of this space's channel count and size) -> raw tensor of this space."""
        if self.color == "BGR":
            x01 = x01.flip(1)
        raw = x01 * (self.hi - self.lo) + self.lo
        return (raw - self._vec(self.mean, raw)) / self._vec(self.std, raw)

    def decode(self, raw: torch.Tensor) -> torch.Tensor:
        """raw tensor of this space -> ``[0, 1]`` RGB/gray (not clamped, so gradients pass)."""
        x = raw * self._vec(self.std, raw) + self._vec(self.mean, raw)
        x01 = (x - self.lo) / (self.hi - self.lo)
        if self.color == "BGR":
            x01 = x01.flip(1)
        return x01

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "ImageSpace":
        return cls(**{**d, "size": tuple(d["size"]), "mean": tuple(d["mean"]), "std": tuple(d["std"])})


def convert_channels(x01: torch.Tensor, channels: int) -> torch.Tensor:
    """Gray <-> RGB in ``[0, 1]`` space."""
    c = x01.shape[1]
    if c == channels:
        return x01
    if c == 1 and channels == 3:
        return x01.expand(-1, 3, -1, -1)
    if c == 3 and channels == 1:
        w = torch.tensor(_LUMA, dtype=x01.dtype, device=x01.device).view(1, 3, 1, 1)
        return (x01 * w).sum(1, keepdim=True)
    raise DgnamError(f"cannot convert {c}-channel images to {channels} channels")


def fit_size(x: torch.Tensor, size: tuple[int, int], fit: Fit) -> torch.Tensor:
    """Bring ``x`` (B, C, H, W) to ``size``: centre crop when ``fit == 'crop'`` and the image is large enough,
    else bilinear resize (antialiased when shrinking)."""
    h, w = x.shape[-2:]
    th, tw = size
    if (h, w) == (th, tw):
        return x
    if fit == "crop" and h >= th and w >= tw:
        top, left = (h - th) // 2, (w - tw) // 2
        return x[..., top : top + th, left : left + tw]
    shrink = th < h or tw < w
    return F.interpolate(x, size=(th, tw), mode="bilinear", align_corners=False, antialias=shrink)


def convert(raw: torch.Tensor, src: ImageSpace, dst: ImageSpace) -> torch.Tensor:
    """Convert a batch from one image space to another (differentiable)."""
    if src == dst:
        return raw
    x01 = src.decode(raw)
    x01 = convert_channels(x01, dst.channels)
    x01 = fit_size(x01, dst.size, dst.fit)
    return dst.encode(x01)


def to_uint8(raw: torch.Tensor, space: ImageSpace) -> "list":
    """Decode a batch to a list of HxWxC (or HxW) uint8 numpy arrays for saving."""
    x01 = space.decode(raw.detach().float()).clamp(0, 1)
    arr = (x01 * 255.0 + 0.5).to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
    return [a[..., 0] if a.shape[-1] == 1 else a for a in arr]


#: ``from_uint8`` hands an 8-bit image at least twice this many times larger than the model's input (each side) to
#: Pillow's resize with this ``reducing_gap``: a box average by an integer factor, in uint8, to no less than this many
#: times the input, then an antialiased bilinear resize with the exact geometry. A phone's 108-megapixel photo then no
#: longer becomes 1.3 GB of float32 (3.5 GB at the peak) on its way to 224 x 224. On scikit-image photos scaled up 8 to
#: 40 times, the result is the float path's to within 1.2 grey levels (0.26 on average). Smaller images keep the
#: float path.
PRESHRINK_GAP = 8


def from_uint8(images: Sequence, space: ImageSpace) -> torch.Tensor:
    """A list of HxW or HxWxC uint8 arrays (any size, RGB or gray) -> raw batch in ``space``."""
    from PIL import Image

    th, tw = space.size
    out = []
    for a in images:
        a = np.asarray(a)
        if a.ndim == 3 and a.shape[2] == 4:
            a = a[..., :3]  # alpha dropped, the colour stored under it kept
        if (a.dtype == np.uint8 and (a.ndim == 2 or a.shape[2] == 3)
                and min(a.shape[0] // th, a.shape[1] // tw) >= 2 * PRESHRINK_GAP):
            a = np.asarray(Image.fromarray(np.ascontiguousarray(a)).resize((tw, th), Image.BILINEAR,
                                                                            reducing_gap=PRESHRINK_GAP))
        t = torch.tensor(a, dtype=torch.float32) / 255.0  # a copy: PIL arrays are read-only
        t = t[None] if t.dim() == 2 else t.permute(2, 0, 1)
        t = convert_channels(t[None], space.channels)
        out.append(fit_size(t, space.size, "resize"))  # real photos: resize, never crop away content
    return space.encode(torch.cat(out))


# Common spaces, each with its source.
#: Caffe / CaffeNet and the DeePSiM generators: BGR, 0..255 minus the ILSVRC mean (B, G, R = 104, 117, 123).
CAFFE_MEAN_BGR = (104.0, 117.0, 123.0)


def caffe_space(size: int = 227) -> ImageSpace:
    return ImageSpace(size=(size, size), color="BGR", lo=0.0, hi=255.0, mean=CAFFE_MEAN_BGR, fit="crop")


#: torchvision / timm ImageNet normalization.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def imagenet_space(size: int = 224) -> ImageSpace:
    return ImageSpace(size=(size, size), color="RGB", mean=IMAGENET_MEAN, std=IMAGENET_STD, fit="resize")
