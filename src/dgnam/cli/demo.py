"""``dgnam demo``."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ..defaults import DEMO_RESTARTS
from . import SYNTHESIZE, app
from .common import device_arg, device_option, print_table, seed_option


@app.command(rich_help_panel=SYNTHESIZE)
def demo(
    out: Path = typer.Option(Path("runs/demo")),
    restarts: int = typer.Option(DEMO_RESTARTS, help="restarts per class; the one with the highest final activation is kept"),
    steps: Optional[int] = typer.Option(None, help="iterations (default: DGN-AM's 200 for both methods)"),
    seed: int = seed_option(),
    device: str = device_option("the models run"),
    data: Optional[str] = typer.Option(None, help="Fashion-MNIST folder (default: Debian's)"),
) -> None:
    """DGN-AM vs pixel AM on the 10 class logits of fmnist-cnn: writes OUT/grid.png, results.json, index.html."""
    from ..demo import run_demo

    res = run_demo(out, restarts=restarts, steps=steps, seed=seed, device=str(device_arg(device)), data=data)
    print_table(res["table"], list(res["table"][0]), title="class logits of fmnist-cnn (activation / highest real)")
    for m, s in res["summary"].items():
        typer.echo(f"{m}: judge recognizes {s['classes_recognized']}/10, mean activation / real max {s['mean_activation_ratio']:.2f}")
    typer.echo(f"wrote {out}/grid.png, {out}/results.json, {out}/index.html in {res['seconds']:.0f} s")
