"""The original DGN-AM files without Caffe: ``.caffemodel`` weights, PyTorch translations, ``act_range`` bounds.

* ``.caffemodel``: a serialized ``caffe.NetParameter`` (schema subset in :mod:`dgnam.zoo.caffe_proto`). Its blobs map
  onto our modules **by layer name**, blob 0 -> ``{layer}.weight``, blob 1 -> ``{layer}.bias``. Caffe's layouts are
  torch's: InnerProduct (out, in) as ``nn.Linear``, Convolution (out, in / group, kh, kw) as ``nn.Conv2d``,
  Deconvolution (in, out / group, kh, kw) as ``nn.ConvTranspose2d``. Legacy (V1, 2014) files store every blob as
  4-D num x channels x height x width with leading ones (an InnerProduct weight is 1 x 1 x out x in); those leading
  ones are dropped. Nothing is executed: protobuf only parses data.
* PyTorch translations (``upconvGAN_fc6.pt`` ...): plain state dicts, read with ``torch.load(weights_only=True)`` by
  :func:`dgnam.weights.load_state_dict` (a pickle that carries code is refused), then keys are renamed where a
  translation differs from our layer names (a leading ``G.``/``module.`` prefix, ``defc7.1.weight`` style keys).
* ``act_range/3x/fc6.txt``: one upper bound per code component, whitespace separated (the released ``act_max.py``
  reads it with ``np.loadtxt(..., delimiter=' ')``), for :meth:`dgnam.priors.CodeStats.from_bounds`.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import torch
from torch import nn

from ..errors import DgnamError, first_line

#: Caffe layer type -> the torch module class its blobs load into (checked so that a square Convolution is never
#: silently loaded into a ConvTranspose2d, whose weight layout is transposed).
_CAFFE_TO_TORCH: dict[str, type[nn.Module]] = {
    "InnerProduct": nn.Linear, "Convolution": nn.Conv2d, "Deconvolution": nn.ConvTranspose2d,
}
_TORCH_TO_CAFFE = {v: k for k, v in _CAFFE_TO_TORCH.items()}
#: Parameter names of a Caffe layer's blobs, in order.
_BLOB_PARAMS = ("weight", "bias")


@dataclass
class CaffeLayer:
    """One layer of a ``.caffemodel`` that carries blobs: its name, its type (``""`` if unknown) and its arrays."""

    name: str
    type: str
    blobs: list[np.ndarray] = field(default_factory=list)


def _proto():
    from . import caffe_proto  # imported here: protobuf is an optional dependency

    return caffe_proto


# ---------------------------------------------------------------------------------------------------------- reading
def _blob_array(blob, where: str) -> np.ndarray:
    if blob.HasField("shape"):
        shape = tuple(int(d) for d in blob.shape.dim)
    else:  # legacy 4-D blob
        shape = tuple(int(d) for d in (blob.num, blob.channels, blob.height, blob.width))
    if len(blob.data):
        arr = np.array(blob.data, dtype=np.float32)
    elif len(blob.double_data):
        arr = np.array(blob.double_data, dtype=np.float64).astype(np.float32)
    else:
        arr = np.zeros(0, dtype=np.float32)
    if arr.size != math.prod(shape):
        raise DgnamError(f"{where}: blob has {arr.size} values but shape {shape}; the file is truncated or corrupt")
    return arr.reshape(shape)


def read_caffemodel_layers(path: str | os.PathLike) -> list[CaffeLayer]:
    """The layers with blobs of a ``.caffemodel`` (new ``layer`` or legacy ``layers`` format), in file order."""
    path = Path(path)
    if not path.is_file():
        raise DgnamError(f"Caffe weights file {path} does not exist")
    cp = _proto()
    net = cp.NetParameter()
    try:
        net.ParseFromString(path.read_bytes())
    except Exception as e:  # protobuf's DecodeError, or a message-too-large error from its parser
        raise DgnamError(f"{path} is not a Caffe .caffemodel (protobuf: {first_line(e)}); "
                         f"is it a .prototxt or a PyTorch file?") from None
    out: list[CaffeLayer] = []
    for layer in net.layer:
        if len(layer.blobs):
            out.append(CaffeLayer(layer.name, layer.type, [_blob_array(b, f"{path.name} layer {layer.name!r}")
                                                           for b in layer.blobs]))
    for v1 in net.layers:
        name, typ, blobs = v1.name, cp.V1_TYPE_NAMES.get(v1.type, ""), v1.blobs
        if not len(blobs) and v1.HasField("layer"):  # V0 (2013): everything nested in `layer`
            name, typ, blobs = v1.layer.name or name, _v0_type(v1.layer.type), v1.layer.blobs
        if len(blobs):
            out.append(CaffeLayer(name, typ, [_blob_array(b, f"{path.name} layer {name!r}") for b in blobs]))
    if not out and not (len(net.layer) or len(net.layers)):
        raise DgnamError(f"{path} holds no Caffe layers: is it a .caffemodel (not a .prototxt or a mean .binaryproto)?")
    seen: set[str] = set()
    for layer in out:
        if layer.name in seen:
            raise DgnamError(f"{path}: layer {layer.name!r} carries weights twice (a train/test net?); "
                             f"export the deploy net's weights")
        seen.add(layer.name)
    return out


def _v0_type(t: str) -> str:
    return {"conv": "Convolution", "innerproduct": "InnerProduct", "deconv": "Deconvolution"}.get(t.lower(), "")


def _fit_blob(arr: np.ndarray, shape: tuple[int, ...]) -> np.ndarray | None:
    """``arr`` in ``shape``: as is, or with a legacy blob's leading unit dimensions dropped; ``None`` if it does not
    fit."""
    if arr.shape == shape:
        return arr
    strip = lambda s: tuple(s[next((i for i, d in enumerate(s) if d != 1), len(s)):])  # noqa: E731
    return arr.reshape(shape) if strip(arr.shape) == strip(shape) else None


def _param_layers(net: nn.Module) -> dict[str, nn.Module]:
    """Modules that own parameters directly, by their ``named_modules`` path (= the Caffe layer name for our nets)."""
    return {n: m for n, m in net.named_modules() if n and any(True for _ in m.parameters(recurse=False))}


def caffe_state_dict_for(path: str | os.PathLike, net: nn.Module, what: str = "the model") -> dict[str, torch.Tensor]:
    """A state dict for ``net`` from a ``.caffemodel``, matched by layer name, every shape and type checked."""
    path = Path(path)
    layers = read_caffemodel_layers(path)
    modules = _param_layers(net)
    own = net.state_dict()
    extra = [f"{layer.name!r} ({layer.type or 'unknown type'})" for layer in layers if layer.name not in modules]
    if extra:
        raise DgnamError(f"{path.name}: layer(s) {', '.join(extra[:4])} carry weights but {what} has no such layer; "
                         f"wrong --arch? (`dgnam models` lists the architectures)")
    state: dict[str, torch.Tensor] = {}
    for layer in layers:
        module = modules[layer.name]
        want = _TORCH_TO_CAFFE.get(type(module))
        if layer.type and want and layer.type != want:
            raise DgnamError(f"{path.name}: layer {layer.name!r} is a Caffe {layer.type} but {what}'s {layer.name} is "
                             f"a {want} ({type(module).__name__}); wrong --arch?")
        if len(layer.blobs) > len(_BLOB_PARAMS):
            raise DgnamError(f"{path.name}: layer {layer.name!r} has {len(layer.blobs)} blobs, expected weight and "
                             f"bias only; wrong --arch?")
        for param, arr in zip(_BLOB_PARAMS, layer.blobs):
            key = f"{layer.name}.{param}"
            if key not in own:
                raise DgnamError(f"{path.name}: layer {layer.name!r} has a {param} blob but {what}'s {layer.name} has "
                                 f"no {param}; wrong --arch?")
            shape = tuple(own[key].shape)
            fitted = _fit_blob(arr, shape)
            if fitted is None:
                raise DgnamError(f"{path.name}: layer {layer.name!r} blob {param} has shape {arr.shape} but {what}'s "
                                 f"{key} is {shape}; wrong --arch or another variant of the network?")
            state[key] = torch.from_numpy(np.ascontiguousarray(fitted))
    missing = [k for k in own if k not in state]  # in the model's order: the first is the first layer absent
    if missing:
        raise DgnamError(f"{path.name} has no weights for {', '.join(missing[:4])}"
                         f"{' ...' if len(missing) > 4 else ''} of {what}; wrong --arch or an incomplete file?")
    return state


def caffe_state_dict(path: str | os.PathLike, arch: str | nn.Module) -> dict[str, torch.Tensor]:
    """The reader behind ``--model FILE.caffemodel --arch NAME``: a state dict for the zoo architecture ``arch``."""
    if isinstance(arch, nn.Module):
        return caffe_state_dict_for(path, arch)
    return caffe_state_dict_for(path, _skeleton(arch), what=arch)


def _skeleton(arch: str) -> nn.Module:
    """The zoo architecture ``arch`` on the meta device: its layer names, types and shapes without allocating its
    weights (the fc6 generator has 50 M)."""
    from .registry import get_entry

    entry = get_entry(arch)
    try:
        with torch.device("meta"):
            return entry.build()
    except Exception:  # a build that reads files or inspects values cannot run on meta tensors: build it for real
        return entry.build()


# ---------------------------------------------------------------------------------------------------------- writing
def _packed_field(number: int, arr: np.ndarray) -> bytes:
    """The wire bytes of a packed ``repeated float`` field: tag, length, little-endian floats. Merged into a message
    this sets the field at memcpy speed (``extend`` on millions of floats takes seconds)."""
    payload = np.ascontiguousarray(arr, dtype="<f4").tobytes()
    return _varint((number << 3) | 2) + _varint(len(payload)) + payload


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b, n = n & 0x7F, n >> 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _fill_blob(blob, arr: np.ndarray, legacy: bool) -> None:
    arr = np.asarray(arr, dtype=np.float32)
    if legacy:
        if arr.ndim > 4:
            raise DgnamError(f"a legacy Caffe blob has at most 4 dimensions, got shape {arr.shape}")
        blob.num, blob.channels, blob.height, blob.width = (1,) * (4 - arr.ndim) + arr.shape
    else:
        blob.shape.dim.extend(arr.shape)
    blob.MergeFromString(_packed_field(5, arr.ravel()))


def write_caffemodel(path: str | os.PathLike, layers: Mapping[str, Sequence[np.ndarray | torch.Tensor]],
                     legacy: bool = False, types: Mapping[str, str] | None = None, name: str = "dgnam") -> Path:
    """Write ``{layer name: [blobs]}`` as a ``.caffemodel`` (``legacy=True``: the V1 ``layers`` format with 4-D
    blobs). ``types`` gives each layer's Caffe type (``InnerProduct``, ``Convolution``, ``Deconvolution``). Used by
    the tests, and to hand a model back to Caffe tooling."""
    cp = _proto()
    net = cp.NetParameter(name=name)
    for lname, blobs in layers.items():
        typ = (types or {}).get(lname, "")
        if legacy:
            layer = net.layers.add(name=lname)
            if typ:
                layer.type = cp.V1_TYPES[typ]
        else:
            layer = net.layer.add(name=lname, type=typ)
        for arr in blobs:
            if isinstance(arr, torch.Tensor):
                arr = arr.detach().cpu().float().numpy()
            _fill_blob(layer.blobs.add(), arr, legacy)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(net.SerializeToString())
    return path


def caffe_blobs(net: nn.Module) -> tuple[dict[str, list[torch.Tensor]], dict[str, str]]:
    """A model's parameters as Caffe layers: ``({layer: [weight, bias]}, {layer: Caffe type})``, the inverse of
    :func:`caffe_state_dict_for`."""
    blobs: dict[str, list[torch.Tensor]] = {}
    types: dict[str, str] = {}
    for lname, module in _param_layers(net).items():
        params = dict(module.named_parameters(recurse=False))
        extra = set(params) - set(_BLOB_PARAMS)
        if extra:
            raise DgnamError(f"layer {lname} has parameters {sorted(extra)} that a Caffe layer cannot hold")
        blobs[lname] = [params[p] for p in _BLOB_PARAMS if p in params]
        if type(module) in _TORCH_TO_CAFFE:
            types[lname] = _TORCH_TO_CAFFE[type(module)]
    return blobs, types


# ------------------------------------------------------------------------------------------ PyTorch translations
#: Wrappers that translations put around the layers: ``upconvGAN.G``, ``nn.DataParallel``'s ``module`` ...
_PREFIXES = ("module.", "G.", "generator.", "gen.", "net.", "model.")
#: ``defc7.1.weight`` -> ``defc7.weight``: the pytorch-caffe converter's keys, which Binxu Wang's ``upconvGAN``
#: rewrites with ``name.replace(".1.", ".")`` ("discard this inconsistency").
_SEQ_INDEX = re.compile(r"\.\d+\.(weight|bias)$")


def rename_keys(state: Mapping[str, torch.Tensor], own_keys: Sequence[str]) -> dict[str, torch.Tensor]:
    """Rename a translation's keys to ours where that makes them match: strip a wrapper prefix shared by every key,
    then map ``layer.N.weight`` to ``layer.weight``. Keys that already match are never touched."""
    own = set(own_keys)
    state = dict(state)
    for _ in range(3):  # e.g. module.G.defc7.weight
        if set(state) <= own:
            return state
        firsts = {k.split(".", 1)[0] for k in state}
        if len(firsts) != 1:
            break
        prefix = firsts.pop() + "."
        stripped = {k[len(prefix):]: v for k, v in state.items()}
        if prefix not in _PREFIXES and len(set(stripped) & own) <= len(set(state) & own):
            break
        state = stripped
    out: dict[str, torch.Tensor] = {}
    for k, v in state.items():
        alt = _SEQ_INDEX.sub(r".\1", k)
        out[alt if k not in own and alt in own and alt not in state else k] = v
    return out


def torch_state_dict(path: str | os.PathLike, arch: str | nn.Module) -> dict[str, torch.Tensor]:
    """A PyTorch state dict (``.pt``/``.pth``: ``weights_only`` loading, code refused) with its keys renamed to the
    zoo architecture ``arch``'s."""
    from ..weights import load_state_dict

    net = arch if isinstance(arch, nn.Module) else _skeleton(arch)
    return rename_keys(load_state_dict(path), list(net.state_dict()))


