"""Methods: a name for a choice of image source, priors, step settings and transforms.

``dgn-am`` (a learned generator with the paper's code prior) and ``pixel`` (plain pixel-space gradient ascent) are
defined here; the pixel-space presets of Yosinski et al. and Lucid register themselves from
:mod:`dgnam.presets`. ``dgnam priors`` lists them; ``benchmarks/quality.py`` compares every registered method.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Callable

from .errors import DgnamError
from .generators import Generator, PixelGenerator
from .imagespace import ImageSpace
from .optimize import AMConfig, Transform, bound_scaled_lr
from .priors import Prior


@dataclass
class MethodSpec:
    """Everything :func:`dgnam.visualize` needs besides the target and the units."""

    generator: Generator
    priors: list[Prior]
    config: AMConfig
    transforms: list[Transform] = field(default_factory=list)


@dataclass
class Method:
    """``build(target_space, generator, seed)`` returns a :class:`MethodSpec`; ``generator`` is the learned generator
    (``None`` when the user gave none) and is required when ``needs_generator``; ``seed`` is the run's seed, which
    seeds whatever the method draws besides the start codes (the random transforms of ``lucid``)."""

    name: str
    description: str
    build: Callable[[ImageSpace, Generator | None, int], MethodSpec]
    needs_generator: bool = False
    source: str = ""


_METHODS: dict[str, Method] = {}


def register_method(method: Method) -> Method:
    if method.name in _METHODS:
        raise ValueError(f"method {method.name!r} registered twice")
    _METHODS[method.name] = method
    return method


def _load() -> None:
    from . import presets  # noqa: F401  (importing it registers the pixel-space presets)


def list_methods() -> list[Method]:
    _load()
    return [m for _, m in sorted(_METHODS.items())]


def get_method(name: str) -> Method:
    _load()
    if name not in _METHODS:
        import difflib

        close = difflib.get_close_matches(name, list(_METHODS), n=3)
        raise DgnamError(f"unknown prior/method {name!r}" + (f" (did you mean {', '.join(close)}?)" if close else "")
                         + "; `dgnam priors` lists them")
    return _METHODS[name]


def build_method(name: str, target_space: ImageSpace, generator: Generator | None = None, *,
                 seed: int = 0) -> MethodSpec:
    """The method ``name`` for a target of ``target_space``. Give the run's ``seed`` (as to
    :func:`dgnam.visualize`) so that a method's own randomness (``lucid``'s jitter, scale and rotation draws) follows
    it: another seed then gives other draws, as it gives other start codes."""
    m = get_method(name)
    if not isinstance(target_space, ImageSpace):
        raise DgnamError(f"build_method({name!r}, {target_space!r}): give the target's ImageSpace, e.g. "
                         f"model.input_space or ImageSpace(size=(32, 32), color='RGB')")
    if m.needs_generator and generator is None:
        raise DgnamError(f"method {name} needs a generator: pass --generator (e.g. fmnist-g-fc6)")
    return m.build(target_space, generator, seed)


def _dgnam(space: ImageSpace, generator: Generator | None, seed: int = 0) -> MethodSpec:
    return MethodSpec(generator=generator, priors=generator.default_priors(), config=generator.default_config())


def _dgnam_scaled(space: ImageSpace, generator: Generator | None, seed: int = 0) -> MethodSpec:
    if generator.code_stats is None:
        raise DgnamError(f"dgn-am-scaled scales the step to the code bounds: generator {generator.name} has no code "
                         f"stats (pass --code-stats)")
    spec = _dgnam(space, generator)
    config = dataclasses.replace(spec.config, lr_start=bound_scaled_lr(generator.code_stats.upper()))
    return MethodSpec(generator=generator, priors=spec.priors, config=config)


def _pixel(space: ImageSpace, generator: Generator | None, seed: int = 0) -> MethodSpec:
    g = PixelGenerator(space)
    return MethodSpec(generator=g, priors=[], config=g.default_config())


register_method(Method(
    "dgn-am", "DGN-AM: optimize a learned generator's code; clip to [0, U], decay 0.99, lr 8 -> 1e-10, 200 steps",
    _dgnam, needs_generator=True, source="Nguyen et al. 2016 and released code",
))
register_method(Method(
    "dgn-am-scaled", "DGN-AM with the starting lr scaled to the code's bounds (8 x median U / 12, the released "
    "step-to-bound ratio; a deviation from the paper for generators whose code range is not CaffeNet fc6's)",
    _dgnam_scaled, needs_generator=True, source="Nguyen et al. 2016; step scaled by dgnam.bound_scaled_lr",
))
register_method(Method(
    "pixel", "plain pixel-space gradient ascent, no prior (normalized steps, linear lr)", _pixel,
    source="Erhan et al. 2009 / Simonyan et al. 2014",
))
