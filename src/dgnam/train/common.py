"""What every training loop shares: resumable checkpoints, the cosine learning rate, batching with seeded order."""

from __future__ import annotations

import functools
import inspect
import json
import math
import re
import shlex
import sys
import time
import warnings
from dataclasses import asdict
from pathlib import Path
from typing import Callable, Iterator, TypeVar

import torch

from ..atomic import LOCK, folder_lock, write_atomic, write_text_atomic
from ..errors import DgnamError, check_seed, first_line

T = TypeVar("T")


def cosine_lr(base: float, step: int, total: int, warmup: int = 0) -> float:
    """Linear warm-up then cosine decay to 0."""
    if step < warmup:
        return base * (step + 1) / warmup
    t = (step - warmup) / max(1, total - warmup)
    return 0.5 * base * (1 + math.cos(math.pi * min(1.0, t)))


#: Config fields whose command-line flag is not the field's name with dashes (``batch_size`` is ``--batch-size``).
_FLAGS = {"noise_std": "--noise"}


def check_ranges(config: object, at_least: dict[str, float], above_zero: tuple[str, ...] = ("lr",)) -> None:
    """Refuse numbers a training loop cannot use, naming the flag to change: batch size 0 divides by zero, a
    learning rate <= 0 makes the optimizer raise, 0 epochs write a model with no metrics, and a negative noise std
    or loss weight runs without complaint but trains something else. ``not v >= low`` also refuses NaN. The
    config's ``seed``, where it has one, must be one torch takes."""
    if hasattr(config, "seed"):
        check_seed(config.seed)
    bad = [(f, f"{low:g} or more") for f, low in at_least.items() if not getattr(config, f) >= low]
    bad += [(f, "above 0") for f in above_zero if not getattr(config, f) > 0]
    if bad:
        field, want = bad[0]
        flag = _FLAGS.get(field, "--" + field.replace("_", "-"))
        raise DgnamError(f"{flag} {getattr(config, field)}: give {flag} {want}")


#: Share of each class of a data set without a test split (an image folder) held out to measure the test metrics.
HOLD_OUT = 0.1


