"""The model registry, after timm's: ``register`` an entry (architecture + weights + image space + card),
``create_model(name)`` builds it with its weights, ``list_models()`` names them."""

from __future__ import annotations

import fnmatch
import inspect
import json
import os
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from ..errors import DgnamError, first_line, warn
from ..imagespace import ImageSpace
from ..weights import load_into, load_state_dict

HERE = Path(__file__).parent
WEIGHTS_DIR = HERE / "weights"
CARDS_DIR = HERE / "cards"


@dataclass
class ZooEntry:
    """One model of the zoo.

    ``kind`` is ``"classifier"`` (a target or judge: ``space`` is its input space), ``"generator"`` (``space`` is
    its output space, ``code_shape`` its input; ``encoder`` and ``encoder_layer`` name the model layer it inverts,
    whose statistics are in the card's ``code_stats`` file) or ``"dae"`` (PPGN's denoising autoencoder on the codes
    of ``encoder``'s ``encoder_layer``: no image space). ``weights`` is a file name under ``zoo/weights`` or a
    callable that returns a path (for weights shipped by another package). ``build`` makes the architecture; it is
    also called with ``num_classes``, ``channels`` or (a generator's) code size and output ``size`` where its signature
    takes them.
    """

    name: str
    kind: str
    build: Callable[..., nn.Module]
    space: ImageSpace | None
    weights: str | Callable[[], str] | None = None
    classes: tuple[str, ...] | None = None
    code_shape: tuple[int, ...] | None = None
    encoder: str | None = None
    encoder_layer: str | None = None
    code_stats: str | None = None
    description: str = ""
    tags: tuple[str, ...] = field(default_factory=tuple)

    def card(self) -> dict:
        """The model card (data, command, seed, metrics, training time, sha256), or ``{}`` if none is written."""
        p = CARDS_DIR / f"{self.name}.json"
        return json.loads(p.read_text()) if p.exists() else {}

    def build_for_classes(self, n: int, **kw) -> nn.Module:
        """The architecture with ``n`` outputs (a classifier of a folder's own classes); ``kw`` go to the builder
        too (``channels``). An architecture whose builder takes no ``num_classes`` is refused: it would keep its
        registered outputs under the folder's class names."""
        if not self.takes("num_classes"):
            head = f"a fixed {len(self.classes)}-class head" if self.classes else "a fixed head"
            raise DgnamError(f"{self.name} has {head} and cannot be built with {n} classes; train one of the "
                             f"architectures that can (fmnist-cnn, fmnist-judge)")
        return self.build(num_classes=n, **kw)

    def takes(self, parameter: str) -> bool:
        """Whether the builder takes ``parameter`` (``num_classes``, ``channels``, a generator's ``size``)."""
        return parameter in inspect.signature(self.build).parameters

    def weights_path(self) -> Path | None:
        if self.weights is None:
            return None
        return Path(self.weights()) if callable(self.weights) else WEIGHTS_DIR / self.weights


_REGISTRY: dict[str, ZooEntry] = {}


def register(entry: ZooEntry) -> ZooEntry:
    if entry.name in _REGISTRY:
        raise ValueError(f"zoo entry {entry.name!r} registered twice")
    _REGISTRY[entry.name] = entry
    return entry


def list_models(pattern: str = "*", kind: str | None = None) -> list[str]:
    """Names of registered models matching a glob ``pattern`` (and ``kind`` if given)."""
    _load_builtin()
    return sorted(n for n, e in _REGISTRY.items() if fnmatch.fnmatch(n, pattern) and (kind is None or e.kind == kind))


def get_entry(name: str) -> ZooEntry:
    _load_builtin()
    if name not in _REGISTRY:
        import difflib

        close = difflib.get_close_matches(name, list(_REGISTRY), n=3)
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        raise DgnamError(f"unknown model {name!r}{hint}; `dgnam models` lists the zoo")
    return _REGISTRY[name]


