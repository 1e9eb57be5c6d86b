"""What to excite: unit addresses on any ``nn.Module`` and a forward pass that stops at the deepest requested layer.

A unit is ``LAYER:CH`` where LAYER is a ``named_modules()`` path (``classifier.3``, ``features.10``) or ``logits`` (the
model's output when no module has that name) and CH a channel index or, for models that carry ``classes``, a class
name. On a conv layer the default is the centre spatial unit of the channel, as the released DGN-AM code does (unit
(6, 6) of CaffeNet's 13x13 conv5); ``LAYER:CH@Y,X`` picks a position and ``LAYER:CH:mean`` the channel mean.
Several units share a layer with commas: ``fc6:0,1,2`` or ``logits:espresso,logits:goldfish``.

Two more objectives read the same way (Lucid's negative ``channel`` and ``direction``): a leading minus minimizes a
unit (``-logits:3``: what the neuron dislikes), and ``LAYER:dir=FILE`` reads, instead of one channel, the dot product
of the layer's channel vector with a vector of its channel count (a probe or concept-activation vector) from a
``.npy`` or ``.safetensors`` file. Its address names the file and a digest of the vector
(``fc6:dir=probe.npy#3f2a9c1b04de5a6b``), so a run's records say which vector they show. A weighted sum of one
layer's channels (``fc6:3+0.5*7``, ``logits:Sandal+Sneaker``: Lucid's ``channel(A) + channel(B)``) is the direction
with those weights, made when the units are resolved, since the vector's length is the layer's channel count.
Units add and scale as Lucid's objectives do, into that sum: ``Unit("fc6", 3) + 0.5 * Unit("fc6", 7)``.
"""

from __future__ import annotations

import difflib
import math
import numbers
import os
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import torch
from torch import nn

from .errors import DgnamError, first_line, is_int, warn
from .modules import batch_statistics_modules, frozen, module_device, module_dtype, unwrapped
from .weights import load_state_dict, tensor_digest

LOGITS = "logits"

_ITEM = re.compile(
    r"\s*(?:(?P<layer>[^:,@\s][^:,@]*?)\s*:\s*)?(?P<ch>[^:,@]+?)\s*"
    r"(?:@\s*(?P<y>-?\d+)\s*,\s*(?P<x>-?\d+))?\s*(?::\s*(?P<red>mean))?\s*(?:,|$)"
)


#: A sum written with a layer in each term (``fc6:3+fc6:7``, ``logits:1+0.5*features.4:2``): the two layers.
_LAYER_PER_TERM = re.compile(r"\s*-?\s*([^:,@]+?)\s*:[^,]*\+\s*-?\s*(?:[-+\d.eE]+\s*\*\s*)?([^:,@+*]+?)\s*:")

#: What ``LAYER:dir=FILE`` reads a direction from: formats that hold arrays only, so a shared file cannot run code.
DIRECTION_SUFFIXES = (".npy", ".safetensors")
#: Characters a direction's name may not hold: they separate the parts of a unit address, which must parse back.
_ADDRESS_SEPARATORS = ",:@#"


@dataclass(frozen=True)
class Unit:
    """One objective: a layer, a channel (index, or class name until resolved) or a direction, a position or
    ``mean``, and a sign.

    ``sign=-1`` minimizes the unit (the loop maximizes ``-activation``; records keep the raw activation, so it reads
    as falling); ``-unit`` is the same unit with the other sign. ``direction`` (a vector of the layer's channel count,
    in place of ``channel``) reads the dot product of the channel vector with it, at the unit's position or averaged
    over positions as a channel would be. The vector is kept as float32 on the CPU and named in the address by
    ``direction_name`` and its digest (``tensor_digest``), which is what equality and resume compare: two vectors
    under one file name are told apart.
    """

    layer: str
    channel: int | str | None = None
    position: tuple[int, int] | None = None
    reduce: str = "point"  # "point" or "mean"
    sign: int = 1  # 1: maximize, -1: minimize
    direction: torch.Tensor | None = field(default=None, compare=False, repr=False)
    direction_name: str | None = None  # the file it came from, in the address ("vector" when not given)
    digest: str | None = field(default=None, init=False)  # the direction's, set from it

    def __post_init__(self) -> None:
        if self.reduce not in ("point", "mean"):
            raise DgnamError(f"unit reduce={self.reduce!r}: use 'point' (one position) or 'mean' (the channel mean)")
        if not is_int(self.sign) or self.sign not in (1, -1):
            raise DgnamError(f"unit sign={self.sign!r}: give 1 (maximize) or -1 (minimize)")
        object.__setattr__(self, "sign", int(self.sign))
        if self.direction is not None:
            if self.channel is not None:
                raise DgnamError(f"unit on layer {self.layer!r}: give a channel or a direction, not both")
            object.__setattr__(self, "direction_name", "vector" if self.direction_name is None else self.direction_name)
            name = self.direction_name
            if not isinstance(name, str) or not name.strip() or name != name.strip() or any(
                    c in name for c in _ADDRESS_SEPARATORS):
                raise DgnamError(f"direction_name={self.direction_name!r}: give a name without , : @ # or "
                                 f"spaces around it (a unit address must read back as written)")
            object.__setattr__(self, "direction", _as_direction(self.direction, f"the direction on {self.layer!r}"))
            object.__setattr__(self, "digest", tensor_digest([self.direction]))
        elif self.direction_name is not None:
            raise DgnamError(f"unit on layer {self.layer!r}: direction_name names a direction; give direction=VECTOR "
                             f"too, or drop direction_name")
        elif self.channel is None:
            raise DgnamError(f"unit on layer {self.layer!r} has no channel: give channel=CH or direction=VECTOR")
        elif not (is_int(self.channel) or isinstance(self.channel, str)):
            raise DgnamError(f"unit channel {self.channel!r}: give an int index or a class name")
        if isinstance(self.channel, numbers.Integral):  # numpy ints too, kept as plain ints (JSON, equality)
            object.__setattr__(self, "channel", int(self.channel))
        if self.position is not None:
            pos = tuple(self.position)
            if len(pos) != 2 or not all(is_int(v) for v in pos):
                raise DgnamError(f"unit position {self.position!r}: give (y, x) as two ints")
            object.__setattr__(self, "position", tuple(int(v) for v in pos))
            if self.reduce == "mean":  # the mean is over every position: one of them would be silently ignored
                raise DgnamError(f"unit {self.address!r}: @Y,X picks one position and :mean averages them all; give "
                                 f"one of them")

    @property
    def address(self) -> str:
        what = f"dir={self.direction_name}#{self.digest}" if self.direction is not None else f"{self.channel}"
        s = f"{'-' if self.sign < 0 else ''}{self.layer}:{what}"
        if self.position is not None:
            s += f"@{self.position[0]},{self.position[1]}"
        if self.reduce == "mean":
            s += ":mean"
        return s

    @property
    def goal(self) -> str:
        """``"maximize"`` or ``"minimize"``: what the run did to the activation, as records and evaluations say."""
        return "minimize" if self.sign < 0 else "maximize"

    def __neg__(self) -> Unit:
        return replace(self, sign=-self.sign)

    # Lucid's objective arithmetic on one layer's channels: ``Unit("fc6", 3) + 0.5 * Unit("fc6", 7)`` is the sum
    # ``fc6:3+0.5*7``, and resolves to its direction as the string does (sum(units) works too: it starts at 0).
    def __add__(self, other: object) -> Unit:
        if isinstance(other, numbers.Real) and not isinstance(other, bool) and other == 0:
            return self
        if not isinstance(other, Unit):
            return NotImplemented
        if other.layer != self.layer:
            raise DgnamError(f"{self.address} + {other.address}: a sum takes the channels of one layer (sums across "
                             f"layers are not supported): run them as separate units")
        if (other.position, other.reduce) != (self.position, self.reduce):
            raise DgnamError(f"{self.address} + {other.address}: a sum reads its channels at one position (or their "
                             f"mean): give both units the same position and reduce")
        return _from_terms(self, _terms(self) + _terms(other))

    __radd__ = __add__

    def __sub__(self, other: object) -> Unit:
        return self + (-other) if isinstance(other, Unit) else NotImplemented

    def __mul__(self, weight: object) -> Unit:
        k = _real_weight(weight)
        if k is None:
            return NotImplemented
        if not math.isfinite(k):
            raise DgnamError(f"{self.address} * {k}: weight a unit by a finite number")
        return _from_terms(self, [(k * w, ch) for w, ch in _terms(self)])

    __rmul__ = __mul__

    def __truediv__(self, weight: object) -> Unit:
        k = _real_weight(weight)
        if k is None:
            return NotImplemented
        if k == 0:
            raise DgnamError(f"{self.address} / 0: divide a unit by a non-zero number")
        return self * (1.0 / k)

    def __str__(self) -> str:
        return self.address


