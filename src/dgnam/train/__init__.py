"""Training: classifiers (targets and judges), DeePSiM generators, and (later) denoising autoencoders on codes."""

_SUBMODULES = ("classifier", "generator", "dae", "common")


def __getattr__(name: str):  # dgnam.train.dae.train_dae after a plain ``import dgnam``
    if name in _SUBMODULES:
        import importlib

        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
