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


def dgnam(*args, cwd=TESTS, env=None, timeout: float = 300, fresh: bool = False) -> subprocess.CompletedProcess:
    """``python -m dgnam ARGS`` in a process of its own (from the tests folder, so ``conftest:...`` factories
    import); ``env`` adds to the environment.

    The process is a fork of this one where it can be: a fresh ``python -m dgnam`` spends about 3 s importing torch,
    which for the suite's ~150 commands was most of its time. The child is what a fresh process would be for the
    command: its own output files, working directory, program name (``python -m dgnam``), Python's default warning
    filters, its own exit code, and nothing it changes reaches the tests. It differs in two ways: it runs one thread,
    as the tests do, and it has every module the tests imported, so an import the command forgot would go unseen
    there. ``fresh=True`` runs a new interpreter
    (a few end-to-end tests do, and so do those with ``env``, which libraries read when they are imported, such as
    TQDM_DISABLE or OMP_NUM_THREADS), as does any platform but Linux (macOS's system libraries are not safe to use
    in a forked child)."""
    args = [str(a) for a in args]
    if fresh or env or not sys.platform.startswith("linux"):
        return subprocess.run([sys.executable, "-m", "dgnam", *args], cwd=cwd, capture_output=True, text=True,
                              timeout=timeout, env={**os.environ, **env} if env else None)
    return _forked_dgnam(args, cwd, timeout)


def _forked_dgnam(args: list[str], cwd, timeout: float) -> subprocess.CompletedProcess:
    import io
    import tempfile
    import time

    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        pid = os.fork()
        if pid == 0:  # the child: never returns into pytest
            code = 1
            try:
                code = _run_main_in_child(args, cwd, out.fileno(), err.fileno())
            except BaseException:  # noqa: BLE001 -- as Python reports an uncaught error: a traceback, exit 1
                import traceback

                traceback.print_exc()
            finally:
                for stream in (sys.stdout, sys.stderr):
                    try:
                        stream.flush()
                    except Exception:  # noqa: BLE001
                        pass
                os._exit(code)
        deadline = time.monotonic() + timeout
        while True:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                break
            if time.monotonic() > deadline:
                os.kill(pid, 9)
                os.waitpid(pid, 0)
                raise subprocess.TimeoutExpired(["dgnam", *args], timeout)
            time.sleep(0.02)
        code = os.waitstatus_to_exitcode(status)
        texts = []
        for f in (out, err):
            f.seek(0)
            texts.append(io.TextIOWrapper(f, encoding="utf-8", errors="replace").read())
        return subprocess.CompletedProcess(["python", "-m", "dgnam", *args], code, texts[0], texts[1])


def _run_main_in_child(args: list[str], cwd, out_fd: int, err_fd: int) -> int:
    """In the forked child: stdout/stderr to the two files, then ``dgnam.cli.main()`` as ``python -m dgnam ARGS``
    would run it; its exit code."""
    import io
    import signal
    import types
    import warnings

    import torch

    os.chdir(cwd)
    os.dup2(out_fd, 1)
    os.dup2(err_fd, 2)
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    sys.stdin = io.TextIOWrapper(io.FileIO(0, "r", closefd=False))
    sys.stdout = io.TextIOWrapper(io.FileIO(1, "w", closefd=False), encoding="utf-8", write_through=True)
    sys.stderr = io.TextIOWrapper(io.FileIO(2, "w", closefd=False), encoding="utf-8", write_through=True)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    # Python's own warning filters, not the test's (pytest's may turn warnings into errors or record them)
    warnings.resetwarnings()
    for action, category in (("ignore", DeprecationWarning), ("ignore", PendingDeprecationWarning),
                             ("ignore", ImportWarning), ("ignore", ResourceWarning)):
        warnings.simplefilter(action, category)
    warnings.showwarning = warnings._showwarning_orig  # (main() installs its own one-line form)
    torch.set_num_threads(1)  # as this process runs (conftest); a forked OpenMP team would not come back
    main_module = types.ModuleType("__main__")  # so that click names the program `python -m dgnam`
    main_module.__package__ = "dgnam"
    sys.modules["__main__"] = main_module
    import dgnam

    sys.argv = [str(Path(dgnam.__file__).with_name("__main__.py")), *args]
    if str(cwd) not in sys.path:
        sys.path.insert(0, str(cwd))  # as `python -m` puts the working directory first
    from dgnam.cli import main

    try:
        main()
    except SystemExit as e:
        if e.code is None:
            return 0
        if isinstance(e.code, int):
            return e.code
        print(e.code, file=sys.stderr)
        return 1
    return 0


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


def drawn_texts(draw) -> list[str]:
    """Every text Pillow draws while ``draw()`` runs, in order (a figure's labels and captions)."""
    from PIL import ImageDraw

    texts, text = [], ImageDraw.ImageDraw.text
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(ImageDraw.ImageDraw, "text", lambda self, xy, t, *a, **kw: (texts.append(t),
                                                                                 text(self, xy, t, *a, **kw))[1])
        draw()
    return texts
