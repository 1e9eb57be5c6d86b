"""Runs a user keeps: DGN-AM (or any method) over many units and restarts, batched, written as it goes.

A run directory holds ``images/`` (one PNG per unit and restart, plus the best-activation one), ``codes/`` (the final
and best codes, safetensors, so any image can be regenerated), ``grid.png`` and ``results.json`` with a top-level
``records`` list. Records are written after every batch; ``resume=True`` skips what is done, so a killed run loses at
most the batch in flight. While a run writes its folder it holds the folder's lock (``.dgnam-lock``,
:func:`dgnam.atomic.folder_lock`), so a second run, resume or evaluation of it is refused until it ends.
"""

from __future__ import annotations

import json
import numbers
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import torch
from torch import nn
from tqdm.auto import tqdm

from . import __version__
from .atomic import folder_lock, write_json_atomic
from .errors import DgnamError, check_seed, warn
from .generators import Generator, PixelGenerator, check_generator
from .imagespace import ImageSpace, convert, to_uint8
from .images import grid, save_image, save_png
from .modules import as_device, frozen, module_device, module_dtype
from .optimize import AMConfig, Pipeline, Transform, optimize
from .priors import Prior
from .units import LOGITS, LayerReader, Unit, parse_units, resolve_units, unit_position
from .weights import json_safe, save_safetensors, tensor_digest

RESULTS = "results.json"
#: What ``dgnam evaluate`` writes into a run folder. A resume that adds records makes them stale, so it removes them.
EVALUATION_FILES = ("evaluation.json", "nearest.png", "report.html")
#: The fields `dgnam evaluate` adds to each record: a resume removes them with the files, since they describe the run
#: as it was scored, before the resume (its per-record metrics also depend on the whole set, e.g. the Fréchet pool).
EVALUATION_FIELDS = ("png_activation", "activation_percentile", "activation_ratio", "judge_class", "judge_prob",
                     "judge_name", "judge_correct", "nn_distance", "nn_ratio", "nn_index", "nn_indices")


def unit_slug(index: int, unit: Unit) -> str:
    return f"u{index:03d}_" + ("neg-" if unit.sign < 0 else "") + re.sub(r"[^A-Za-z0-9]+", "-", unit.address).strip("-")


@dataclass
class Run:
    """What :func:`visualize` returns: the records (as in ``results.json``) and, aligned with them, the final images
    (raw, in the generator's space) and codes."""

    records: list[dict]
    images: torch.Tensor | None = None
    codes: torch.Tensor | None = None
    best_codes: torch.Tensor | None = None
    out: Path | None = None

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


def check_fresh_dir(out: Path) -> Path:
    """``out`` for a run that cannot resume (`facets`): missing, or an empty folder; a killed run's staging folder and
    dgnam's other files in it (the lock, temporary files) do not count, since the next run discards them."""
    if out.exists() and (not out.is_dir() or foreign_entries(out)):
        raise DgnamError(f"{out} exists and is not empty: choose another --out or remove it")
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


