"""The ``dgnam`` command line: one Typer app; each area of the toolkit adds its commands from a module here."""

from __future__ import annotations

import signal
import sys
import warnings

import typer

from ..errors import DgnamError

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Synthesize the preferred inputs of neurons with deep generator networks (DGN-AM).")
train_app = typer.Typer(no_args_is_help=True, help="Train zoo models: classifiers, generators, code autoencoders.")
#: `dgnam --help` groups the commands by what they are for, in this order (a panel is shown where its first command
#: is registered: demo's module is imported first), rather than one list in the order the modules happened to load.
SYNTHESIZE, EVALUATE, MODELS, CODES = "Synthesize images", "Evaluate", "Models", "Codes"
app.add_typer(train_app, name="train", rich_help_panel=MODELS)


def _print_version(value: bool) -> None:
    if value:
        from .. import __version__

        typer.echo(f"dgnam {__version__}")
        raise typer.Exit()


@app.callback()
def _options(version: bool = typer.Option(False, "--version", callback=_print_version, is_eager=True,
                                          help="Print the version and exit."),
             quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars (for logs and CI; "
                                        "TQDM_DISABLE=1 does the same); results, warnings and errors are still "
                                        "written.")) -> None:
    """Options before the command."""
    from .. import display

    display.QUIET = quiet  # (set each time: a second command in one process, as in tests, starts from its own)

# each registers its commands on `app`, in this order: the panels of `dgnam --help` (SYNTHESIZE, ...) follow it
from . import demo, evaluation, run, beyond, codes, train, convert  # noqa: E402,F401,I001
from .common import err_line  # noqa: E402


#: What Ctrl-C (or SIGTERM) leaves, per command: every command writes as it goes (or writes each file whole at its end),
#: and each says how it goes on. A note about --resume after `dgnam evaluate` sent its user looking for an option it
#: does not have.
KEPT = {
    "visualize": "what was finished is on disk: the same command plus --resume continues it",
    "sample": "what was finished is on disk: the same command plus --resume continues the chain",
    "train": "the last checkpoint is on disk: the same command continues from it (--fresh starts over)",
    "demo": "the finished runs are on disk; the same command starts the demo again",
    "facets": "what was finished is on disk; the same command starts again",
    "evaluate": "the evaluation is written at its end, each file whole: the same command evaluates the run again",
}
#: The rest (encode, code-stats, convert, inpaint, ...) write each file whole at the end.
KEPT_OTHERWISE = "no file is left half-written: the same command starts again"


def kept_note(argv: list[str], how: str) -> str:
    """The line Ctrl-C (``how`` "interrupted") or SIGTERM ("terminated (SIGTERM)") ends a command with: what the
    command in ``argv`` (``sys.argv[1:]``: options before it skipped) kept, and how it goes on."""
    words = [a for a in argv if not a.startswith("-")]
    return f"{how}: {KEPT.get(words[0] if words else '', KEPT_OTHERWISE)}"


def os_error_line(e: OSError) -> str:
    """A failed read or write (full disk, read-only folder, a file where a folder should be) as one line that names
    the fix, not a traceback: every output is written atomically, so what is on disk is whole."""
    import errno

    fixes = {
        errno.ENOSPC: "free some space, then run the same command again (plus --resume where it has one)",
        errno.EDQUOT: "free some space, then run the same command again (plus --resume where it has one)",
        errno.EROFS: "the file system is read-only: choose another --out",
        errno.EACCES: "choose another --out, or one you may write to",
        errno.EPERM: "choose another --out, or one you may write to",
        errno.ENAMETOOLONG: "use a shorter name",
        errno.ENOTDIR: "a part of the path is a file: choose another path",
        errno.EISDIR: "that is a folder: give a file name",
        errno.EEXIST: "choose another path",
        errno.ENOENT: "check the path",
    }
    where = f" ({e.filename})" if e.filename else ""
    return f"{e.strerror or e}{where}: {fixes.get(e.errno, 'check the path and the disk')}"


def _click_exception() -> type[Exception]:
    """The base class of the usage errors of the click Typer runs on (newer Typers bundle their own copy of click,
    older ones use the click package; both reach it through ``typer.BadParameter``)."""
    return next(c for c in typer.BadParameter.__mro__ if c.__name__ == "ClickException")


def usage_error_line(e: Exception) -> str:
    """A usage error (unknown option, missing or invalid value) as one line that names the help to read."""
    message = " ".join(e.format_message().split())
    ctx = getattr(e, "ctx", None)
    name = getattr(e, "option_name", None)  # click's NoSuchOption
    if name in ("-q", "--quiet") and ctx is not None and ctx.parent is not None:  # `dgnam visualize ... -q`
        prog = ctx.find_root().command_path  # dgnam, or python -m dgnam
        sub_command = ctx.command_path[len(prog):].strip()
        return (f"error: {name} is an option of dgnam itself: put it before the command "
                f"({prog} {name} {sub_command} ...)")
    return f"error: {message} (see '{ctx.command_path} --help')" if ctx is not None else f"error: {message}"


def _one_line_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """Library warnings on the command line as one line, like its errors (not Python's two-line source listing)."""
    err_line(f"warning: {message}", typer.colors.YELLOW)


def main() -> None:
    warnings.showwarning = _one_line_warning
    terminated = False

    def on_sigterm(signum, frame) -> None:
        """SIGTERM (a batch scheduler's time limit, ``kill``, a cancelled CI job) ended the process silently: it
        is raised as Ctrl-C is, so that the command ends the same way (its ``finally`` blocks run) and says what it
        kept."""
        nonlocal terminated
        terminated = True
        signal.signal(signal.SIGTERM, signal.SIG_DFL)  # a second SIGTERM ends the process at once
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_sigterm)
    try:
        # Not standalone: Typer then returns exit codes and raises usage errors here instead of printing them in a
        # box under the usage line (five lines or more); they are written in one line, as every other error is.
        code = app(standalone_mode=False)
    except DgnamError as e:
        err_line(f"error: {e}", typer.colors.RED)
        sys.exit(2)
    except OSError as e:
        err_line(f"error: {os_error_line(e)}", typer.colors.RED)
        sys.exit(2)
    except _click_exception() as e:
        if type(e).__name__ == "NoArgsIsHelpError":  # `dgnam` or `dgnam train` alone: the help, printed already
            sys.exit(e.exit_code)
        err_line(usage_error_line(e), typer.colors.RED)
        sys.exit(e.exit_code)
    except typer.Abort:  # (end of input at a prompt; no command prompts today)
        err_line("aborted", typer.colors.YELLOW)
        sys.exit(1)
    code = code if isinstance(code, int) else 0  # (a command's return value is not an exit code)
    if code == 130 and terminated:  # the shell's code for a process ended by SIGTERM: 128 + 15
        err_line(kept_note(sys.argv[1:], "terminated (SIGTERM)"), typer.colors.YELLOW)
        sys.exit(143)
    if code == 130:  # Typer's exit code for Ctrl-C
        err_line(kept_note(sys.argv[1:], "interrupted"), typer.colors.YELLOW)
    sys.exit(code)
