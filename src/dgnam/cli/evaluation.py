"""``dgnam evaluate``: metrics of a finished run, in a held-out judge's feature space."""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence

import typer

from . import EVALUATE, app
from ..errors import DgnamError
from ..display import NOT_APPLICABLE
from .common import arch_help, device_arg, device_option, err_line, hold_lock, model_arg, print_table



@app.command(rich_help_panel=EVALUATE)
def evaluate(
    ctx: typer.Context,
    run_dir: Path = typer.Argument(..., help="a run directory written by `dgnam visualize`, `facets` or `sample` (or `dgnam demo`'s runs/demo/dgn-am)"),
    judge: Optional[str] = typer.Option(None, help="held-out classifier of the target's classes (zoo name, import path "
                                                   "or file with --judge-arch); default: fmnist-judge for a "
                                                   "Fashion-MNIST target, efficientnet-lite2 for an ImageNet one "
                                                   "(lite0 for lite2)"),
    judge_arch: Optional[str] = typer.Option(None, help=arch_help("--judge")),
    judge_layer: Optional[str] = typer.Option(None, help="the judge's feature layer for the Fréchet, nearest-image and "
                                                         "diversity metrics (default: its penultimate features; a "
                                                         "conv layer is averaged over its positions; `dgnam layers "
                                                         "JUDGE` lists them)"),
    model: Optional[str] = typer.Option(None, help="the run's target, when it is not a zoo model"),
    arch: Optional[str] = typer.Option(None, help=arch_help("--model")),
    data: Optional[str] = typer.Option(None, help="real images: fashion-mnist (the default, for a Fashion-MNIST "
                                                  "target only; fashion-mnist:DIR for its IDX files in DIR) or an image folder, one sub-folder per class named "
                                                  "as the judge's classes (the class references match by name)"),
    real: int = typer.Option(10_000, help="real training images sampled for the references and the nearest-image "
                                           "search (seeded); 0: all of them"),
    partial: bool = typer.Option(False, "--partial", help="score a run that has not finished all its images (marked "
                                                          "incomplete); without it such a run is refused"),
    device: str = device_option("the target and the judge run"),
) -> None:
    """Add activation-vs-real, judge, Fréchet, nearest-training-image and diversity metrics to RUN_DIR's records.

    Writes evaluation.json, nearest.png and report.html there and prints the per-unit table and a summary line.
    For scripts, read evaluation.json: "summary" (fid, judge_accuracy, nn_ratio, ...) and "units" (one entry per
    unit, all of them; the table shows the first 100), with null for a metric that does not apply."""
    from ..evaluate import EVALUATE_LATER, evaluate_run

    for given, needs, what in ((arch, model, "--arch"), (judge_arch, judge, "--judge-arch")):
        if given is not None and needs is None:
            raise DgnamError(f"{what} {given} names the architecture of a weights file, and none is given: add "
                             f"{'--model' if what == '--arch' else '--judge'} FILE or drop {what}")
    hold_lock(ctx, run_dir, "evaluate", EVALUATE_LATER)  # until report.html is written: no run is read half made
    figures = run_figures(run_dir)  # before the work: a figure that is no file of the run is refused at once
    ev = evaluate_run(run_dir, judge=model_arg(judge, judge_arch, flag="--judge") if judge else None,
                      model=model_arg(model, arch) if model else None, data=data, real_images=real,
                      judge_layer=judge_layer, partial=partial, device=device_arg(device))
    unit_cols = ["unit", "images", "activation_ratio", "activation_percentile", "judge_accuracy", "fid", "nn_ratio",
                 "diversity"]
    if any(u.get("goal") == "minimize" for u in ev["units"]):  # a low percentile is then a success: say whose
        unit_cols.insert(1, "goal")
    s = ev["summary"]
    warning = incomplete_warning(s)
    if warning:
        err_line(warning, typer.colors.YELLOW, bold=True)  # (and in the summary line below)
    for note in ([s["assumed"]] if s.get("assumed") else []) + s.get("caveats", []):
        err_line(f"note: {note}", typer.colors.YELLOW)
    print_table([_shown(u, unit_cols) for u in ev["units"]], unit_cols, title=f"{run_dir}",
                all_in=f"{run_dir}/evaluation.json")
    per = s["restarts_per_unit"]  # the fewest: a partial run's units can differ
    per_unit = f"{per} per unit" if s["images"] == per * s["units"] else f"at least {per} per unit"
    typer.echo(f"Fréchet distance {_fmt(s['fid'], 2)} over {s['images']} images ({per_unit}) "
               f"against {s['fid_reference']}; judge accuracy {_fmt(s['judge_accuracy'], 3)}; median "
               f"nearest-training-image ratio {_fmt(s['nn_ratio'], 2)} (1 = typical real-to-real distance)"
               + (f"; {warning}" if warning else ""))
    report = _write_report(Path(run_dir), ev, unit_cols, figures)
    typer.echo(f"wrote {run_dir}/evaluation.json, {run_dir}/nearest.png and {report}")