def _as_direction(v, what: str) -> torch.Tensor:
    """``v`` as a direction: one finite, non-zero float32 vector on the CPU, a copy (a caller's later in-place edit
    cannot change a unit that is used as a key). A ``(1, C)`` array (scikit-learn's ``coef_`` of a binary probe) is
    one vector; a matrix of several is refused, since which row is meant is unknown."""
    try:
        t = torch.as_tensor(v).detach()
    except (TypeError, ValueError, RuntimeError):
        raise DgnamError(f"{what} is a {type(v).__name__}: give a vector (a tensor or numpy array)") from None
    if t.dtype.is_complex or t.dtype == torch.bool or not (t.is_floating_point() or t.dtype.is_signed
                                                             or t.dtype == torch.uint8):
        raise DgnamError(f"{what} holds {t.dtype} values: give a real-valued vector")
    if t.dim() == 0 or sum(s > 1 for s in t.shape) > 1:
        raise DgnamError(f"{what} has shape {tuple(t.shape)}: give one vector of the layer's channel count")
    t = t.to("cpu", torch.float32).reshape(-1).clone()
    if not torch.isfinite(t).all():
        raise DgnamError(f"{what} holds NaN or inf values: give a finite vector")
    if not t.any():  # its dot product is 0 on every image: nothing to optimize
        raise DgnamError(f"{what} is all zeros: give a non-zero vector")
    return t


def load_direction(path: str | os.PathLike) -> torch.Tensor:
    """The vector in a ``.npy`` file (read with ``allow_pickle=False``) or a ``.safetensors`` file holding one
    tensor: ``LAYER:dir=FILE``. Neither format can carry code, so a shared probe file is safe to read."""
    import numpy as np

    p = Path(path)
    if p.suffix.lower() not in DIRECTION_SUFFIXES:
        raise DgnamError(f"direction file {p}: give a .npy or .safetensors file holding one vector")
    if not p.is_file():
        raise DgnamError(f"direction file {p} is not a file (LAYER:dir=FILE reads FILE from the working directory)")
    if p.suffix.lower() == ".safetensors":
        tensors = load_state_dict(p)
        if len(tensors) != 1:
            raise DgnamError(f"{p} holds {len(tensors)} tensors ({', '.join(sorted(tensors)[:4])}): a direction "
                             f"file holds one vector")
        (t,) = tensors.values()
        return t
    try:
        arr = np.load(p, allow_pickle=False)
    except (ValueError, OSError, EOFError) as e:  # an object array needs pickle, and is refused
        raise DgnamError(f"{p} is not a readable .npy array ({first_line(e)}): save the vector with numpy.save") from None
    if arr.dtype.kind not in "fiu":
        raise DgnamError(f"{p} holds {arr.dtype} values: save a real-valued vector")
    return torch.from_numpy(np.ascontiguousarray(arr))


def _direction_unit(layer: str, label: str, position: tuple[int, int] | None, reduce: str, sign: int,
                    directions: Mapping[str, torch.Tensor]) -> Unit:
    """The unit of ``LAYER:dir=LABEL``. LABEL is a file (``probe.npy``), or as a record names it ``NAME#DIGEST``:
    then the vector of that digest in ``directions`` (a run's saved copy), else the file NAME, refused when it holds
    another vector than the record's."""
    name, sep, digest = label.rpartition("#")
    if not sep:
        name, digest = label, ""
    if not name.strip():
        raise DgnamError(f"unit {layer}:dir={label}: give the vector's file, e.g. {layer}:dir=probe.npy")
    saved = digest in directions
    if not saved and is_sum(name) and Path(name.strip()).suffix.lower() not in DIRECTION_SUFFIXES:
        # a sum's address (`fc6:dir=3+7#DIGEST`) reads back as the sum, which resolve_units makes the vector again
        return Unit(layer, name.strip(), position, reduce, sign)
    v = directions[digest] if saved else load_direction(name.strip())
    u = Unit(layer, None, position, reduce, sign, direction=v, direction_name=Path(name.strip()).name)
    if digest and u.digest != digest:
        where = "the run's saved copy of it" if saved else name.strip()
        raise DgnamError(f"{where} holds another vector (digest {u.digest}) than the unit {layer}:dir={label}: "
                         + ("the run was altered; make it again" if saved else "give the vector that run used, or "
                            "make a new run"))
    return u


