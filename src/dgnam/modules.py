"""Borrowing the user's modules: every core function that runs a caller's ``nn.Module`` (the target, a generator, a
judge, an encoder) runs it through :func:`frozen`, so that it computes in eval mode and comes back exactly as given."""

from __future__ import annotations

import functools
import os
from contextlib import contextmanager
from typing import Iterator

import torch
from torch import nn


def as_device(device: torch.device | str | None, like: nn.Module | None = None) -> torch.device:
    """``device`` as a ``torch.device``, or a one-line error naming the fix: torch's own errors for a device this
    build lacks ("Torch not compiled with CUDA enabled", "PyTorch is not linked with support for mps devices")
    surface only later, deep inside the first ``.to()``. ``None`` is where ``like`` is (a model the caller already
    put on a GPU stays there), or the CPU."""
    from .errors import DgnamError

    if device is None:
        return module_device(like) if like is not None else torch.device("cpu")

    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise DgnamError(f"unknown device {device!r}: use cpu, cuda, cuda:N or mps (--device, Python: device=)"
                         ) from None
    if dev.type == "meta":  # tensors there have shapes but no values: nothing to optimize or to write
        raise DgnamError(f"device {device!r} holds no data, only shapes: use cpu, cuda or mps")
    if dev.type != "cpu" and not _available(dev.type):
        raise DgnamError(f"device {device!r} asked for, but this torch has no {dev.type.upper()} device: use "
                         f"--device cpu (Python: device='cpu')")
    count = getattr(getattr(torch, dev.type, None), "device_count", None)
    if dev.type != "cpu" and dev.index is not None and callable(count) and dev.index >= count():
        raise DgnamError(f"device {device!r}: this machine has {dev.type.upper()} devices 0..{count() - 1}")
    return dev


def _available(device_type: str) -> bool:
    """Whether this torch can put tensors on ``device_type``: the backend's own ``is_available()`` where it has one
    (``torch.cuda``, ``torch.backends.mps``, ``torch.xpu``), else whether a tensor can be made there (a device type
    that an extension registers, such as ``xla``)."""
    backend = torch.backends.mps if device_type == "mps" else getattr(torch, device_type, None)
    if callable(getattr(backend, "is_available", None)):
        return bool(backend.is_available())
    try:
        torch.empty(0, device=device_type)
    except Exception:  # noqa: BLE001 -- each backend fails in its own way (NotImplementedError, AssertionError, ...)
        return False
    return True


def module_device(module: nn.Module, default: torch.device | str = "cpu") -> torch.device:
    """The device of ``module``'s first parameter (or buffer); ``default`` for a module without tensors."""
    t = next(module.parameters(), None)
    if t is None:
        t = next(module.buffers(), None)
    return t.device if t is not None else torch.device(default)


def module_dtype(module: nn.Module, default: torch.dtype = torch.float32) -> torch.dtype:
    """The floating dtype of ``module``'s first floating parameter; ``default`` for a module without one. Codes are
    kept in their generator's dtype and images handed to a target in its own (a ``.double()`` or ``.half()`` model)."""
    return next((p.dtype for p in module.parameters() if p.is_floating_point()), default)


def keeps_rng(cuda: bool = False):
    """Decorate a function so that it runs with torch's global random state forked (the CPU's, and with ``cuda``
    every CUDA device's): building a network draws its initial weights from that state, and a trainer seeds it for
    its own dropout and noise. Loading or training a model should not move the caller's random stream."""

    def decorate(fn):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            # CUDA's generators are forked only once CUDA runs: forking them would start CUDA on every GPU for a CPU
            # training. Before that, torch.manual_seed queues a seed for CUDA, which is put back afterwards.
            lazy = cuda and torch.cuda.is_available() and not torch.cuda.is_initialized()
            queued = torch.initial_seed() if lazy else None
            devices = list(range(torch.cuda.device_count())) if cuda and torch.cuda.is_initialized() else []
            try:
                with torch.random.fork_rng(devices=devices):
                    return fn(*args, **kwargs)
            finally:
                if queued is not None:
                    torch.cuda.manual_seed_all(queued)

        return wrapper

    return decorate