@app.command(rich_help_panel=EVALUATE)
def grid(
    ctx: typer.Context,
    run_dir: Path = typer.Argument(..., help="a run directory written by `dgnam visualize`, `facets` or `sample`"),
    out: Optional[Path] = typer.Option(None, help="the figure to write, a PNG (or another format Pillow saves, by its "
                                                  "suffix; default: RUN_DIR/figure.png)"),
    units: Optional[str] = typer.Option(None, help="the rows, in this order, comma-separated: units as the run's "
                                                   "records name them (logits:3), class names, or unit indices "
                                                   "(default: every unit, up to 100)"),
    restarts: Optional[int] = typer.Option(None, min=1, help="the columns: the first N restarts (samples of a "
                                                             "`sample` run; default: all, up to 16)"),
    cell: int = typer.Option(96, min=0, help="each image's side in pixels; 0: the images' own size (224 for an "
                                             "ImageNet run, which grid.png shrinks to 96)"),
    best: bool = typer.Option(False, "--best", help="each record's best image and activation (its _best.png) rather "
                                                    "than its final ones"),
    labels: Optional[str] = typer.Option(None, help="the row labels, comma-separated, one per row (default: each "
                                                    "unit's address and class)"),
) -> None:
    """Draw RUN_DIR's grid as a figure of your own: chosen units in your order, bigger cells, best or final images.

    grid.png shows every unit (up to 100) at 96 px, captioned with each image's final activation; this redraws it
    from the run's PNGs, e.g. for a paper: dgnam grid runs/x --units logits:3,logits:7 --labels Dress,Sneaker --cell 0
    --out fig.png."""
    from ..images import save_image
    from ..run import Run

    hold_lock(ctx, run_dir, "grid")  # a run still being written would be drawn as its last batch left it
    picked = None if units is None else [int(u) if u.strip().isdigit() else u.strip() for u in units.split(",")
                                         if u.strip()]
    if picked == []:
        raise DgnamError("--units names no unit: give e.g. --units logits:3,logits:7")
    figure = Run.load(run_dir).grid(max_restarts=restarts, units=picked, cell=cell, best=best,
                                    labels=None if labels is None else [t.strip() for t in labels.split(",")])
    path = out if out is not None else run_dir / "figure.png"
    save_image(figure, path)
    typer.echo(f"wrote {path} ({figure.width}x{figure.height} px)")


def _fmt(value: float | None, digits: int) -> str:
    return NOT_APPLICABLE if value is None else f"{round(value, digits)}"


def _shown(row: dict, columns: list[str]) -> dict:
    """A table row with ``n/a`` for metrics that do not apply (``None``, or absent: a channel unit has no judge
    accuracy or class Fréchet distance)."""
    return {**row, **{c: NOT_APPLICABLE for c in columns if row.get(c) is None}}


def incomplete_warning(summary: dict) -> str | None:
    """The loud line for a run scored before it finished (``--partial``); ``None`` for a complete one."""
    if summary.get("complete", True):
        return None
    return (f"INCOMPLETE RUN: scored {summary['images']} of {summary['images_expected']} images (--partial); "
            f"these numbers are not the run's")


#: The run's own figure, by the command that wrote it (visualize, facets, sample), shown first in the report.
RUN_FIGURES = ("grid.png", "facets.png", "samples.png")


