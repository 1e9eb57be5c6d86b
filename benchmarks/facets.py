"""Multifaceted visualization on fmnist-cnn's 10 class logits: are the facet images faithful to their facets, and
more diverse than DGN-AM restarts?

For each class logit: the top 2% of the 60,000 training images by that logit (1,200 images) are clustered in fc6
(PCA 50 -> t-SNE 2-D -> k-means, k = 10, the paper's recipe), and one image per facet is synthesized with DGN-AM
from the mean fc6 code of the 15 images nearest the facet's centroid (``fmnist-g-fc6``, 200 steps, its default
prior). Against it: 10 DGN-AM restarts of the same logit from random codes (seeds 0..9, the usual way).

* ``facet_fidelity``: fraction of facet images (over 10 units x 10 facets) whose fc6 features, in the clustering's
  PCA space, are nearest their own facet's centre (mean PCA feature of the facet's real images).
* ``facet_diversity`` / ``restart_diversity``: mean pairwise L2 distance between the 10 images of a unit in fc6
  features (the clustering features), averaged over units; ``*_judge`` the same in the held-out judge's ``penult``.
* Beside the headline (DGN-AM at its published settings) the same facets are synthesized with smaller starting
  step sizes (``dgnam_lr2``, ``dgnam_lr0.5``, each with restarts at the same lr), from the start alone
  (``dgnam_start``: G(mean code), no optimization), and with the paper's own pixel method (mean-image start,
  centre-biased regularization: ``pixel``, ``pixel_lr0.1x``). All are reported; none is picked by its score.
* Faceted feature visualization (``dgnam_facet_wW``): DGN-AM at the published settings plus the facet term
  (:class:`dgnam.facets.FacetDirection`, after Goh et al. 2021) at weights W in ``FACET_WEIGHTS``, all reported. That
  term pulls each image towards its facet's centre in the very features the fidelity test uses, so its
  ``fidelity`` is partly by construction. ``fidelity_judge`` is the held-out check, for every variant: the same
  nearest-centre test in the judge's ``penult`` features (facet centres = mean judge feature of each facet's real
  images; the judge never takes part in the optimization), with ``real_member_fidelity_judge`` as its ceiling.
* Where fidelity is lost, per unit (the same nearest-centre test on things that are not synthesized):
  ``real_member_fidelity`` the facets' own real images; ``mean_code_fidelity`` each facet's mean code itself (the
  DGN-AM start before the generator); ``reconstruction_fidelity`` the real images passed through the generator,
  G(E(x)); ``mean_image_fidelity`` each facet's mean image (the pixel method's start).
* ``centre_inversion``: no unit term at all, the generator's images brought as near each facet's centre in fc6 as
  Adam gets them within the code box (:func:`centre_inversion`): how much of the fc6 test any code-space method
  could take from this generator, by construction, and what the judge makes of those images.

    python benchmarks/facets.py       # writes benchmarks/results/facets.json and PNGs (~15 minutes on 1 core)

A kill loses at most the unit in progress: each unit's figures are kept under runs/bench/facets/ as it ends
(``stages.py``), and the same command resumes.

``--generator FILE --out NAME`` runs the same on another generator of this architecture (a ``dgnam train generator``
output with its code stats and card) and writes NAME.json and NAME_*.png instead. Its facets start from their mean
code in the layer that generator inverts (its card's ``inverts.layer``); clustering, fidelity and diversity stay in fc6.
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from dgnam import AMConfig, PixelGenerator, create_model, visualize
from dgnam.data import FashionMNIST
from dgnam.evaluate import Judge, mean_pairwise_distance
from dgnam.facets import FacetConfig, find_facets, synthesize_facets
from dgnam.units import LayerReader, encode
from dgnam.images import grid
from dgnam.imagespace import convert, to_uint8
from stages import Stages  # this folder's resumable stages

OUT = Path(__file__).parent / "results"
K = 10
TOP_FRACTION = 0.02
RESTARTS = 10
DGNAM_LRS = (2.0, 0.5)  # starting step sizes reported beside the published 8
FACET_WEIGHTS = (3.0, 10.0, 30.0)  # weights of the facet term (faceted feature visualization), all reported
SHOW_UNIT = 8  # the detailed facet grid (synthetic beside top real images) is written for this class ("Bag")
SHOWN = ("dgnam", "dgnam_lr0.5", "pixel", f"dgnam_facet_w{FACET_WEIGHTS[1]:g}")  # the variants it is written for
EMBED = "fc6"  # the clustering features (and those of the fidelity test and the diversity)
CHECKS = ("real_member_fidelity", "mean_code_fidelity", "reconstruction_fidelity", "mean_image_fidelity")
#: The centre inversion (``centre_inversion``): Adam (Lucid's lr is 0.05; twice that, since 1000 steps at 0.05 had
#: not converged on three units) for 1000 steps. A diagnostic, not a method of the toolkit.
INVERSION_STEPS = 1000
INVERSION_LR = 0.1


def features(model, layer, raw, src_space, space) -> torch.Tensor:
    return encode(model, layer, convert(raw, src_space, space))


def judge_centres(judge: Judge, found, xs, space) -> tuple[torch.Tensor, float]:
    """The facets' centres in the judge's features (held out: the judge takes no part in clustering or
    optimization), the mean judge feature of each facet's real images, and how often those real images are nearest
    their own facet's centre there (the ceiling of :func:`judge_fidelity`)."""
    labels = torch.as_tensor(found.clustering.labels)
    real = judge.features(space.encode(xs[found.indices]), space)
    centres = torch.stack([real[labels == j].mean(0) for j in range(len(found.members))])
    return centres, float((torch.cdist(real, centres).argmin(1) == labels).float().mean())


