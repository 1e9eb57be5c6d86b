"""PPGN-h on the embedded default prior: class sampling from one chain per class, and inpainting.

Sampling: for each of the 10 classes, one chain of the published length (200 iterations, eps1 = 1e-5, eps2 = 1,
eps3 = 1e-17, lr = 1) on ``fmnist-g-fc6``'s code, conditioned on ``fmnist-cnn``, with the embedded code DAE
``fmnist-dae-fc6``; 50 samples kept, one every 3 iterations after a burn-in of 50.

* ``judge_accuracy``: the held-out judge's accuracy on the 500 samples (label = the chain's class).
* ``diversity`` / ``dgnam_diversity``: mean pairwise L2 distance of a class's 50 images in the judge's ``penult``
  features, averaged over classes; DGN-AM is 50 restarts per class (seeds 0..49, its defaults: 200 steps each), the
  same number of images (it spends 50x the gradient evaluations of the chain; both counts are recorded).
* extras: the target's accuracy, Fréchet distance (judge ``penult``) of each class's 50 images to 1,000 real test
  images of the class, the diversity of 50 real images, how large the DAE term is next to the class term along the
  chain, and a sweep over lr and eps1 (published defaults are the headline numbers; the sweep is reported whole,
  not used to pick a setting); the published settings with seeds 1 and 2 (one chain's figures vary with its seed);
  and the published lr scaled to the code's bounds (``dgnam.bound_scaled_lr``, the deviation ``dgn-am-scaled``
  makes for DGN-AM: 1.0 x median U / 12) with seeds 0-2 and as a 1000-iteration chain (50 samples, further apart);
  and the released code's class gradient (``ClassCondition(score="released")``: ``(1 - p) d logit``) with seeds 0-2;
  and the released code's prior ``E(G(h)) - h`` (``JointPrior``) in place of the trained DAE, with seeds 0-2;
  and the released class gradient at the bound-scaled lr, with seeds 0-2; and a sweep of the noise term eps3 at the
  bound-scaled and the published lr (``noise_sweep``). ``dgnam_scaled``: DGN-AM's 50 restarts per class at the
  bound-scaled step too (the method ``dgn-am-scaled``), to set beside the bound-scaled chains.

Inpainting: the first 100 test images with the released hole (100/227 of the side, centred: 12 x 12 of 28 x 28),
conditioned on their true class, at the released inpainting settings (``PPGNConfig.for_inpainting``: 21 updates,
step 1 -> 1e-32 linearly, eps3 = 0, eps4 = 1e-9; ``7_inpainting.sh``). Beside them: the class-sampling settings
(200 constant steps of 1, this benchmark's headline until 2026-11-25), the same at lr 0.1, and the released schedule
with the released class gradient.

* ``inpaint_error``: mean squared error in [0, 1] pixels inside the hole, result vs original; ``meanfill_error``
  the same for the hole filled with the training set's mean image.
* ``judge_accuracy_inpainted`` beside ``judge_accuracy_masked`` (hole filled with raw 0, the input of the method).

    python benchmarks/ppgn.py       # writes benchmarks/results/ppgn.json and PNGs (about 15 minutes on 1 core)

A kill loses at most the chain or run in progress: each one's figures are kept under runs/bench/ppgn/ as it ends
(``stages.py``), and the same command resumes.

``--generator FILE --dae FILE --out NAME`` runs the same on another generator of this architecture and the code DAE
of the layer it inverts (``dgnam train generator --layer L`` and ``dgnam train dae --layer L`` outputs) and writes
NAME.json and NAME_*.png instead.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np
import torch

from dgnam import bound_scaled_lr, build_method, create_model, visualize
from dgnam.data import FashionMNIST
from dgnam.evaluate import Judge, classify, frechet_distance, mean_pairwise_distance
from dgnam.images import grid
from dgnam.imagespace import to_uint8
from dgnam.ppgn import (PPGN_LR, ClassCondition, JointPrior, PPGNConfig, hole_mask, inpaint, load_dae, prior_term,
                        sample)
from stages import Stages  # this folder's resumable stages

OUT = Path(__file__).parent / "results"
N = 50
SWEEP_LR = (1.0, 0.3, 0.1, 0.03)
SWEEP_EPS1 = (0.0, 1e-5, 1e-2)
#: (lr, chain length, seed) beside the headline: the published lr with two more seeds (how much one chain's figures
#: vary), and the bound-scaled lr ("scaled") with three seeds and one longer chain
EXTRA_CHAINS = ((PPGN_LR, 200, 1), (PPGN_LR, 200, 2), ("scaled", 200, 0), ("scaled", 200, 1), ("scaled", 200, 2),
                ("scaled", 1000, 0))
#: seeds of the chains with the released code's class gradient or prior (published settings otherwise, or the
#: bound-scaled lr with the released gradient)
RELEASED_CODE_SEEDS = (0, 1, 2)
#: the noise term's size for a sweep at the bound-scaled and the published lr, seed 0 (the published eps3 = 1e-17
#: adds no noise; a larger eps3 is what would make the chain a Langevin sampler that can leave a mode)
SWEEP_EPS3 = (1e-4, 1e-3, 1e-2, 1e-1)
#: inpainting runs beside the headline: (label, config, class score)
INPAINT_VARIANTS = (
    ("class-sampling settings: 200 constant steps of lr 1", PPGNConfig(steps=200), "log_prob"),
    ("200 constant steps of lr 0.1", PPGNConfig(steps=200, lr=0.1), "log_prob"),
    ("released settings, released class gradient", PPGNConfig.for_inpainting(), "released"),
)


class Bench:
    def __init__(self, generator: Path | None = None, dae: Path | None = None) -> None:
        self.cnn, self.judge = create_model("fmnist-cnn"), create_model("fmnist-judge")
        if generator is None:
            self.gen = create_model("fmnist-g-fc6")
        else:
            from generator_training import load_generator

            self.gen, _ = load_generator(generator)
        self.code_layer = self.gen.code_layer  # the layer it inverts (the DAE's codes, inpainting's start code)
        for m in (self.cnn, self.judge, self.gen):
            for p in m.parameters():
                p.requires_grad_(False)
        self.dae = load_dae(dae)
        self.space = self.cnn.input_space
        xt, yt = FashionMNIST("test").tensors()
        self.test_x, self.test_y = xt, yt
        self.judge_features = Judge(self.judge, "penult").features
        real_feats = self.judge_features(self.space.encode(xt), self.space)
        self.real_by_class = [real_feats[yt == c][:1000] for c in range(10)]
        g = torch.Generator().manual_seed(0)
        self.real_diversity = float(np.mean([mean_pairwise_distance(
            f[torch.randperm(len(f), generator=g)[:N]]) for f in self.real_by_class]))

    def evaluate(self, images: torch.Tensor) -> dict:
        """images: (10 classes, S, C, H, W) in the generator's space."""
        s = images.shape[1]
        flat = images.flatten(0, 1)
        y = torch.arange(10).repeat_interleave(s)
        jc, _ = classify(self.judge, flat, self.gen.space)
        tc, _ = classify(self.cnn, flat, self.gen.space)
        p = ClassCondition(self.cnn, y).probs(flat, self.gen.space)
        feats = self.judge_features(flat, self.gen.space).view(10, s, -1)
        return {
            "judge_accuracy": float((jc == y).float().mean()),
            "target_accuracy": float((tc == y).float().mean()),
            "mean_target_probability": float(p.mean()),
            "diversity": float(np.mean([mean_pairwise_distance(feats[c]) for c in range(10)])),
            "frechet_judge": float(np.mean([frechet_distance(feats[c], self.real_by_class[c]) for c in range(10)])),
            "judge_accuracy_per_class": [float((jc == y)[y == c].float().mean()) for c in range(10)],
        }

    def term_sizes(self, codes: torch.Tensor, eps1: float, eps2: float) -> dict:
        """Mean |eps1 (R(h) - h)| and mean |eps2 d log p / dh| over the kept codes (10 classes x S)."""
        h = codes.flatten(0, 1).clone().requires_grad_(True)
        y = torch.arange(10).repeat_interleave(codes.shape[1])
        score = ClassCondition(self.cnn, y)(self.gen(h), self.gen.space)
        (g,) = torch.autograd.grad(score.sum(), h)
        r = prior_term(self.dae, h.detach())
        prior, cond = float((eps1 * r).abs().mean()), float((eps2 * g).abs().mean())
        return {"mean_abs_prior_term": prior, "mean_abs_class_term": cond,
                "prior_to_class_ratio": prior / cond if cond > 0 else float("inf"),
                "median_abs_class_term": float((eps2 * g).abs().mean(1).median()),
                "mean_prior_norm": float(r.norm(dim=1).mean())}

    def chain(self, score: str = "log_prob", prior: torch.nn.Module | None = None, **kw):
        cfg = PPGNConfig.for_samples(N, **kw)
        t = time.perf_counter()
        ch = sample(self.gen, prior or self.dae, ClassCondition(self.cnn, torch.arange(10), score=score), 10, cfg)
        return ch, cfg, time.perf_counter() - t


