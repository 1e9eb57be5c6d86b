"""One exception type for mistakes a user can fix, and warnings that point at the user's line.

Every message is a single line that names the fix; the CLI prints it without a traceback.
"""

import os
import sys
import warnings
from pathlib import Path

_PACKAGE = str(Path(__file__).parent) + os.sep  # (not dgnam_plugins/...)


class DgnamError(Exception):
    """A user-facing error: bad unit address, missing data set, unsafe weights file, ..."""


MAX_SEED = 2**63 - 1
"""The largest seed dgnam takes. Torch seeds are 64-bit (it takes 0..2**64 - 1); half that range leaves room for the
seeds made from it (restart r of a run is seeded ``seed + r``), and any seed of any tool fits in it."""


def check_seed(seed: int) -> None:
    """Refuse a seed out of 0..MAX_SEED before any work (one over 2**64 failed as 'Overflow when unpacking long
    long' deep in torch, after the model was loaded)."""
    if not 0 <= seed <= MAX_SEED:
        raise DgnamError(f"seed={seed}: give a seed in 0..{MAX_SEED}")


def first_line(e: BaseException) -> str:
    """The first line of an exception's message for a one-line error, or its type's name when it has none (an
    ``EOFError`` from an empty file has an empty message)."""
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


def warn(message: str) -> None:
    """``warnings.warn`` attributed to the first caller outside dgnam: the line of the user's code that made the
    call (warnings raised deep in the package otherwise point at the package's own lines)."""
    level, frame = 2, sys._getframe(1)  # stacklevel 2 is the frame that called warn()
    while frame is not None and frame.f_code.co_filename.startswith(_PACKAGE):
        frame, level = frame.f_back, level + 1
    warnings.warn(message, UserWarning, stacklevel=level)
