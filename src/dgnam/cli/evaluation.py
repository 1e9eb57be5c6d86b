"""``dgnam evaluate``: metrics of a finished run, in a held-out judge's feature space."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from . import app
from .common import model_arg, print_table


@app.command()
def evaluate(
    run_dir: Path = typer.Argument(..., help="a run directory written by `dgnam visualize`, `facets` or `sample` (or `dgnam demo`'s runs/demo/dgn-am)"),
    judge: str = typer.Option("fmnist-judge", help="held-out classifier (zoo name, import path or file with --judge-arch)"),
    judge_arch: Optional[str] = typer.Option(None, help="architecture of a --judge weights file"),
    model: Optional[str] = typer.Option(None, help="the run's target, when it is not a zoo model"),
    arch: Optional[str] = typer.Option(None, help="architecture of a --model weights file"),
    data: Optional[str] = typer.Option(None, help="real images: fashion-mnist (default) or an image folder, one "
                                                  "sub-folder per class named as the judge's classes (the class "
                                                  "references match by name)"),
    real: int = typer.Option(10_000, help="real training images sampled for the references"),
) -> None:
    """Add activation-vs-real, judge, Fréchet, nearest-training-image and diversity metrics to RUN_DIR's records;
    writes evaluation.json, nearest.png and report.html there and prints the per-unit table."""
    from ..evaluate import evaluate_run

    ev = evaluate_run(run_dir, judge=model_arg(judge, judge_arch), model=model_arg(model, arch) if model else None,
                      data=data, real_images=real)
    unit_cols = ["unit", "images", "activation_ratio", "activation_percentile", "judge_accuracy", "fid", "nn_ratio",
                 "diversity"]
    print_table(ev["units"], unit_cols, title=f"{run_dir}")
    s = ev["summary"]
    typer.echo(f"Fréchet distance {s['fid'] if s['fid'] is None else round(s['fid'], 2)} over {s['images']} images "
               f"({s['restarts_per_unit']} per unit) against {s['fid_reference']}; judge accuracy {s['judge_accuracy']}; "
               f"median nearest-training-image ratio {s['nn_ratio']:.2f} (1 = typical real-to-real distance)")
    report = _write_report(Path(run_dir), ev, unit_cols)
    typer.echo(f"wrote {run_dir}/evaluation.json, {run_dir}/nearest.png and {report}")


#: The run's own figure, by the command that wrote it (visualize, facets, sample), shown first in the report.
RUN_FIGURES = ("grid.png", "facets.png", "samples.png")


def _write_report(run_dir: Path, ev: dict, unit_cols: list[str]) -> Path:
    """``report.html`` beside the run: its figure, the nearest training images, and the tables, in one page."""
    from ..report import html_table, image_section, write_page

    s = ev["summary"]
    sections = [(name, image_section(run_dir / name, name)) for name in RUN_FIGURES if (run_dir / name).exists()]
    sections += [
        ("Summary", html_table([s], ["images", "units", "restarts_per_unit", "fid", "judge_accuracy",
                                     "activation_ratio", "activation_percentile", "nn_ratio", "nn_ratio_min",
                                     "diversity"])
         + f"<p>Fréchet distance against {s['fid_reference']}; nn_ratio is the distance to the nearest training "
           f"image over the typical real-to-real distance ({s['real_nn_median']:.3f}); all in the judge's "
           f"features.</p>"),
        ("Per unit", html_table(ev["units"], unit_cols)),
        ("Nearest training images", image_section(run_dir / "nearest.png", "nearest training images")),
    ]
    return write_page(run_dir / "report.html", f"dgnam evaluate: {run_dir}", sections)
