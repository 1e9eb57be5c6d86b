"""The paper-scale networks of DGN-AM (Nguyen et al. 2016) as plain ``nn.Module``s: CaffeNet and the DeePSiM generators.

No weights ship with dgnam (the originals are Caffe files under their own licences): build the architectures here and
load the released files with ``--model bvlc_reference_caffenet.caffemodel --arch caffenet`` or ``--generator
generator.caffemodel --generator-arch deepsim-fc6`` (read without Caffe by :mod:`dgnam.zoo.caffe_files`), or convert
them once with ``dgnam convert``.

Every module attribute is named after its Caffe layer (``conv1``, ``norm1``, ``fc6``, ``relu6``, ``defc7``,
``deconv5`` ...), for two reasons: the ``.caffemodel`` blobs map onto parameters by layer name, and units read as in
the paper (``fc8:945``, ``conv5:3``). ReLUs are separate, non-inplace modules so that ``fc6`` is the pre-ReLU and
``relu6`` the post-ReLU activation of the same layer.
"""

from __future__ import annotations

import torch
from torch import nn

from ..imagespace import caffe_space
from .imagenet import imagenet_classes
from .registry import ZooEntry, register

#: Local response normalization of CaffeNet (bvlc_reference_caffenet deploy.prototxt: local_size 5, alpha 1e-4,
#: beta 0.75; Caffe's default k = 1). Caffe divides alpha by local_size as torch.nn.LocalResponseNorm does, and pads
#: (size - 1) / 2 zero channels on each side, as torch does for an odd size.
CAFFE_LRN = dict(size=5, alpha=1e-4, beta=0.75, k=1.0)
#: CaffeNet's input: 227 x 227 BGR, 0..255 minus the ILSVRC mean (B, G, R = 104, 117, 123).
CAFFENET_SPACE = caffe_space(227)
#: The DeePSiM generators' output: 256 x 256 in the same BGR mean-subtracted 0..255 space as CaffeNet's input, so the
#: engine only centre-crops it to 227 (as the released DGN-AM code does).
DEEPSIM_SPACE = caffe_space(256)
#: LeakyReLU slope of the DeePSiM generators (Dosovitskiy & Brox 2016, released generator prototxts: negative_slope 0.3).
DEEPSIM_LEAK = 0.3