def parse_units(spec: str | Unit | Sequence[str | Unit],
                directions: Mapping[str, torch.Tensor] | None = None) -> list[Unit]:
    """Parse ``"fc6:0,1,2"``, ``"features.10:5@3,4"``, ``"conv5:7:mean"``, ``"logits:espresso,logits:goldfish"``,
    ``"logits:0-99"`` or ``"fc6:all"`` (spans are expanded by :func:`resolve_units`, which knows the channel count)
    or a list of such strings into :class:`Unit` objects (class names stay strings until :func:`resolve_units`).

    A leading minus minimizes: ``"-logits:3"``; it carries over the items that share its layer (``"-fc6:0,1"`` is
    two minimized units), as the layer does. ``"fc6:dir=probe.npy"`` is a direction read from that file (see
    :func:`load_direction`); a record's address ``"fc6:dir=probe.npy#DIGEST"`` takes the vector of that digest from
    ``directions`` (digest -> vector: a run's saved copies) or else from the file, which must still hold it."""
    if isinstance(spec, Unit):
        return [spec]
    if not isinstance(spec, str):
        items = list(spec) if isinstance(spec, Iterable) else []  # a list, tuple, numpy array or generator
        if not items:
            raise DgnamError(f"units {spec!r}: give a string like 'logits:0,1,2', a Unit, or a non-empty list of them")
        return [u for s in items for u in parse_units(s, directions)]
    units: list[Unit] = []
    pos, layer, sign = 0, None, 1
    text = spec.strip()
    while pos < len(text):
        m = _ITEM.match(text, pos)
        if not m or m.end() == pos:
            summed = _LAYER_PER_TERM.match(text, pos)
            if summed:  # `fc6:3+fc6:7`, `logits:1+features.4:2`: a sum written with a layer in each term
                first, second = summed[1], summed[2]
                fix = (f"name the layer once, {first}:A+B" if first == second else
                       f"sums across layers are not supported: give them as separate units, {first}:...,{second}:...")
                raise DgnamError(f"cannot parse unit list {spec!r} at {text[pos:]!r}: a sum of channels takes one "
                                 f"layer's channels; {fix}")
            raise DgnamError(f"cannot parse unit list {spec!r} at {text[pos:]!r}: write LAYER:CH[,CH...], LAYER:A-B, "
                             f"LAYER:A+B, LAYER:all, LAYER:CH@Y,X, LAYER:CH:mean, -LAYER:CH (minimize) or "
                             f"LAYER:dir=FILE")
        item_layer, ch_s, red = m["layer"], m["ch"].strip(), m["red"]
        if (item_layer and layer is not None and ch_s == "mean" and not red and m["y"] is None
                and re.fullmatch(r"-?\d+|\d+\s*-\s*\d+|all", item_layer.strip(), re.IGNORECASE)):
            # `conv5:0,1:mean` is conv5:1:mean, as `conv5:0,1@2,3` is conv5:1@2,3; it was read as a layer `1` with a
            # channel `mean` ("unknown layer '1'", or a Sequential's layer 1)
            item_layer, ch_s, red = None, item_layer.strip(), "mean"
        if item_layer:
            item_layer = item_layer.strip()
            sign = -1 if item_layer.startswith("-") else 1
            layer = item_layer[1:].strip() if sign < 0 else item_layer
        if not layer:
            ch_hint = m["ch"].strip() if re.fullmatch(r"-?\d+", m["ch"].strip()) else "0"
            raise DgnamError(f"unit {m['ch'].strip()!r} has no layer or no channel: write LAYER:CH, e.g. "
                             f"logits:{ch_hint} (`dgnam layers MODEL` lists the layers)")
        position = (int(m["y"]), int(m["x"])) if m["y"] is not None else None
        reduce = "mean" if red else "point"
        if ch_s.startswith("dir="):
            units.append(_direction_unit(layer, ch_s[4:].strip(), position, reduce, sign, directions or {}))
        else:
            ch: int | str = int(ch_s) if re.fullmatch(r"-?\d+", ch_s) else ch_s
            units.append(Unit(layer, ch, position, reduce, sign))
        pos = m.end()
    if not units:
        raise DgnamError("no units given: write e.g. --units 'logits:0,1,2'")
    return units


def require_plain_units(units: Sequence[Unit], what: str) -> None:
    """Refuse minimized units and directions where only ``visualize`` knows them (facets rank real images by the raw
    activation; a PPGN chain's records have no file to keep a vector in): one line, rather than a silent maximum."""
    odd = [u.address for u in units if u.sign != 1 or u.direction is not None]
    if odd:
        raise DgnamError(f"{what} takes plain units (LAYER:CH); {odd[0]} is a minimized unit, a direction or a sum "
                         f"of channels, which only `visualize` optimizes")


def layer_modules(model: nn.Module) -> dict[str, nn.Module]:
    """The model's layers by the names units give them (a compiled or DataParallel model's by the wrapped model's
    names: :func:`dgnam.modules.unwrapped`). TorchScript modules (and all below them) are left out: they take no
    forward hooks, which layers are read with, so they are no layers here (a scripted model's output still is)."""
    return {n: m for n, m in unwrapped(model).named_modules() if n and not isinstance(m, torch.jit.ScriptModule)}


def layer_names(model: nn.Module) -> list[str]:
    names = list(layer_modules(model))
    return names if LOGITS in names else names + [LOGITS]


