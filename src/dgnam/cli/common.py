"""Helpers shared by the CLI modules."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from ..atomic import WAIT_OR_ELSEWHERE, folder_lock
from ..errors import MAX_SEED, DgnamError

if TYPE_CHECKING:  # the command line imports torch only when a command runs: `dgnam --help` does without it
    import torch
    from torch import nn

    from ..generators import Generator


def err_line(text: str, fg: str, bold: bool = False) -> None:
    """One line on stderr (an error, a warning, a note) in colour on a terminal; plain where ``NO_COLOR`` is set
    (no-color.org; rich's tables follow it too) and, as ever, in a file or a pipe."""
    typer.secho(text, fg=fg, bold=bold or None, err=True, color=False if os.environ.get("NO_COLOR") else None)


def model_arg(spec: str, arch: str | None = None, pretrained: bool = True, flag: str = "--model") -> nn.Module:
    """A classifier given as ``flag`` (``--model``; ``--encoder`` for the model whose layer a generator inverts,
    ``--judge``): a weights file whose card does not name its architecture, given without it, is refused naming this
    flag's ``-arch`` option."""
    from ..generators import Generator
    from ..zoo.files import card_arch
    from ..zoo.registry import is_weights_file, load_model

    arch_flag = {"--encoder": "--encoder-arch", "--judge": "--judge-arch"}.get(flag, "--arch")
    if arch is None and is_weights_file(spec) and Path(spec).exists() and card_arch(Path(spec)) is None:
        raise DgnamError(f"{spec} is a weights file: say which architecture it holds with {arch_flag} NAME (`dgnam "
                         f"models` lists them)")
    _check_arch(spec, arch, arch_flag, "a weights file", "a zoo model or import path")
    m = load_model(spec, arch, pretrained)
    if isinstance(m, Generator):
        other = {"--model": " and this as --generator", "--encoder": " (e.g. fmnist-cnn)"}.get(flag, "")
        raise DgnamError(f"{flag} {spec} is a generator: give a classifier as {flag}{other}")
    from ..ppgn import CodeDAE

    if isinstance(m, CodeDAE):
        raise DgnamError(f"{flag} {spec} is a code DAE (PPGN's prior on codes): give it as --dae of `dgnam sample` or "
                         f"`dgnam inpaint`, and a classifier as {flag}")
    return m


def _check_arch(spec: str | None, arch: str | None, arch_flag: str, file: str, other: str) -> None:
    """An architecture option given with ``spec`` must have a weights file (``file``) to apply to: a mistyped path
    is said to be missing, and a zoo name or import path (``other``) would ignore the option, so it is refused."""
    from ..zoo.registry import is_weights_file

    if arch is None:
        return
    # a path: a folder in it, or a file suffix (an import path has a colon)
    path_like = spec is not None and ("/" in spec or "\\" in spec or (Path(spec).suffix != "" and ":" not in spec))
    if path_like and not Path(spec).exists():  # a typo, whatever its suffix
        raise DgnamError(f"{spec} does not exist (the weights file for {arch_flag} {arch})")
    if spec is None or not is_weights_file(spec):  # it would be ignored: the zoo entry or factory decides
        where = "" if spec is None else f", and {spec} is {other}"
        raise DgnamError(f"{arch_flag} {arch} is for {file}{where}: drop {arch_flag}")


def generator_arg(spec: str | None, arch: str | None = None, code_stats: Path | None = None) -> Generator | None:
    """``--generator`` (with ``--generator-arch`` for a file, ``--code-stats`` to replace its bounds). A learned
    generator must come with code statistics: every method here clips its code to ``[0, U]``, and without U the
    clip has no upper bound (the README's ablation: judge accuracy 0.48 instead of 0.90)."""
    from ..generators import Generator, LearnedGenerator
    from ..zoo.registry import load_model

    _check_arch(spec, arch, "--generator-arch", "a --generator weights file", "not one")
    if spec is None or spec in ("none", "pixels"):
        if code_stats is not None:
            set_code_stats(None, code_stats)  # refused: nothing to bound
        return None
    import warnings

    with warnings.catch_warnings():  # a problem with its statistics is refused below, unless --code-stats replaces them
        warnings.simplefilter("ignore")
        g = load_model(spec, arch)
    if not isinstance(g, Generator):
        raise DgnamError(f"{spec} is not a generator: wrap your network as dgnam.LearnedGenerator(net, code_shape, space)")
    if code_stats is not None:
        g = set_code_stats(g, code_stats)
        g.code_stats_problem = None  # the given bounds replace what was found
    if getattr(g, "code_stats_problem", None):
        raise DgnamError(g.code_stats_problem)
    if isinstance(g, LearnedGenerator) and g.code_stats is None:
        lower = "-inf" if g.code_lower is None else f"{g.code_lower:g}"
        raise DgnamError(f"generator {spec} has no code statistics (its [{lower}, U] clip bounds): give --code-stats "
                         f"FILE (`dgnam code-stats` measures them; `dgnam train generator` writes "
                         f"NAME.codestats.safetensors beside the weights, where they are found; a factory of a "
                         f"GAN's generator gives its z's: LearnedGenerator(..., code_stats=CodeStats(mean, std)))")
    return g


def set_code_stats(gen: Generator | None, path: Path) -> Generator:
    """Replace a learned generator's code statistics (``--code-stats``: a CodeStats file, or the released act_range
    bounds of the paper)."""
    import math

    from ..generators import LearnedGenerator
    from ..zoo.caffe_files import read_code_stats

    if not isinstance(gen, LearnedGenerator):
        raise DgnamError("--code-stats sets a learned generator's code bounds: give a --generator too")
    gen.code_stats = read_code_stats(path, math.prod(gen.code_shape))
    return gen


def out_folder_arg(out: Path) -> Path:
    """``--out`` of a command that writes a folder (a run, samples): a file there is refused in one line."""
    if out.exists() and not out.is_dir():
        raise DgnamError(f"--out {out} is a file: give a folder")
    return out


def hold_lock(ctx: typer.Context, folder: Path, what: str, fix: str = WAIT_OR_ELSEWHERE) -> Path:
    """Hold ``folder``'s lock (:func:`dgnam.atomic.folder_lock`) until the command ``what`` ends, for a command that
    writes there itself after the library's functions return (a report, a sample run, a record of the real images):
    a second dgnam process on the folder is refused in one line."""
    ctx.with_resource(folder_lock(folder, what, fix))
    return folder


def writable_folder(out: Path) -> Path:
    """Check before the work starts that ``--out`` (a folder, made if missing) can be written: a read-only place, or a
    file where a folder should be, is then said at once (by the command line's one-line error for ``OSError``), not
    after an epoch or a chain. Nothing is made here."""
    import errno
    import os

    existing = out_folder_arg(out)
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), str(existing))
    if not os.access(existing, os.W_OK | os.X_OK):
        code = errno.EROFS if os.statvfs(existing).f_flag & os.ST_RDONLY else errno.EACCES
        raise OSError(code, os.strerror(code), str(existing))
    return out