def _read_results(out: Path) -> dict:
    try:
        results = json.loads((out / RESULTS).read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise DgnamError(f"cannot read {out / RESULTS} to resume ({e}); remove the folder or pick another --out") from None
    records = results.get("records") if isinstance(results, dict) else None
    if (not isinstance(results, dict) or not isinstance(results.get("config"), dict) or not isinstance(records, list)
            or not all(isinstance(r, dict) and {"unit_index", "restart", "image", "code"} <= set(r) for r in records)):
        raise DgnamError(f"{out / RESULTS} is not a run `dgnam visualize` wrote (no config, or records without "
                         f"unit_index, restart, image and code); remove the folder or pick another --out")
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
    ``device=None`` runs where ``model`` is.
    ``channels_last`` runs convolutions in the NHWC memory format (oneDNN's fast path: about 1.25x faster per
    iteration at paper scale on CPU, ``benchmarks/speed.py``). It computes what NCHW computes, but rounds floats
    differently, which lr 8 amplifies over a run: images differ visibly from an NCHW run's after 200 steps.
    ``model`` and ``generator`` are used in eval mode on ``device`` and come back as they were given (see
    :func:`dgnam.modules.frozen`).
    ``return_images=False`` (with ``out``) returns the records alone: the images and codes are on disk, and a run of
    a thousand classes times ten restarts at 256 px would otherwise hold 8 GB of them in memory to the end.
    """
    if not isinstance(model, nn.Module):
        what = "a class: build an instance, e.g. Net()" if isinstance(model, type) else type(model).__name__
        raise DgnamError(f"model is {what}; visualize takes an nn.Module instance")
    for name, value in (("restarts", restarts), ("batch_size", batch_size), ("seed", seed), ("steps", steps)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, numbers.Integral)):
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
    method = method or generator.method

    parsed = parse_units(units)
    example = space.encode(torch.full((1, *space.shape), 0.5, device=device))
    resolved = resolve_units(model, parsed, example)
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
                raise DgnamError(f"run directory {out_dir} already has results: pass --resume to continue it, "
                                 f"or choose another --out")
            prev = _read_results(out_dir)
            now, before = json.loads(json.dumps(run_config)), prev.get("config") or {}
            if "weights" not in before:  # made by a dgnam that recorded less: compare what it recorded, as it did
                now = {k: v for k, v in now.items() if k in before}
                now["priors"] = [{k: v for k, v in p.items() if not str(v).startswith("tensor:")}
                                 for p in now.get("priors", [])]
            if "batch_size" not in before:  # recorded since 2026-12-01: an older run's batch size is unknown
                now.pop("batch_size", None)
            differ = _differences(now, before)
            if differ:
                raise DgnamError(f"{out_dir} was made with different settings ({'; '.join(differ)}); resume with the "
                                 f"same ones or choose another --out")
            records = prev.get("records", [])
        elif out_dir.exists() and foreign_entries(out_dir):  # (its lock, and dgnam's temporary files, are no run)
            # a run killed before its first batch was written holds images/ and codes/ alone; anything else is not
            # a run, and --resume would write into it
            others = foreign_entries(out_dir, RUN_FOLDERS)
            if others:
                raise DgnamError(f"{out_dir} exists and is not empty ({listed(others)} are no run's): choose another "
                                 f"--out")
            if not resume:
                raise DgnamError(f"{out_dir} holds a run killed before its first results: pass --resume to continue "
                                 f"it, or choose another --out")
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
    bar = tqdm(total=len(batches) * config.steps, desc=f"{method} ({len(todo)} images)", disable=not progress or not todo,
               unit="step")
    diverged: list[str] = []  # said once at the end: a wide layer can have hundreds of dead units
    unchanged: list[str] = []
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
                unchanged.append(f"{u.address} restart {r}")
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
                scale = max(1, 96 // max(generator.space.size))
                save_png(finals[k], out_dir / rec["image"], scale)
                save_png(bests[k], out_dir / rec["best_image"], scale)
                vector = {} if u.direction is None else {"direction": u.direction}
                save_safetensors({"final": res.codes[k], "best": res.best_codes[k], **vector}, out_dir / rec["code"],
                                 metadata={"unit": u.address, "restart": str(r), "seed": str(seeds[k])})
        if out_dir is not None:
            records.sort(key=lambda rec: (rec["unit_index"], rec["restart"]))
            write_json_atomic(out_dir / RESULTS, {"dgnam_version": __version__, "config": run_config, "records": records})
    bar.close()
    if diverged:
        warn(f"NaN/inf in {_some(diverged)}: each record keeps its last finite code ('diverged_at'; lower the "
             f"learning rate, or check the model on such images)")
    if unchanged:
        warn(f"the activation stayed at its start value through all {config.steps} steps for {_some(unchanged)}: "
             f"those units did not respond to any step (ReLU units that are 0 on every image tried, say), so their "
             f"images show nothing of them (records marked 'unchanged')")
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
        out=out_dir,
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
    from PIL import Image

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

    scale = max(1, 96 // max(generator.space.size))
    for rec in records:
        for which, field in enumerate(("image", "best_image")):
            if rec.get(field) and not readable(out_dir / rec[field]):
                save_png(to_uint8(image(rec, which), generator.space)[0], out_dir / rec[field], scale)


def write_grid(out_dir: Path, records: list[dict]) -> Path:
    """``grid.png``: one row per unit, one column per restart, each captioned with its final activation (at most
    :data:`~dgnam.images.GRID_MAX_ROWS` units and :data:`~dgnam.images.GRID_MAX_COLS` restarts, with a warning)."""
    import numpy as np
    from PIL import Image

    from .images import GRID_MAX_COLS, GRID_MAX_ROWS

    by_unit: dict[int, list[dict]] = {}
    for rec in records:
        by_unit.setdefault(rec["unit_index"], []).append(rec)
    n_cols = max((len(recs) for recs in by_unit.values()), default=0)
    if len(by_unit) > GRID_MAX_ROWS or n_cols > GRID_MAX_COLS:
        warn(f"grid.png shows the first {min(len(by_unit), GRID_MAX_ROWS)} of {len(by_unit)} units and "
             f"{min(n_cols, GRID_MAX_COLS)} of {n_cols} restarts (a bigger figure is more than image viewers and "
             f"Pillow open); every image is in {out_dir / 'images'}")
    rows, labels, caps = [], [], []
    for _, recs in sorted(by_unit.items())[:GRID_MAX_ROWS]:
        recs = recs[:GRID_MAX_COLS]
        rows.append([np.asarray(Image.open(out_dir / rec["image"])) for rec in recs])
        caps.append([f"{rec['activation']:.2f}" for rec in recs])
        labels.append(recs[0]["unit"] + (f" {recs[0]['class_name']}" if recs[0].get("class_name") else ""))
    ncols = max(len(r) for r in rows) if rows else 0
    img = grid(rows, row_labels=labels, col_labels=[f"restart {j}" for j in range(ncols)], cell_labels=caps)
    path = out_dir / "grid.png"
    save_image(img, path)
    return path
