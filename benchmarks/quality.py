"""Every method of the toolkit on the same units, seeds and iteration budget, scored by `dgnam.evaluate`.

Units: the 10 class logits of fmnist-cnn; RESTARTS restarts each (seeds 0..RESTARTS-1); STEPS iterations for every
method (DGN-AM's published budget; the presets' own iteration counts are replaced by it, their other settings kept).
Every registered method runs (`dgnam priors` lists them: dgn-am, pixel, pixel-l2-blur, yosinski1-4, lucid, ...),
plus PPGN-h (its own sampler: one chain per class, RESTARTS samples kept from a STEPS-iteration chain at the published
settings, as `benchmarks/ppgn.py`). Metrics (fmnist-judge's penultimate features, on the 8-bit images a user sees):
Fréchet distance to 1000 real training images per class, judge accuracy, activation / real max, nearest-training-
image distance over the real-to-real median (`nn_ratio`, 1 = as close as a real image is to its neighbour; 0 = a
copy), and diversity (mean pairwise distance among the restarts of a unit).

    OMP_NUM_THREADS=1 python benchmarks/quality.py            # about 25 min on 2 cores; resumes (runs/quality/)

Writes benchmarks/results/quality.json (rows: method, fid, judge_accuracy, activation_ratio, nn_ratio, diversity, ...)
and quality.md, quality_grid.png (restart 0 of every class per method) and quality_nearest_dgnam.png.
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from dgnam import AMConfig, create_model, visualize
from dgnam.evaluate import Judge, evaluate_images, evaluate_run, load_real, mean_pairwise_distance, plain_space
from dgnam.images import grid
from dgnam.imagespace import to_uint8
from dgnam.methods import build_method, list_methods

OUT = Path(__file__).parent / "results"
RUNS = Path("runs/quality")  # the runs themselves (resumable), outside the repository
RESTARTS = 50
STEPS = 200
COLUMNS = ["method", "fid", "judge_accuracy", "activation_ratio", "activation_percentile", "nn_ratio", "diversity",
           "seconds_per_image"]


def run_method(name: str, cnn, gen, units: str, restarts: int, steps: int) -> tuple[Path, float]:
    spec = build_method(name, cnn.input_space, gen)
    config = AMConfig(**{**spec.config.to_dict(), "steps": steps})
    out = RUNS / name
    timing = out / "seconds.json"  # optimization time summed over the invocations that did work
    spent = json.loads(timing.read_text())["seconds"] if timing.exists() else 0.0
    before = _records(out)
    t = time.perf_counter()
    visualize(cnn, units, spec.generator, restarts=restarts, seed=0, config=config, priors=spec.priors,
              transforms=spec.transforms, batch_size=50, out=out, resume=True, method=name, progress=True)
    if _records(out) > before:  # a finished run that is only re-evaluated keeps its measured time
        spent += time.perf_counter() - t
        timing.write_text(json.dumps({"seconds": spent}))
    return out, spent


def _records(out: Path) -> int:
    path = out / "results.json"
    return len(json.loads(path.read_text())["records"]) if path.exists() else 0


def run_ppgn(cnn, gen, restarts: int, steps: int, real, judge) -> tuple[dict, torch.Tensor, float]:
    from dgnam.ppgn import ClassCondition, PPGNConfig, load_dae, sample

    t = time.perf_counter()
    chain = sample(gen, load_dae(), ClassCondition(cnn, torch.arange(10)), 10, PPGNConfig.for_samples(restarts, steps=steps))
    secs = time.perf_counter() - t
    imgs = chain.images.flatten(0, 1)  # class-major, like the visualize runs
    x01 = (gen.space.decode(imgs).clamp(0, 1) * 255).round() / 255  # the 8-bit image a user sees
    s = chain.images.shape[1]
    records = [{"unit": f"logits:{c}", "unit_index": c, "restart": r} for c in range(10) for r in range(s)]
    ev = evaluate_images((x01, plain_space(gen.space.size, x01.shape[1])), records, cnn, judge, real)
    return ev, imgs, secs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--restarts", type=int, default=RESTARTS)
    ap.add_argument("--steps", type=int, default=STEPS)
    ap.add_argument("--methods", default=None, help="comma-separated subset (default: every registered one + ppgn)")
    ap.add_argument("--name", default="quality", help="output name under benchmarks/results/")
    args = ap.parse_args()
    torch.set_num_threads(max(1, torch.get_num_threads()))
    t0 = time.perf_counter()
    OUT.mkdir(parents=True, exist_ok=True)
    cnn, gen, judge_net = create_model("fmnist-cnn"), create_model("fmnist-g-fc6"), create_model("fmnist-judge")
    judge = Judge(judge_net)
    real = load_real(None)
    units = ",".join(f"logits:{c}" for c in range(10))
    names = [m.name for m in list_methods()] + ["ppgn"]
    if args.methods:
        names = [n for n in args.methods.split(",")]

    rows, grid_rows = [], []
    for name in names:
        if name == "ppgn":
            ev, imgs, secs = run_ppgn(cnn, gen, args.restarts, args.steps, real, judge)
            first = [to_uint8(imgs[c * args.restarts : c * args.restarts + 1], gen.space)[0] for c in range(10)]
        else:
            out, secs = run_method(name, cnn, gen, units, args.restarts, args.steps)
            ev = evaluate_run(out, judge=judge_net, model=cnn, data=real)
            recs = json.loads((out / "results.json").read_text())["records"]
            first = [np.asarray(Image.open(out / r["image"])) for r in recs if r["restart"] == 0]
            if name == "dgn-am":
                shutil.copy(out / "nearest.png", OUT / f"{args.name}_nearest_dgnam.png")
        s = ev["summary"]
        row = {"method": name, **{k: s[k] for k in ("fid", "judge_accuracy", "activation_ratio",
                                                      "activation_percentile", "nn_ratio", "nn_ratio_min", "diversity")},
               "images": s["images"], "restarts_per_class": s["restarts_per_unit"],
               "seconds_per_image": secs / s["images"]}
        rows.append(row)
        grid_rows.append(first)
        print(f"{name}: " + ", ".join(f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}" for k, v in row.items()),
              flush=True)

    by_class = [judge.features(real.space.encode(real.images[real.labels == c][: args.restarts]), real.space)
                for c in range(10)]
    real_div = sum(mean_pairwise_distance(f) for f in by_class) / 10
    wall = time.perf_counter() - t0
    grid(grid_rows, row_labels=names, col_labels=[f"{c} {cnn.classes[c]}" for c in range(10)], cell=64,
         label_width=110).save(OUT / f"{args.name}_grid.png")
    result = {
        "rows": rows, "real_diversity": real_div,
        "settings": {"units": units, "restarts": args.restarts, "steps": args.steps, "seeds": f"0..{args.restarts - 1}",
                     "judge": "fmnist-judge (penultimate features)", "real_reference": "1000 training images per class",
                     "note": "seconds_per_image: optimization wall time / images, summed over the invocations that "
                             "ran part of a run (runs/quality/METHOD/seconds.json); re-evaluating a finished run "
                             "keeps its time"},
        "machine": f"{platform.machine()}, {torch.get_num_threads()} torch threads, {platform.processor() or 'cpu'}",
        "wall_seconds": round(wall, 1),
        "command": "OMP_NUM_THREADS=1 python benchmarks/quality.py",
    }
    (OUT / f"{args.name}.json").write_text(json.dumps(result, indent=1))
    md = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for r in rows:
        md.append("| " + " | ".join(f"{r[c]:.3g}" if isinstance(r[c], float) else str(r[c]) for c in COLUMNS) + " |")
    md.append(f"\nReal images' diversity (50 per class, same features): {real_div:.2f}. "
              f"{args.restarts} restarts x 10 classes, {args.steps} iterations each; wall {wall:.0f} s.")
    (OUT / f"{args.name}.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))


if __name__ == "__main__":
    main()