def output_tensor(out, what: str = "the model") -> torch.Tensor:
    """The tensor in a module's output: the output itself, the first item of a tuple or list, or a dict's (a Hugging
    Face ``ModelOutput`` is one) ``logits``, else its first tensor. Anything else is a one-line error: a forward that
    returns no tensor has nothing to excite."""
    if isinstance(out, torch.Tensor):
        return out
    if isinstance(out, (tuple, list)) and out:
        return output_tensor(out[0], what)
    if isinstance(out, Mapping):
        if isinstance(out.get(LOGITS), torch.Tensor):
            return out[LOGITS]
        first = next((v for v in out.values() if isinstance(v, torch.Tensor)), None)
        if first is not None:
            return first
    raise DgnamError(f"{what} returns {type(out).__name__}, not a tensor: wrap it in a module whose forward returns "
                     f"the tensor to read")


class _ValueWithGradientOf(torch.autograd.Function):
    """``value`` forward, and the gradient goes to ``source`` instead (a straight-through estimator): a ReLU's
    output with its input's gradient. (``value + (source - source.detach())`` would be NaN where the input is -inf.)"""

    @staticmethod
    def forward(ctx, value: torch.Tensor, source: torch.Tensor) -> torch.Tensor:
        return value.clone()

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        return None, grad


class _Stop(Exception):
    """Raised by a hook once the deepest requested layer has run: the rest of the network is never executed. (An
    ``Exception``, so that ``nn.DataParallel``'s workers hand it back to the caller; a model's own ``except
    Exception`` fallback may catch it and run its forward again, which costs time but keeps the first output.)"""


#: How the gradient of a unit read at a ReLU's output is taken. ``"pre"`` (the default of every method) is the
#: gradient of the ReLU's input, with the value still the ReLU's output: the released DGN-AM code (``act_max.py``)
#: runs ``net.forward(end=layer)`` and ``net.backward(start=layer)``, which stop at the layer named, before Caffe's
#: in-place ReLU that follows it, so a hidden unit that is 0 still has a gradient. ``"exact"`` back-propagates through
#: the ReLU: a unit that falls to 0 (DGN-AM's lr of 8 overshoots often) never moves again, and 38 of 40 DGN-AM runs on
#: ``features.16:0-9`` and ``fc6.1:0-9`` of ``fmnist-cnn`` ended at 0 that way (``benchmarks/relu_gradient.py``).
#: Only a rectifier module (:data:`RECTIFIERS`) inside the layer read counts: ``F.relu`` in a forward, other
#: activations, and a ReLU before the layer (a ``Dropout`` after a ReLU passes its tensor on) are differentiated as
#: they are.
RELU_GRADIENTS = ("pre", "exact")
#: The modules whose input's gradient ``"pre"`` takes: ReLU, and ReLU6 (MobileNet's, torchvision's
#: ``Conv2dNormActivation`` blocks), whose gradient is 0 below 0 and above 6 alike.
RECTIFIERS = (nn.ReLU, nn.ReLU6)
#: The default of every method (:class:`dgnam.AMConfig`, :class:`dgnam.ppgn.UnitCondition`): the released code's.
DGNAM_RELU_GRADIENT = "pre"


def check_relu_gradient(rule: str, name: str = "relu_gradient") -> str:
    """``rule`` if it is one of :data:`RELU_GRADIENTS`, else a one-line error naming ``name`` (a flag, say)."""
    if rule not in RELU_GRADIENTS:
        raise DgnamError(f"unknown {name} {rule!r}: use {' or '.join(RELU_GRADIENTS)}")
    return rule


class LayerReader(nn.Module):
    """Runs ``model`` until every requested layer has produced its output, and returns those outputs.

    ``logits`` (when no module has that name) means the model's final output, and runs the whole network.
    Outputs are cloned in the hook so that later in-place operations (``ReLU(inplace=True)``) cannot change them, and
    the model gets a copy of the input, so that a forward that edits its input in place cannot change the caller's
    images or the code of a pixel generator. A module that runs more than once in a forward pass (a ResNet block's
    shared ``relu``) is read at its first call; with ``count_calls`` the pass goes on past the requested layers and
    ``calls`` says how often each ran, so that :func:`resolve_units` can warn. Layers after them that fail on this
    input (a head built for another size) end the pass as the early stop would, and ``ran_to_end`` is then False.

    ``relu_gradient="pre"`` changes the gradient, not the value, of a layer whose output an ``nn.ReLU`` (or
    ``nn.ReLU6``) produced (the ReLU itself, or a block ending in one): its gradient is that of the ReLU's input. See
    :data:`RELU_GRADIENTS`.
    """

    def __init__(self, model: nn.Module, layers: Iterable[str], count_calls: bool = False) -> None:
        super().__init__()
        self.model = unwrapped(model)
        self.count_calls = count_calls
        self.calls: dict[str, int] = {}
        self.ran_to_end = False
        self.layers = list(dict.fromkeys(layers))
        mods = layer_modules(model)
        every = dict(self.model.named_modules())
        for name in self.layers:
            if isinstance(every.get(name), torch.jit.ScriptModule) and name != LOGITS:
                raise DgnamError(f"layer {name!r} is TorchScript (torch.jit.script or trace), which takes no forward "
                                 f"hooks to read a layer with: pass the nn.Module it was made from")
            if name not in mods and name != LOGITS:
                close = difflib.get_close_matches(name, list(mods) + [LOGITS], n=3, cutoff=0.5)
                hint = f"; closest: {', '.join(close)}" if close else ""
                raise DgnamError(f"unknown layer {name!r}{hint} (`dgnam layers MODEL` lists them)")
        self._modules_by_name = {n: mods[n] for n in self.layers if n in mods}
        self._needs_output = LOGITS in self.layers and LOGITS not in mods
        #: per layer, the ReLU that produced its output in the first relu_gradient="pre" pass (or none): later passes
        #: hook only those, not every ReLU of a large block read (each in-place one's input would be copied)
        self._output_relus: dict[str, set[int]] | None = None

    def forward(self, x: torch.Tensor, relu_gradient: str = "exact") -> dict[str, torch.Tensor]:
        check_relu_gradient(relu_gradient)
        outs: dict[str, torch.Tensor] = {}
        wanted = set(self._modules_by_name)
        handles = []
        self.calls = dict.fromkeys(self._modules_by_name, 0)
        self.ran_to_end = False
        relu_inputs: list[tuple[nn.Module, torch.Tensor, torch.Tensor]] = []  # (a ReLU, its output, its input)
        pending: dict[int, torch.Tensor] = {}  # a running ReLU's input
        inner: dict[str, set[int]] = {}  # the ReLUs inside each requested layer
        matched: dict[str, int] = {}  # the ReLU whose output each layer's output was, this pass

        def hook_for(name: str):
            def hook(_m, _inp, out):
                self.calls[name] += 1
                if name in outs:  # a module called twice: keep its first output
                    return
                t = output_tensor(out, f"layer {name!r}")
                # only a ReLU inside this layer: a Dropout after a ReLU passes the ReLU's very tensor on, and whether
                # that ReLU is hooked must not depend on which other layers the run reads
                found = next(((r, i) for r, o, i in relu_inputs if o is t and id(r) in inner[name]), None)
                if found is not None:
                    matched[name] = id(found[0])
                outs[name] = t.clone() if found is None else _ValueWithGradientOf.apply(t, found[1])
                if not self._needs_output and not self.count_calls and wanted <= set(outs):
                    raise _Stop

            return hook

        def relu_pre_hook(m, inp):
            pending[id(m)] = inp[0].clone() if m.inplace else inp[0]  # (an in-place ReLU overwrites it)

        def relu_hook(m, _inp, out):
            relu_inputs.append((m, out, pending.pop(id(m))))

        if relu_gradient == "pre":  # registered first, so that a ReLU's record exists when its layer's hook runs
            relus, known = {}, self._output_relus
            for n, m in self._modules_by_name.items():
                mine = [r for r in m.modules() if type(r) in RECTIFIERS and (known is None or id(r) in known[n])]
                inner[n] = {id(r) for r in mine}
                relus.update((id(r), r) for r in mine)
            for r in relus.values():
                handles += [r.register_forward_pre_hook(relu_pre_hook), r.register_forward_hook(relu_hook)]
        for name, m in self._modules_by_name.items():
            handles.append(m.register_forward_hook(hook_for(name)))
        try:
            # a .double() or .half() model gets its own dtype; a copy, which the model may edit in place
            y = self.model(x.to(module_dtype(self.model), copy=True))
            if self._needs_output:
                outs[LOGITS] = output_tensor(y)
            self.ran_to_end = True
        except _Stop:
            pass
        except Exception:  # noqa: BLE001
            if not (self.count_calls and not self._needs_output and wanted <= set(outs)):
                raise  # (a failure after every requested layer ran is only the end of the extra counting)
        finally:
            for h in handles:
                h.remove()
            relu_inputs.clear()
            pending.clear()
        missing = [n for n in self.layers if n not in outs]
        if missing:
            raise DgnamError(f"layer(s) {', '.join(map(repr, missing))} did not run in the model's forward pass (in eval "
                             f"mode, e.g. an auxiliary head): pick a layer on the path to the output")
        if relu_gradient == "pre" and self._output_relus is None:
            self._output_relus = {n: {matched[n]} if n in matched else set() for n in self._modules_by_name}
        return outs


