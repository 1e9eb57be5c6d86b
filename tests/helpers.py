"""Shared test helpers: the Fashion-MNIST data set, required on CI, skipped with a reason elsewhere."""

import os

import pytest

from dgnam.errors import DgnamError


def fashion_mnist(split: str):
    from dgnam.data import FashionMNIST

    try:
        return FashionMNIST(split)
    except DgnamError as e:
        if os.environ.get("CI"):
            raise  # CI installs the data set (scripts/setup.sh): its absence there is a failure
        pytest.skip(str(e))
