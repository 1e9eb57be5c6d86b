"""The embedded default domain: Fashion-MNIST.

``fmnist-cnn`` is the target network Phi (its penultimate fully connected ReLU layer ``fc6`` plays CaffeNet's fc6),
``fmnist-judge`` a held-out classifier of another architecture used only for evaluation, and ``fmnist-g-fc6`` a
DeePSiM generator that inverts ``fmnist-cnn``'s ``fc6`` (layer names follow the Caffe generators, scaled down).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..data import FASHION_MNIST_CLASSES
from ..errors import DgnamError
from ..imagespace import ImageSpace
from ..ppgn import CodeDAE
from .registry import ZooEntry, register

#: Fashion-MNIST training-set pixel mean and std (of [0, 1] intensities).
FMNIST_MEAN, FMNIST_STD = 0.2860, 0.3530
#: Input space of the Fashion-MNIST classifiers: gray 28x28, normalized with the training mean/std.
FMNIST_SPACE = ImageSpace(size=(28, 28), color="GRAY", lo=0.0, hi=1.0, mean=(FMNIST_MEAN,), std=(FMNIST_STD,), fit="crop")
#: Output space of the Fashion-MNIST generators: gray in [-1, 1] (tanh), 32x32, centre-cropped to 28 for the
#: classifiers as the Caffe generators' 256 px output is cropped to CaffeNet's 227.
FMNIST_GEN_SPACE = ImageSpace(size=(32, 32), color="GRAY", lo=-1.0, hi=1.0, fit="crop")
#: LeakyReLU slope of the DeePSiM generators (Dosovitskiy & Brox 2016, released prototxt: negative_slope 0.3).
DEEPSIM_LEAK = 0.3


def _conv_bn(cin: int, cout: int) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]


class FashionCNN(nn.Module):
    """The target Phi: VGG-style conv stack, then fc5 -> fc6 (the code layer, ReLU) -> logits. ``channels`` 3 takes
    colour images (`dgnam train classifier --color RGB`); the zoo's weights are gray."""

    def __init__(self, num_classes: int = 10, code_dim: int = 256, channels: int = 1) -> None:
        super().__init__()
        self.features = nn.Sequential(
            *_conv_bn(channels, 32), *_conv_bn(32, 32), nn.MaxPool2d(2),  # 28 -> 14
            *_conv_bn(32, 64), *_conv_bn(64, 64), nn.MaxPool2d(2),  # 14 -> 7
            *_conv_bn(64, 128), nn.MaxPool2d(2),  # 7 -> 3
        )
        self.flatten = nn.Flatten()
        self.fc5 = nn.Sequential(nn.Linear(128 * 3 * 3, 256), nn.ReLU(inplace=True))
        self.drop5 = nn.Dropout(0.3)
        self.fc6 = nn.Sequential(nn.Linear(256, code_dim), nn.ReLU(inplace=True))
        self.drop6 = nn.Dropout(0.3)
        self.logits = nn.Linear(code_dim, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.flatten(self.features(x))
        return self.logits(self.drop6(self.fc6(self.drop5(self.fc5(x)))))


class FashionJudge(nn.Module):
    """The held-out judge: LeNet-style 5x5 convolutions, no BatchNorm, one hidden layer ``penult``."""

    def __init__(self, num_classes: int = 10, channels: int = 1) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(channels, 32, 5, padding=2), nn.ReLU(inplace=True), nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 5, padding=2), nn.ReLU(inplace=True), nn.MaxPool2d(2),
        )
        self.flatten = nn.Flatten()
        self.penult = nn.Sequential(nn.Linear(64 * 7 * 7, 128), nn.ReLU(inplace=True))
        self.drop = nn.Dropout(0.4)
        self.logits = nn.Linear(128, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.logits(self.drop(self.penult(self.flatten(self.features(x)))))


#: Output sides `FashionGenerator` can be built with: 32 (the zoo's) doubled by extra up-convolution stages. 256 is
#: the Caffe generators' output (cropped to CaffeNet's 227), the largest an encoder's input is matched to.
GENERATOR_SIZES = (32, 64, 128, 256)


def generator_size_for(side: int) -> int:
    """The smallest of `GENERATOR_SIZES` that covers an encoder input of ``side`` pixels (then centre-cropped to it,
    as 32 is to Fashion-MNIST's 28 and 256 to CaffeNet's 227); the largest for a larger input, which is resized."""
    return next((s for s in GENERATOR_SIZES if s >= side), GENERATOR_SIZES[-1])


class FashionGenerator(nn.Module):
    """DeePSiM generator for a 256-d code: three fully connected layers, reshape to 128x4x4, then up-convolutions to
    a 32x32 gray image in [-1, 1] (``channels`` 3: colour, for a colour encoder). The Caffe fc6 generator's names
    and LeakyReLU(0.3), at Fashion-MNIST's scale.

    ``size`` 64, 128 or 256 adds one stage per doubling before the last convolution (``upconv1``, ``upconv2``, ...:
    bilinear upsampling by 2, then a 16-channel 3x3 convolution that starts as the identity), so that a generator for
    a larger encoder input can draw at its resolution; it starts as the 32 px generator upsampled, which training can
    only refine (stacked transposed convolutions instead trained to checkerboards, MSE 0.084 against 0.053 in
    `benchmarks/generator_size.py`). Size 32 is the zoo's architecture, layer for layer."""

    def __init__(self, code_dim: int = 256, channels: int = 1, size: int = 32) -> None:
        super().__init__()
        if size not in GENERATOR_SIZES:
            raise DgnamError(f"{type(self).__name__} draws {', '.join(map(str, GENERATOR_SIZES))} px images, not "
                             f"{size} px")
        lrelu = lambda: nn.LeakyReLU(DEEPSIM_LEAK, inplace=True)  # noqa: E731
        self.defc7 = nn.Linear(code_dim, 256)
        self.relu_defc7 = lrelu()
        self.defc6 = nn.Linear(256, 256)
        self.relu_defc6 = lrelu()
        self.defc5 = nn.Linear(256, 128 * 4 * 4)
        self.relu_defc5 = lrelu()
        self.deconv3 = nn.ConvTranspose2d(128, 64, 4, 2, 1)  # 4 -> 8
        self.relu_deconv3 = lrelu()
        self.conv3_1 = nn.Conv2d(64, 64, 3, 1, 1)
        self.relu_conv3_1 = lrelu()
        self.deconv2 = nn.ConvTranspose2d(64, 32, 4, 2, 1)  # 8 -> 16
        self.relu_deconv2 = lrelu()
        self.conv2_1 = nn.Conv2d(32, 32, 3, 1, 1)
        self.relu_conv2_1 = lrelu()
        self.deconv1 = nn.ConvTranspose2d(32, 16, 4, 2, 1)  # 16 -> 32
        self.relu_deconv1 = lrelu()
        for i in range(1, GENERATOR_SIZES.index(size) + 1):  # 32 -> 64 -> 128 -> 256
            conv = nn.Conv2d(16, 16, 3, 1, 1)
            nn.init.dirac_(conv.weight)  # starts as the identity: the stage begins as a bilinear upsampling
            nn.init.zeros_(conv.bias)
            setattr(self, f"upconv{i}", conv)
            setattr(self, f"relu_upconv{i}", lrelu())
        self.stages = GENERATOR_SIZES.index(size)
        self.deconv0 = nn.Conv2d(16, channels, 3, 1, 1)

    def forward(self, code: torch.Tensor) -> torch.Tensor:
        x = self.relu_defc7(self.defc7(code))
        x = self.relu_defc6(self.defc6(x))
        x = self.relu_defc5(self.defc5(x)).view(-1, 128, 4, 4)
        x = self.relu_deconv3(self.deconv3(x))
        x = self.relu_conv3_1(self.conv3_1(x))
        x = self.relu_deconv2(self.deconv2(x))
        x = self.relu_conv2_1(self.conv2_1(x))
        x = self.relu_deconv1(self.deconv1(x))
        for i in range(1, self.stages + 1):
            x = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
            x = getattr(self, f"relu_upconv{i}")(getattr(self, f"upconv{i}")(x))
        return torch.tanh(self.deconv0(x))


class FashionDiscriminator(nn.Module):
    """DeePSiM discriminator (training only): convolutions on the image, a fully connected branch on the encoder
    features, joined before the real/fake logit, so it judges whether image and code belong together. It sees the
    encoder's images: ``channels`` is theirs, any size is pooled."""

    def __init__(self, code_dim: int = 256, channels: int = 1) -> None:
        super().__init__()
        self.image = nn.Sequential(
            nn.Conv2d(channels, 32, 3, 2, 1), nn.LeakyReLU(0.2, inplace=True),  # 28 -> 14
            nn.Conv2d(32, 64, 3, 2, 1), nn.LeakyReLU(0.2, inplace=True),  # 14 -> 7
            nn.Conv2d(64, 128, 3, 2, 1), nn.LeakyReLU(0.2, inplace=True),  # 7 -> 4
            nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        )
        self.feat = nn.Sequential(nn.Linear(code_dim, 256), nn.LeakyReLU(0.2, inplace=True),
                                  nn.Linear(256, 128), nn.LeakyReLU(0.2, inplace=True))
        self.head = nn.Sequential(nn.Dropout(0.5), nn.Linear(256, 256), nn.LeakyReLU(0.2, inplace=True), nn.Linear(256, 1))

    def forward(self, image: torch.Tensor, code: torch.Tensor) -> torch.Tensor:
        return self.head(torch.cat([self.image(image), self.feat(code)], 1)).squeeze(1)


register(ZooEntry(
    name="fmnist-cnn", kind="classifier", build=FashionCNN, space=FMNIST_SPACE, weights="fmnist-cnn.safetensors",
    classes=FASHION_MNIST_CLASSES, description="Fashion-MNIST target CNN (Phi); fc6 is the code layer",
))
register(ZooEntry(
    name="fmnist-judge", kind="classifier", build=FashionJudge, space=FMNIST_SPACE,
    weights="fmnist-judge.safetensors", classes=FASHION_MNIST_CLASSES,
    description="held-out Fashion-MNIST classifier of another architecture, for evaluation only",
))
register(ZooEntry(
    name="fmnist-g-fc6", kind="generator", build=FashionGenerator, space=FMNIST_GEN_SPACE,
    weights="fmnist-g-fc6.safetensors", code_shape=(256,), encoder="fmnist-cnn", encoder_layer="fc6",
    code_stats="fmnist-g-fc6.codestats.safetensors",
    description="DeePSiM generator inverting fmnist-cnn fc6 (the embedded default prior)",
))
register(ZooEntry(
    name="fmnist-dae-fc6", kind="dae", build=lambda: CodeDAE(dim=256, hidden=512, layers=2), space=None,
    weights="fmnist-dae-fc6.safetensors", code_shape=(256,), encoder="fmnist-cnn", encoder_layer="fc6",
    description="denoising autoencoder on fmnist-cnn fc6 codes: the PPGN-h prior of fmnist-g-fc6 (the default of "
                "`dgnam sample` and `dgnam inpaint`)",
))
