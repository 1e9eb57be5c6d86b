"""Loading and saving weights safely: safetensors, or ``torch.load(weights_only=True)``; never arbitrary pickles."""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import re
import warnings
from pathlib import Path

import torch
from torch import nn

from .atomic import write_atomic
from .errors import DgnamError, first_line


def sha256(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def tensor_digest(values) -> str:
    """A short SHA-256 of tensors' shapes, dtypes and values: tells apart runs made with different weights, code
    bounds or start codes (a resume must not mix them), whatever device or memory format the tensors are in. A
    ``state_dict`` may also hold other things (a module's extra state, a quantized layer's packing): those count
    by their ``repr``, lists and tuples by their items."""
    h = hashlib.sha256()

    def add(v) -> None:
        if isinstance(v, torch.Tensor):
            t = v.detach().to("cpu")
            if t.is_quantized:
                t = t.dequantize()
            t = t.contiguous()
            h.update(f"{tuple(t.shape)} {t.dtype};".encode())
            h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
        elif isinstance(v, (list, tuple)):
            for item in v:
                add(item)
        else:
            h.update(f"{type(v).__name__}:{v!r};".encode())

    for v in values:
        add(v)
    return h.hexdigest()[:16]


def json_safe(value):
    """``value`` as JSON can hold it, for a run's recorded settings: a tensor by its digest, containers item by item,
    anything else that JSON cannot hold by its type's name (a memory address in a ``repr`` would differ in every
    process, and a resume compares these records)."""
    if isinstance(value, torch.Tensor):
        return f"tensor:{tensor_digest([value])}"
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return type(value).__name__


def carried_objects(path: Path, e: pickle.UnpicklingError) -> str | None:
    """What a file that ``torch.load(weights_only=True)`` refused carries: the global it names ("Unsupported global:
    GLOBAL os.system"), "objects other than tensors" for another well-formed pickle, or ``None`` when the bytes are no
    pickle at all (a corrupt file: torch reports both as an unsupported operand). The pickle is only parsed
    (``pickletools``), never run."""
    import pickletools
    import zipfile

    found = re.search(r"unsupported global:?\s*(?:GLOBAL\s+)?[\w.]+", str(e), re.IGNORECASE)
    if found:
        return found.group(0).strip()
    try:
        data = path.read_bytes()
        if zipfile.is_zipfile(path):  # torch.save's container: the pickle is its data.pkl
            with zipfile.ZipFile(path) as z:
                data = z.read(next(n for n in z.namelist() if n.endswith("data.pkl")))
        for _ in pickletools.genops(data):
            pass
    except Exception:  # noqa: BLE001 - any parse failure: not a pickle
        return None
    return "objects other than tensors"


def load_state_dict(path: str | os.PathLike, expected_sha256: str | None = None) -> dict[str, torch.Tensor]:
    """Read a state dict from a ``.safetensors`` file or a plain tensor file (``torch.save`` of a dict of tensors).

    A pickle that carries code (custom classes, functions) is refused: ``weights_only=True`` never executes it.
    """
    path = Path(path)
    if not path.is_file():
        raise DgnamError(f"weights file {path} does not exist")
    if expected_sha256 is not None and sha256(path) != expected_sha256:
        raise DgnamError(f"weights file {path} does not match its recorded SHA-256: the file is corrupt or was replaced; "
                         f"reinstall dgnam or retrain it with the command in its model card")
    if path.suffix == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            return load_file(str(path))
        except (SafetensorError, OSError, ValueError) as e:
            raise DgnamError(f"{path} is not a valid safetensors file ({e}); re-export or re-download it") from None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch's notes on pickle protocols are not for our users
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        what = carried_objects(path, e)
        if what is None:  # not a pickle at all (random bytes), rather than a dangerous one
            raise DgnamError(f"{path} is not a readable tensor file: it is corrupt or not written by torch.save; save "
                             f"a plain state dict or convert it to safetensors") from None
        raise DgnamError(
            f"{path} is a pickle that carries code or objects, not plain tensors ({what}); refusing to load it. "
            f"Save a plain state dict (torch.save(model.state_dict())) or convert it to safetensors"
        ) from None
    except Exception as e:  # noqa: BLE001 - torch's unpickler fails on garbage in many ways (KeyError, ...)
        raise DgnamError(f"{path} is not a readable tensor file ({first_line(e)}); is it corrupt?") from None
    if isinstance(obj, dict) and "state_dict" in obj and isinstance(obj["state_dict"], dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise DgnamError(f"{path} does not hold a dict of tensors (a state dict); save model.state_dict() instead")
    return obj


def check_fits(module: nn.Module, state: dict[str, torch.Tensor], what: str = "model") -> None:
    """A one-line error unless ``state``'s tensors have ``module``'s names and shapes. ``module`` may live on the meta
    device: an architecture built there from a card's numbers is checked against the file before any memory is
    spent on it."""
    own = module.state_dict()
    bad = [f"{k}: file {tuple(v.shape)} vs model {tuple(own[k].shape)}" for k, v in state.items()
           if k in own and own[k].shape != v.shape]
    if bad:
        raise DgnamError(f"{what}: tensor shapes do not match the architecture ({'; '.join(bad[:3])}); wrong --arch?")
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    if missing or unexpected:
        raise DgnamError(
            f"{what}: weights do not fit the architecture (missing: {missing[:4]}, unexpected: {unexpected[:4]}); "
            f"wrong --arch or a different file format?"
        )


def load_into(module: nn.Module, state: dict[str, torch.Tensor], what: str = "model") -> nn.Module:
    """``load_state_dict`` with a one-line error naming missing/unexpected/mis-shaped tensors, or NaN in them."""
    check_fits(module, state, what)
    own = module.state_dict()
    broken = [k for k, v in state.items() if v.is_floating_point() and not torch.isfinite(v).all()]
    if broken:  # they would load, and every activation would be NaN, far from here
        more = f" (and {len(broken) - 1} more)" if len(broken) > 1 else ""
        raise DgnamError(f"{what}: tensor {broken[0]} holds NaN or inf values{more}: the file is damaged, or was "
                         f"saved from a training that diverged; convert or train it again")
    module.load_state_dict({k: v.to(own[k].dtype) for k, v in state.items()})
    return module


def save_safetensors(state: dict[str, torch.Tensor], path: str | os.PathLike, metadata: dict | None = None) -> None:
    """Write a safetensors file whose bytes depend only on its contents: safetensors writes the metadata's keys in a
    random order (a hash map), so two identical runs gave files of other SHA-256s. The header is re-serialized with
    sorted keys (the same JSON, so the same length), and the file gets the usual permissions (``save_file`` makes it
    readable by its owner only). It is written beside the target and moved over it: a kill never leaves half a file,
    and on POSIX tensors still mapped from the file it replaces (``load_file`` maps them) stay valid."""
    from safetensors.torch import save

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    meta = {k: v if isinstance(v, str) else json.dumps(v) for k, v in (metadata or {}).items()}
    data = memoryview(save({k: v.detach().contiguous().cpu() for k, v in state.items()}, metadata=meta))
    n = int.from_bytes(data[:8], "little")
    header = json.dumps(json.loads(bytes(data[8 : 8 + n])), separators=(",", ":"), sort_keys=True,
                        ensure_ascii=False).encode()
    if len(header) > n:  # (never, for the same JSON) keep safetensors' own header
        header = bytes(data[8 : 8 + n])
    def write(tmp: Path) -> None:
        with open(tmp, "xb") as f:  # parts written in turn: no second copy of the file in memory
            f.write(data[:8])
            f.write(header + b" " * (n - len(header)))
            f.write(data[8 + n :])

    write_atomic(path, write)
