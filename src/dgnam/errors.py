"""One exception type for mistakes a user can fix, and warnings that point at the user's line.

Every message is a single line that names the fix; the CLI prints it without a traceback.
"""

import numbers
import os
import sys
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

_PACKAGE = str(Path(__file__).parent) + os.sep  # (not dgnam_plugins/...)


class DgnamError(Exception):
    """A user-facing error: bad unit address, missing data set, unsafe weights file, ..."""


def is_int(value: object) -> bool:
    """Whether ``value`` is a whole number: a Python or numpy int, but not a bool (``True`` is an ``int`` to Python,
    and ``seed=True`` or ``sign=True`` is a mistake, not 1)."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


MAX_SEED = 2**63 - 1
"""The largest seed dgnam takes. Torch seeds are 64-bit (it takes 0..2**64 - 1); half that range leaves room for the
seeds made from it (restart r of a run is seeded ``seed + r``), and any seed of any tool fits in it."""


def check_seed(seed: int) -> None:
    """Refuse a seed out of 0..MAX_SEED before any work (one over 2**64 failed as 'Overflow when unpacking long
    long' deep in torch, after the model was loaded), and one that is no int (``None``, ``1.5``, ``True``)."""
    if not is_int(seed) or not 0 <= seed <= MAX_SEED:
        raise DgnamError(f"seed={seed!r}: give a seed in 0..{MAX_SEED}")


def first_line(e: BaseException) -> str:
    """The first line of an exception's message for a one-line error, or its type's name when it has none (an
    ``EOFError`` from an empty file has an empty message)."""
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


def add_note(e: BaseException, note: str) -> None:
    """Add ``note`` to ``e``'s traceback (Python 3.11's ``add_note``; nothing on 3.10): what an interrupted call kept
    and how it continues, shown under the exception (a notebook shows it below the traceback)."""
    if hasattr(e, "add_note"):
        e.add_note(note)


@contextmanager
def noting_interrupt(note: Callable[[], str | None], replace: bool = False) -> Iterator[None]:
    """Let a ``KeyboardInterrupt`` in the block go on, with ``note()`` (made then, from the work's state at that
    moment) added to it: a notebook's stop button or Ctrl-C otherwise left a bare traceback that said nothing of what
    was kept. Never swallowed: the user asked to stop. ``replace`` drops the notes the block's own calls added first:
    a caller that runs :func:`dgnam.visualize` inside (facets, the demo) and cannot resume says what it keeps
    itself, and visualize's advice (``resume=True``) would be wrong for it."""
    try:
        yield
    except KeyboardInterrupt as e:
        if replace and getattr(e, "__notes__", None):
            e.__notes__.clear()
        text = note()
        if text:
            add_note(e, text)
        raise


def warn(message: str) -> None:
    """``warnings.warn`` attributed to the first caller outside dgnam: the line of the user's code that made the
    call (warnings raised deep in the package otherwise point at the package's own lines)."""
    level, frame = 2, sys._getframe(1)  # stacklevel 2 is the frame that called warn()
    while frame is not None and frame.f_code.co_filename.startswith(_PACKAGE):
        frame, level = frame.f_back, level + 1
    warnings.warn(message, UserWarning, stacklevel=level)