def image_file_arg(path: Path, flag: str, example: str) -> Path:
    """An image file a command writes (inpaint's ``--out``, ``--filled``): a name Pillow can save by its suffix, not
    a folder."""
    from PIL import Image

    if path.suffix.lower() not in Image.registered_extensions():
        raise DgnamError(f"{flag} {path}: give an image file name, e.g. {example}")
    if path.is_dir():
        raise DgnamError(f"{flag} {path} is a folder: give an image file name, e.g. {path / example}")
    return path


def device_arg(device: str) -> torch.device:
    from ..modules import as_device

    return as_device(device)


#: ``--data`` of every command that reads images (:func:`dgnam.data.load_dataset`).
DATA_HELP = ("fashion-mnist (default), fashion-mnist:DIR, or an image folder (one sub-folder per class, or the images "
             "directly in it, or train/ and test/ each with the class sub-folders)")
def dataset_arg(data: str | None, split: str, space):
    """``--data`` and ``--split`` of a command that reads real images at ``space``'s size: a plain image folder has no
    test images of its own (it reads the same images for any split), so ``--split test`` (or a typo) on it is refused
    rather than silently reading every image, training images included."""
    from ..data import ImageFolder, load_dataset

    ds = load_dataset(data, split, space.size, space.channels)
    if isinstance(ds, ImageFolder) and ds.split is None and split != "train":
        raise DgnamError(f"--split {split}: {data} is a plain image folder, without test/ of its own: leave --split "
                         f"out (its images), or give a folder with train/ and test/")
    return ds


