"""The committed Fashion-MNIST zoo: weights load with their hash, and are as good as their cards say."""

import torch

from dgnam import create_model
from dgnam.evaluate import classify
from dgnam.train.classifier import accuracy
from dgnam.units import encode

from helpers import fashion_mnist


def test_target_accuracy():
    x, y = fashion_mnist("test").tensors(1000)
    m = create_model("fmnist-cnn")
    assert accuracy(m, x, y, m.input_space) >= 0.89


def test_judge_accuracy():
    x, y = fashion_mnist("test").tensors(1000)
    m = create_model("fmnist-judge")
    assert accuracy(m, x, y, m.input_space) >= 0.88


def test_generator_reconstructions_are_recognizable():
    x, y = fashion_mnist("test").tensors(200)
    enc, judge, gen = create_model("fmnist-cnn"), create_model("fmnist-judge"), create_model("fmnist-g-fc6")
    codes = encode(enc, "fc6", enc.input_space.encode(x))
    with torch.no_grad():
        rec = gen(codes)
    cls, _ = classify(judge, rec, gen.space)
    assert (cls == y).float().mean() >= 0.75


def test_generator_code_stats():
    gen = create_model("fmnist-g-fc6")
    s = gen.code_stats
    assert s is not None and s.dim == 256 and s.count == 60000
    assert (s.upper() >= s.mean).all() and (s.mean >= 0).all()  # ReLU codes
