"""Runs a user keeps: DGN-AM (or any method) over many units and restarts, batched, written as it goes.

A run directory holds ``images/`` (one PNG per unit and restart, plus the best-activation one), ``codes/`` (the final
and best codes, safetensors, so any image can be regenerated), ``grid.png`` and ``results.json`` with a top-level
``records`` list. Records are written after every batch; ``resume=True`` skips what is done, so a killed run loses at
most the batch in flight. While a run writes its folder it holds the folder's lock (``.dgnam-lock``,
:func:`dgnam.atomic.folder_lock`), so a second run, resume or evaluation of it is refused until it ends.
"""

from __future__ import annotations

import difflib
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
from PIL import Image
from torch import nn

from . import __version__
from .atomic import folder_lock, write_json_atomic
from .display import compact, progress_bar
from .errors import DgnamError, check_seed, is_int, noting_interrupt, warn
from .generators import Generator, PixelGenerator, check_generator, require_generator
from .imagespace import ImageSpace, convert, to_uint8
from .images import GRID_CELL, enlarged, grid, png_scale, save_image, save_png
from .modules import as_device, frozen, module_device, module_dtype, unwrapped
from .optimize import AMConfig, Pipeline, Transform, optimize
from .priors import ClipCode, Prior, checked_bounds
from .units import LOGITS, LayerReader, Unit, parse_units, resolve_units, unit_position
from .weights import json_safe, save_safetensors, tensor_digest

RESULTS = "results.json"
#: What ``dgnam evaluate`` writes into a run folder. A resume that adds records makes them stale, so it removes them.
EVALUATION_FILES = ("evaluation.json", "nearest.png", "report.html")
#: The fields `dgnam evaluate` adds to each record: a resume removes them with the files, since they describe the run
#: as it was scored, before the resume (its per-record metrics also depend on the whole set, e.g. the Fréchet pool).
EVALUATION_FIELDS = ("png_activation", "activation_percentile", "activation_ratio", "judge_class", "judge_prob",
                     "judge_name", "judge_correct", "nn_distance", "nn_ratio", "nn_index", "nn_indices", "nn_files")


def unit_slug(index: int, unit: Unit) -> str:
    return f"u{index:03d}_" + ("neg-" if unit.sign < 0 else "") + re.sub(r"[^A-Za-z0-9]+", "-", unit.address).strip("-")


#: What a notebook shows of a run as a cell's value (:meth:`Run._repr_html_`): the first this many records in its
#: table and units in its grid (``run.grid()`` draws up to :data:`~dgnam.images.GRID_MAX_ROWS`, ``run.records`` holds
#: them all). A thousand-class run's full grid, inlined, would make the notebook file megabytes larger.
DISPLAY_RECORDS = 20
DISPLAY_UNITS = 10
#: The record fields a run's table shows, in this order, where any of its records has them (a `facets` run's facet,
#: an evaluated run's judge, a `sample` run's score).
DISPLAY_FIELDS = ("unit", "class_name", "facet", "nearest_facet", "restart", "step", "activation", "best_activation",
                  "probability", "score", "judge_name", "judge_prob", "diverged_at", "unchanged")