def judge_fidelity(judge: Judge, centres: torch.Tensor, synth: torch.Tensor, src_space) -> float:
    """Fraction of facet images (one per facet, in facet order) nearest their own facet's centre in judge features."""
    near = torch.cdist(judge.features(synth, src_space), centres).argmin(1)
    return float((near == torch.arange(len(centres))).float().mean())


def with_lr(config: AMConfig, factor: float | None = None, lr: float | None = None) -> AMConfig:
    d = config.to_dict()
    d["lr_start"] = lr if lr is not None else d["lr_start"] * factor
    return AMConfig(**d)


def class_facets(cnn, x01: torch.Tensor, logits: torch.Tensor) -> list[tuple[object, torch.Tensor]]:
    """For each class logit, the facets of its top ``TOP_FRACTION`` training images (passed as the whole data set,
    the paper's recipe: fc6, PCA 50 -> t-SNE 2-D -> k-means) and those images."""
    return [facets_of_class(cnn, x01, logits, c) for c in range(logits.shape[1])]


def facets_of_class(cnn, x01: torch.Tensor, logits: torch.Tensor, c: int) -> tuple[object, torch.Tensor]:
    """:func:`class_facets` of class ``c`` alone."""
    n_top = int(round(TOP_FRACTION * len(x01)))
    cfg = FacetConfig(k=K, top_fraction=1.0, embed_layer=EMBED, reduce="tsne")
    xs = x01[logits[:, c].argsort(descending=True)[:n_top]]
    return find_facets(cnn, f"logits:{c}", xs, cfg), xs


def fidelity_checks(cnn, gen, found, xs, space, code_layer: str = EMBED) -> dict:
    """The nearest-centre test (as for the synthesized images) on the facets' real images, their mean codes, their
    reconstructions G(E(x)) and their mean images: where between the real facet and the synthetic image it is lost.
    ``code_layer`` is the layer the generator inverts; the mean code is tested as the mean clustering feature
    (the same thing when the generator inverts the clustering layer)."""
    cl, x = found.clustering, space.encode(xs)
    own = lambda feats, labels: float(np.mean(cl.nearest_center(feats) == np.asarray(labels)))  # noqa: E731
    feats = encode(cnn, EMBED, x[found.indices])  # the clustered images, in the order of cl.labels
    codes = feats if code_layer == EMBED else encode(cnn, code_layer, x[found.indices])
    with torch.no_grad():
        recon = features(cnn, EMBED, gen(codes), gen.space, space)
    means = torch.stack([encode(cnn, EMBED, x[i]).mean(0) for i in found.init_indices])
    mean_images = torch.stack([x[i].mean(0) for i in found.init_indices])
    k = len(found.members)
    return {"real_member_fidelity": own(feats, cl.labels), "mean_code_fidelity": own(means, range(k)),
            "reconstruction_fidelity": own(recon, cl.labels),
            "mean_image_fidelity": own(encode(cnn, EMBED, mean_images), range(k))}


