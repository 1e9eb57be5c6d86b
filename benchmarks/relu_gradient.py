"""DGN-AM on hidden units at a ReLU's output, with the gradient of the ReLU's input (``relu_gradient="pre"``, the
released code's) and through the ReLU (``"exact"``), on the embedded Fashion-MNIST domain.

`fmnist-cnn`'s units `features.16:0-9` (the last conv block's ReLU, centre position) and `fc6.1:0-9` (fc6's ReLU),
2 restarts each, DGN-AM at the published settings with `fmnist-g-fc6`. Each run is scored by `dgnam evaluate`
(`fmnist-judge`'s features, Fashion-MNIST's training images): how many runs end with the unit at 0, the mean
activation percentile among the real images, the activation over the real maximum, and the Fréchet distance.
PPGN-h chains (`fmnist-dae-fc6`, published settings, 200 iterations, seed 0) on the first 4 units of each layer run
both ways too: how many end at 0, and the fraction of iterations they spend at 0.

    OMP_NUM_THREADS=1 python benchmarks/relu_gradient.py

Writes benchmarks/results/relu_gradient.json (rows {relu_gradient, at_zero, runs, mean_activation,
activation_percentile, activation_ratio, fid, seconds}; ppgn_rows {relu_gradient, chains, at_zero_at_end,
steps_at_zero, seconds}) and relu_gradient.png (the two grids side by side: exact on
the left, pre on the right). Runs go to runs/bench/relu_gradient_*; an existing one is replaced.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import torch
from PIL import Image

from dgnam import AMConfig, create_model, evaluate_run, visualize
from dgnam.ppgn import PPGNConfig, UnitCondition, sample
from dgnam.train.common import cpu_name

OUT = Path(__file__).parent / "results"
RUNS = Path("runs/bench")
UNITS = "features.16:0-9,fc6.1:0-9"
RESTARTS = 2
PPGN_UNITS = "features.16:0-3,fc6.1:0-3"
PPGN_STEPS = 200


def main() -> None:
    target, gen = create_model("fmnist-cnn"), create_model("fmnist-g-fc6")
    rows, grids = [], []
    for rule in ("exact", "pre"):
        t = time.perf_counter()
        out = RUNS / f"relu_gradient_{rule}"
        shutil.rmtree(out, ignore_errors=True)
        run = visualize(target, UNITS, gen, restarts=RESTARTS, config=AMConfig(relu_gradient=rule), out=out,
                        progress=False)
        ev = evaluate_run(out, model=target)["summary"]
        acts = [r["activation"] for r in run.records]
        rows.append({"relu_gradient": rule, "at_zero": sum(a == 0 for a in acts), "runs": len(acts),
                     "mean_activation": sum(acts) / len(acts),
                     "activation_percentile": ev["activation_percentile"],
                     "activation_ratio": ev["activation_ratio"], "fid": ev["fid"],
                     "seconds": round(time.perf_counter() - t, 1)})
        grids.append(run.grid())
    print(f"{'relu_gradient':>13} {'at 0':>8} {'mean act':>9} {'pctile':>7} {'ratio':>6} {'FID':>7}")
    for r in rows:
        print(f"{r['relu_gradient']:>13} {r['at_zero']:>3} / {r['runs']:<2} {r['mean_activation']:9.2f} "
              f"{r['activation_percentile']:7.1f} {r['activation_ratio']:6.3f} {r['fid']:7.1f}")
    dae, ppgn_rows = create_model("fmnist-dae-fc6"), []
    for rule in ("exact", "pre"):
        t = time.perf_counter()
        cond = UnitCondition(target, PPGN_UNITS, relu_gradient=rule)
        chain = sample(gen, dae, cond, n_chains=len(cond.units), config=PPGNConfig(steps=PPGN_STEPS, seed=0))
        ppgn_rows.append({"relu_gradient": rule, "chains": len(cond.units),
                          "at_zero_at_end": int((chain.score_history[:, -1] == 0).sum()),
                          "steps_at_zero": float((chain.score_history == 0).float().mean()),
                          "seconds": round(time.perf_counter() - t, 1)})
        print(f"PPGN {rule:>5}: {ppgn_rows[-1]['at_zero_at_end']} of {len(cond.units)} chains end at 0; "
              f"{ppgn_rows[-1]['steps_at_zero']:.2f} of the iterations at 0")
    w = sum(g.width for g in grids)
    sheet = Image.new("RGB", (w, max(g.height for g in grids)), "white")
    sheet.paste(grids[0], (0, 0))
    sheet.paste(grids[1], (grids[0].width, 0))
    OUT.mkdir(parents=True, exist_ok=True)
    sheet.save(OUT / "relu_gradient.png")
    doc = {"units": UNITS, "restarts": RESTARTS, "model": "fmnist-cnn", "generator": "fmnist-g-fc6",
           "ppgn_units": PPGN_UNITS, "ppgn_steps": PPGN_STEPS,
           "machine": f"{cpu_name()}, {torch.get_num_threads()} threads, torch {torch.__version__}", "rows": rows,
           "ppgn_rows": ppgn_rows}
    (OUT / "relu_gradient.json").write_text(json.dumps(doc, indent=2) + "\n")
    print(f"wrote {OUT / 'relu_gradient.json'} and {OUT / 'relu_gradient.png'}")


if __name__ == "__main__":
    main()
