"""The model zoo: architectures, weights, image spaces and model cards. See :mod:`dgnam.zoo.registry`."""

from .registry import ZooEntry, create_model, get_entry, list_models, load_model, register

__all__ = ["ZooEntry", "create_model", "get_entry", "list_models", "load_model", "register"]