@dataclass(repr=False)
class Run:
    """What :func:`visualize` returns: the records (as in ``results.json``) and, aligned with them, the final images
    (raw, in the generator's space ``space``) and codes; ``out`` the run's folder, ``config`` its settings as
    ``results.json`` records them. :meth:`load` opens a run folder (the CLI's too).

    In a notebook a run shows itself as a cell's value (a table of its records and the grid of its images, as
    ``grid.png`` draws them); :meth:`grid` is that figure as a Pillow image, :meth:`image` one record's picture."""

    records: list[dict]
    images: torch.Tensor | None = None
    codes: torch.Tensor | None = None
    best_codes: torch.Tensor | None = None
    out: Path | None = None
    space: ImageSpace | None = None
    config: dict | None = None

    def best_restarts(self) -> list[int]:
        """For each unit, in unit order, the index (into ``records`` and ``images``) of its restart with the highest
        final activation (a minimized unit's: the lowest): "a few restarts, best kept", as the demo and the benchmarks
        show them. The final image, not the best step's, because the released code reports the last one. Ties keep
        the earliest restart."""
        best: dict[int, int] = {}
        for k, r in enumerate(self.records):
            i = r["unit_index"]
            sign = -1 if r.get("goal") == "minimize" else 1
            if i not in best or sign * r["activation"] > sign * self.records[best[i]]["activation"]:
                best[i] = k
        return [best[i] for i in sorted(best)]

    @classmethod
    def load(cls, path: str | os.PathLike, codes: bool = False) -> "Run":
        """The run in the folder ``path`` (written by `dgnam visualize`, `facets` or `sample`, or by :func:`visualize`
        with ``out``), so that a notebook can look at a finished or interrupted run: its records and settings, and
        its images through :meth:`grid` and :meth:`image` (read from its PNGs; ``images`` stays ``None``, since raw
        images need the generator). ``codes=True`` also reads each record's final and best codes (a `visualize` or
        `facets` run), e.g. to start another run of the same units from them: ``init`` takes one code per unit, so
        ``init=run.codes[run.best_restarts()]`` (``init=run.codes`` itself for a run of one restart per unit). A run
        still being written is read as its last batch left it. As with a resume, every file the run names must lie
        inside its folder."""
        out = Path(path)
        results = _read_results(out, fields=("unit_index", "restart", "image") + (("code",) if codes else ()),
                                what="dgnam", fix="give the folder of a run of visualize, facets or sample"
                                + (" (codes=True: of visualize or facets, which save each image's code)" if codes
                                   else ""))
        records = results["records"]
        run = cls(records=records, out=out, config=results["config"])
        if codes and records:
            saved = [_saved_codes(out, rec) for rec in records]
            run.codes = torch.stack([final for final, _ in saved])
            run.best_codes = torch.stack([best for _, best in saved])
        return run

    def image(self, k: int, best: bool = False) -> Image.Image:
        """Record ``k``'s final image as its PNG shows it (decoded from the generator's space, enlarged by the
        largest whole factor that keeps it within 96 px, :func:`~dgnam.images.png_scale`): from ``images`` when the
        run holds them, else read from its folder. ``best=True``: the image of its highest activation (its
        ``_best`` PNG), which only the folder holds."""
        if best and "best_image" not in self.records[k]:
            raise DgnamError(f"record {k} ({self.records[k].get('unit') or self.records[k].get('condition')}) has no "
                             f"best image: a `sample` run keeps its chain's samples only; drop best")
        if self.images is not None and self.space is not None and not best:
            return enlarged(to_uint8(self.images[k : k + 1], self.space)[0], png_scale(self.space.size))
        if self.out is None:
            raise DgnamError("this run holds no images and has no folder: run visualize with return_images=True or "
                             "out=FOLDER" if not best else "the best images are saved in a run's folder only: run "
                             "visualize with out=FOLDER")
        path = run_file(self.out, self.records[k].get("best_image" if best else "image"))
        try:
            with Image.open(path) as im:
                return im.copy()  # read whole, and the file closed
        except OSError as e:
            raise DgnamError(f"cannot read {path} ({e}): the run's folder is incomplete; resume it "
                             f"(resume=True, or the same command with --resume) to redraw it") from None

    def grid(self, max_units: int | None = None, max_restarts: int | None = None,
             units: Sequence[int | str] | None = None, cell: int | None = GRID_CELL, best: bool = False,
             labels: Sequence[str] | None = None) -> Image.Image:
        """The run's overview, the figure its ``grid.png`` is (pixel for pixel, for a run written with ``out``): one
        row per unit, one column per restart, each captioned with its final activation; at most ``max_units`` units
        and ``max_restarts`` restarts (default :data:`~dgnam.images.GRID_MAX_ROWS` and
        :data:`~dgnam.images.GRID_MAX_COLS`, with a warning when there are more).

        For a figure of one's own (``dgnam grid``): ``units`` picks the rows, in its order, by unit address as the
        records name it (``"logits:3"``), class name or unit index; ``cell`` is each image's size in pixels (96, as
        ``grid.png``; ``None`` or 0: the images' own size, e.g. 224 for an ImageNet run, rather than shrunk);
        ``best=True`` shows each record's best image and activation rather than its final ones; ``labels``
        replaces the row labels (the unit's address and class), one per row drawn."""
        return overview_grid(self.records, lambda k: np.asarray(self.image(k, best)), max_units, max_restarts,
                             what="run.grid()", where="run.images" if self.images is not None and not best else
                             str(self.out / "images") if self.out is not None else "run.records", units=units,
                             cell=cell, best=best, row_labels=labels)

    def __repr__(self) -> str:
        units = len({r.get("unit_index") for r in self.records})
        method = (self.config or {}).get("method") or next((r.get("method") for r in self.records if "method" in r),
                                                           None)
        parts = [f"{len(self.records)} records of {units} units" + (f", method={method!r}" if method else "")]
        parts += [f"{f}={compact(getattr(self, f))}" for f in ("images", "codes") if getattr(self, f) is not None]
        if self.out is not None:
            parts.append(f"out={str(self.out)!r}")
        return f"Run({', '.join(parts)}{self._unfinished()})"

    def _unfinished(self) -> str:
        expected = expected_records(self.config or {})
        return f"; unfinished: {len(self.records)} of {expected}" if expected and len(self.records) < expected else ""

    def _repr_html_(self) -> str:
        """A notebook's view of the run: a line of facts, the table of its first records and the grid of its first
        units (IPython's rich display hook: a cell whose value is a run shows this)."""
        import html

        from .display import html_table, img_tag, png_bytes

        fields = [f for f in DISPLAY_FIELDS if any(f in r for r in self.records)]
        shown = self.records[:DISPLAY_RECORDS]
        more = len(self.records) - len(shown)
        parts = [f"<p>{html.escape(repr(self))}</p>", html_table(shown, fields)]
        if more:
            parts.append(f"<p>... and {more} more records (run.records holds them all)</p>")
        if self.records and (self.images is not None and self.space is not None or self.out is not None):
            try:
                figure = overview_grid(self.records, lambda k: np.asarray(self.image(k)), DISPLAY_UNITS, None)
            except DgnamError as e:
                parts.append(f"<p>no grid: {html.escape(str(e))}</p>")
            else:
                parts.append(img_tag(png_bytes(figure), "grid"))
                units = len({r["unit_index"] for r in self.records})
                if units > DISPLAY_UNITS:
                    parts.append(f"<p>the first {DISPLAY_UNITS} of {units} units: run.grid() draws up to "
                                 f"{_grid_caps()[0]}</p>")
        return "\n".join(parts)


def expected_records(config: dict) -> int | None:
    """How many records a finished run has: every unit times every restart for `visualize` and `facets` runs (whose
    ``config`` holds ``units`` and ``restarts``), ``None`` where the config does not say (a `sample` run is written
    once, when it is complete)."""
    units, restarts = config.get("units"), config.get("restarts")
    if isinstance(units, list) and isinstance(restarts, int) and not isinstance(restarts, bool):
        return len(units) * restarts
    return None


def target_space(model: nn.Module, input_space: ImageSpace | None = None, generator: Generator | None = None) -> ImageSpace:
    """The image space the target takes: given, else `model.input_space`, else a learned generator's output space."""
    if input_space is not None and not isinstance(input_space, ImageSpace):
        raise DgnamError(f"input_space={input_space!r}: give an ImageSpace, e.g. ImageSpace(size=(32, 32), "
                         f"color='RGB') (the CLI's --input-shape CxHxW)")
    space = input_space or getattr(model, "input_space", None)
    if space is None and generator is not None and not isinstance(generator, PixelGenerator):
        space = generator.space
    if space is None:
        raise DgnamError("the target's input space is unknown: give --input-shape CxHxW (Python: "
                         "input_space=ImageSpace(size=(H, W), ...), or set model.input_space)")
    return space


#: Where `facets` and `sample` write a run before moving it into its folder complete. Inside the folder, so that the
#: moves stay on one filesystem (a folder on another mount, or a symlink to one, works), and never the folder itself
#: renamed (a mount point or `.` cannot be).
STAGING = ".dgnam-partial"


def staging_dir(out: Path) -> Path:
    """``OUT/.dgnam-partial``, made empty (a leftover of a killed run is discarded)."""
    import shutil

    out.mkdir(parents=True, exist_ok=True)
    staged = out / STAGING
    if staged.exists():
        shutil.rmtree(staged)
    staged.mkdir()
    return staged


def foreign_entries(out: Path, own: Sequence[str] = ()) -> list[str]:
    """What the folder ``out`` holds besides ``own`` and dgnam's staging and temporary files (``.dgnam-*``), sorted:
    someone else's files, which a command writing there would merge its own into."""
    return sorted(p.name for p in out.iterdir() if p.name not in own and not p.name.startswith(".dgnam-"))


