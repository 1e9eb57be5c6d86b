"""Resumable stages for the benchmark scripts that are not made of ``visualize`` runs (``facets.py``, ``ppgn.py``).

Each stage's result (a JSON-able dict, and uint8 arrays for the figures) is written under ``runs/bench/NAME/`` as the
stage ends; after a kill, the rerun reads the finished stages back instead of computing them again, and the folder is
removed once the benchmark has written its results. Stages are only reused by the same code on the same inputs: the
script, the dgnam package (sources and shipped weights) and the arguments are fingerprinted, and any change starts
over. The JSON's ``seconds`` is then this invocation's wall time plus the time of the stages earlier ones finished
(``stages_resumed`` says how many).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from pathlib import Path
from typing import Callable

import numpy as np

import dgnam
from dgnam.atomic import write_atomic, write_json_atomic, write_text_atomic

RUNS = Path("runs/bench")  # outside the repository (runs/ is ignored), as quality.py's runs/quality/


def fingerprint(script: str | Path, settings: dict) -> str:
    """SHA-256 of the script, every file of the installed dgnam package (code and shipped weights) and the settings
    (a file named there counts by its contents)."""
    h = hashlib.sha256(Path(script).read_bytes())
    pkg = Path(dgnam.__file__).parent
    for f in sorted(p for p in pkg.rglob("*") if p.is_file() and "__pycache__" not in p.parts):
        h.update(str(f.relative_to(pkg)).encode())
        h.update(f.read_bytes())
    for k, v in sorted(settings.items()):
        h.update(f"{k}={v}".encode())
        if v is not None and Path(str(v)).is_file():
            h.update(Path(str(v)).read_bytes())
    return h.hexdigest()


class Stages:
    """``stages(key, fn, *args, **kwargs)`` runs ``fn(*args, **kwargs)`` (returning a dict, or with ``arrays=True`` a
    dict and a dict of uint8 arrays) once: its result is kept under ``runs/bench/NAME/KEY.*`` and read back by a rerun
    of the same code and settings."""

    def __init__(self, name: str, script: str | Path, settings: dict) -> None:
        self.dir = RUNS / name
        self.resumed = 0
        self.earlier_seconds = 0.0
        fp = fingerprint(script, settings)
        stamp = self.dir / "fingerprint.txt"
        if self.dir.exists() and (not stamp.exists() or stamp.read_text() != fp):
            print(f"{self.dir}: the code or settings changed since the interrupted run; starting over", flush=True)
            shutil.rmtree(self.dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        write_text_atomic(stamp, fp)

    def __call__(self, key: str, fn: Callable[..., dict | tuple[dict, dict[str, np.ndarray]]], *args,
                 arrays: bool = False, **kwargs) -> dict | tuple[dict, dict[str, np.ndarray]]:
        done, npz = self.dir / f"{key}.json", self.dir / f"{key}.npz"
        if done.exists():
            doc = json.loads(done.read_text())
            self.resumed += 1
            self.earlier_seconds += doc["seconds"]
            if not arrays:
                return doc["result"]
            with np.load(npz, allow_pickle=False) as z:
                return doc["result"], {k: z[k] for k in z.files}
        t = time.perf_counter()
        out = fn(*args, **kwargs)
        result, arrs = out if arrays else (out, None)
        if arrs is not None:  # the arrays first: the JSON says the stage is complete
            def save(tmp: Path) -> None:
                with open(tmp, "wb") as f:  # a file object: given a name, numpy would add ".npz" to it
                    np.savez(f, **arrs)

            write_atomic(npz, save)
        # through JSON and back, so that a fresh run hands on exactly what a resumed one reads (tuples as lists)
        result = json.loads(json.dumps(result))
        write_json_atomic(done, {"result": result, "seconds": time.perf_counter() - t})
        return (result, arrs) if arrays else result

    def summary(self, seconds_now: float) -> dict:
        """``seconds`` over all invocations, and how many stages came from earlier ones."""
        return {"seconds": round(seconds_now + self.earlier_seconds, 1), "stages_resumed": self.resumed}

    def finish(self) -> None:
        """The results are written: the stages are not needed again (a rerun measures anew)."""
        shutil.rmtree(self.dir, ignore_errors=True)