def row_images(images: torch.Tensor, space, every: int = 5) -> list:
    return [to_uint8(images[c, ::every], space) for c in range(len(images))]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--generator", type=Path, help="another generator (.safetensors with card and code stats)")
    ap.add_argument("--dae", type=Path, help="the code DAE of that generator's layer (dgnam train dae --layer L)")
    ap.add_argument("--out", default="ppgn", help="results/OUT.json and OUT_*.png")
    args = ap.parse_args()
    if (args.generator is None) != (args.dae is None):
        ap.error("--generator and --dae go together: the DAE must be trained on the generator's code layer")
    torch.set_num_threads(1)
    t0 = time.perf_counter()
    OUT.mkdir(parents=True, exist_ok=True)
    b = Bench(args.generator, args.dae)
    gen, space, cnn = b.gen, b.space, b.cnn
    labels = [f"{c} {cnn.classes[c]}" for c in range(10)]

    stages = Stages(args.out, __file__, {"generator": args.generator, "dae": args.dae})

    # --- PPGN-h at the published settings
    def published() -> dict:
        ch, cfg, secs = b.chain()
        p_hist = ClassCondition(cnn, torch.arange(10).repeat_interleave(ch.images.shape[1])).probs(
            ch.images.flatten(0, 1), gen.space).view(10, -1)
        grid(row_images(ch.images, gen.space), row_labels=labels, col_labels=[f"it {int(s)}" for s in ch.steps[::5]],
             cell=56, label_width=100).save(OUT / f"{args.out}_samples.png")
        return {"evaluation": b.evaluate(ch.images), "terms": b.term_sizes(ch.codes, cfg.eps1, cfg.eps2),
                "settings": cfg.to_dict(), "steps": cfg.steps, "seconds": secs,
                "p_by_position": [float(v) for v in p_hist.mean(0)[::5]]}

    pub = stages("published", published)
    ppgn, terms, secs = pub["evaluation"], pub["terms"], pub["seconds"]
    print(f"PPGN-h published: {ppgn} ({secs:.0f} s); terms {terms}", flush=True)

    # --- DGN-AM, 50 restarts per class
    def dgnam_restarts() -> dict:
        t = time.perf_counter()
        run = visualize(cnn, ",".join(f"logits:{c}" for c in range(10)), gen, restarts=N, seed=0, batch_size=50,
                        progress=False)
        secs = time.perf_counter() - t
        dg_images = run.images.view(10, N, *run.images.shape[1:])
        grid(row_images(dg_images, gen.space), row_labels=labels, col_labels=[f"restart {r}" for r in range(0, N, 5)],
             cell=56, label_width=100).save(OUT / f"{args.out}_dgnam_restarts.png")
        return {"evaluation": b.evaluate(dg_images), "seconds": secs}

    dg = stages("dgnam", dgnam_restarts)
    dgnam, dg_secs = dg["evaluation"], dg["seconds"]
    print(f"DGN-AM: {dgnam} ({dg_secs:.0f} s)", flush=True)

    # the same restarts at the bound-scaled step (`dgn-am-scaled`): the DGN-AM to set beside the scaled-lr chains
    def dgnam_scaled_restarts() -> dict:
        spec = build_method("dgn-am-scaled", space, gen)
        t = time.perf_counter()
        run = visualize(cnn, ",".join(f"logits:{c}" for c in range(10)), spec.generator, restarts=N, seed=0,
                        batch_size=50, config=spec.config, priors=spec.priors, progress=False, method="dgn-am-scaled")
        return {**b.evaluate(run.images.view(10, N, *run.images.shape[1:])), "lr_start": spec.config.lr_start,
                "restarts_per_class": N, "seconds": round(time.perf_counter() - t, 1)}

    dgnam_scaled = stages("dgnam_scaled", dgnam_scaled_restarts)
    print(f"DGN-AM, bound-scaled lr: {dgnam_scaled}", flush=True)

    # --- sweep (reported whole)
    def sweep_chain(lr: float, eps1: float) -> dict:
        c2, cfg2, s2 = b.chain(lr=lr, eps1=eps1)
        ev = b.evaluate(c2.images)
        ev.pop("judge_accuracy_per_class")
        if lr == 0.1 and eps1 == 1e-5:
            grid(row_images(c2.images, gen.space), row_labels=labels,
                 col_labels=[f"it {int(s)}" for s in c2.steps[::5]], cell=56,
                 label_width=100).save(OUT / f"{args.out}_samples_lr0.1.png")
        return {"lr": lr, "eps1": eps1, **ev, **b.term_sizes(c2.codes, eps1, cfg2.eps2), "seconds": round(s2, 1)}

    sweep = []
    for lr in SWEEP_LR:
        for eps1 in SWEEP_EPS1:
            sweep.append(stages(f"sweep_lr{lr:g}_eps1{eps1:g}", sweep_chain, lr, eps1))
            print(f"sweep lr {lr} eps1 {eps1}: {sweep[-1]}", flush=True)

    # --- other seeds, and the bound-scaled lr at the published eps (reported whole)
    scaled_lr = bound_scaled_lr(gen.code_stats.upper(), PPGN_LR)

    def chain_record(extra_fields: dict, **kw) -> dict:
        c2, cfg2, s2 = b.chain(**kw)
        ev = b.evaluate(c2.images)
        return {**cfg2.to_dict(), **ev, **extra_fields, "samples_per_class": c2.images.shape[1],
                "gradient_evaluations_per_class": cfg2.steps, "seconds": round(s2, 1)}

    extra = []
    for i, (lr, steps, seed) in enumerate(EXTRA_CHAINS):
        lr = scaled_lr if lr == "scaled" else lr
        extra.append(stages(f"extra{i}", chain_record, {"bound_scaled": lr == scaled_lr}, lr=lr, steps=steps,
                            burn_in=max(50, steps // 10), seed=seed))
        print(f"lr {lr:.3f}, {steps} steps, seed {seed}: {extra[-1]}", flush=True)
    joint = JointPrior(gen, cnn, b.code_layer)
    for j, (label, kw) in enumerate((("released class gradient", {"score": "released"}),
                                     ("joint prior E(G(h)) - h", {"prior": joint}),
                                     ("released class gradient, bound-scaled lr",
                                      {"score": "released", "lr": scaled_lr}))):
        for seed in RELEASED_CODE_SEEDS:
            extra.append(stages(f"variant{j}_seed{seed}", chain_record, {"variant": label}, seed=seed, **kw))
            print(f"{label}, seed {seed}: {extra[-1]}", flush=True)

    # --- the noise term eps3 (reported whole)
    def noise_chain(lr: float, eps3: float) -> dict:
        c2, cfg2, s2 = b.chain(lr=lr, eps3=eps3)
        return {"lr": lr, "eps3": eps3, "bound_scaled": lr == scaled_lr, **b.evaluate(c2.images),
                "seconds": round(s2, 1)}

    noise = []
    for i, lr in enumerate((scaled_lr, PPGN_LR)):
        for eps3 in SWEEP_EPS3:
            noise.append(stages(f"noise{i}_eps3{eps3:g}", noise_chain, lr, eps3))
            print(f"noise lr {lr:.3f} eps3 {eps3:g}: {noise[-1]}", flush=True)

    # --- one chain walking through classes (published settings, 200 iterations per class)
    walk_classes = [3, 5, 8, 1]

    def class_walk() -> dict:
        walk = sample(gen, b.dae, [ClassCondition(cnn, [c]) for c in walk_classes], 1,
                      PPGNConfig.for_samples(10, steps=200))
        grid([to_uint8(walk.images[0, i * 10 : (i + 1) * 10], gen.space) for i in range(len(walk_classes))],
             row_labels=[f"then {cnn.classes[c]}" for c in walk_classes], cell=56,
             label_width=110).save(OUT / f"{args.out}_walk.png")
        return {"p": [float(ClassCondition(cnn, [c]).probs(walk.images[0, i * 10 : (i + 1) * 10], gen.space).mean())
                      for i, c in enumerate(walk_classes)]}

    walk_p = stages("walk", class_walk)["p"]

    # --- inpainting
    x01, y = b.test_x[:100], b.test_y[:100]
    x = space.encode(x01)
    mask = hole_mask(space.size)
    inp_cfg = PPGNConfig.for_inpainting()
    train_mean = FashionMNIST("train").tensors()[0].mean(0, keepdim=True)
    meanfill = space.encode(x01 * (1 - mask) + train_mean * mask)
    hole = mask.bool().expand_as(x01)

    def hole_mse(raw: torch.Tensor) -> float:
        return float((space.decode(raw).clamp(0, 1) - x01)[hole].pow(2).mean())

    def judge_acc(raw: torch.Tensor) -> float:
        return float((classify(b.judge, raw, space)[0] == y).float().mean())

    def inpainting() -> dict:
        t = time.perf_counter()
        res = inpaint(gen, b.dae, ClassCondition(cnn, y), x, mask, cnn, b.code_layer, space, inp_cfg)
        in_secs = time.perf_counter() - t
        show = list(range(8))
        rows = [[to_uint8(t[i : i + 1], space)[0] for t in (res.masked, res.start, res.result, x, meanfill)]
                for i in show]
        grid(rows, row_labels=[f"{cnn.classes[int(y[i])]}" for i in show],
             col_labels=["masked", "start", "PPGN", "original", "mean fill"], cell=72,
             label_width=100).save(OUT / f"{args.out}_inpaint.png")
        return {
            "inpaint_error": hole_mse(res.result), "meanfill_error": hole_mse(meanfill),
            "inpaint_start_error": hole_mse(res.start), "masked_error": hole_mse(res.masked),
            "judge_accuracy_inpainted": judge_acc(res.result), "judge_accuracy_masked": judge_acc(res.masked),
            "judge_accuracy_meanfill": judge_acc(meanfill), "judge_accuracy_inpaint_start": judge_acc(res.start),
            "judge_accuracy_original": judge_acc(x),
            "target_probability_inpainted": float(ClassCondition(cnn, y).probs(res.result, space).mean()),
            "target_probability_masked": float(ClassCondition(cnn, y).probs(res.masked, space).mean()),
            "target_probability_inpaint_start": float(ClassCondition(cnn, y).probs(res.start, space).mean()),
            "seconds": round(in_secs, 1),
        }

    inp = stages("inpainting", inpainting)
    print(f"inpainting: {inp}", flush=True)

    def inpaint_variant(label: str, cfg2: PPGNConfig, score: str) -> dict:
        r2 = inpaint(gen, b.dae, ClassCondition(cnn, y, score=score), x, mask, cnn, b.code_layer, space, cfg2)
        return {"variant": label, **cfg2.to_dict(), "class_score": score, "inpaint_error": hole_mse(r2.result),
                "judge_accuracy_inpainted": judge_acc(r2.result),
                "target_probability_inpainted": float(ClassCondition(cnn, y).probs(r2.result, space).mean())}

    inp_sweep = []
    for i, (label, cfg2, score) in enumerate(INPAINT_VARIANTS):
        inp_sweep.append(stages(f"inpaint_variant{i}", inpaint_variant, label, cfg2, score))
        print(f"inpaint variant: {inp_sweep[-1]}", flush=True)

    res_json = {
        "judge_accuracy": ppgn["judge_accuracy"],
        "diversity": ppgn["diversity"],
        "dgnam_diversity": dgnam["diversity"],
        "inpaint_error": inp["inpaint_error"],
        "meanfill_error": inp["meanfill_error"],
        "ppgn": {**ppgn, "settings": pub["settings"], "chains": 10, "samples_per_class": N,
                 "gradient_evaluations_per_class": pub["steps"], "seconds": round(secs, 1),
                 "target_probability_of_kept_samples_by_position": pub["p_by_position"],
                 "terms": terms},
        "dgnam": {**dgnam, "restarts_per_class": N, "steps": 200, "gradient_evaluations_per_class": N * 200,
                  "seconds": round(dg_secs, 1)},
        "dgnam_scaled": dgnam_scaled,
        "real_images_diversity": b.real_diversity,
        "diversity_features": "fmnist-judge penult (128-d), mean pairwise L2 distance within a class, 50 images",
        "sweep": sweep,
        "bound_scaled_lr": scaled_lr,
        "extra_chains": extra,
        "noise_sweep": noise,
        "class_walk": {"classes": [cnn.classes[c] for c in walk_classes], "mean_target_probability": walk_p},
        "inpainting": {**inp, "images": 100, "hole": "centred 12x12 of 28x28 (released 100/227)",
                       "settings": inp_cfg.to_dict(), "condition": "true class",
                       "error": "MSE of [0, 1] pixels inside the hole", "variants": inp_sweep},
        **stages.summary(time.perf_counter() - t0),
        "generator": gen.name, "code_layer": b.code_layer, "dae": str(args.dae or "fmnist-dae-fc6"),
        "machine": f"{platform.machine()}, {torch.get_num_threads()} threads, torch {torch.__version__}",
    }
    (OUT / f"{args.out}.json").write_text(json.dumps(res_json, indent=1) + "\n")
    stages.finish()
    for k in ("judge_accuracy", "diversity", "dgnam_diversity", "inpaint_error", "meanfill_error"):
        print(f"{k:20s} {res_json[k]}")


if __name__ == "__main__":
    main()