def create_model(name: str, pretrained: bool = True) -> nn.Module:
    """Build a zoo model in eval mode with its weights (hash-checked against its card); an entry that ships no
    weights is an error unless ``pretrained=False`` (the architecture alone, e.g. to list its layers).

    Classifiers carry ``input_space`` (and ``classes``); generators are returned wrapped as
    :class:`dgnam.generators.LearnedGenerator` with their code statistics.
    """
    entry = get_entry(name)
    if pretrained and entry.weights is None:  # random weights would run, and every figure would be meaningless
        how = (f"--generator FILE --generator-arch {name}" if entry.kind == "generator" else f"--model FILE --arch {name}")
        raise DgnamError(f"{name} ships no weights (an architecture only): give yours as {how} (Python: "
                         f"load_model(FILE, arch={name!r}); `dgnam convert` reads Caffe files)")
    # the weights replace the architecture's random init: building it must not move the caller's random stream
    with torch.random.fork_rng(devices=[]) if pretrained else nullcontext():
        net = entry.build()
    if pretrained and entry.weights is not None:
        path = entry.weights_path()
        if not path.exists():
            cmd = entry.card().get("command", "")
            raise DgnamError(f"weights of {name} not found at {path}" + (f"; make them with `{cmd}`" if cmd else ""))
        load_into(net, load_state_dict(path, entry.card().get("sha256")), what=name)
    return wrap(entry, net, with_stats=pretrained)


def wrap(entry: ZooEntry, net: nn.Module, with_stats: bool = True, name: str | None = None) -> nn.Module:
    """Give a built network what the engine needs: eval mode and, for a classifier, ``input_space``/``classes``;
    a generator is wrapped as :class:`~dgnam.generators.LearnedGenerator` with its code statistics."""
    name = name or entry.name
    net.eval()
    # whose codes (the encoder's weights, by SHA-256): PPGN checks a DAE's against its generator's, as the CLI does
    encoder_sha = weights_sha256(entry.encoder) if entry.kind in ("dae", "generator") and entry.encoder else None
    if entry.kind == "dae":
        net.code_layer = entry.encoder_layer  # the layer whose codes it denoises: PPGN checks it against the generator's
        net.code_encoder_sha256 = encoder_sha
        net.zoo_name = name
        return net
    if entry.kind == "generator":
        from ..generators import LearnedGenerator

        stats, problem = None, None
        if with_stats and entry.code_stats:
            path = WEIGHTS_DIR / entry.code_stats
            if path.exists():
                stats, problem = load_code_stats_checked(path, (entry.card().get("code_stats") or {}).get("sha256"),
                                                         name)
            else:  # said instead of the bare "no code statistics" of a generator file without them
                problem = (f"the code statistics of {name} are missing ({path}): reinstall dgnam, or give the "
                           f"bounds with --code-stats FILE (`dgnam code-stats` measures them)")
        gen = LearnedGenerator(net, code_shape=entry.code_shape, space=entry.space, code_stats=stats, name=name,
                               code_layer=entry.encoder_layer)
        gen.code_encoder_sha256 = encoder_sha
        return flag_code_stats(gen, problem)
    net.input_space = entry.space
    net.classes = entry.classes
    net.zoo_name = name
    return net


def load_code_stats_checked(path: Path, expected_sha256: str | None, name: str):
    """A generator's code statistics and, when they are not the ones its card records (SHA-256), why not: its
    [0, U] bounds decide every DGN-AM run, so a replaced or damaged file must not pass for the generator's own. The
    statistics are still read (their size sets a generator file's code size); :func:`flag_code_stats` marks them."""
    from ..priors import CodeStats
    from ..weights import sha256

    problem = None
    if expected_sha256 and sha256(path) != expected_sha256:
        problem = (f"{path.name} is not the code statistics {name}'s card records (SHA-256 differs): restore them, "
                   f"give the bounds to use with --code-stats FILE, or remove code_stats.sha256 from the card to "
                   f"adopt these")
    return CodeStats.load(path), problem


def flag_code_stats(gen, problem: str | None):
    """Mark a generator whose code statistics are missing or not its card's: ``code_stats_problem`` says why. The
    CLI refuses it unless ``--code-stats`` gives the bounds; in Python it is a warning, and ``gen.code_stats``
    (replaceable) holds what was found."""
    gen.code_stats_problem = problem
    if problem:
        warn(problem)
    return gen