# ------------------------------------------------------------------------------------------------ act_range bounds
def read_bounds(path: str | os.PathLike, dim: int | None = None) -> torch.Tensor:
    """One upper bound per code component from a released ``act_range`` text file (whitespace or comma separated)."""
    path = Path(path)
    if not path.is_file():
        raise DgnamError(f"bounds file {path} does not exist")
    try:
        text = path.read_text()
    except UnicodeDecodeError:
        raise DgnamError(f"{path} is not a text file of numbers; give an act_range .txt (one bound per code unit)") from None
    values: list[float] = []
    for lineno, line in enumerate(text.splitlines(), 1):
        for tok in line.replace(",", " ").split():
            try:
                values.append(float(tok))
            except ValueError:
                raise DgnamError(f"{path}:{lineno}: {tok[:20]!r} is not a number; an act_range file holds only "
                                 f"whitespace-separated bounds") from None
    if not values:
        raise DgnamError(f"{path} holds no numbers; an act_range file has one upper bound per code unit")
    t = torch.tensor(values, dtype=torch.float32)
    if not torch.isfinite(t).all():
        raise DgnamError(f"{path} has non-finite bounds (nan/inf); re-export the activation ranges")
    # the code is clipped to [0, U] (the released lower bound is 0, for the ReLU): U < 0 would leave the code below
    # its own lower clip, and U = 0 everywhere would freeze it at 0
    if (t < 0).any():
        raise DgnamError(f"{path} has negative bounds (the least {float(t.min()):.4g}); an act_range file holds upper "
                         f"bounds >= 0 of ReLU activations: re-export the activation ranges")
    if not (t > 0).any():
        raise DgnamError(f"{path} bounds every code unit at 0, which freezes the code at 0; re-export the activation "
                         f"ranges")
    if dim is not None and t.numel() != dim:
        raise DgnamError(f"{path} has {t.numel()} bounds but the code has {dim} units; use the bounds of the "
                         f"generator's own layer (e.g. act_range/3x/fc6.txt for deepsim-fc6)")
    return t


def read_code_stats(path: str | os.PathLike, dim: int | None = None):
    """:class:`~dgnam.priors.CodeStats` from a CodeStats ``.safetensors`` or an ``act_range`` ``.txt`` of bounds."""
    from ..priors import CodeStats

    path = Path(path)
    if path.suffix == ".safetensors":
        stats = CodeStats.load(path)
        if dim is not None and stats.dim != dim:
            raise DgnamError(f"{path} has statistics of {stats.dim} code units but the generator's code has {dim}; "
                             f"use the statistics of the generator's own layer")
        return stats
    return CodeStats.from_bounds(read_bounds(path, dim))