def listed(names: Sequence[str], shown: int = 4) -> str:
    """``a, b, c, d, ...``: the first ``shown`` names, on one line."""
    return ", ".join(names[:shown]) + (", ..." if len(names) > shown else "")


def check_fresh_dir(out: Path, own: Sequence[str] = ()) -> Path:
    """``out`` for a run that cannot resume (`facets`, and `sample` from Python): missing, or an empty folder; a
    killed run's staging folder and dgnam's other files in it (the lock, temporary files) do not count, since the
    next run discards them, and neither do the names ``own`` (the caller's own file there, a chain's checkpoint)."""
    if out.exists() and (not out.is_dir() or foreign_entries(out, own)):
        raise DgnamError(f"{out} exists and is not empty: choose another --out (Python: out=) or remove it")
    return out


def move_in(staged: Path, out: Path, last: str = RESULTS, stale: Sequence[Path] = ()) -> None:
    """Move a complete run from ``staged`` into ``out``: files replace those of the same name, folders merge, ``last``
    (the file that says the run is there) goes last; then the ``stale`` files the new run did not replace are removed,
    and the staging folder. A kill before ``last`` leaves the earlier run's record in place."""
    import shutil

    def merge(src: Path, dst: Path) -> set[Path]:
        dst.mkdir(parents=True, exist_ok=True)
        written = set()
        for entry in sorted(src.iterdir()):
            if src == staged and entry.name == last:
                continue
            if entry.is_dir():
                written |= merge(entry, dst / entry.name)
            else:
                entry.replace(dst / entry.name)
                written.add(dst / entry.name)
        return written

    written = merge(staged, out)
    (staged / last).replace(out / last)
    for path in stale:
        if path not in written:
            path.unlink(missing_ok=True)
    shutil.rmtree(staged)


#: The fields of a record that name a file of its run, relative to the run's folder, and the folders they are in.
RECORD_FILES = ("image", "best_image", "code")
RUN_FOLDERS = ("images", "codes")


def run_file(out: Path, name: object, named_by: str | None = None, folder: bool = False) -> Path:
    """``out / name`` for a file a run names (a record's image or code, a figure), refused in one line unless it stays
    inside ``out`` once links are resolved and, where it exists, is a plain file. Run folders are shared: a crafted or
    careless ``results.json`` could otherwise name ``/home/you/.ssh/id_rsa`` or a link to it (read into report.html
    and nearest.png), a FIFO (a read that never returns), or ``../../.bashrc`` (overwritten by the PNG that a resume
    redraws for an unreadable image)."""
    by = named_by or f"{out / RESULTS} names"
    if not isinstance(name, str) or not name:
        raise DgnamError(f"{by} {name!r} where a file of the run belongs: this is no run dgnam wrote; make it again")
    path = out / name
    real, root = path.resolve(), out.resolve()
    if real != root and root not in real.parents:
        shown = f"{name}, which is {real}," if Path(name) != real else f"{name},"
        raise DgnamError(f"{by} {shown} outside the run folder {out}: dgnam reads and writes a run's files inside its "
                         f"folder only; copy the files into it (not links) or make the run again")
    if path.exists() and not (real.is_dir() if folder else real.is_file()):
        raise DgnamError(f"{by} {name}, which is not a {'folder' if folder else 'plain file'} (a FIFO, a device or "
                         f"a {'file' if folder else 'folder'}): replace it with the run's or make the run again")
    return path


def check_run_files(out: Path, records: Sequence[dict]) -> None:
    """:func:`run_file` for every file the records name and for the run's folders, before anything is read or
    written (a resume writes its new images and codes into those folders)."""
    for sub in RUN_FOLDERS:
        run_file(out, sub, named_by=f"{out} has", folder=True)
    for rec in records:
        for field in RECORD_FILES:
            if field in rec:
                run_file(out, rec[field])


#: The fields every record of a run that :func:`visualize` resumes has (a `facets` run's too).
RESUMED_FIELDS = ("unit_index", "restart", "image", "code")