def require_module(obj: object, what: str = "model") -> None:
    """A one-line error unless ``obj`` is an ``nn.Module`` instance: a zoo name or a file (``visualize(model,
    "logits:1", "fmnist-g-fc6")``) or a class failed deep inside with "'str' object has no attribute ...". ``what``
    names the argument (model, generator, encoder, dae)."""
    from .errors import DgnamError

    if isinstance(obj, nn.Module):
        return
    if isinstance(obj, (str, os.PathLike)):
        raise DgnamError(f"{what} is the name {os.fspath(obj)!r}: pass the module itself, e.g. "
                         f"dgnam.load_model({os.fspath(obj)!r}) (a zoo name, package.module:factory, or a weights "
                         f"file with arch=)")
    if isinstance(obj, type):
        raise DgnamError(f"{what} is a class: build an instance, e.g. {obj.__name__}()")
    raise DgnamError(f"{what} is {type(obj).__name__}: give an nn.Module instance")


def unwrapped(model: nn.Module, what: str = "model") -> nn.Module:
    """The module whose layers are read (by forward hooks) and run to read them: the model itself, or the model inside
    a ``torch.compile`` wrapper (hooks added and removed on every pass would make dynamo recompile it each time) or a
    ``DataParallel``/``DistributedDataParallel`` wrapper (its replicas would each run a hook on their part of the batch,
    and one part would be read for the whole). Its layer names are the user's own: ``fc6``, not ``_orig_mod.fc6`` or
    ``module.fc6``. The wrapped model runs eagerly on its own device. Anything but a module is refused in one line
    (:func:`require_module`, ``what`` naming the argument)."""
    require_module(model, what)
    while True:
        if isinstance(model, (nn.DataParallel, nn.parallel.DistributedDataParallel)):
            model = model.module
        elif type(model).__module__.startswith("torch._dynamo") and isinstance(getattr(model, "_orig_mod", None),
                                                                                nn.Module):
            model = model._orig_mod
        else:
            return model


def batch_statistics_modules(module: nn.Module) -> list[str]:
    """Names of the BatchNorm layers that normalize with the current batch's statistics even in eval mode
    (``track_running_stats=False``): through them the items of one batch change each other's outputs."""
    from torch.nn.modules.batchnorm import _BatchNorm

    return [n or type(module).__name__ for n, m in unwrapped(module).named_modules()
            if isinstance(m, _BatchNorm) and (not m.track_running_stats or m.running_mean is None)]


def _has_5d(module: nn.Module) -> bool:
    return any(t.dim() == 5 for t in (*module.parameters(), *module.buffers()))


@contextmanager
def frozen(module: nn.Module, device: torch.device | str | None = None,
           channels_last: bool = False) -> Iterator[nn.Module]:
    """``module`` in eval mode, on ``device`` (default: where it is), without parameter gradients (NHWC with
    ``channels_last``) for the duration of the block, then as the caller had it: each submodule's mode, each
    parameter's ``requires_grad`` and accumulated ``.grad``, and the very tensors of its parameters and buffers
    (device and memory format). Activation maximization borrows the user's model; a model that comes back frozen,
    moved or reformatted would change the user's training or later results. ``channels_last`` is skipped for models
    with 5-D tensors (Conv3d), which that format does not cover. A model with lazy parameters that have not been
    initialized (``nn.LazyLinear`` before its first forward) is refused in one line: it has not been trained."""
    from torch.nn.parameter import is_lazy

    from .errors import DgnamError

    lazy = next((n for n, t in (*module.named_parameters(), *module.named_buffers()) if is_lazy(t)), None)
    if lazy is not None:
        raise DgnamError(f"{lazy!r} of the {type(module).__name__} is not initialized (a Lazy module that has never "
                         f"run): load its trained weights, or run it once on a batch of its input, model(x)")
    device = module_device(module) if device is None else as_device(device)
    saved = [(m, m.training,
              {k: (p, p.data, p.requires_grad, p.grad, None if p.grad is None else p.grad.data)
               for k, p in m._parameters.items() if p is not None},
              dict(m._buffers)) for m in module.modules()]
    try:
        module.eval().to(device)
        if channels_last and not _has_5d(module):
            module.to(memory_format=torch.channels_last)
        for p in module.parameters():
            p.requires_grad_(False)
        yield module
    finally:
        for m, training, params, buffers in saved:
            for k, (param, tensor, requires_grad, grad, grad_tensor) in params.items():
                param.data = tensor
                if grad is not None:
                    grad.data = grad_tensor
                param.grad = grad
                param.requires_grad_(requires_grad)
                m._parameters[k] = param
            for k, b in buffers.items():  # (item by item: a TorchScript module's _buffers has no update())
                m._buffers[k] = b
            m.training = training