def centre_inversion(cnn, gen, found, xs, space, code_layer: str = EMBED) -> torch.Tensor:
    """Generator images G(y) whose fc6 features come as close as Adam brings them to each facet's centre (in the
    clustering's PCA space), with y started from the facet's mean code and clipped to the generator's code box
    [0, U] after every step, and no unit term. How near the generator's images can get to the facet centres at all:
    the most of the fc6 nearest-centre test that any code-space method could take from this generator, by
    construction (the judge's test stays held out)."""
    cl, x = found.clustering, space.encode(xs)
    y = torch.stack([encode(cnn, code_layer, x[i]).mean(0) for i in found.init_indices]).requires_grad_(True)
    upper = gen.code_stats.upper()
    mean, comp = (torch.as_tensor(a, dtype=torch.float32) for a in (cl.mean, cl.components))
    centres = torch.as_tensor(cl.centers, dtype=torch.float32)
    params = [*cnn.parameters(), *gen.parameters()]
    grads = [p.requires_grad for p in params]
    for p in params:
        p.requires_grad_(False)
    opt = torch.optim.Adam([y], lr=INVERSION_LR)
    reader = LayerReader(cnn, [EMBED])  # encode() runs without gradients
    try:
        for _ in range(INVERSION_STEPS):
            proj = (reader(convert(gen(y), gen.space, space))[EMBED].flatten(1) - mean) @ comp.T
            loss = (proj - centres).pow(2).sum()
            opt.zero_grad()
            loss.backward()
            opt.step()
            with torch.no_grad():
                y.copy_(torch.minimum(y.clamp_min(0), upper))
    finally:
        for p, g in zip(params, grads):
            p.requires_grad_(g)
    with torch.no_grad():
        return gen(y)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--generator", type=Path, help="generator weights (.safetensors with card and code stats)")
    ap.add_argument("--out", default="facets", help="results/OUT.json and OUT_*.png")
    args = ap.parse_args()
    torch.set_num_threads(1)
    t0 = time.perf_counter()
    cnn = create_model("fmnist-cnn")
    judge = Judge(create_model("fmnist-judge"), "penult")
    if args.generator is None:
        gen = create_model("fmnist-g-fc6")
    else:
        from generator_training import load_generator  # lazily: that script imports this one

        gen, _ = load_generator(args.generator)
    code_layer = gen.code_layer  # the layer it inverts: its facets start from their mean code in that layer
    space = cnn.input_space
    x01, _ = FashionMNIST("train").tensors()
    logits = encode(cnn, "logits", space.encode(x01))
    n_top = int(round(TOP_FRACTION * len(x01)))
    dg = gen.default_config()
    pix_cfg = PixelGenerator(space).default_config()
    # (name, generator?, AMConfig, steps, facet weight): the published settings first; the others beside them
    variants = [("dgnam", True, dg, None, 0.0)] + [
        (f"dgnam_lr{v:g}", True, with_lr(dg, lr=v), None, 0.0) for v in DGNAM_LRS] + [
        ("dgnam_start", True, dg, 0, 0.0), ("pixel", False, pix_cfg, None, 0.0),
        ("pixel_lr0.1x", False, with_lr(pix_cfg, 0.1), None, 0.0)] + [
        (f"dgnam_facet_w{w:g}", True, dg, None, w) for w in FACET_WEIGHTS]
    per_unit = []
    rows = {name: [] for name, *_ in variants}
    rows.update({f"restarts_lr{v:g}": [] for v in (8.0, *DGNAM_LRS)}, centre_inversion=[])
    tmp = Path(tempfile.mkdtemp())
    stages = Stages(args.out, __file__, {"generator": args.generator})

    def unit_stage(c: int) -> tuple[dict, dict[str, np.ndarray]]:
        """Everything of class c: its record and its row of each figure (a stage: a rerun after a kill skips it)."""
        found, xs = facets_of_class(cnn, x01, logits, c)
        unit_rows: dict[str, list] = {}
        unit = f"logits:{c}"
        rec = {"unit": unit, "class": cnn.classes[c], "clustered_images": len(found.indices),
               "facet_sizes": [len(m) for m in found.members], "top_real_activation": float(found.activations.max())}
        real_centres = torch.stack([encode(cnn, EMBED, space.encode(xs[m])).mean(0)
                                    for m in found.members])
        rec["real_facet_centre_diversity"] = mean_pairwise_distance(real_centres)
        rec.update(fidelity_checks(cnn, gen, found, xs, space, code_layer))
        jcentres, rec["real_member_fidelity_judge"] = judge_centres(judge, found, xs, space)
        inverted = centre_inversion(cnn, gen, found, xs, space, code_layer)
        nearest = found.clustering.nearest_center(features(cnn, EMBED, inverted, gen.space, space))
        rec["centre_inversion"] = {
            "fidelity": float(np.mean(nearest == np.arange(K))), "nearest_facet": [int(n) for n in nearest],
            "fidelity_judge": judge_fidelity(judge, jcentres, inverted, gen.space),
            "activation": float(encode(cnn, "logits", convert(inverted, gen.space, space))[:, c].mean())}
        unit_rows["centre_inversion"] = to_uint8(inverted, gen.space)
        for name, learned, am, steps, weight in variants:
            out = tmp / f"{name}_u{c}" if c == SHOW_UNIT and name in SHOWN else None
            f = synthesize_facets(cnn, found, xs, gen if learned else None, encoder=(cnn, code_layer), am_config=am,
                                  steps=steps, facet_weight=weight, out=out, progress=False)
            src = gen.space if learned else space
            rec[name] = {"fidelity": f.fidelity, "nearest_facet": f.nearest,
                         "fidelity_judge": judge_fidelity(judge, jcentres, f.run.images, src),
                         "diversity": mean_pairwise_distance(features(cnn, EMBED, f.run.images, src, space)),
                         "diversity_judge": mean_pairwise_distance(judge.features(f.run.images, src)),
                         "activation": float(np.mean([r["activation"] for r in f.run.records]))}
            unit_rows[name] = to_uint8(f.run.images, src)
            if out is not None:
                OUT.mkdir(parents=True, exist_ok=True)
                shutil.copy(out / "facets.png", OUT / f"{args.out}_logit{c}_{name}.png")
                if name == "dgnam":
                    shutil.copy(out / "embedding.png", OUT / f"{args.out}_logit{c}_embedding.png")
        for lr in (8.0, *DGNAM_LRS):
            r = visualize(cnn, unit, gen, restarts=RESTARTS, seed=0, config=with_lr(dg, lr=lr), progress=False)
            rec[f"restarts_lr{lr:g}"] = {
                "diversity": mean_pairwise_distance(features(cnn, EMBED, r.images, gen.space, space)),
                "diversity_judge": mean_pairwise_distance(judge.features(r.images, gen.space)),
                "activation": float(np.mean([x["activation"] for x in r.records]))}
            unit_rows[f"restarts_lr{lr:g}"] = to_uint8(r.images, gen.space)
        return rec, {name: np.stack(imgs) for name, imgs in unit_rows.items()}

    for c in range(logits.shape[1]):
        unit = f"logits:{c}"
        rec, arrays = stages(f"unit{c}", unit_stage, c, arrays=True)
        for name, imgs in arrays.items():
            rows[name].append(list(imgs))
        per_unit.append(rec)
        print(f"{unit:9s} {cnn.classes[c]:12s} " + "  ".join(
            f"{name} fid {rec[name]['fidelity']:.1f}/{rec[name]['fidelity_judge']:.1f} div {rec[name]['diversity']:.1f} "
            f"act {rec[name]['activation']:.1f}" for name, *_ in variants) + "  restarts " + "  ".join(
            f"lr{lr:g} div {rec[f'restarts_lr{lr:g}']['diversity']:.1f}" for lr in (8.0, *DGNAM_LRS)), flush=True)
    shutil.rmtree(tmp, ignore_errors=True)

    def mean(name: str, key: str) -> float:
        return float(np.mean([r[name][key] for r in per_unit]))

    checks = {k: float(np.mean([r[k] for r in per_unit])) for k in (*CHECKS, "real_member_fidelity_judge")}
    summary = {name: {k: mean(name, k) for k in ("fidelity", "fidelity_judge", "diversity", "diversity_judge",
                                                 "activation")}
               for name, *_ in variants}
    summary.update({f"restarts_lr{lr:g}": {k: mean(f"restarts_lr{lr:g}", k) for k in ("diversity", "diversity_judge",
                                                                                       "activation")}
                    for lr in (8.0, *DGNAM_LRS)})
    summary["centre_inversion"] = {k: mean("centre_inversion", k) for k in ("fidelity", "fidelity_judge", "activation")}
    res = {
        "facet_fidelity": summary["dgnam"]["fidelity"],
        "facet_fidelity_judge": summary["dgnam"]["fidelity_judge"],
        "facet_diversity": summary["dgnam"]["diversity"],
        "restart_diversity": summary["restarts_lr8"]["diversity"],
        "facet_diversity_judge": summary["dgnam"]["diversity_judge"],
        "restart_diversity_judge": summary["restarts_lr8"]["diversity_judge"],
        "units_where_facets_more_diverse": int(sum(r["dgnam"]["diversity"] > r["restarts_lr8"]["diversity"]
                                                   for r in per_unit)),
        "facet_activation": summary["dgnam"]["activation"],
        "restart_activation": summary["restarts_lr8"]["activation"],
        "pixel_facet_fidelity": summary["pixel"]["fidelity"],
        "faceted": {f"w{w:g}": summary[f"dgnam_facet_w{w:g}"] for w in FACET_WEIGHTS},
        "variants": summary,
        "fidelity_checks": checks,
        "real_facet_centre_diversity": float(np.mean([r["real_facet_centre_diversity"] for r in per_unit])),
        "settings": {"model": "fmnist-cnn", "generator": gen.name, "code_layer": code_layer, "units": "logits:0..9",
                     "k": K, "top_fraction": TOP_FRACTION, "clustered_images_per_unit": n_top, "embed_layer": EMBED,
                     "reduce": "PCA 50 -> t-SNE 2-D -> k-means", "center_images": FacetConfig().center_images,
                     "headline": "DGN-AM at its published settings (lr 8 -> 0, 200 steps, clip + decay) from each "
                                 "facet's mean code; restarts: 10 DGN-AM restarts from N(0, 1) at the same settings",
                     "variants": "dgnam_lrX: DGN-AM with lr_start X (restarts_lrX: its restarts); dgnam_start: the "
                                 "start G(mean code), no optimization; pixel: the paper's pixel method (mean image, "
                                 "centre bias) at the toolkit's pixel lr; pixel_lr0.1x: a tenth of that lr; "
                                 "dgnam_facet_wW: the headline plus the facet term (faceted feature visualization) "
                                 "at weight W, whose fc6 fidelity is partly by construction",
                     "centre_inversion": f"no unit term: G(y) brought as near each facet centre in fc6 (PCA) as "
                                         f"Adam (lr {INVERSION_LR:g}, {INVERSION_STEPS} steps) gets it from the mean "
                                         f"code within [0, U]; how near the generator's images can come to the "
                                         f"centres at all",
                     "fidelity_judge": "the same nearest-centre test in the judge's penult features (centres: mean "
                                       "judge feature of each facet's real images); held out",
                     "fidelity_space": "fc6 features projected on the clustering's PCA (t-SNE has no out-of-sample map)",
                     "diversity": "mean pairwise L2 distance of a unit's 10 images in fc6 features (judge: penult)"},
        "per_unit": per_unit,
        **stages.summary(time.perf_counter() - t0),
        "machine": f"{platform.machine()}, {torch.get_num_threads()} threads, torch {torch.__version__}",
    }
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / f"{args.out}.json").write_text(json.dumps(res, indent=1) + "\n")
    labels = [f"{c} {cnn.classes[c]}" for c in range(10)]
    for name, imgs in rows.items():
        cols = [f"restart {j}" if name.startswith("restarts") else f"facet {j}" for j in range(len(imgs[0]))]
        # under each facet image, the facet whose centre it lies nearest (what fidelity counts), as in facets.png
        caps = ([["own facet" if n == j else f"nearest {n}" for j, n in enumerate(r[name]["nearest_facet"])]
                 for r in per_unit] if "nearest_facet" in per_unit[0][name] else None)
        grid(imgs, row_labels=labels, col_labels=cols, cell_labels=caps, cell=56,
             label_width=100).save(OUT / f"{args.out}_{name}.png")
    stages.finish()
    for k, v in res.items():
        if k not in ("per_unit", "settings", "variants"):
            print(f"{k:32s} {v}")
    for k, v in summary.items():
        print(f"{k:20s} {v}")


if __name__ == "__main__":
    main()