def _read_results(out: Path, fields: Sequence[str] = RESUMED_FIELDS, what: str = "`dgnam visualize`",
                  fix: str = "remove the folder or pick another --out (Python: out=)") -> dict:
    """The run's ``results.json``, refused in one line (no run ``what`` wrote: ``fix``) unless it has a config and
    records with ``fields``, and (:func:`check_run_files`) every file it names lies inside ``out``."""
    try:
        results = json.loads((out / RESULTS).read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise DgnamError(f"cannot read {out / RESULTS} ({e}); {fix}") from None
    records = results.get("records") if isinstance(results, dict) else None
    if (not isinstance(results, dict) or not isinstance(results.get("config"), dict) or not isinstance(records, list)
            or not all(isinstance(r, dict) and set(fields) <= set(r) for r in records)):
        raise DgnamError(f"{out / RESULTS} is not a run {what} wrote (no config, or records without "
                         f"{', '.join(fields)}); {fix}")
    check_run_files(out, records)
    return results


def _differences(now: dict, before: dict) -> list[str]:
    """What differs between a run's settings and the recorded ones (only the settings this version records: an older
    run's record may lack some, see the legacy handling in :func:`_visualize`)."""
    return [d for k in now for d in setting_differences(now[k], before.get(k), k)]


def setting_differences(now, before, path: str = "") -> list[str]:
    """Each difference between two JSON-like settings, by its path and values: ``config.steps 300 -> 200``,
    ``units[3] "logits:3" -> "logits:4"``, ``priors[0].upper "tensor:..." -> ...``. A resume or a training checkpoint
    refused as "different settings (config)", or with two long lists cut to the same prefix, left the user to guess
    which setting to change."""
    if isinstance(now, dict) and isinstance(before, dict):
        return [d for k in sorted(set(now) | set(before), key=str)
                for d in setting_differences(now.get(k), before.get(k), f"{path}.{k}" if path else str(k))]
    if isinstance(now, list) and isinstance(before, list) and len(now) == len(before):
        return [d for i, (a, b) in enumerate(zip(now, before)) for d in setting_differences(a, b, f"{path}[{i}]")]
    return [] if now == before else [f"{path} {_shown(before)} -> {_shown(now)}"]


def _shown(value) -> str:
    """A setting's value as a refusal shows it: long values (digests, lists) cut short."""
    text = json.dumps(value)
    return text if len(text) <= 40 else text[:37] + "..."


def visualize(
    model: nn.Module,
    units: str | Unit | Sequence[str | Unit],
    generator: Generator | None = None,
    *,
    restarts: int = 1,
    seed: int = 0,
    steps: int | None = None,
    config: AMConfig | None = None,
    priors: Sequence[Prior] | None = None,
    transforms: Sequence[Transform] = (),
    init: str | torch.Tensor = "randn",
    input_space: ImageSpace | None = None,
    device: str | torch.device | None = None,
    batch_size: int = 32,
    out: str | os.PathLike | None = None,
    resume: bool = False,
    progress: bool = True,
    method: str | None = None,
    meta: dict | None = None,
    channels_last: bool = True,
    return_images: bool = True,
) -> Run:
    """Synthesize the preferred input of each unit, ``restarts`` times, with ``generator`` as the image prior.

    ``units`` as :func:`~dgnam.units.parse_units` reads them, or :class:`~dgnam.units.Unit` objects: besides channels,
    minimized units (``"-logits:3"``, ``-Unit("logits", 3)``) and directions (``"fc6:dir=probe.npy"``,
    ``Unit("fc6", direction=v)``), each its own objective in the batch.

    ``generator=None`` optimizes pixels (plain pixel-space AM). ``priors`` and ``config`` default to the generator's
    own (the paper's DGN-AM defaults for a learned generator); ``steps`` overrides ``config.steps``. ``init`` is
    ``"randn"`` (seeded N(0, 1), as released), ``"zeros"`` or a tensor of codes (one per unit, or one for all), e.g.
    from :func:`dgnam.units.encode` of a real image. Restart r of every unit uses seed ``seed + r``.
    With ``out``, results are written after every batch and ``resume=True`` continues an interrupted run.
    ``device=None`` runs where ``model`` is. ``input_space`` is the image space the model takes, for a model without
    an ``input_space`` attribute (default: that attribute, else a learned generator's output space).
    ``batch_size`` optimizations (units x restarts) run together; ``progress=False`` hides the progress bar.
    ``method`` names the method in the records and ``results.json`` (default: the generator's, ``dgn-am`` or
    ``pixel``). A registered method's name (``dgnam.list_methods()``: ``yosinski3``, ``lucid``, ...) given without
    ``config``, ``priors`` and ``transforms`` runs that method, as ``dgnam visualize --prior NAME`` does (its settings
    from :func:`dgnam.build_method` with this ``seed``, its pixel generator unless ``generator`` is given, which a
    pixel method refuses if learned); with any of them, the name only labels the settings you pass (a preset's name,
    when you pass its settings yourself). ``meta`` is added to every record.
    ``channels_last`` runs convolutions in the NHWC memory format (oneDNN's fast path: about 1.25x faster per
    iteration at paper scale on CPU, ``benchmarks/speed.py``). It computes what NCHW computes, but rounds floats
    differently, which lr 8 amplifies over a run: images differ visibly from an NCHW run's after 200 steps.
    ``model`` and ``generator`` are used in eval mode on ``device`` and come back as they were given (see
    :func:`dgnam.modules.frozen`).
    ``return_images=False`` (with ``out``) returns the records alone: the images and codes are on disk, and a run of
    a thousand classes times ten restarts at 256 px would otherwise hold 8 GB of them in memory to the end.
    An interrupt (Ctrl-C, a notebook's stop button) is not caught: the ``KeyboardInterrupt`` goes on with a note of
    what was kept. With ``out`` every finished batch is on disk, the same call with ``resume=True`` continues the run
    and ``Run.load(out)`` shows it meanwhile; without ``out`` nothing is kept. ``model`` and ``generator`` come back
    as given either way, and the folder's lock is released.
    """
    model = unwrapped(model)
    if generator is not None:
        require_generator(generator)
    for name, value in (("restarts", restarts), ("batch_size", batch_size), ("seed", seed), ("steps", steps)):
        if value is not None and not is_int(value):
            raise DgnamError(f"{name}={value!r}: give an int")
    check_seed(seed)
    if config is not None and not isinstance(config, AMConfig):
        raise DgnamError(f"config={config!r}: give an AMConfig, e.g. AMConfig(steps=100) (or steps=100 alone)")
    bad = [p for p in priors or () if not isinstance(p, Prior)]
    if bad:
        raise DgnamError(f"priors {bad!r} are not Prior instances: write e.g. L2Decay() rather than L2Decay")
    if not isinstance(init, (str, torch.Tensor)):  # numpy codes, or a list: as a tensor (numpy's own truth test
        try:  # failed deep inside with "the truth value of an array ... is ambiguous")
            init = torch.as_tensor(init)
        except (TypeError, ValueError, RuntimeError):
            raise DgnamError(f"init is {type(init).__name__}: give randn, zeros or a tensor of codes") from None
    if not return_images and out is None:
        raise DgnamError("return_images=False keeps the images on disk only: give out=FOLDER too")
    if restarts < 1 or batch_size < 1 or (steps is not None and steps < 0):
        raise DgnamError(f"restarts={restarts}, batch_size={batch_size}, steps={steps}: give restarts and batch size "
                         f">= 1 and steps >= 0")
    device = as_device(device, like=model)
    space = target_space(model, input_space, generator)
    if method is not None and config is None and priors is None and not transforms:
        generator, config, priors, transforms = _named_method(method, space, generator, seed)
    if generator is None:
        generator = PixelGenerator(space)
    # the run folder is this call's alone until it returns: a second writer (a --resume of a run still running, an
    # evaluate) is refused in one line
    with frozen(model, device, channels_last), frozen(generator, device, channels_last), folder_lock(out, "visualize"):
        check_generator(generator)
        if channels_last and not _runs_channels_last(model, generator, space):
            for m in (model, generator):  # given back as they were by frozen()
                m.to(memory_format=torch.contiguous_format)
        return _visualize(model, units, generator, space, restarts=restarts, seed=seed, steps=steps, config=config,
                          priors=priors, transforms=transforms, init=init, device=device, batch_size=batch_size,
                          out=out, resume=resume, progress=progress, method=method, meta=meta,
                          return_images=return_images)


def _named_method(method: str, space: ImageSpace, generator: Generator | None, seed: int) -> tuple:
    """``method=NAME`` without ``config``, ``priors`` or ``transforms``: the named method's generator, settings and
    transforms (:func:`dgnam.build_method`, as ``dgnam visualize --prior NAME`` runs it). Such a call ran plain
    pixel-space AM (or the generator's defaults) and recorded it under NAME: ``method="yosinski3"`` alone made a run
    called yosinski3 without its 1000 steps, lr 100, decay or blur. A name that is no registered method (a label of
    the caller's own, such as facets' ``pixel-facets``) only names the run, as before."""
    from .generators import LearnedGenerator
    from .methods import build_method, list_methods

    names = {m.name: m for m in list_methods()}
    m = names.get(method)
    if m is None:
        close = difflib.get_close_matches(method, list(names), n=1, cutoff=0.8)
        if close:  # method="dgn-amm" ran plain pixel AM under that name, silently
            warn(f"method={method!r} is no registered method, so it only names the run (pixel AM, or the generator's "
                 f"defaults): did you mean {close[0]!r}?")
        return generator, None, None, ()
    if m.needs_generator and generator is None:
        raise DgnamError(f"method={method!r} needs a learned generator: pass one, e.g. "
                         f"create_model('fmnist-g-fc6'), or another method")
    if not m.needs_generator and generator is not None:
        if isinstance(generator, LearnedGenerator):
            raise DgnamError(f"method={method!r} optimizes pixels and would ignore the generator {generator.name}: "
                             f"drop one of them")
        return generator, None, None, ()  # a pixel parametrization of the caller's own: the name only labels it
    spec = build_method(method, space, generator, seed=seed)
    return spec.generator, spec.config, spec.priors, spec.transforms


def _visualize(model: nn.Module, units: str | Unit | Sequence[str | Unit], generator: Generator, space: ImageSpace, *,
               restarts: int, seed: int, steps: int | None, config: AMConfig | None, priors: Sequence[Prior] | None,
               transforms: Sequence[Transform], init: str | torch.Tensor, device: torch.device, batch_size: int,
               out: str | os.PathLike | None, resume: bool, progress: bool, method: str | None,
               meta: dict | None, return_images: bool = True) -> Run:
    config = config or generator.default_config()
    if steps is not None:
        config = AMConfig(**{**config.to_dict(), "steps": steps})
    if config.steps < 0:
        raise DgnamError(f"config.steps={config.steps}: give steps >= 0")
    if restarts > 1 and (init == "zeros" if isinstance(init, str) else len(init) == 1):
        warn(f"the {restarts} restarts all start from the same code (init={'zeros' if isinstance(init, str) else 'one code'}), "
             f"so they differ only by what is random in the method: use init='randn' for different starts")
    priors = list(generator.default_priors() if priors is None else priors)
    for p in priors:  # bounds of another size than the code failed at the first step, after the run folder was made
        if isinstance(p, ClipCode) and p.upper is not None:
            checked_bounds(p.upper, generator.code_shape, p.lower)
    method = method or generator.method

    parsed = parse_units(units)
    example = space.encode(torch.full((1, *space.shape), 0.5, device=device))
    resolved = resolve_units(model, parsed, example, batches_of_one=batch_size == 1)
    class_names = [str(c) for c in (getattr(model, "classes", None) or ())]
    positions = _positions(model, resolved, example)
    pipeline = Pipeline(generator, model, resolved, space, transforms).to(device)

    jobs = [(i, u, r) for i, u in enumerate(resolved) for r in range(restarts)]
    directions = [{"unit": i, "file": u.direction_name, "digest": u.digest} for i, u in enumerate(resolved)
                  if u.direction is not None]
    if isinstance(init, torch.Tensor):
        init = generator.check_codes(init.to(device))
        if len(init) not in (1, len(resolved)):
            raise DgnamError(f"init has {len(init)} codes: give one, or one per unit ({len(resolved)})")

    run_config = {
        "model": getattr(model, "zoo_name", type(model).__name__),
        "model_source": getattr(model, "dgnam_source", None),  # how load_model() rebuilds a user's model
        "generator": getattr(generator, "name", type(generator).__name__),
        "method": method, "units": [u.address for u in resolved], "restarts": restarts, "seed": seed,
        "init": init if isinstance(init, str) else f"codes:{tensor_digest([init])}", "config": config.to_dict(),
        "priors": [p.to_dict() for p in priors], "transforms": [_transform_dict(t) for t in transforms],
        "target_space": space.to_dict(),
        # each direction's vector by its digest (the units' addresses hold it too, but a refusal cuts long ones short)
        **({"directions": directions} if directions else {}),
        # the batch shape changes float rounding, which lr 8 amplifies: a run reproduces only at its own batch size
        "batch_size": batch_size,
        # the weights themselves: a resume after retraining (same class name, other weights) must not mix the two
        "weights": {"model": tensor_digest(model.state_dict().values()),
                    "generator": tensor_digest(generator.state_dict().values())},
    }
    records: list[dict] = []
    out_dir = Path(out) if out is not None else None
    if out_dir is not None:
        if out_dir.exists() and not out_dir.is_dir():
            raise DgnamError(f"out={out_dir} is a file: give a folder for the run (it is made if missing)")
        if (out_dir / RESULTS).exists():
            if not resume:
                raise DgnamError(f"run directory {out_dir} already has results: pass --resume to continue it "
                                 f"(Python: resume=True), or choose another --out (Python: out=)")
            prev = _read_results(out_dir)
            now, before = json.loads(json.dumps(run_config)), prev.get("config") or {}
            if "weights" not in before:  # made by a dgnam that recorded less: compare what it recorded, as it did
                now = {k: v for k, v in now.items() if k in before}
                now["priors"] = [{k: v for k, v in p.items() if not str(v).startswith("tensor:")}
                                 for p in now.get("priors", [])]
            if "batch_size" not in before:  # recorded since 2026-12-01: an older run's batch size is unknown
                now.pop("batch_size", None)
            if isinstance(before.get("config"), dict) and "relu_gradient" not in before["config"]:
                # made before 2026-12-02, through the ReLU: the run goes on as it was made, and says so
                now.get("config", {}).pop("relu_gradient", None)
                if config.relu_gradient != "exact":
                    warn(f"{out_dir} was made before relu_gradient existed, with the gradient through a unit's ReLU: "
                         f"it goes on that way (relu_gradient='exact')")
                    config = AMConfig(**{**config.to_dict(), "relu_gradient": "exact"})
                    run_config["config"].pop("relu_gradient", None)
            differ = _differences(now, before)
            if differ:
                raise DgnamError(f"{out_dir} was made with different settings ({'; '.join(differ)}); resume with the "
                                 f"same ones or choose another --out (Python: out=)")
            records = prev.get("records", [])
        elif out_dir.exists() and foreign_entries(out_dir):  # (its lock, and dgnam's temporary files, are no run)
            # a run killed before its first batch was written holds images/ and codes/ alone; anything else is not
            # a run, and --resume would write into it
            others = foreign_entries(out_dir, RUN_FOLDERS)
            if others:
                raise DgnamError(f"{out_dir} exists and is not empty ({listed(others)} are no run's): choose another "
                                 f"--out (Python: out=)")
            if not resume:
                raise DgnamError(f"{out_dir} holds a run killed before its first results: pass --resume to continue "
                                 f"it (Python: resume=True), or choose another --out (Python: out=)")
            check_run_files(out_dir, ())
        (out_dir / "images").mkdir(parents=True, exist_ok=True)
        (out_dir / "codes").mkdir(parents=True, exist_ok=True)

    done = {(rec["unit_index"], rec["restart"]) for rec in records}
    todo = [j for j in jobs if (j[0], j[2]) not in done]
    if out_dir is not None and todo:
        for name in EVALUATION_FILES:  # an evaluation of the unfinished run would describe fewer images than it holds
            (out_dir / name).unlink(missing_ok=True)
        records = [{k: v for k, v in rec.items() if k not in EVALUATION_FIELDS} for rec in records]
    images_by_job: dict[tuple[int, int], torch.Tensor] = {}
    codes_by_job: dict[tuple[int, int], tuple[torch.Tensor, torch.Tensor]] = {}
    batches = [todo[i : i + batch_size] for i in range(0, len(todo), batch_size)]
    bar = progress_bar(total=len(batches) * config.steps, desc=f"{method} ({len(todo)} images)",
                       show=progress and bool(todo), unit="step")
    diverged: list[str] = []  # said once at the end: a wide layer can have hundreds of dead units
    unchanged: list[str] = []
    held: list[str] = []  # unchanged above 0: at a ceiling from the start, a ReLU6's 6, not an unresponsive unit
    saved = len(records)  # the records results.json holds

    def interrupted() -> str:
        if out_dir is None:
            return (f"visualize was interrupted after {len(records)} of {len(jobs)} images, which are not kept "
                    f"without out=: pass out=FOLDER to keep each batch as it finishes (resume=True then continues the "
                    f"run)")
        return (f"visualize was interrupted: {saved} of {len(jobs)} images are saved in {out_dir}; the same call "
                f"with resume=True continues the run (at most the batch in flight was lost), and "
                f"dgnam.Run.load({str(out_dir)!r}) shows what is there")

    with bar, noting_interrupt(interrupted):
        for batch in batches:
            bunits = [u for _, u, _ in batch]
            seeds = [seed + r for _, _, r in batch]
            if isinstance(init, torch.Tensor):
                codes0 = torch.stack([init[i if len(init) > 1 else 0] for i, _, _ in batch])
            else:
                codes0 = generator.init_codes(seeds, init).to(device)
            res = optimize(pipeline, bunits, codes0, config, priors, on_step=lambda _s: bar.update(1))
            with torch.no_grad():
                final_imgs = generator(res.codes)
                best_imgs = generator(res.best_codes)
            finals, bests = to_uint8(final_imgs, generator.space), to_uint8(best_imgs, generator.space)
            for k, (i, u, r) in enumerate(batch):
                slug = f"{unit_slug(i, u)}_r{r}"
                rec = {
                    "unit": u.address, "unit_index": i, "layer": u.layer, "channel": u.channel,
                    "position": positions[i], "goal": u.goal, "restart": r,
                    "seed": seeds[k], "method": method, "activation": float(res.activations[k]),
                    "best_activation": float(res.best_activations[k]), "best_step": int(res.best_steps[k]),
                    "steps": config.steps, "code_l2": float(res.codes[k].norm()),
                    "image": f"images/{slug}.png", "image_size": list(generator.space.size), "best_image": f"images/{slug}_best.png", "code": f"codes/{slug}.safetensors",
                }
                if int(res.diverged_steps[k]) >= 0:
                    rec["diverged_at"] = int(res.diverged_steps[k])
                    diverged.append(f"{u.address} restart {r} (step {rec['diverged_at']})")
                if bool(res.unchanged[k]):
                    rec["unchanged"] = True
                    (held if rec["activation"] > 0 else unchanged).append(f"{u.address} restart {r}")
                if u.direction is not None:  # the vector itself is saved in the code file, for `evaluate`
                    rec.update(direction=u.direction_name, direction_digest=u.digest)
                elif u.layer == LOGITS and 0 <= u.channel < len(class_names):  # logits:cat ran as logits:1: say which
                    rec["class_name"] = class_names[u.channel]
                if meta:
                    rec.update(meta)
                records.append(rec)
                if return_images:
                    images_by_job[(i, r)] = final_imgs[k].cpu()
                    codes_by_job[(i, r)] = (res.codes[k].cpu(), res.best_codes[k].cpu())
                if out_dir is not None:
                    scale = png_scale(generator.space.size)
                    save_png(finals[k], out_dir / rec["image"], scale)
                    save_png(bests[k], out_dir / rec["best_image"], scale)
                    vector = {} if u.direction is None else {"direction": u.direction}
                    save_safetensors({"final": res.codes[k], "best": res.best_codes[k], **vector},
                                     out_dir / rec["code"],
                                     metadata={"unit": u.address, "restart": str(r), "seed": str(seeds[k])})
            if out_dir is not None:
                records.sort(key=lambda rec: (rec["unit_index"], rec["restart"]))
                write_json_atomic(out_dir / RESULTS, {"dgnam_version": __version__, "config": run_config, "records": records})
                saved = len(records)
    if diverged:
        warn(f"NaN/inf in {_some(diverged)}: each record keeps its last finite code ('diverged_at'; lower the "
             f"learning rate, or check the model on such images)")
    if unchanged:
        warn(f"the activation stayed at its start value through all {config.steps} steps for {_some(unchanged)}: "
             f"those units did not respond to any step (ReLU units whose input stayed below 0 on every image tried, "
             f"say), so their images show nothing of them (records marked 'unchanged')")
    if held:
        warn(f"the activation stayed at its start value, above 0, through all {config.steps} steps for {_some(held)}: "
             f"a unit at a ceiling from the start (a ReLU6 at 6, a saturated sigmoid) cannot show a rise; read the "
             f"layer before the ceiling to follow it (an EfficientNet's _bn1 for its _act1; records marked "
             f"'unchanged')")
    records.sort(key=lambda rec: (rec["unit_index"], rec["restart"]))
    order = [(rec["unit_index"], rec["restart"]) for rec in records]
    if out_dir is not None:
        if return_images:  # a resumed run: the earlier records' codes are on disk, their images are regenerated
            _reload_finished(out_dir, [rec for rec in records
                                       if (rec["unit_index"], rec["restart"]) not in images_by_job],
                             generator, device, batch_size, images_by_job, codes_by_job)
        _restore_pngs(out_dir, records, generator, images_by_job, codes_by_job)
        write_grid(out_dir, records)
    have = all(k in images_by_job for k in order)
    return Run(
        records=records,
        images=torch.stack([images_by_job[k] for k in order]) if have and order else None,
        codes=torch.stack([codes_by_job[k][0] for k in order]) if have and order else None,
        best_codes=torch.stack([codes_by_job[k][1] for k in order]) if have and order else None,
        out=out_dir, space=generator.space, config=json.loads(json.dumps(run_config)),
    )


def _some(items: list[str], shown: int = 5) -> str:
    """``a, b, c`` or ``12 images (a, b, c, d, e, ...)``: a list that stays one line."""
    if len(items) == 1:
        return items[0]
    return f"{len(items)} images ({listed(items, shown)})"


def _runs_channels_last(model: nn.Module, generator: Generator, space: ImageSpace) -> bool:
    """Whether one image runs through generator and model in the NHWC format. The format is only a speed-up, and a
    forward that flattens with ``x.view(len(x), -1)`` fails on it; such a model runs in NCHW instead. A model that
    fails for another reason (a wrong input size) fails again in NCHW, in :func:`resolve_units`'s one-line probe."""
    code = torch.zeros(1, *generator.code_shape, device=module_device(generator), dtype=module_dtype(generator))
    try:
        with torch.no_grad():
            model(convert(generator(code), generator.space, space).to(module_device(model), module_dtype(model)))
    except Exception:  # noqa: BLE001 (any failure: the NCHW run says what it is)
        return False
    return True


def _positions(model: nn.Module, units: Sequence[Unit], example: torch.Tensor) -> list[list[int] | None]:
    """The position each point unit reads (the channel's centre unless given, as released): [y, x] on a conv map,
    [i] on a 1-D one (a Conv1d's length, a transformer's features when dimension 1 is its tokens); None for a channel
    mean or a layer without positions. A record says which neuron of a layer it shows."""
    reader = LayerReader(model, sorted({u.layer for u in units}))  # only the units' layers: the output may be no tensor
    with torch.no_grad():
        shapes = {name: tuple(o.shape[1:]) for name, o in reader(example).items()}
    out: list[list[int] | None] = []
    for u in units:
        spatial = shapes[u.layer][1:]
        if u.reduce == "mean" or not spatial:
            out.append(None)
        else:
            out.append(list(unit_position(u, spatial)))
    return out


def _transform_dict(t: Transform) -> dict:
    """A transform's settings for ``results.json`` (its attributes; tensors by digest), the same in every process."""
    return {"transform": type(t).__name__, **json_safe(dict(getattr(t, "__dict__", {})))}


def _saved_codes(out_dir: Path, rec: dict) -> tuple[torch.Tensor, torch.Tensor]:
    """A finished record's final and best codes, from its code file; a file that is gone or damaged is one line."""
    from .weights import load_state_dict

    try:
        saved = load_state_dict(out_dir / rec["code"])
        return saved["final"], saved["best"]
    except (DgnamError, OSError, KeyError) as e:
        raise DgnamError(f"cannot reload a finished record's code in {out_dir} ({e}); remove the folder or pick "
                         f"another --out") from None


@torch.no_grad()
def _reload_finished(out_dir: Path, records: list[dict], generator: Generator, device: torch.device, batch_size: int,
                     images: dict, codes: dict) -> None:
    """Fill ``images`` and ``codes`` for records finished before a resume, from their code files."""
    for i in range(0, len(records), batch_size):
        chunk = records[i : i + batch_size]
        saved = [_saved_codes(out_dir, rec) for rec in chunk]
        imgs = generator(torch.stack([final for final, _ in saved]).to(device)).cpu()
        for k, rec in enumerate(chunk):
            key = (rec["unit_index"], rec["restart"])
            images[key] = imgs[k]
            codes[key] = saved[k]


@torch.no_grad()
def _restore_pngs(out_dir: Path, records: list[dict], generator: Generator, images: dict, codes: dict) -> None:
    """Rewrite any PNG of a finished record that is missing or unreadable (a kill while it was written, a deleted
    file) from its code (held in ``codes``, else read from its file): the codes are the run's record, the PNGs are
    views of them."""
    def readable(path: Path) -> bool:
        try:
            with Image.open(path) as im:
                im.load()
            return True
        except OSError:
            return False

    def image(rec: dict, which: int) -> torch.Tensor:
        key = (rec["unit_index"], rec["restart"])
        if which == 0 and key in images:
            return images[key][None]
        code = (codes[key] if key in codes else _saved_codes(out_dir, rec))[which]
        return generator(code[None].to(module_device(generator), module_dtype(generator))).cpu()

    scale = png_scale(generator.space.size)
    for rec in records:
        for which, field in enumerate(("image", "best_image")):
            if rec.get(field) and not readable(out_dir / rec[field]):
                save_png(to_uint8(image(rec, which), generator.space)[0], out_dir / rec[field], scale)


def _grid_caps() -> tuple[int, int]:
    from . import images  # read when called: a test lowers the caps

    return images.GRID_MAX_ROWS, images.GRID_MAX_COLS


def overview_grid(records: Sequence[dict], picture: Callable[[int], np.ndarray], max_units: int | None = None,
                  max_restarts: int | None = None, what: str | None = None, where: str = "",
                  units: Sequence[int | str] | None = None, cell: int | None = GRID_CELL,
                  best: bool = False, row_labels: Sequence[str] | None = None) -> Image.Image:
    """A run's overview figure (``grid.png``, :meth:`Run.grid`): one row per unit, one column per restart, each cell
    ``picture(k)`` of record ``k`` captioned with its final activation (a `sample` run's record: its probability or
    score; ``best``: its best activation); at most ``max_units`` units and ``max_restarts`` restarts (default
    :data:`~dgnam.images.GRID_MAX_ROWS` and :data:`~dgnam.images.GRID_MAX_COLS`). With ``what`` (the figure's
    name), the defaults cutting any is said in a warning that names ``where`` every image is (a size the caller
    gives cuts without one). ``units``, ``cell`` and ``row_labels`` as in :meth:`Run.grid`."""
    if not records:
        raise DgnamError("the run has no records yet: there is nothing to draw")
    caps = _grid_caps()
    capped = max_units is None and max_restarts is None  # the defaults cut; a size the caller asks for is no surprise
    max_units, max_restarts = max_units or caps[0], max_restarts or caps[1]
    by_unit: dict[int, list[int]] = {}
    for k, rec in enumerate(records):
        by_unit.setdefault(rec["unit_index"], []).append(k)
    chosen = sorted(by_unit) if units is None else _chosen_units(records, by_unit, units)
    n_cols = max((len(ks) for ks in by_unit.values()), default=0)
    if what and capped and (len(chosen) > max_units or n_cols > max_restarts):
        warn(f"{what} shows the first {min(len(chosen), max_units)} of {len(chosen)} units and "
             f"{min(n_cols, max_restarts)} of {n_cols} restarts (a bigger figure is more than image viewers and "
             f"Pillow open); every image is in {where}")
    drawn = [by_unit[i][:max_restarts] for i in chosen[:max_units]]
    if row_labels is not None:
        row_labels = [row_labels] if isinstance(row_labels, str) else [str(t) for t in row_labels]
        if len(row_labels) != len(drawn):
            raise DgnamError(f"{len(row_labels)} row label(s) for {len(drawn)} row(s): give one label per unit drawn")
    ncols = max((len(ks) for ks in drawn), default=0)
    if cell:  # refused before any image is read or decoded (a 100 Mpx figure of a big run is a long wait to fail)
        _check_figure_size(len(drawn), ncols, cell)
    rows = [[picture(k) for k in ks] for ks in drawn]
    captions = [[f"{_caption_value(records[k], best):.2f}" for k in ks] for ks in drawn]
    labels = list(row_labels) if row_labels is not None else [row_label(records[ks[0]]) for ks in drawn]
    column = "sample" if "sample" in records[0] else "restart"  # a chain's kept samples are no restarts
    if not cell:  # the images' own size, the largest side of any: known once they are read
        cell = max(max(p.shape[:2]) for r in rows for p in r)
        _check_figure_size(len(drawn), ncols, cell)
    return grid(rows, row_labels=labels, col_labels=[f"{column} {j}" for j in range(ncols)], cell_labels=captions,
                wrap_row_labels=True, corner=_CAPTION_NAMES[_caption_field(records[0], best)], cell=cell)


def _check_figure_size(n_rows: int, n_cols: int, cell: int) -> None:
    """Refuse a figure over Pillow's ``MAX_IMAGE_PIXELS`` (what Pillow, and so report.html's readers, opens without
    refusing it as a decompression bomb), in one line naming its size and what makes it smaller."""
    most = Image.MAX_IMAGE_PIXELS
    pixels = (cell + 4) * n_cols * (cell + 22) * n_rows  # (the labels' margins left out: an estimate from below)
    if most and pixels > most:
        raise DgnamError(f"a figure of {n_rows} x {n_cols} images at {cell} px would be over {pixels / 1e6:.0f} Mpx, "
                         f"more than Pillow and image viewers open ({most / 1e6:.0f} Mpx): draw fewer units or "
                         f"restarts, or a smaller cell")


def _chosen_units(records: Sequence[dict], by_unit: dict[int, list[int]], units: Sequence[int | str]) -> list[int]:
    """The unit indices that ``units`` names, in its order: each a unit index, a unit address as the records have
    it (``logits:3``, ``-fc6:1``) or a class name (any case); one that names none is refused listing some that do."""
    if isinstance(units, (str, int)):
        units = [units]
    if not len(units):
        raise DgnamError("units=[] names no unit to draw: give some (e.g. units=['logits:3']), or None for all")
    first = {i: records[ks[0]] for i, ks in by_unit.items()}
    chosen = []
    for u in units:
        if is_int(u):
            hits = [int(u)] if int(u) in first else []
        else:
            text = str(u).strip()
            hits = [i for i, r in first.items() if r.get("unit") == text]
            hits = hits or [i for i, r in first.items()
                            if str(r.get("class_name") or r.get("condition") or "").casefold() == text.casefold()]
        if not hits:
            some = ", ".join(str(r.get("unit") or r.get("condition")) for r in list(first.values())[:5])
            raise DgnamError(f"the run has no unit {u!r}: give a unit as its records name it ({some}"
                             f"{', ...' if len(first) > 5 else ''}), a class name or a unit index 0..{max(first)}")
        chosen += [i for i in hits if i not in chosen]
    return chosen


def row_label(rec: dict) -> str:
    """A figure's row label for a unit's record: its whole address, its class (a `sample` run's condition), whether
    it is minimized, and a `facets` run's facet, one per line (:func:`~dgnam.images.grid` wraps what is too wide).
    A `sample` record of a condition that is no unit (a callable of one's own) is labelled by its condition alone."""
    lines = [str(rec.get("unit") or rec.get("condition"))]
    name = rec.get("class_name") or rec.get("condition")
    if name and str(name) != lines[0]:
        lines.append(str(name))
    if rec.get("goal") == "minimize":
        lines.append("(minimized)")
    if "facet" in rec:
        lines.append(f"facet {rec['facet']}" + (f" ({rec['facet_size']} imgs)" if "facet_size" in rec else ""))
    return "\n".join(lines)


#: What a grid's captions are, by the record field they show (written above its row labels).
_CAPTION_NAMES = {"activation": "final activation", "best_activation": "best activation", "probability": "p(class)",
                  "score": "score", None: None}


def _caption_field(rec: dict, best: bool = False) -> str | None:
    """The record field a grid's cell shows: its final activation (``best``: its best one; a `sample` run's: the
    class probability, else the condition's score)."""
    field = next((f for f in ("activation", "probability", "score") if f in rec), None)
    return "best_activation" if best and field == "activation" else field


def _caption_value(rec: dict, best: bool = False) -> float:
    """What a grid's cell says of a record, by its own field: a sample run's class samples show their probability
    and its unit samples their score, in one figure."""
    field = _caption_field(rec, best)
    return float(rec.get(field, float("nan"))) if field is not None else float("nan")


def write_grid(out_dir: Path, records: list[dict]) -> Path:
    """``grid.png``: :func:`overview_grid` of the run's PNGs (at most :data:`~dgnam.images.GRID_MAX_ROWS` units and
    :data:`~dgnam.images.GRID_MAX_COLS` restarts, with a warning)."""
    def picture(k: int) -> np.ndarray:
        with Image.open(out_dir / records[k]["image"]) as im:
            return np.asarray(im)

    img = overview_grid(records, picture, what="grid.png", where=str(out_dir / "images"))
    path = out_dir / "grid.png"
    save_image(img, path)
    return path