class CaffeNet(nn.Module):
    """AlexNet as Caffe's ``bvlc_reference_caffenet`` defines it: pooling *before* normalization, grouped conv2/4/5.

    Max pooling uses ``ceil_mode=True`` as Caffe's does (for a 227 input the sizes are the same either way: 55, 27, 13,
    6), dropout is the identity in eval mode as at Caffe's test phase.
    """

    def __init__(self, num_classes: int = 1000) -> None:
        super().__init__()
        pool = lambda: nn.MaxPool2d(3, stride=2, ceil_mode=True)  # noqa: E731
        self.conv1 = nn.Conv2d(3, 96, 11, stride=4)
        self.relu1 = nn.ReLU()
        self.pool1 = pool()
        self.norm1 = nn.LocalResponseNorm(**CAFFE_LRN)
        self.conv2 = nn.Conv2d(96, 256, 5, padding=2, groups=2)
        self.relu2 = nn.ReLU()
        self.pool2 = pool()
        self.norm2 = nn.LocalResponseNorm(**CAFFE_LRN)
        self.conv3 = nn.Conv2d(256, 384, 3, padding=1)
        self.relu3 = nn.ReLU()
        self.conv4 = nn.Conv2d(384, 384, 3, padding=1, groups=2)
        self.relu4 = nn.ReLU()
        self.conv5 = nn.Conv2d(384, 256, 3, padding=1, groups=2)
        self.relu5 = nn.ReLU()
        self.pool5 = pool()
        self.fc6 = nn.Linear(256 * 6 * 6, 4096)
        self.relu6 = nn.ReLU()
        self.drop6 = nn.Dropout(0.5)
        self.fc7 = nn.Linear(4096, 4096)
        self.relu7 = nn.ReLU()
        self.drop7 = nn.Dropout(0.5)
        self.fc8 = nn.Linear(4096, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.norm1(self.pool1(self.relu1(self.conv1(x))))
        x = self.norm2(self.pool2(self.relu2(self.conv2(x))))
        x = self.relu3(self.conv3(x))
        x = self.relu4(self.conv4(x))
        x = self.pool5(self.relu5(self.conv5(x)))
        x = self.drop6(self.relu6(self.fc6(torch.flatten(x, 1))))  # Caffe's InnerProduct flattens C, H, W as torch
        x = self.drop7(self.relu7(self.fc7(x)))
        return self.fc8(x)


def _lrelu() -> nn.LeakyReLU:
    return nn.LeakyReLU(DEEPSIM_LEAK)


class _DeePSiMUpsampler(nn.Module):
    """The up-convolutional trunk shared by all DeePSiM generators, from a 256 (fc) or 512 (pool5) x 4 x 4 map to the
    256 x 256 BGR image. ``conv5_1``/``conv4_1``/``conv3_1`` are Caffe *Deconvolution* layers with kernel 3, stride 1,
    pad 1 (so their weights are stored (in, out, 3, 3), as ``nn.ConvTranspose2d``'s)."""

    def _build_trunk(self, cin: int) -> None:
        self.deconv5 = nn.ConvTranspose2d(cin, 256, 4, 2, 1)  # 4 -> 8
        self.relu_deconv5 = _lrelu()
        self.conv5_1 = nn.ConvTranspose2d(256, 512, 3, 1, 1)
        self.relu_conv5_1 = _lrelu()
        self.deconv4 = nn.ConvTranspose2d(512, 256, 4, 2, 1)  # 8 -> 16
        self.relu_deconv4 = _lrelu()
        self.conv4_1 = nn.ConvTranspose2d(256, 256, 3, 1, 1)
        self.relu_conv4_1 = _lrelu()
        self.deconv3 = nn.ConvTranspose2d(256, 128, 4, 2, 1)  # 16 -> 32
        self.relu_deconv3 = _lrelu()
        self.conv3_1 = nn.ConvTranspose2d(128, 128, 3, 1, 1)
        self.relu_conv3_1 = _lrelu()
        self.deconv2 = nn.ConvTranspose2d(128, 64, 4, 2, 1)  # 32 -> 64
        self.relu_deconv2 = _lrelu()
        self.deconv1 = nn.ConvTranspose2d(64, 32, 4, 2, 1)  # 64 -> 128
        self.relu_deconv1 = _lrelu()
        self.deconv0 = nn.ConvTranspose2d(32, 3, 4, 2, 1)  # 128 -> 256, linear output (BGR, mean-subtracted)

    def _trunk(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu_deconv5(self.deconv5(x))
        x = self.relu_conv5_1(self.conv5_1(x))
        x = self.relu_deconv4(self.deconv4(x))
        x = self.relu_conv4_1(self.conv4_1(x))
        x = self.relu_deconv3(self.deconv3(x))
        x = self.relu_conv3_1(self.conv3_1(x))
        x = self.relu_deconv2(self.deconv2(x))
        x = self.relu_deconv1(self.deconv1(x))
        return self.deconv0(x)


class DeePSiMFC(_DeePSiMUpsampler):
    """DeePSiM generator inverting a fully connected CaffeNet layer (Dosovitskiy & Brox 2016): ``code_dim`` is 4096
    for fc6 and fc7, 1000 for fc8. defc7 -> defc6 -> defc5 (fully connected, LeakyReLU 0.3), reshape to 256 x 4 x 4,
    then the up-convolutions. Same layers as the circulating PyTorch translation (``upconvGAN``, keys ``defc7.weight``
    ... ``deconv0.bias``)."""

    def __init__(self, code_dim: int = 4096) -> None:
        super().__init__()
        self.defc7 = nn.Linear(code_dim, 4096)
        self.relu_defc7 = _lrelu()
        self.defc6 = nn.Linear(4096, 4096)
        self.relu_defc6 = _lrelu()
        self.defc5 = nn.Linear(4096, 4096)
        self.relu_defc5 = _lrelu()
        self._build_trunk(256)

    def forward(self, code: torch.Tensor) -> torch.Tensor:
        x = self.relu_defc7(self.defc7(code))
        x = self.relu_defc6(self.defc6(x))
        x = self.relu_defc5(self.defc5(x))
        return self._trunk(x.view(-1, 256, 4, 4))


class DeePSiMPool5(_DeePSiMUpsampler):
    """DeePSiM generator inverting CaffeNet's pool5 (a 256 x 6 x 6 code): Rconv6 (256 -> 512, 3x3 pad 1), Rconv7
    (512 -> 512, 3x3 pad 1), Rconv8 (512 -> 512, 3x3, no pad: 6 -> 4), LeakyReLU 0.3 after each, then the
    up-convolutions from 512 x 4 x 4. Layer names and shapes as in the PyTorch translation of the released Caffe model
    (Binxu Wang's ``upconvGAN("pool5")``), which was made by a converter that keeps Caffe's layer names."""

    def __init__(self) -> None:
        super().__init__()
        self.Rconv6 = nn.Conv2d(256, 512, 3, 1, 1)
        self.Rrelu6 = _lrelu()
        self.Rconv7 = nn.Conv2d(512, 512, 3, 1, 1)
        self.Rrelu7 = _lrelu()
        self.Rconv8 = nn.Conv2d(512, 512, 3, 1, 0)
        self.Rrelu8 = _lrelu()
        self._build_trunk(512)

    def forward(self, code: torch.Tensor) -> torch.Tensor:
        x = self.Rrelu6(self.Rconv6(code))
        x = self.Rrelu7(self.Rconv7(x))
        x = self.Rrelu8(self.Rconv8(x))
        return self._trunk(x)


register(ZooEntry(
    name="caffenet", kind="classifier", build=CaffeNet, space=CAFFENET_SPACE, classes=imagenet_classes(),
    description="CaffeNet (bvlc_reference_caffenet, AlexNet variant); no weights ship: --model FILE.caffemodel --arch caffenet",
    tags=("imagenet", "caffe", "paper"),
))
for _layer, _dim in (("fc6", 4096), ("fc7", 4096), ("fc8", 1000)):
    register(ZooEntry(
        name=f"deepsim-{_layer}", kind="generator", build=(lambda d=_dim: DeePSiMFC(d)), space=DEEPSIM_SPACE,
        code_shape=(_dim,), encoder="caffenet", encoder_layer={"fc6": "relu6", "fc7": "relu7", "fc8": "fc8"}[_layer],
        description=f"DeePSiM generator inverting CaffeNet {_layer} (Dosovitskiy & Brox 2016); no weights ship",
        tags=("imagenet", "caffe", "paper"),
    ))
register(ZooEntry(
    name="deepsim-pool5", kind="generator", build=DeePSiMPool5, space=DEEPSIM_SPACE, code_shape=(256, 6, 6),
    encoder="caffenet", encoder_layer="pool5",
    description="DeePSiM generator inverting CaffeNet pool5 (Dosovitskiy & Brox 2016); no weights ship",
    tags=("imagenet", "caffe", "paper"),
))


def _register_readers() -> None:
    """``--model FILE.caffemodel --arch NAME`` (and ``.pt`` translations, whose keys may need renaming) read through
    :mod:`dgnam.zoo.caffe_files`, imported only when such a file is read (protobuf is optional)."""
    from . import files

    def caffemodel(path, arch):
        from .caffe_files import caffe_state_dict

        return caffe_state_dict(path, arch)

    def translation(path, arch):
        from .caffe_files import torch_state_dict

        return torch_state_dict(path, arch)

    files.READERS.setdefault(".caffemodel", caffemodel)
    for suffix in (".pt", ".pth"):
        files.READERS.setdefault(suffix, translation)


_register_readers()
