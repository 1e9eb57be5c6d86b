"""dgnam: synthesize the preferred inputs of neurons with deep generator networks (DGN-AM) and pixel-space priors."""

__version__ = "0.1.0"

from .errors import DgnamError
from .generators import Generator, LearnedGenerator, PixelGenerator
from .imagespace import ImageSpace
from .optimize import AMConfig, optimize
from .priors import CodeStats, ClipCode, L2Decay, L2Penalty, Prior, dgnam_code_priors
from .run import Run, visualize
from .units import Unit, encode, parse_units
from .zoo import create_model, list_models

__all__ = [
    "AMConfig", "ClipCode", "CodeStats", "DgnamError", "Generator", "ImageSpace", "L2Decay", "L2Penalty",
    "LearnedGenerator", "PixelGenerator", "Prior", "Run", "Unit", "create_model", "dgnam_code_priors", "encode",
    "list_models", "optimize", "parse_units", "visualize",
]
