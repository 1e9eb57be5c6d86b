"""dgnam: synthesize the preferred inputs of neurons with deep generator networks (DGN-AM) and pixel-space priors."""

__version__ = "0.1.0"

from .errors import DgnamError
from .evaluate import evaluate_run
from .generators import FourierGenerator, Generator, LearnedGenerator, PixelGenerator
from .imagespace import ImageSpace
from .optimize import AMConfig, bound_scaled_lr, optimize
from .methods import build_method, list_methods
from .priors import (AlphaNorm, Blur, ClipCode, ClipSmallContribution, ClipSmallNorm, ClipToSpace, CodeStats, L2Decay,
                     L2Penalty, Prior, TotalVariation, dgnam_code_priors)
from .run import Run, visualize
from .units import Unit, encode, parse_units
from .zoo import create_model, list_models, load_model

__all__ = [
    "AMConfig", "AlphaNorm", "Blur", "ClipCode", "ClipSmallContribution", "ClipSmallNorm", "ClipToSpace", "CodeStats", "DgnamError",
    "FourierGenerator", "Generator", "ImageSpace", "L2Decay", "L2Penalty", "LearnedGenerator", "PixelGenerator", "Prior",
    "Run", "TotalVariation", "Unit", "bound_scaled_lr", "build_method", "create_model", "dgnam_code_priors", "encode",
    "evaluate_run", "list_methods", "list_models", "load_model", "optimize", "parse_units", "visualize",
]


#: Modules reached as attributes of the package without their own import (``dgnam.ppgn.load_dae()``, as the README
#: writes it, failed with "module 'dgnam' has no attribute 'ppgn'" after a plain ``import dgnam``).
_SUBMODULES = ("ppgn", "facets", "train")


def __getattr__(name: str):
    if name in _SUBMODULES:
        import importlib

        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