def run_figures(run_dir: Path) -> list[Path]:
    """The run's figures that the report inlines, each a plain file inside the run folder: a link in a shared run
    (``grid.png -> ~/.ssh/id_rsa``) would put another file's bytes into the page that is then passed around."""
    from ..run import run_file

    return [run_file(run_dir, name, named_by=f"{run_dir} has") for name in RUN_FIGURES
            if (run_dir / name).exists() or (run_dir / name).is_symlink()]


def _write_report(run_dir: Path, ev: dict, unit_cols: list[str], figures: Sequence[Path] = ()) -> Path:
    """``report.html`` beside the run: what made and scored it, its figure, the nearest training images, and the
    tables, in one page. It says how many of the run's images it scored, so a page older than a resumed run gives
    itself away."""
    import html

    from ..display import html_table
    from ..report import image_section, warning_section, write_page

    s = ev["summary"]
    warning = incomplete_warning(s)
    sections = [("Incomplete run", warning_section(warning))] if warning else []
    sections += [("Assumed", warning_section(s["assumed"]))] if s.get("assumed") else []
    sections += [("Caveats", "".join(warning_section(c) for c in s["caveats"]))] if s.get("caveats") else []
    settings = _settings(run_dir, ev.get("settings") or {})
    sections += [("Settings", html_table(settings, ["setting", "value"]))] if settings else []
    sections += [(path.name, image_section(path, path.name)) for path in figures]
    sections += [
        ("Summary", f"<p>Scored {s['images']} of the run's {s.get('images_expected', s['images'])} images.</p>"
         + html_table([s], ["images", "images_expected", "units", "restarts_per_unit", "fid", "judge_accuracy",
                            "activation_ratio", "activation_percentile", "nn_ratio", "nn_ratio_min", "diversity"])
         + f"<p>Fréchet distance against {html.escape(s['fid_reference'])}; nn_ratio is the distance to the nearest training "
           f"image over the typical real-to-real distance ({s['real_nn_median']:.3f}), its median over the images "
           f"here (per unit: their mean); all in the judge's features.</p>"
         + (f"<p>The activation figures above are over the maximized images; the {s['minimized']['images']} image(s) "
            f"of minimized units, whose percentile should be low (0: below every real image) and whose ratio is to "
            f"the real minimum:</p>" + html_table([s["minimized"]], ["images", "activation_percentile",
                                                                       "activation_ratio"])
            if s.get("minimized") else "")),
        ("Per unit", html_table([_shown(u, unit_cols) for u in ev["units"]], unit_cols)),
        ("Nearest training images", image_section(run_dir / "nearest.png", "nearest training images")),
    ]
    return write_page(run_dir / "report.html", f"dgnam evaluate: {run_dir}", sections)


def _settings(run_dir: Path, evaluation: dict) -> list[dict]:
    """What made the run (from its results.json: target, method, generator, steps, restarts, seed) and how it was
    scored (judge, its layer, the real images), as rows of the report's Settings table: without them a shared page
    gave numbers ("judge accuracy 0.33") without saying of which method's images, or by which judge."""
    import json

    try:
        config = json.loads((run_dir / "results.json").read_text()).get("config") or {}
    except (OSError, ValueError, AttributeError):
        config = {}
    if not isinstance(config, dict):
        config = {}
    am = config.get("config") if isinstance(config.get("config"), dict) else {}
    sampler = config.get("sampler") if isinstance(config.get("sampler"), dict) else {}
    rows = [("target", config.get("model")), ("method", config.get("method")), ("generator", config.get("generator")),
            ("code prior", config.get("dae") or config.get("prior")),
            ("steps", am.get("steps")), ("iterations per condition", sampler.get("steps")),
            ("restarts per unit", config.get("restarts")),
            ("seed", config.get("seed", sampler.get("seed"))), ("judge", evaluation.get("judge")),
            ("judge layer", evaluation.get("judge_layer")), ("real images", evaluation.get("data") and
                                                              f"{evaluation.get('real_images')} of {evaluation['data']}")]
    return [{"setting": k, "value": v} for k, v in rows if v is not None]
