"""Writing files so that a kill or a full disk never leaves one half written and looking complete, and so that two
dgnam processes never write one folder at once.

Every output file goes through a temporary file beside it, renamed over the target once whole (``os.replace`` is
atomic on one file system): the target is then the old file, the new one, or absent, never a truncated copy. A command
that writes a folder holds the folder's lock while it runs (:func:`folder_lock`).
"""

from __future__ import annotations

import errno
import json
import os
import platform
import secrets
import stat
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator

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


#: The lock file a command holds in the folder it writes (:func:`folder_lock`); a ``.dgnam-`` name, which the checks
#: for someone else's files in a run folder pass over.
LOCK = ".dgnam-lock"
#: What a command refused by another's lock is told, unless it says otherwise.
WAIT_OR_ELSEWHERE = "wait for it to finish or choose another --out"
_HELD = threading.local()  # the locks this thread holds: taking one again is a no-op
_WINDOWS_BYTE = 1 << 30  # the byte msvcrt locks: past the holder's line, which a refused process reads


@contextmanager
def folder_lock(folder: str | os.PathLike | None, what: str, fix: str = WAIT_OR_ELSEWHERE, lock: str = LOCK,
                label: str | None = None) -> Iterator[None]:
    """Hold the lock of ``folder`` (the file ``folder/lock``) while the block runs, for the command ``what``.

    Two processes writing one run folder mixed their files: a ``--resume`` of a run still running elsewhere did its
    work again, an ``evaluate`` of a running run dropped the records written after it read them, and one ``sample``
    deleted the other's staging folder under it. The lock is an OS advisory lock (``flock``; ``msvcrt.locking`` on
    Windows) that the OS drops when the process ends, however it ends: a killed run leaves at most the file, which
    the next command takes over, never a lock that blocks its ``--resume``. Another process holding it is refused in
    one line naming it (its pid and command) and ``fix``; ``label`` names what is locked (default: the folder).

    The thread that holds a lock may take it again (a command that locks its folder calls a function that locks it
    too). Where no lock can be had (a folder that cannot be written, a file system or platform without locks) the
    block runs without one: the lock only keeps a second writer out, it never stops the first. ``folder=None`` (no
    output) runs the block as it is, and so does a file (the caller refuses it in its own words). The folder is made
    if missing, and removed again if the block leaves it empty: a command refused before it wrote leaves nothing.
    """
    folder = Path(folder) if folder is not None else None
    held = _HELD.__dict__.setdefault("paths", set())
    key = os.path.join(os.path.realpath(folder), lock) if folder is not None else None
    if folder is None or key in held or (folder.exists() and not folder.is_dir()):
        yield
        return
    made = []  # the folders this lock makes, deepest first
    missing = folder
    while not missing.exists() and missing != missing.parent:
        made.append(missing)
        missing = missing.parent
    fd = _acquire(folder / lock, what, fix, label or str(folder))
    held.add(key)
    try:
        yield
    finally:
        held.discard(key)
        if fd is not None:
            _release(fd, folder / lock)
        for path in made:
            try:
                path.rmdir()
            except OSError:  # written into (or never made): kept
                break


def _acquire(path: Path, what: str, fix: str, label: str) -> int | None:
    """The open, locked lock file ``path`` with this process's line in it; None where no lock can be had."""
    for _ in range(100):
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            made = not os.path.lexists(path)
            fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o644)  # never through a link
        except FileNotFoundError:  # the folder's last holder removed it, empty, as it finished: make it again
            continue
        except OSError:  # read-only, not allowed, a link: this command's own writes say what is wrong
            return None
        got = _lock(fd) if stat.S_ISREG(os.fstat(fd).st_mode) else None  # (a FIFO by that name: no lock)
        if got is False:
            holder = _holder(fd)
            os.close(fd)
            raise DgnamError(f"{label} is being written by {holder}; {fix}")
        if got is None:
            os.close(fd)
            if made:  # no lock to hold: no file to leave behind either
                path.unlink(missing_ok=True)
            return None
        if _same_file(path, fd):
            break
        os.close(fd)  # its holder removed that file as it finished, after we opened it: lock the one there now
    else:  # (never seen: each attempt lost a race with another process)
        return None
    try:
        os.ftruncate(fd, 0)
        os.write(fd, json.dumps({"pid": os.getpid(), "host": platform.node(), "command": what}).encode())
    except OSError:  # the line only helps a refused command name the holder
        pass
    return fd


def _lock(fd: int) -> bool | None:
    """Lock the open file ``fd`` without waiting: True, False (another process holds it) or None (no lock here)."""
    try:
        import fcntl
    except ImportError:  # Windows
        try:
            import msvcrt
        except ImportError:
            return None
        try:
            os.lseek(fd, _WINDOWS_BYTE, os.SEEK_SET)
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        except OSError as e:
            return False if e.errno in (errno.EACCES, errno.EDEADLK) else None
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    except OSError:  # a file system without locks (ENOLCK, EOPNOTSUPP)
        return None
    return True


def _same_file(path: Path, fd: int) -> bool:
    try:
        a, b = os.stat(path, follow_symlinks=False), os.fstat(fd)
    except OSError:
        return False
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


def _release(fd: int, path: Path) -> None:
    """Remove the lock file and let go of it: on POSIX removed while still locked (a process that opened it meanwhile
    finds it gone and locks the next one), on Windows, where an open file cannot be removed, after it is closed."""
    if os.name != "nt" and _same_file(path, fd):
        path.unlink(missing_ok=True)
    try:
        if os.name == "nt":
            import msvcrt

            os.lseek(fd, _WINDOWS_BYTE, os.SEEK_SET)
            msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)
    except OSError:
        pass
    finally:
        os.close(fd)
    if os.name == "nt":
        try:
            path.unlink(missing_ok=True)
        except OSError:  # another process has it open (and may hold it now)
            pass


def _holder(fd: int) -> str:
    """``another dgnam process (pid 1234: dgnam visualize)``, from the line the holder wrote into the lock file (a
    shared folder's file is data: only a whole number and a short single line are shown)."""
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        info = json.loads(os.read(fd, 4096).decode())
    except (OSError, ValueError):
        info = None
    info = info if isinstance(info, dict) else {}
    pid, host, command = info.get("pid"), info.get("host"), info.get("command")
    here = host == platform.node()
    if isinstance(pid, int) and pid == os.getpid() and here:
        who, details = "another dgnam call in this process", []
    else:
        who = "another dgnam process"
        details = [f"pid {pid}" + ("" if here or not isinstance(host, str) else f" on {' '.join(host.split())[:40]}")
                   ] if isinstance(pid, int) else []
    if isinstance(command, str) and command.strip():
        details.append(f"dgnam {' '.join(command.split())[:40]}")
    return who + (f" ({': '.join(details)})" if details else "")