#: What to do when the first forward pass fails: by default the model's declared input is wrong.
DECLARE_INPUT = "declare the size and channels it takes (--input-shape CxHxW, or model.input_space)"


def _probe(fn, example: torch.Tensor, fix: str = DECLARE_INPUT):
    """The first forward pass of a model on an image of its declared input size: a model built for another size or
    channel count fails here, and the user gets one line naming the shape, not torch's traceback. A forward that
    needs arguments besides the image (TypeError) fails here too."""
    try:
        return fn(example)
    except torch.OutOfMemoryError:  # not about the input's shape
        raise
    except (RuntimeError, ValueError, IndexError, TypeError) as e:
        msg = first_line(e)
        if isinstance(e, TypeError) and "argument" in msg:
            fix = "wrap the model in a module whose forward takes only the image batch"
        raise DgnamError(f"the model fails on an input of shape {'x'.join(map(str, example.shape[1:]))} ({msg}); "
                         f"{fix}") from None


def resolve_units(model: nn.Module, units: Sequence[Unit], example: torch.Tensor,
                  batches_of_one: bool = False) -> list[Unit]:
    """Check every unit against the model's real layer shapes (from one forward pass of ``example``) and turn
    class names into indices. Unknown layers name the closest existing ones; indices out of range state the range.
    ``batches_of_one``: the caller runs one image per batch, so BatchNorm with the batch's own statistics is not
    warned about (no image changes another's activations)."""
    reader = LayerReader(model, [u.layer for u in units], count_calls=True)
    shared = batch_statistics_modules(model)
    fix = DECLARE_INPUT
    if shared:
        names = ", ".join(map(repr, shared[:3])) + (", ..." if len(shared) > 3 else "")
        if not batches_of_one:
            warn(f"BatchNorm layer(s) {names} normalize with the batch's own statistics even in eval mode "
                 f"(track_running_stats=False): the images of one batch change each other's activations, so "
                 f"results depend on the batching (visualize: a batch of one image, --batch-size 1, avoids it)")
        fix = (f"{DECLARE_INPUT}; or, if it fails only on one image, track running statistics in {names} (they use "
               f"the batch's statistics)")
    with torch.no_grad(), frozen(model):  # eval mode: a probe must not move BatchNorm's running statistics
        outs = _probe(reader, example.to(module_device(model)), fix)
    for name, n in reader.calls.items():
        if n > 1:  # (a pass that failed after the requested layers saw at least these calls)
            times = f"{n} times" if reader.ran_to_end else f"at least {n} times"
            warn(f"layer {name!r} runs {times} in one forward pass (a module used twice, such as a ResNet block's "
                 f"relu): its units read its first call; to read a later one, give that call its own module")
    classes = list(getattr(model, "classes", None) or [])
    for u in units:
        if u.layer == LOGITS and u.direction is None and is_int(u.channel):
            warn_if_numbered_elsewhere(int(u.channel), classes, f"unit {u.address}: class")
    resolved = []
    for u in _expand_spans(units, outs, classes):
        out = outs[u.layer]
        shape = tuple(out.shape[1:])
        if len(shape) == 0:
            raise DgnamError(f"layer {u.layer!r} outputs a scalar per image; pick a layer with channels")
        n = shape[0]
        if u.direction is not None:
            if len(u.direction) != n:
                raise DgnamError(f"unit {u.address}: the direction has {len(u.direction)} values, but layer "
                                 f"{u.layer!r} has {n} channels: give a vector of {n} values")
        elif is_sum(u.channel, classes):
            u = _sum_unit(u, n, classes)
        else:
            u = replace(u, channel=_channel_index(u, n, classes))
        spatial = shape[1:]
        if u.position is not None:
            if len(spatial) != 2:
                raise DgnamError(f"unit {u.address}: layer {u.layer!r} has output shape {shape}, no 2-D position to pick")
            y, x = u.position
            if not (0 <= y < spatial[0] and 0 <= x < spatial[1]):
                raise DgnamError(f"unit {u.address}: position out of range; y in 0..{spatial[0] - 1}, x in 0..{spatial[1] - 1}")
        if u.reduce == "mean" and not spatial:
            raise DgnamError(f"unit {u.address}: ':mean' needs a spatial layer; {u.layer!r} outputs {shape}")
        resolved.append(u)
    return resolved