#: ``--model`` of every command that takes a classifier, and the help of each ``--*-arch`` option (:func:`arch_help`)
MODEL_HELP = "zoo name, package.module:factory, or a weights file (with --arch if its card does not name it)"


def arch_help(flag: str) -> str:
    """The help of the architecture option of ``flag`` (--model, --generator, --encoder, --judge)."""
    return f"architecture of a{'n' if flag == '--encoder' else ''} {flag} weights file whose card does not name it"


LIMIT_HELP = ("use only N images: Fashion-MNIST's first N; an image folder's taken from each class in turn, so that "
              "none is left out")


#: A run's table on the terminal shows at most this many rows (a run of ``logits:all`` on an ImageNet model has
#: 1000); every row is in the run's JSON, which the table's caption names.
TABLE_MAX_ROWS = 100


def seed_option(most: int = MAX_SEED) -> Any:
    """The ``--seed`` option every command shares: an int in 0..``most`` (MAX_SEED; facets' clustering takes
    0..2**32 - 1), refused by typer in one line otherwise, and shown as that range in ``--help``."""
    return typer.Option(0, min=0, max=most)


def device_option(what: str = "the models run") -> Any:
    """The ``--device`` option every command shares, its help naming what runs there (``what``): checked by
    :func:`device_arg`, which refuses a device this torch lacks in one line."""
    return typer.Option("cpu", help=f"where {what}: cpu, cuda, cuda:N or mps")


def print_table(rows: list[dict], columns: list[str], title: str | None = None, all_in: str | None = None) -> None:
    """Print ``rows`` as a table; with ``all_in`` (the file that holds every row), only the first
    :data:`TABLE_MAX_ROWS`, and a caption that says how many were left out and where they are."""
    from rich.console import Console
    from rich.table import Table

    shown = rows if all_in is None or len(rows) <= TABLE_MAX_ROWS else rows[:TABLE_MAX_ROWS]
    caption = f"the first {len(shown)} of {len(rows)} rows: all are in {all_in}" if len(shown) < len(rows) else None
    t = Table(title=title, caption=caption)
    for c in columns:
        t.add_column(c, overflow="fold")  # a narrow terminal wraps values (unit names, figures), never cuts them
    for r in shown:
        t.add_row(*[f"{r[c]:.3f}" if isinstance(r.get(c), float) else str(r.get(c, "")) for c in columns])
    # written to a file or a pipe (logs, CI), rich would assume 80 columns: give the table the width it needs
    Console(width=None if sys.stdout.isatty() else 200).print(t)


def space_arg(net: nn.Module, shape: str | None):
    """``--input-shape CxHxW`` for a user's model without ``input_space``: images in [0, 1], gray or RGB. A model
    that declares its space keeps it (with its normalization, which a bare shape would drop): the same shape is
    accepted, another is refused."""
    declared = getattr(net, "input_space", None)
    if shape is None:
        return declared
    from ..imagespace import ImageSpace

    try:
        c, h, w = (int(v) for v in shape.lower().split("x"))
        assert c in (1, 3) and h >= 1 and w >= 1
    except (ValueError, AssertionError):
        raise DgnamError(f"--input-shape {shape!r}: write CxHxW with C 1 or 3 and H, W >= 1, e.g. 3x224x224") from None
    if declared is not None:
        if tuple(declared.shape) != (c, h, w):
            raise DgnamError(f"--input-shape {shape}: the model declares its input space, "
                             f"{'x'.join(map(str, declared.shape))} ({declared.color}, its own normalization); drop "
                             f"--input-shape")
        return declared
    return ImageSpace(size=(h, w), color="GRAY" if c == 1 else "RGB")


def declared_space(net: nn.Module, model: str, command: str):
    """The model's input space, which commands that read real images need; a user's model must declare it."""
    space = getattr(net, "input_space", None)
    if space is None:
        raise DgnamError(f"{model} has no input_space; `dgnam {command}` needs a model that declares it (set "
                         f"model.input_space = dgnam.ImageSpace(...) in your factory)")
    return space