def hold_out(y: torch.Tensor, fraction: float = HOLD_OUT, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Train and test indices for labels ``y`` of a data set without a test split: a seeded ``fraction`` of each
    class (at least one image of every class that has two) is held out, so the test metrics are measured on images
    the model never trained on and every class is tested."""
    g = torch.Generator().manual_seed(seed)
    train, test = [], []
    for c in torch.unique(y).tolist():
        idx = torch.nonzero(y == c).flatten()
        idx = idx[torch.randperm(len(idx), generator=g)]
        k = min(max(1, round(fraction * len(idx))), len(idx) - 1)
        test.append(idx[:k])
        train.append(idx[k:])
    test_idx = torch.cat(test).sort().values
    if len(test_idx) == 0:
        raise DgnamError("every class has a single image, so none can be held out to test on: give two or more "
                         "images per class")
    return torch.cat(train).sort().values, test_idx


def set_lr(optim: torch.optim.Optimizer, lr: float) -> None:
    for g in optim.param_groups:
        g["lr"] = lr


def batches(n: int, batch_size: int, seed: int, epoch: int) -> Iterator[torch.Tensor]:
    """Index batches in an order fixed by (seed, epoch), so a resumed run sees the same batches."""
    g = torch.Generator().manual_seed((seed * 100_003 + epoch) % 2**64)  # (as torch reads a negative seed)
    perm = torch.randperm(n, generator=g)
    for i in range(0, n - batch_size + 1 if n >= batch_size else 1, batch_size):
        yield perm[i : i + batch_size]


class Checkpoint:
    """``DIR/checkpoint.pt``: plain tensors and numbers only (read back with ``weights_only=True``).

    ``settings`` (JSON-able: the trainer's config and what it trains on) are stored with every epoch, and a resume
    with other settings is refused naming them: continuing a checkpoint with another lr, layer or data set would mix
    two trainings into weights whose card describes only the second.
    """

    def __init__(self, directory: str | Path, settings: dict | None = None) -> None:
        self.dir = Path(directory)
        self.path = self.dir / "checkpoint.pt"
        self.settings = json.loads(json.dumps(settings)) if settings is not None else None

    def exists(self) -> bool:
        return self.path.exists()

    def save(self, state: dict) -> None:
        write_atomic(self.path, lambda tmp: torch.save(state, tmp))  # a kill never leaves half a checkpoint

    def load(self) -> dict:
        import pickle

        fix = "delete it (or pass --fresh) to start over"
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # torch's notes on pickle protocols are not for our users
                st = torch.load(self.path, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError as e:  # torch's message advises weights_only=False: not for a file we did not write
            from ..weights import carried_objects

            what = carried_objects(self.path, e)
            if what is None:
                raise DgnamError(f"checkpoint {self.path} is corrupt; {fix}") from None
            raise DgnamError(f"checkpoint {self.path} holds more than plain tensors ({what}), so dgnam did not write "
                             f"it; refusing to load it: {fix}") from None
        except Exception as e:  # noqa: BLE001 - any failure means the same thing to the user
            raise DgnamError(f"checkpoint {self.path} is unreadable ({first_line(e)}); {fix}") from None
        if not isinstance(st, dict) or not isinstance(st.get("epoch"), int) or not isinstance(st.get("history"), list):
            raise DgnamError(f"checkpoint {self.path} is not one dgnam wrote (no epoch count); {fix}")
        return st

    def save_state(self, modules: dict, optims: dict, epoch: int, history: list, seconds: float) -> None:
        """Save modules and optimizers (by name), progress, the settings and the RNG state after an epoch."""
        self.save({**{k: m.state_dict() for k, m in modules.items()}, **{k: o.state_dict() for k, o in optims.items()},
                   "epoch": epoch, "history": history, "seconds": seconds, "rng": torch.get_rng_state(),
                   # dropout on a GPU draws from the CUDA generators, which the CPU state does not cover
                   **({"rng_cuda": torch.cuda.get_rng_state_all()} if torch.cuda.is_initialized() else {}),
                   **({"settings": json.dumps(self.settings, sort_keys=True)} if self.settings is not None else {})})

    def resume(self, modules: dict, optims: dict, what: str) -> tuple[int, list, float]:
        """Restore what :meth:`save_state` wrote; returns ``(epoch, history, seconds)`` (zeros when there is no
        checkpoint). The RNG state is restored too, so dropout and noise continue as in an uninterrupted run. A
        checkpoint of other settings is refused (one written before settings were stored is taken as it is)."""
        if not self.exists():
            return 0, [], 0.0
        from ..weights import load_into

        st = self.load()
        if self.settings is not None and isinstance(st.get("settings"), str):
            from ..run import setting_differences

            differ = setting_differences(self.settings, json.loads(st["settings"]))
            if differ:
                raise DgnamError(f"{self.dir} holds a checkpoint of other settings ({'; '.join(differ)}): run with its "
                                 f"settings to continue it, or pass --fresh (Python: resume=False) or another --out to "
                                 f"start over")
        try:
            for k, m in modules.items():
                load_into(m, st[k], what=f"{what} checkpoint")
            for k, o in optims.items():
                o.load_state_dict(st[k])
            if "rng" in st:
                torch.set_rng_state(st["rng"])
            if "rng_cuda" in st and torch.cuda.is_available() and len(st["rng_cuda"]) == torch.cuda.device_count():
                torch.cuda.set_rng_state_all(st["rng_cuda"])
        except (KeyError, TypeError, ValueError, RuntimeError, DgnamError) as e:
            raise DgnamError(f"checkpoint {self.path} does not fit this training ({first_line(e)}); delete it (or "
                             f"pass --fresh) to start over") from None
        return st["epoch"], st["history"], float(st.get("seconds", 0.0))


def locks_training(trainer: Callable[..., T]) -> Callable[..., T]:
    """Decorate a trainer ``trainer(..., out, name, ...)`` so that it holds the lock of NAME in OUT while it runs. Two
    trainings of one NAME into one folder overwrote each other's checkpoint every epoch, and the one that ended last
    replaced the other's weights and card without a word; the second is now refused in one line. Other names train
    into the same folder at once (each has its own lock, ``OUT/.dgnam-lock-NAME``)."""
    signature = inspect.signature(trainer)
    command = trainer.__name__.replace("_", " ")

    @functools.wraps(trainer)
    def wrapper(*args, **kwargs):
        given = signature.bind(*args, **kwargs).arguments
        out, name = Path(given["out"]), str(given["name"])
        with folder_lock(out, command, fix="wait for it to finish, or train into another --out or --name",
                         lock=f"{LOCK}-{re.sub(r'[^A-Za-z0-9._-]+', '_', name)}", label=f"{out / name}.safetensors"):
            return trainer(*args, **kwargs)

    return wrapper


def training_settings(config, **what) -> dict:
    """What a checkpoint must agree on to be continued: the trainer's config (all but the device, which may change
    between sessions) and ``what`` it trains on (digests of the data, the encoder's weights, the layer, ...)."""
    return {**{k: v for k, v in asdict(config).items() if k != "device"}, **what}


def invoking_command() -> str | None:
    """The ``dgnam ...`` command line this process was started with (``dgnam`` or ``python -m dgnam``), for a
    card's ``command``; None when the trainer was called from Python, where no command remakes the weights."""
    prog = Path(sys.argv[0])
    if prog.name == "dgnam" or (prog.name == "__main__.py" and prog.parent.name == "dgnam"):
        return "dgnam " + shlex.join(sys.argv[1:])
    return None


def provenance(config, timer: Timer, weights: Path) -> dict:
    """The card fields every trainer writes: how the weights were made (command, seed, config, time, machine) and
    the file's name and SHA-256, which loading checks."""
    from ..weights import sha256

    return {
        "command": invoking_command(),
        "seed": config.seed,
        "config": asdict(config),
        "training_seconds": round(timer.seconds, 1),
        # the CPU too: the same command and thread count give other weights on another CPU type (other float
        # roundings in the same kernels; measured for fmnist-g-fc6)
        "machine": f"{torch.get_num_threads()} threads, torch {torch.__version__}, {config.device}, {cpu_name()}",
        "weights": weights.name,
        "sha256": sha256(weights),
    }


def cpu_name() -> str:
    """The CPU's model name (Linux: /proc/cpuinfo), else what the platform says."""
    import platform

    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def write_card(path: str | Path, card: dict) -> None:
    write_text_atomic(path, json.dumps(card, indent=2) + "\n")


class Timer:
    def __init__(self, already: float = 0.0) -> None:
        self.start = time.perf_counter() - already

    @property
    def seconds(self) -> float:
        return time.perf_counter() - self.start