#: One term of a sum of channels, ``[W*]CH``: CH an index or a class name, W a number (``-0.5*7``; ``-7`` is ``-1*7``).
_SUM_TERM = re.compile(r"\s*(?:(?P<w>[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*\*\s*)?(?P<ch>.*?)\s*")


def is_sum(channel: object, classes: Sequence[str] = ()) -> bool:
    """Whether a unit's channel is a weighted sum of channels (``3+7``, ``Sandal+0.5*Sneaker``), not a class whose
    name holds ``+`` or ``*``."""
    return (isinstance(channel, str) and ("+" in channel or "*" in channel)
            and channel.strip().lower() not in (str(c).lower() for c in classes))


def _sum_terms(u: Unit) -> list[tuple[float, str]]:
    """The terms of the sum ``u.channel`` (``"3+0.5*7"``, ``"Sandal+-Sneaker"``) as (weight, channel) pairs, the
    channel an index's digits or a class name; a term that cannot be read is refused naming the forms."""
    terms = []
    for term in u.channel.split("+"):
        m = _SUM_TERM.fullmatch(term)
        ch = m["ch"] if m else ""
        w = float(m["w"]) if m and m["w"] is not None else 1.0
        if m and m["w"] is None and ch.startswith("-"):  # `A+-B`: B subtracted
            ch, w = ch[1:].strip(), -1.0
        if not ch or "*" in ch:
            raise DgnamError(f"unit {u.address}: cannot read the term {term.strip()!r} of the sum: write "
                             f"{u.layer}:A+B, {u.layer}:A+0.5*B or {u.layer}:A+-B with A, B channel indices or class "
                             f"names")
        terms.append((w, ch))
    return terms


def _real_weight(weight: object) -> float | None:
    """A weight of :class:`Unit`'s arithmetic as a float: a real number (numpy's too) or a one-value real tensor (a
    probe's coefficient, say); None for anything else (a bool included), which the operator leaves to the other
    operand."""
    if isinstance(weight, torch.Tensor) and weight.numel() == 1 and not weight.is_complex():
        weight = weight.item()
    if not isinstance(weight, numbers.Real) or isinstance(weight, bool):
        return None
    return float(weight)


def _term_channel(text: str) -> int | str:
    """A sum term's channel as a unit holds it: an index's digits as the int, a class name as it is."""
    return int(text) if re.fullmatch(r"\d+", text) else text


def _terms(u: Unit) -> list[tuple[float, str]]:
    """``u`` as weighted channel terms for :class:`Unit`'s arithmetic, its sign in the weights. A direction, a span
    (``0-9``, ``all``: many units) or a negative index is refused in one line: none is a channel to weight."""
    if u.direction is not None:
        raise DgnamError(f"{u.address}: a direction does not add to other units; add the vectors instead, "
                         f"Unit({u.layer!r}, direction=v + w)")
    ch = str(u.channel).strip()
    if re.fullmatch(r"\d+\s*-\s*\d+|all", ch, re.IGNORECASE) or ch.startswith("-"):
        raise DgnamError(f"{u.address}: a span or a negative index is not one channel to add or weight; give a "
                         f"channel index or class name (-Unit({u.layer!r}, 3) minimizes channel 3)")
    terms = _sum_terms(u) if is_sum(ch) else [(1.0, ch)]
    return [(u.sign * w, c) for w, c in terms]


def _from_terms(u: Unit, terms: list[tuple[float, str]]) -> Unit:
    """The unit of ``terms`` on ``u``'s layer, position and reduce: a plain channel where one term of weight 1
    is left (``1 * unit`` is the unit), else the sum's string; minimized where every weight is negative (``-a + -b``
    is ``-(a + b)``), so records say what the run did."""
    sign = -1 if all(w < 0 for w, _ in terms) else 1
    terms = [(w * sign, c) for w, c in terms]
    if len(terms) == 1 and terms[0][0] == 1:
        ch = terms[0][1]
        return replace(u, channel=_term_channel(ch), sign=sign)
    # as the string would be written (`3+-7` subtracts), each other weight as the shortest text that reads back to
    # it (repr), an integer one without ".0", and no "+" in an exponent (1e+16 as 1e16): "+" separates the terms
    text = "+".join(c if w == 1 else f"-{c}" if w == -1 else
                    f"{int(w) if w.is_integer() and abs(w) < 1e15 else repr(w).replace('e+', 'e')}*{c}"
                    for w, c in terms)
    return replace(u, channel=text, sign=sign)


def _sum_unit(u: Unit, n: int, classes: Sequence[str]) -> Unit:
    """``LAYER:A+B`` (Lucid's ``channel(A) + channel(B)``, a neuron interaction; weighted: ``A+0.5*B``) as the
    direction it is: the vector with each term's weight at its channel, read at the unit's position or channel
    mean, as the channels would be. Its address names the sum (``fc6:dir=3+7#DIGEST``), so a run's records say
    what was summed; the vector is kept with the run as every direction's is."""
    weights = torch.zeros(n)
    for w, ch in _sum_terms(u):
        index = _channel_index(replace(u, channel=_term_channel(ch)), n, classes)
        weights[index] += w
    name = re.sub(r"\s+", "", u.channel)
    if not weights.any():
        raise DgnamError(f"unit {u.address}: the weights of the sum cancel out: nothing to optimize")
    return Unit(u.layer, None, u.position, u.reduce, u.sign, direction=weights, direction_name=name)