_LOADED = False


def _load_builtin() -> None:
    """Import the modules that register the built-in entries (once, lazily, so importing dgnam stays cheap)."""
    global _LOADED
    if _LOADED:
        return
    _LOADED = True
    from . import fmnist, efficientnet, caffe  # noqa: F401  (in this order; importing each registers its entries)


#: Suffixes that mark a weights file even before it exists (a typo is then "does not exist", not "unknown model").
WEIGHTS_SUFFIXES = (".safetensors", ".pt", ".pth", ".bin", ".caffemodel")


def is_weights_file(spec: str) -> bool:
    """Whether ``spec`` names a weights file (which needs its architecture) rather than a zoo name or import path."""
    return Path(spec).suffix in WEIGHTS_SUFFIXES or Path(spec).is_file()


def is_zoo_model(model: nn.Module, name: str | None) -> bool:
    """Whether ``model`` is the zoo's model ``name`` itself. A weights file is named by its stem (``zoo_name``), so a
    file that `dgnam train classifier --arch fmnist-cnn` wrote (``OUT/fmnist-cnn.safetensors``, its default name)
    has the zoo model's name but other weights: a file or factory (``dgnam_source``) is never the zoo's model."""
    return name is not None and getattr(model, "zoo_name", None) == name and not getattr(model, "dgnam_source", None)


def check_recorded_spec(spec: object, arch: object, named_by: str, flag: str) -> None:
    """Refuse a model that a file names (a run's ``results.json``, a generator's card), rather than the user, when
    :func:`load_model` would run code to build it: an import path ``module:factory`` is imported (a module in the
    working directory included) and called, so a shared run or card could run anything. Zoo names and weights files
    (safetensors, ``weights_only``) load without running code. The user names such a model with ``flag`` (its
    ``{spec}`` replaced by the model)."""
    if not isinstance(spec, str) or not spec or not (arch is None or isinstance(arch, str)):
        raise DgnamError(f"{named_by} {spec!r} (architecture {arch!r}) as its model, which is no model name: pass "
                         f"{flag.format(spec='MODEL')}")
    if ":" in spec and not is_weights_file(spec):
        raise DgnamError(f"{named_by} the import path {spec} as its model: dgnam imports no code that a file names; "
                         f"pass {flag.format(spec=spec)} yourself if you trust that code")


def weights_sha256(spec: str, arch: str | None = None) -> str | None:
    """The SHA-256 of the weights a model spec names: a file's own (copies and moves keep it), a zoo entry's from its
    card; ``None`` for an import path, a zoo entry without weights, or a file that is gone. It tells codes of the
    encoder a generator inverts from codes of another network of the same architecture."""
    from ..weights import sha256

    if arch is not None or is_weights_file(spec):
        return sha256(Path(spec)) if Path(spec).is_file() else None
    try:
        entry = get_entry(spec)
    except DgnamError:
        return None  # an import path
    return entry.card().get("sha256") if entry.weights is not None else None


def model_weights_sha256(model: nn.Module) -> str | None:
    """:func:`weights_sha256` of a loaded model: of the file or factory it came from (``dgnam_source``, which
    :func:`load_model` sets), else of its zoo entry; ``None`` when unknown."""
    src = getattr(model, "dgnam_source", None)
    if src:
        return weights_sha256(src["spec"], src.get("arch"))
    name = getattr(model, "zoo_name", None)
    return weights_sha256(name) if name else None


