"""Where images come from: a generator maps a batch of codes to images in its declared :class:`ImageSpace`.

Learned generators (DeePSiM, inverting an encoder layer) and pixel parametrizations (the image itself is the code)
stand behind the same interface, so DGN-AM and the pixel-space baselines share one optimization loop. How a generator's
output reaches a target (colour order, value range, crop or resize, the target's normalization) is not code in the
generator but :func:`dgnam.imagespace.convert` between two declared spaces.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from .errors import DgnamError, first_line
from .imagespace import ImageSpace
from .modules import module_device, module_dtype, require_module
from .priors import DGNAM_CODE_LOWER, CodeStats, Prior, dgnam_code_priors, is_code_lower


class Generator(nn.Module):
    """Codes ``(B, *code_shape)`` -> images ``(B, C, H, W)`` in ``self.space``.

    Subclasses also say how a code is initialized (``init_codes``) and which priors and step settings they are used
    with by default (``default_priors``, ``default_config``), so that choosing a generator chooses a method.
    """

    code_shape: tuple[int, ...]
    space: ImageSpace
    code_stats: CodeStats | None = None
    #: the code's lowest value, which PPGN's chains are clipped to: none for a generator that declares no range (its
    #: default priors clip nothing either); :class:`LearnedGenerator` has the paper's 0 unless told otherwise
    code_lower: float | None = None
    method: str = "custom"

    def init_codes(self, seeds: Sequence[int], mode: str = "randn") -> torch.Tensor:
        """One code per seed, each drawn from its own seeded generator so batching never changes a result."""
        if mode == "zeros":
            return torch.zeros(len(seeds), *self.code_shape)
        if mode != "randn":
            raise DgnamError(f"unknown init {mode!r}: use randn, zeros, or give codes (e.g. from `dgnam encode`)")
        return torch.stack([torch.randn(self.code_shape, generator=torch.Generator().manual_seed(int(s))) for s in seeds])

    def default_priors(self) -> list[Prior]:
        return []

    def default_config(self):
        from .optimize import AMConfig

        return AMConfig()

    def check_codes(self, codes: torch.Tensor) -> torch.Tensor:
        """``codes`` in this generator's code shape and dtype (float64 codes from numpy, say, would not run a float32
        network). Flat codes (N, D), as :func:`~dgnam.units.encode` gives them, are reshaped to a shaped code and shaped
        codes are flattened for a flat one; two different shapes of the same size (an image in HWC order for CHW) are
        refused, since reshaping would scramble them."""
        codes = codes.to(module_dtype(self))
        if not bool(torch.isfinite(codes).all()):
            raise DgnamError("the codes contain NaN or inf: give finite start codes (from dgnam encode, say)")
        if tuple(codes.shape[1:]) != tuple(self.code_shape):
            flat = codes.dim() == 2 or len(self.code_shape) == 1
            if flat and codes[0].numel() == int(torch.tensor(self.code_shape).prod()):
                return codes.reshape(len(codes), *self.code_shape)
            raise DgnamError(f"codes have shape {tuple(codes.shape[1:])} per item, generator expects {tuple(self.code_shape)}")
        return codes


class LearnedGenerator(Generator):
    """A trained generator network (DeePSiM) with its code statistics: the DGN-AM prior.

    Defaults are the paper's: codes from N(0, 1), clip to ``[0, U]`` with U = mean + 3 std, decay 0.99. The lower
    end 0 is there because the paper's code is a ReLU layer's output. Any other generator of images works too, e.g.
    a GAN's, given its code range: ``code_lower=-3.0`` with ``code_stats`` of mean 0 and std 1 clips z to [-3, 3];
    ``code_lower=None`` leaves it unbounded below (without ``code_stats`` the default prior is then the L2 decay
    alone, a Gaussian prior on the code).
    """

    method = "dgn-am"

    def __init__(self, net: nn.Module, code_shape: Sequence[int], space: ImageSpace,
                 code_stats: CodeStats | None = None, name: str = "generator", code_layer: str | None = None,
                 code_lower: float | None = DGNAM_CODE_LOWER) -> None:
        super().__init__()
        self.net = net
        self.code_shape = tuple(code_shape)
        self.space = space
        self.code_stats = code_stats
        self.name = name
        #: the encoder layer whose output is the code (zoo entries know it), so priors on codes can be matched to it
        self.code_layer = code_layer
        if not is_code_lower(code_lower):
            raise DgnamError(f"code_lower={code_lower!r}: give the code's lowest value as a number (0 for a ReLU "
                             f"layer's code), or None for a code without one")
        #: the code's lowest value: 0 for a ReLU layer's code (the paper's), None for an unbounded latent
        self.code_lower = None if code_lower is None else float(code_lower)

    def forward(self, code: torch.Tensor) -> torch.Tensor:
        return self.net(code)

    def default_priors(self) -> list[Prior]:
        return dgnam_code_priors(self.code_stats, lower=self.code_lower)


class PixelGenerator(Generator):
    """The image is the code (raw values of ``space``): plain pixel-space activation maximization.

    ``init_std`` is the standard deviation of the initial noise as a fraction of the value range (Yosinski et al.
    start from zero or small noise around the mean image).
    """

    method = "pixel"
    #: Plain pixel AM in this toolkit: the DGN-AM loop (normalized steps, linear decay to ~0) with lr in units of the
    #: [0, 1] value range per step; chosen so that 200 steps can saturate pixels, no prior.
    PIXEL_LR = 0.05

    def __init__(self, space: ImageSpace, init_std: float = 0.1, init_center: str = "grey") -> None:
        super().__init__()
        if init_center not in ("grey", "mean"):
            raise DgnamError(f"unknown init_center {init_center!r}: use grey or mean")
        self.space = space
        self.code_shape = space.shape
        self.init_std = init_std
        self.init_center = init_center
        self.name = "pixels"

    def forward(self, code: torch.Tensor) -> torch.Tensor:
        return code

    @property
    def value_scale(self) -> float:
        """How many raw units one unit of the [0, 1] range spans (averaged over channels)."""
        return (self.space.hi - self.space.lo) / (sum(self.space.std) / len(self.space.std))

    def init_codes(self, seeds: Sequence[int], mode: str = "randn") -> torch.Tensor:
        """Mid-grey (or, with ``init_center="mean"``, the space's mean colour, code 0) plus seeded noise."""
        if self.init_center == "mean":
            grey = torch.zeros(1, *self.code_shape)
        else:
            grey = self.space.encode(torch.full((1, *self.code_shape), 0.5))
        if mode == "zeros":
            return grey.expand(len(seeds), *self.code_shape).clone()
        noise = super().init_codes(seeds, mode)
        return grey + noise * self.init_std * self.value_scale

    def default_config(self):
        from .optimize import AMConfig

        return AMConfig(lr_start=self.PIXEL_LR * self.value_scale)


#: Lucid's colour decorrelation (lucid/optvis/param/color.py): the square root of ImageNet's colour correlation
#: from its SVD, normalized by the largest column norm.
LUCID_COLOR_CORRELATION_SVD_SQRT = ((0.26, 0.09, 0.02), (0.27, 0.00, -0.05), (0.27, -0.09, 0.03))
#: Lucid's Fourier parametrization (lucid/optvis/param/spatial.py ``fft_image``): initial spectrum std 0.01,
#: amplitudes scaled by 1 / frequency (decay power 1), the image divided by 4 ("magic").
FOURIER_INIT_STD = 0.01
FOURIER_DECAY_POWER = 1.0
FOURIER_MAGIC = 4.0


class FourierGenerator(Generator):
    """Lucid's Fourier-space image parametrization with decorrelated colour (Olah et al. 2017).

    The code is the image's real 2-d spectrum per channel, ``(C, H, W // 2 + 1, 2)`` (real and imaginary parts),
    scaled by 1 / frequency so every frequency learns at the same rate; an inverse FFT gives the image, colour is
    decorrelated with ImageNet's colour correlation and a sigmoid maps it into ``[0, 1]``. Gray images skip the colour
    step. The output space is plain ``[0, 1]`` at the target's size; the engine converts it to the target's input.
    """

    method = "fourier"

    def __init__(self, size: tuple[int, int], channels: int = 3, decorrelate: bool = True,
                 decay_power: float = FOURIER_DECAY_POWER, init_std: float = FOURIER_INIT_STD) -> None:
        super().__init__()
        if channels not in (1, 3):
            raise DgnamError(f"FourierGenerator makes gray or RGB images, not {channels} channels")
        h, w = int(size[0]), int(size[1])
        self.space = ImageSpace(size=(h, w), color="GRAY" if channels == 1 else "RGB", lo=0.0, hi=1.0, fit="crop")
        fy = torch.fft.fftfreq(h)[:, None]
        fx = torch.fft.rfftfreq(w)[None, :]
        freqs = (fx**2 + fy**2).sqrt()
        self.register_buffer("scale", (1.0 / freqs.clamp_min(1.0 / max(h, w)) ** decay_power)[None, None])
        c = torch.tensor(LUCID_COLOR_CORRELATION_SVD_SQRT)
        self.register_buffer("color", c / c.norm(dim=0).max())
        self.decorrelate = decorrelate and channels == 3
        self.code_shape = (channels, h, w // 2 + 1, 2)
        self.init_std = init_std
        self.name = "fourier"

    def init_codes(self, seeds: Sequence[int], mode: str = "randn") -> torch.Tensor:
        return super().init_codes(seeds, mode) * self.init_std

    def forward(self, code: torch.Tensor) -> torch.Tensor:
        spectrum = torch.view_as_complex(code.contiguous()) * self.scale
        img = torch.fft.irfftn(spectrum, s=self.space.size, dim=(-2, -1), norm="ortho") / FOURIER_MAGIC
        if self.decorrelate:
            img = torch.einsum("bchw,dc->bdhw", img, self.color)
        return torch.sigmoid(img)

    def default_config(self):
        from .optimize import AMConfig

        return AMConfig(steps=512, lr_start=0.05, lr_policy="constant", optimizer="adam")


def require_generator(generator: Generator) -> None:
    """One line unless ``generator`` is a dgnam generator (a module with a ``space`` and a ``code_shape``): a zoo name
    or a bare network failed deep inside."""
    require_module(generator, "generator")
    if not hasattr(generator, "space") or not hasattr(generator, "code_shape"):
        raise DgnamError(f"{type(generator).__name__} is not a dgnam generator: wrap it in LearnedGenerator(net, "
                         f"code_shape, space)")


def check_generator(generator: Generator) -> None:
    """Fail early, in one line, when a generator's output does not match its declared space (``generator`` is one:
    :func:`require_generator` checked that before it was moved to the device)."""
    with torch.no_grad():
        try:
            out = generator(torch.zeros(1, *generator.code_shape, device=module_device(generator),
                                        dtype=module_dtype(generator)))
        except RuntimeError as e:
            name = getattr(generator, "name", "")
            raise DgnamError(f"the generator{'' if name in ('', 'generator') else ' ' + name} fails on codes of shape "
                             f"{generator.code_shape}: "
                             f"{first_line(e)}; check code_shape") from None
    if not isinstance(out, torch.Tensor) or out.dim() != 4 or tuple(out.shape[1:]) != generator.space.shape:
        shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise DgnamError(
            f"generator output {shape} cannot be adapted: it declares images {generator.space.shape}; "
            f"fix the generator's ImageSpace (channels, size) to match what it produces"
        )
