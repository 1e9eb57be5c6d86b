"""dgnam: synthesize the preferred inputs of neurons with deep generator networks (DGN-AM) and pixel-space priors.

The names below are imported on first use (PEP 562), not by ``import dgnam``: they all import torch, which takes 3 s,
and the command line (``dgnam --help``, a usage error, ``--version``) answers without it. ``from dgnam import
visualize`` and ``dgnam.visualize`` work as with plain imports.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys
import types
from typing import TYPE_CHECKING

__version__ = "0.1.0"

#: Each public name and the module it comes from.
_EXPORTS = {
    "DgnamError": "errors",
    "evaluate_run": "evaluate",
    **dict.fromkeys(("FourierGenerator", "Generator", "LearnedGenerator", "PixelGenerator"), "generators"),
    "ImageSpace": "imagespace",
    **dict.fromkeys(("AMConfig", "bound_scaled_lr", "optimize"), "optimize"),
    **dict.fromkeys(("build_method", "list_methods"), "methods"),
    **dict.fromkeys(("AlphaNorm", "Blur", "ClipCode", "ClipSmallContribution", "ClipSmallNorm", "ClipToSpace",
                     "CodeStats", "L2Decay", "L2Penalty", "Prior", "TotalVariation", "dgnam_code_priors"), "priors"),
    **dict.fromkeys(("Run", "visualize"), "run"),
    **dict.fromkeys(("Unit", "encode", "parse_units"), "units"),
    **dict.fromkeys(("create_model", "list_models", "load_model"), "zoo"),
}

__all__ = sorted(_EXPORTS)

#: Every module of the package is an attribute of a plain ``import dgnam`` (``dgnam.ppgn.load_dae()``, as the README
#: writes it, failed with "module 'dgnam' has no attribute 'ppgn'"; ``dgnam.units.Unit`` and the like worked only
#: while the package imported those modules itself), imported when first reached.
_SUBMODULES = tuple(m.name for m in pkgutil.iter_modules(__path__) if not m.name.startswith("_"))

if TYPE_CHECKING:  # what the names are, for type checkers and editors (__all__ names them; ruff cannot read it)
    from .errors import DgnamError  # noqa: F401
    from .evaluate import evaluate_run  # noqa: F401
    from .generators import FourierGenerator, Generator, LearnedGenerator, PixelGenerator  # noqa: F401
    from .imagespace import ImageSpace  # noqa: F401
    from .methods import build_method, list_methods  # noqa: F401
    from .optimize import AMConfig, bound_scaled_lr, optimize  # noqa: F401
    from .priors import AlphaNorm, Blur, ClipCode, ClipSmallContribution, ClipSmallNorm, ClipToSpace  # noqa: F401
    from .priors import CodeStats, L2Decay, L2Penalty, Prior, TotalVariation, dgnam_code_priors  # noqa: F401
    from .run import Run, visualize  # noqa: F401
    from .units import Unit, encode, parse_units  # noqa: F401
    from .zoo import create_model, list_models, load_model  # noqa: F401


def __getattr__(name: str):
    if name in _EXPORTS:
        value = getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
        globals()[name] = value  # (found directly from now on)
        return value
    if name in _SUBMODULES:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS) | set(_SUBMODULES))


class _Package(types.ModuleType):
    """The package's module type: importing the submodule ``dgnam.optimize`` sets the package's attribute
    ``optimize`` to that module (Python's import system does so for every submodule), which would hide the function
    ``dgnam.optimize`` once anything had imported the submodule. A name that is a function here keeps its value."""

    def __setattr__(self, name: str, value: object) -> None:
        if isinstance(value, types.ModuleType) and name in _EXPORTS and _EXPORTS[name] == name:
            return
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package
