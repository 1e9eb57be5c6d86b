"""Writing files so that a kill or a full disk never leaves one half written and looking complete.

Every output file goes through a temporary file beside it, renamed over the target once whole (``os.replace`` is
atomic on one file system): the target is then the old file, the new one, or absent, never a truncated copy.
"""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path
from typing import Any, Callable

from .errors import DgnamError


def write_atomic(path: str | os.PathLike, write: Callable[[Path], None]) -> None:
    """Call ``write(tmp)`` to write a temporary file beside ``path``, then rename it over ``path``. The temporary name
    is short whatever the target's (a long target name still fits the file system's limit) and starts with a dot.
    An ``OSError`` (full disk, read-only folder) propagates for the caller, or the command line, to name; torch's
    ``RuntimeError`` for a failed write (``unexpected pos``, ``iostream error``) becomes a one-line error too."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".dgnam-{secrets.token_hex(6)}.tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    except OSError as e:  # named by the file asked for, not the temporary one
        if e.errno is None:
            raise
        raise OSError(e.errno, e.strerror, str(path)) from None
    except RuntimeError as e:
        raise DgnamError(f"cannot write {path} ({str(e).splitlines()[0] if str(e) else type(e).__name__}): is the "
                         f"disk full? free some space, then run the same command again") from None
    finally:
        tmp.unlink(missing_ok=True)


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    write_atomic(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def write_json_atomic(path: str | os.PathLike, obj: Any, indent: int = 1) -> None:
    write_text_atomic(path, json.dumps(obj, indent=indent))