def named_like(index: int, classes: Sequence[str]) -> int | None:
    """The index of the class whose name is the number ``index``, where that is another class: image folders 0..10
    sort as 0, 1, 10, 2, ..., so index 2 is the folder "10" and the folder "2" is class 3. A number is always read as
    an index (the documented reading); this is for saying which index means the folder."""
    named = [j for j, c in enumerate(classes) if str(c).strip() == str(index)]
    return named[0] if named and named[0] != index else None


def warn_if_numbered_elsewhere(index: int, classes: Sequence[str], what: str) -> None:
    """Warn that ``index`` reads another class than the one with that number as its name (see :func:`named_like`)."""
    other = named_like(index, classes)
    if other is not None and 0 <= index < len(classes):
        warn(f"{what} {index} is read as an index, the class named {classes[index]!r}; the class named "
             f"{str(index)!r} is index {other}: give {other} to mean it")


def _channel_index(u: Unit, n: int, classes: Sequence[str]) -> int:
    """The channel index of ``u`` on a layer of ``n`` channels: a class name looked up in ``classes``, an index
    checked against the range."""
    ch = u.channel
    if isinstance(ch, str):
        if classes and u.layer != LOGITS and n != len(classes):
            raise DgnamError(f"unit {u.address}: class names name the model's outputs (logits:{ch}); layer "
                             f"{u.layer!r} has {n} channels: give an index 0..{n - 1}")
        lookup = {c.lower(): i for i, c in enumerate(classes)}
        if ch.lower() not in lookup:
            close = difflib.get_close_matches(ch, classes, n=3)
            hint = f"; closest: {', '.join(close)}" if close else ""
            comma = [i for i, c in enumerate(classes) if c.lower().startswith(ch.lower() + ",")]
            if comma:  # the comma separates units: such a name cannot be written in a unit list
                hint = (f"; {classes[comma[0]]!r} has a comma, which separates units: give its index, "
                        f"logits:{comma[0]}")
            what = f"unknown class name {ch!r}{hint}" if classes else "this model has no class names: use an index"
            raise DgnamError(f"unit {u.address}: {what}")
        ch = lookup[ch.lower()]
    if not 0 <= ch < n:
        minimize = f" (to minimize channel {-ch}, put the minus first: -{u.layer}:{-ch})" if -n < ch < 0 else ""
        other = named_like(ch, classes) if u.layer == LOGITS else None
        named = f" (the class named '{ch}' is index {other}: give {u.layer}:{other})" if other is not None else ""
        raise DgnamError(f"unit {u.address}: channel {ch} out of range; layer {u.layer!r} has channels "
                         f"0..{n - 1}{minimize}{named}")
    return int(ch)


def _expand_spans(units: Sequence[Unit], outs: dict[str, torch.Tensor], classes: Sequence[str]) -> list[Unit]:
    """``LAYER:A-B`` (channels A to B, both included) and ``LAYER:all`` as one unit per channel, each keeping the
    position or ``:mean``; a class named like a span ("all", "10-19") keeps its name's meaning on the logits."""
    out: list[Unit] = []
    for u in units:
        ch = u.channel
        named = isinstance(ch, str) and u.layer == LOGITS and ch.lower() in (c.lower() for c in classes)
        m = re.fullmatch(r"\s*(\d+)\s*-\s*(\d+)\s*", ch) if isinstance(ch, str) and not named else None
        if m is None and not (isinstance(ch, str) and not named and ch.strip().lower() == "all"):
            out.append(u)
            continue
        shape = tuple(outs[u.layer].shape[1:])
        if not shape:  # resolve_units refuses it
            out.append(u)
            continue
        n = shape[0]
        first, last = (int(m[1]), int(m[2])) if m else (0, n - 1)
        if not 0 <= first <= last < n:
            raise DgnamError(f"unit {u.address}: channels {first}-{last} are not a range within the layer's channels "
                             f"0..{n - 1}: write {u.layer}:A-B with A <= B <= {n - 1}, or {u.layer}:all")
        out += [replace(u, channel=c) for c in range(first, last + 1)]
    return out