def _check_no_arguments(spec: str, factory: Callable) -> None:
    """A factory is called with no arguments: one that needs some was a TypeError traceback from the call (errors
    raised inside a factory are its own and stay as they are)."""
    try:
        sig = inspect.signature(factory)
    except (TypeError, ValueError):  # no signature to read (a builtin): the call says what it says
        return
    try:
        sig.bind()
    except TypeError:
        needed = [n for n, p in sig.parameters.items() if p.default is p.empty
                  and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
        raise DgnamError(f"{spec} takes arguments ({', '.join(needed)}): give a factory that builds the model with no "
                         f"arguments (def make(): return {spec.partition(':')[2]}(...))") from None


def _where(e: Exception) -> str:
    """``e`` in one line with the file and line of the user's code it came from (the last frame of its traceback
    outside torch): for an error in the user's own module or factory, where to look, in place of a traceback
    printed by the command line."""
    import traceback

    frames = traceback.extract_tb(e.__traceback__)
    inside_torch = str(Path(torch.__file__).parent)
    mine = [f for f in frames if not f.filename.startswith(inside_torch)] or frames
    at = f" ({mine[-1].filename}, line {mine[-1].lineno})" if mine else ""
    return f"{type(e).__name__}: {first_line(e)}{at}"


def load_model(spec: str | os.PathLike, arch: str | None = None, pretrained: bool = True) -> nn.Module:
    """A model from a zoo name, an import path ``package.module:factory`` (called with no arguments), or a local
    weights file (a str or a Path) with ``arch`` naming its zoo architecture (``.safetensors`` or a plain state dict;
    not needed where the card beside the file names it, as `dgnam train` writes it). ``pretrained=False`` builds a
    zoo name's architecture without its weights."""
    import importlib

    # a Path as the string it names: `":" in spec` raised TypeError on one that is no weights file (a folder, a typo)
    spec = os.fspath(spec)
    if is_weights_file(spec):
        from . import files

        if not Path(spec).exists():  # (not "say which architecture it holds": there is no file to hold any)
            raise DgnamError(f"{spec} does not exist: give the path of a weights file, a zoo name (`dgnam models` "
                             f"lists them) or package.module:factory")
        arch = arch or files.card_arch(Path(spec))
        if arch is None:
            raise DgnamError(f"{spec} is a weights file: say which architecture it holds (--arch NAME for --model, "
                             f"--generator-arch NAME for --generator; `dgnam models` lists them)")

        model = files.load_file_model(Path(spec), arch)
        model.dgnam_source = {"spec": str(Path(spec).resolve()), "arch": arch}  # recorded by runs, for evaluate
        return model
    if ":" in spec:
        import sys

        mod_name, _, attr = spec.partition(":")
        cwd = os.getcwd()
        added = cwd not in sys.path
        if added:  # like `python -m`: the user's own modules in the working directory, for this import only
            sys.path.insert(0, cwd)
        try:
            try:
                factory = getattr(importlib.import_module(mod_name), attr)
            except (ImportError, AttributeError) as e:
                hint = (f" (a module name, not a file: {mod_name[:-3]}:{attr} for ./{mod_name})"
                        if mod_name.endswith(".py") else "")
                raise DgnamError(f"cannot import {spec!r} ({e}); give package.module:factory on PYTHONPATH{hint}"
                                 ) from None
            except SyntaxError as e:  # the user's module: where, in one line (the traceback is all frozen importlib)
                raise DgnamError(f"cannot import {spec!r}: {e.msg} ({e.filename}, line {e.lineno})") from None
            except Exception as e:  # noqa: BLE001 -- the module raised as it ran; its traceback stays chained
                raise DgnamError(f"importing {mod_name} for {spec!r} failed: {_where(e)}") from e
            if callable(factory) and not isinstance(factory, nn.Module):
                _check_no_arguments(spec, factory)
                try:
                    obj = factory()
                except DgnamError:
                    raise
                except Exception as e:  # noqa: BLE001 -- the user's factory failed: say where, keep its traceback
                    raise DgnamError(f"{spec}() failed: {_where(e)}") from e
            else:
                obj = factory
        finally:
            if added and cwd in sys.path:
                sys.path.remove(cwd)
        if not isinstance(obj, nn.Module):
            raise DgnamError(f"{spec} returned {type(obj).__name__}, not an nn.Module")
        obj.dgnam_source = {"spec": spec, "arch": None}  # recorded by runs, for evaluate
        return obj.eval()
    return create_model(spec, pretrained=pretrained)
