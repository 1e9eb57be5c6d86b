"""The DGN-AM paper's ablations on the embedded default (Fashion-MNIST).

1. Which layer to invert: generators trained with the same recipe and budget on a conv layer (`features`, 128x3x3),
   the fc6-like layer (`fc6`), the other fully connected layer (`fc5`) and the logits; each then drives DGN-AM on the
   10 class logits of fmnist-cnn with the paper's defaults. (The paper found fc6 best.)
2. The code prior on the default generator (fmnist-g-fc6): with and without the [0, U] clip, and the L2 prior as the
   paper's penalty with lambda in {0, 0.005, 0.05} (plus the released decay 0.99). (The paper found the clip important.)

Generators for part 1 are trained first (3 epochs each, resumable; about 6-8 minutes each on 2 idle cores):
    for L in fc6 features fc5 logits; do dgnam train generator --encoder fmnist-cnn --layer $L --arch fmnist-g-fc6 \
        --name g-$L --epochs 3 --limit 20000 --seed 0 --out checkpoints/ablation; done
    python benchmarks/ablations.py

Writes benchmarks/results/ablations.json and ablations.md. Metrics over all restarts (not only the kept image):
judge accuracy (fmnist-judge), mean activation / highest real activation of the class (test set), and for the
kept-best image per class the judge accuracy.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np
import torch

from dgnam import LearnedGenerator, create_model, visualize
from dgnam.data import FashionMNIST
from dgnam.evaluate import classify
from dgnam.priors import ClipCode, CodeStats, L2Decay, L2Penalty, dgnam_code_priors
from dgnam.weights import load_into, load_state_dict
from dgnam.zoo.fmnist import FMNIST_GEN_SPACE, FashionGenerator

OUT = Path(__file__).parent / "results"
ABLATION_DIR = Path("checkpoints/ablation")
LAYERS = ("features", "fc5", "fc6", "logits")


def _score(run, gen_space, judge, real_max) -> dict:
    jc, _ = classify(judge, run.images, gen_space)
    ch = torch.tensor([r["channel"] for r in run.records])
    act = torch.tensor([r["activation"] for r in run.records])
    kept = run.best_restarts()
    return {
        "judge_accuracy": float((jc == ch).float().mean()),
        "kept_judge_accuracy": float(np.mean([int(jc[k] == ch[k]) for k in kept])),
        "activation_ratio": float(np.mean([float(act[k]) / real_max[int(ch[k])] for k in range(len(ch))])),
        "kept_activation_ratio": float(np.mean([float(act[k]) / real_max[int(ch[k])] for k in kept])),
        "code_l2": float(np.mean([r["code_l2"] for r in run.records])),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--restarts", type=int, default=8)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    t0 = time.perf_counter()
    target, judge, default_g = create_model("fmnist-cnn"), create_model("fmnist-judge"), create_model("fmnist-g-fc6")
    x, y = FashionMNIST("test").tensors()
    with torch.no_grad():
        logits = torch.cat([target(target.input_space.encode(x[i : i + 1000])) for i in range(0, len(y), 1000)])
    real_max = [float(logits[y == c, c].max()) for c in range(10)]
    units = [f"logits:{c}" for c in range(10)]
    kw = dict(restarts=args.restarts, seed=args.seed, batch_size=10 * args.restarts, progress=False)

    layer_rows = []
    for layer in LAYERS:
        w = ABLATION_DIR / f"g-{layer}.safetensors"
        if not w.exists():
            layer_rows.append({"layer": layer, "missing": f"train it first: see this script's docstring ({w})"})
            continue
        stats = CodeStats.load(ABLATION_DIR / f"g-{layer}.codestats.safetensors")
        net = FashionGenerator(stats.dim)
        load_into(net, load_state_dict(w))
        gen = LearnedGenerator(net.eval(), (stats.dim,), FMNIST_GEN_SPACE, stats, name=f"g-{layer}")
        # logits are not ReLU outputs: the [0, U] clip's lower bound 0 does not apply; clip to [p1, U] instead
        lower = 0.0 if layer != "logits" else float(stats.percentiles[1.0].min())
        priors = [ClipCode(stats.upper(), lower=lower), L2Decay()]
        run = visualize(target, units, gen, priors=priors, **kw)
        card = json.loads((ABLATION_DIR / f"g-{layer}.json").read_text())
        layer_rows.append({"layer": layer, "code_dim": stats.dim,
                           "reconstruction_mse01": card["metrics"].get("test_mse01"),
                           "reconstruction_encoder_agreement": card["metrics"].get("test_encoder_agreement"),
                           **_score(run, gen.space, judge, real_max)})
        print(layer_rows[-1])

    prior_rows = []
    s = default_g.code_stats
    variants = [("clip", "decay 0.99", dgnam_code_priors(s))]
    for clip in (True, False):
        for lam in (0.0, 0.005, 0.05):
            pri = ([ClipCode(s.upper())] if clip else []) + ([L2Penalty(lam)] if lam > 0 else [])
            variants.append(("clip" if clip else "no clip", f"penalty {lam:g}", pri))
    variants.append(("no clip", "decay 0.99", [L2Decay()]))
    for clip, l2, pri in variants:
        run = visualize(target, units, default_g, priors=pri, **kw)
        prior_rows.append({"clip": clip, "l2": l2, **_score(run, default_g.space, judge, real_max)})
        print(prior_rows[-1])

    res = {"layers": layer_rows, "priors": prior_rows, "restarts": args.restarts, "seed": args.seed, "steps": 200,
           "units": "fmnist-cnn logits:0..9", "seconds": round(time.perf_counter() - t0, 1),
           "machine": f"{platform.machine()}, {torch.get_num_threads()} threads, torch {torch.__version__}"}
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "ablations.json").write_text(json.dumps(res, indent=1) + "\n")

    def md(rows, cols):
        out = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
        for r in rows:
            out.append("| " + " | ".join(f"{r.get(c):.3f}" if isinstance(r.get(c), float) else str(r.get(c, "")) for c in cols) + " |")
        return "\n".join(out)

    metric_cols = ["judge_accuracy", "kept_judge_accuracy", "activation_ratio", "kept_activation_ratio", "code_l2"]
    text = ("## Which layer the generator inverts\n\n" + md(layer_rows, ["layer", "code_dim", "reconstruction_encoder_agreement"] + metric_cols)
            + "\n\n## Code prior on fmnist-g-fc6\n\n" + md(prior_rows, ["clip", "l2"] + metric_cols) + "\n")
    (OUT / "ablations.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
