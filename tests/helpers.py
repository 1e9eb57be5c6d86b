"""Shared test helpers: the Fashion-MNIST data set (required on CI, skipped with a reason elsewhere) and running
the CLI as the user does."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from dgnam.errors import DgnamError


def fashion_mnist(split: str):
    from dgnam.data import FashionMNIST

    try:
        return FashionMNIST(split)
    except DgnamError as e:
        if os.environ.get("CI"):
            raise  # CI installs the data set (scripts/setup.sh): its absence there is a failure
        pytest.skip(str(e))


TESTS = Path(__file__).parent


def dgnam(*args, cwd=TESTS, env=None) -> subprocess.CompletedProcess:
    """``python -m dgnam ARGS`` in a fresh process (from the tests folder, so ``conftest:...`` factories import);
    ``env`` adds to the environment."""
    return subprocess.run([sys.executable, "-m", "dgnam", *map(str, args)], cwd=cwd, capture_output=True, text=True,
                          timeout=300, env={**os.environ, **env} if env else None)


def signal_a_started_run(args, out: Path, sig: int, cwd=TESTS) -> subprocess.CompletedProcess:
    """Start ``python -m dgnam ARGS`` (a long ``visualize`` writing to ``out``), send it ``sig`` once its first
    images folder exists and it is optimizing, and return how it ended (``stderr`` holds its last lines)."""
    import signal
    import time

    def default_signals() -> None:  # a shell's background job (`cmd &`) starts with SIGINT ignored, which Python keeps
        signal.signal(signal.SIGINT, signal.SIG_DFL)

    p = subprocess.Popen([sys.executable, "-m", "dgnam", *map(str, args)], cwd=cwd, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, preexec_fn=default_signals if os.name == "posix" else None)
    deadline = time.time() + 120
    while not (out / "images").exists() and time.time() < deadline:  # the run has started
        time.sleep(0.1)
    time.sleep(1.0)
    p.send_signal(sig)
    stdout, stderr = p.communicate(timeout=60)
    return subprocess.CompletedProcess(p.args, p.returncode, stdout, stderr)


def one_line_error(p: subprocess.CompletedProcess, *needles: str) -> None:
    """The command failed as a user mistake: exit 2 and one line ``error: ...`` holding each needle."""
    assert p.returncode == 2, p.stderr
    lines = [ln for ln in p.stderr.strip().splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), p.stderr
    for n in needles:
        assert n in lines[0], lines[0]


def total_variation(image, beta: float = 1.0):
    """Per-image total variation: the :class:`~dgnam.priors.TotalVariation` penalty with weight 1."""
    from dgnam.priors import TotalVariation

    return TotalVariation(1.0, beta).penalty(image, image)
