"""How long to train the DGN-AM prior: reconstruction against optimizability, on the embedded Fashion-MNIST domain.

Training a DeePSiM generator longer makes its reconstructions sharper, but it makes DGN-AM worse. At the published
step (lr 8.0, 200 steps, clip + decay 0.99), the class logits reached through a long-trained generator's code fall,
and its images turn into saturated white blobs. This script measures that trade-off on generators trained with the
shipped recipe for different numbers of optimizer steps:

    dgnam train generator --name g-60k-e1 --epochs 1 --seed 0 --out checkpoints/exp             #  937 steps
    dgnam train generator --name g-20k-e3 --epochs 3 --limit 20000 --seed 0 --out checkpoints/exp  #  936 (ablation's)
    dgnam train generator --name g-20k-e6 --epochs 6 --limit 20000 --seed 0 --out checkpoints/exp  # 1872 steps
    dgnam train generator --name g-60k-e3 --epochs 3 --seed 0 --out checkpoints/exp             # 2811 steps
    dgnam train generator --name g-60k-e6 --epochs 6 --seed 0 --out checkpoints/exp             # 5622 steps
    (g-60k-e6 is the generator shipped as fmnist-g-fc6 until 2026-11-25; g-60k-e1 is the recipe shipped since.)
    OMP_NUM_THREADS=1 python benchmarks/generator_training.py checkpoints/exp/g-*.safetensors

The selection criterion is judge-free: the mean final logit that DGN-AM reaches at the published settings, on seed 1
(the quality benchmark and the demo use seed 0). The held-out judge's accuracy is reported beside it, not used to
choose. Writes benchmarks/results/generator_training.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import torch

from dgnam import LearnedGenerator, create_model
from dgnam.optimize import DGNAM_LR_START
from dgnam.priors import CodeStats
from dgnam.weights import load_into, load_state_dict
from dgnam.zoo.fmnist import FMNIST_GEN_SPACE, FashionGenerator
from step_size import RESTARTS, measure  # this folder's step-size benchmark: the same DGN-AM job

OUT = Path(__file__).parent / "results"
SEED = 1  # not the benchmarks' seed 0


def load_generator(weights: Path) -> tuple[LearnedGenerator, dict]:
    stats = CodeStats.load(weights.with_name(weights.name.replace(".safetensors", ".codestats.safetensors")))
    net = FashionGenerator(stats.dim)
    load_into(net, load_state_dict(weights))
    card = json.loads(weights.with_suffix(".json").read_text())
    return LearnedGenerator(net.eval(), (stats.dim,), FMNIST_GEN_SPACE, stats, name=card["name"]), card


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("weights", nargs="+", type=Path, help="generator .safetensors files with their card and code stats")
    args = ap.parse_args()
    t0 = time.perf_counter()
    target, judge = create_model("fmnist-cnn"), create_model("fmnist-judge")
    rows = []
    for w in [w for w in args.weights if not w.name.endswith(".codestats.safetensors")]:  # a shell glob has them
        gen, card = load_generator(w)
        cfg = card["config"]
        steps = card["code_stats"]["images"] // cfg["batch_size"] * cfg["epochs"]
        dgnam = measure(target, judge, gen, DGNAM_LR_START, SEED)
        rows.append({"generator": card["name"], "train_images": card["code_stats"]["images"], "epochs": cfg["epochs"],
                     "train_steps": steps, "test_mse01": card["metrics"]["test_mse01"],
                     "test_encoder_agreement": card["metrics"]["test_encoder_agreement"],
                     "dgnam_mean_final_logit": dgnam["mean_activation"],
                     "dgnam_judge_accuracy": dgnam["judge_accuracy"]})
        print(rows[-1], flush=True)
    rows.sort(key=lambda r: r["train_steps"])
    res = {"rows": rows, "restarts": RESTARTS, "seed": SEED, "settings": "published DGN-AM defaults (lr 8, 200 steps)",
           "units": "fmnist-cnn logits:0..9", "judge": "fmnist-judge",
           "machine": f"{platform.machine()}, {torch.get_num_threads()} torch threads",
           "seconds": round(time.perf_counter() - t0, 1)}
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "generator_training.json").write_text(json.dumps(res, indent=1) + "\n")
    print("| generator | train steps | test MSE | encoder agreement | DGN-AM mean final logit "
          "| DGN-AM judge accuracy |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['generator']} | {r['train_steps']} | {r['test_mse01']:.4f} | {r['test_encoder_agreement']:.3f} | "
              f"{r['dgnam_mean_final_logit']:.2f} | {r['dgnam_judge_accuracy']:.3f} |")


if __name__ == "__main__":
    main()