def unit_position(u: Unit, spatial: Sequence[int]) -> tuple[int, ...]:
    """The position a point unit reads on a channel map of shape ``spatial``: its own, else the centre
    (``H // 2, W // 2``), as released."""
    return u.position if u.position is not None else tuple(s // 2 for s in spatial)


def channel_map(out: torch.Tensor, u: Unit, dim: int = 0) -> torch.Tensor:
    """What unit ``u`` reads from a layer output before its position or mean is taken: its channel (dimension
    ``dim`` of ``out`` is the channel's), or for a direction the dot product of the channel vector with it at every
    position. The raw value: a minimized unit's sign is the optimizer's business (:func:`dgnam.optimize.optimize`)."""
    if u.direction is None:
        return out.select(dim, u.channel)
    return torch.tensordot(out, u.direction.to(out.device, out.dtype), dims=([dim], [0]))


def unit_activations(outs: dict[str, torch.Tensor], units: Sequence[Unit]) -> torch.Tensor:
    """The activation of ``units[b]`` on batch item ``b``: a vector of length B.

    Point units without a position use the centre of the channel's spatial map (``H // 2, W // 2``), as released.
    """
    acts = []
    for b, u in enumerate(units):
        c = channel_map(outs[u.layer][b], u)
        if c.dim() == 0:
            acts.append(c)
        elif u.reduce == "mean":
            acts.append(c.mean())
        else:
            acts.append(c[unit_position(u, c.shape)])
    return torch.stack(acts)


def unit_column(out: torch.Tensor, u: Unit) -> torch.Tensor:
    """The activation of one unit on every item of a layer output ``out`` (B, C, ...): :func:`unit_activations`
    with the same unit for all, in one indexing operation (a loop per image cost 7 ms per unit on 10,000 images)."""
    c = channel_map(out, u, 1)
    if c.dim() == 1:
        return c
    if u.reduce == "mean":
        return c.flatten(1).mean(1)
    return c[(slice(None), *unit_position(u, c.shape[1:]))]


def layer_shapes(model: nn.Module, example: torch.Tensor) -> list[tuple[str, str, tuple[int, ...]]]:
    """Every addressable layer with its module type and output shape (without the batch dimension)."""
    model = unwrapped(model)
    mods = layer_modules(model)
    shapes: dict[str, tuple[int, ...]] = {}
    handles = []
    for name, m in mods.items():
        def hook(_m, _i, out, name=name):
            try:
                o = output_tensor(out)
            except DgnamError:  # a layer without a tensor output is not addressable
                return
            if name not in shapes:
                shapes[name] = tuple(o.shape[1:])
        handles.append(m.register_forward_hook(hook))
    try:
        with torch.no_grad(), frozen(model):
            y = _probe(model, example.to(module_device(model), module_dtype(model)))
    finally:
        for h in handles:
            h.remove()
    rows = [(n, type(mods[n]).__name__, shapes[n]) for n in mods if n in shapes]
    if LOGITS not in mods:
        rows.append((LOGITS, "output", tuple(output_tensor(y).shape[1:])))
    return rows


#: Input values per forward batch when reading activations without gradients: 500 Fashion-MNIST images, about 27
#: ImageNet images at 224 px. A fixed 500 ImageNet images held gigabytes of intermediate maps at once.
READ_BATCH_VALUES = 2 ** 22
#: The most images per batch, whatever their size: of :func:`unit_responses` and of :func:`encode`.
RESPONSES_BATCH_MOST = 500
ENCODE_BATCH_MOST = 256


def read_batch_size(x: torch.Tensor, most: int = RESPONSES_BATCH_MOST) -> int:
    """How many images of ``x`` to run in one no-grad forward pass: fewer the larger they are."""
    per = max(1, x[0].numel()) if len(x) else 1
    return max(1, min(most, READ_BATCH_VALUES // per))


@torch.no_grad()
def encode(model: nn.Module, layer: str, x: torch.Tensor, batch_size: int | None = None,
           pool: bool = False) -> torch.Tensor:
    """The outputs of ``layer`` for a batch of images already in the model's input space, flattened per image:
    the codes a generator inverting that layer takes (the paper's "start from a real image"). ``pool`` averages a
    spatial (N, C, H, W) output over its positions instead (C features per image, as FID pools a conv block)."""
    if not isinstance(x, torch.Tensor) or x.dim() != 4:
        got = f"shape {tuple(x.shape)}" if isinstance(x, torch.Tensor) else type(x).__name__
        raise DgnamError(f"encode takes a batch of images as a (N, C, H, W) tensor in the model's input space, got "
                         f"{got}: add the batch dimension with x[None] or use torch.as_tensor")
    batch_size = batch_size or read_batch_size(x, ENCODE_BATCH_MOST)
    model = unwrapped(model)
    reader = LayerReader(model, [layer])
    space = getattr(model, "input_space", None)
    fix = (f"give images of the model's input shape {'x'.join(map(str, space.shape))} (ImageSpace.encode)"
           if space is not None else "give images of the shape the model takes")
    with frozen(model):  # eval mode: codes must not depend on the batching (BatchNorm) or on chance (dropout)
        dev = module_device(model)
        parts = []
        for i in range(0, len(x), batch_size):
            xb = x[i : i + batch_size].to(dev)
            # the first batch is the probe: a wrong shape fails there in one line; later failures are not about it
            outs = _probe(reader, xb, fix) if i == 0 else reader(xb)
            out = outs[layer]
            if pool and out.dim() not in (2, 4):  # (N, T, D) tokens or (N, C, L): which axis to average is unknown
                raise DgnamError(f"layer {layer!r} outputs {tuple(out.shape[1:])} per image: pick a layer of (C,) or "
                                 f"(C, H, W) features (`dgnam layers` lists them)")
            parts.append((out.flatten(2).mean(2) if pool and out.dim() == 4 else out.flatten(1)).cpu())
    return torch.cat(parts)


def is_feature_vector(shape: Sequence[int]) -> bool:
    """Whether a layer's output shape (without the batch) is one vector per image: ``(C,)``, or a global pool's
    ``(C, 1, 1)`` (a ResNet's ``avgpool``), which a Flatten after it only reshapes."""
    return len(shape) >= 1 and all(d == 1 for d in shape[1:])


def default_embed_layer(model: nn.Module, example: torch.Tensor) -> str:
    """The deepest top-level layer with one-dimensional output (:func:`is_feature_vector`: a global pool's too)
    before the model's output (``fc6`` for fmnist-cnn, ``penult`` for the judge, ``avgpool`` for a ResNet),
    skipping dropout, flatten and identity layers."""
    skip = (nn.Dropout, nn.Flatten, nn.Identity)
    rows = layer_shapes(model, example)
    out_shape = rows[-1][2] if rows[-1][0] == LOGITS else None
    mods = layer_modules(model)
    cands = [n for n, _t, s in rows
             if n != LOGITS and "." not in n and is_feature_vector(s) and not isinstance(mods.get(n), skip)]
    if cands and LOGITS not in mods and rows[-1][0] == LOGITS and dict((n, s) for n, _t, s in rows)[cands[-1]] == out_shape:
        cands = cands[:-1]  # the last layer of a model without a `logits` module is its output
    if not cands:
        raise DgnamError("cannot pick a late feature layer for clustering: pass --embed-layer (Python: "
                         "FacetConfig(embed_layer=...); `dgnam layers MODEL` lists them)")
    return cands[-1]


@torch.no_grad()
def unit_responses(model: nn.Module, units: Unit | Sequence[Unit], x: torch.Tensor, batch_size: int | None = None,
                   per_item: bool = False) -> torch.Tensor:
    """Activations of resolved ``units`` on raw inputs ``x``, in one batched pass per chunk (the forward stops at
    the deepest unit's layer): ``(N,)`` for one unit, ``(N, U)`` for a list; with ``per_item`` unit k is read on
    input k only, ``(N,)``."""
    one = isinstance(units, Unit)
    us = [units] if one else list(units)
    if per_item and len(us) != len(x):
        raise DgnamError(f"{len(us)} units for {len(x)} inputs: per_item needs one unit per input")
    batch_size = batch_size or read_batch_size(x)
    reader = LayerReader(model, sorted({u.layer for u in us}))
    dev = module_device(model)
    out = []
    with frozen(model):  # eval mode, as the activations a run optimizes
        for i in range(0, len(x), batch_size):
            xb = x[i : i + batch_size].to(dev)
            outs = reader(xb)
            if per_item:
                out.append(unit_activations(outs, us[i : i + len(xb)]).cpu())
            else:
                out.append(torch.stack([unit_column(outs[u.layer], u) for u in us], 1).cpu())
    acts = torch.cat(out)
    return acts[:, 0] if one and not per_item else acts
