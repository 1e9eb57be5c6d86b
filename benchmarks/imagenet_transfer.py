"""Pixel-space methods on a real ImageNet classifier, judged by a network never used in optimization.

For 20 fixed ImageNet classes (CLASSES below), every pixel-space method of the toolkit (`dgnam priors`: pixel,
pixel-l2-blur, yosinski1-4, lucid) optimizes the class logit of efficientnet-lite0 from the same seed with the same
budget (STEPS iterations; the presets' own iteration counts are replaced by it, their other settings kept). The table
reports the target's own probability of the class on the saved 8-bit image, and the rate at which efficientnet-lite2
(the judge) gives the intended class top-1: the usual proxy for how natural and transferable the images are. One PNG
grid per method, and the wall time per image on this machine.

    pip install 'dgnam[imagenet]'
    OMP_NUM_THREADS=2 python benchmarks/imagenet_transfer.py [--steps 100]

Writes benchmarks/results/imagenet_transfer.json (rows: method, target_prob, judge_rate, seconds_per_image, ...) and
imagenet_<method>.png. The JSON is rewritten after every method (``"complete": false`` until all are done), and a
second call keeps the rows already measured at the same step budget, so an interrupted run loses at most one method;
``--fresh`` measures everything again.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import torch

from dgnam import AMConfig, create_model, visualize
from dgnam.evaluate import probabilities
from dgnam.images import grid
from dgnam.imagespace import to_uint8
from dgnam.methods import build_method, list_methods

OUT = Path(__file__).parent / "results"
#: 20 ImageNet classes: animals, food, objects and scenes, chosen before any run.
CLASSES = (1, 11, 31, 84, 130, 207, 281, 301, 323, 327, 340, 607, 779, 937, 949, 951, 953, 963, 967, 980)
STEPS = 100


def write(path: Path, rows: list[dict], labels: list[str], args, complete: bool, seconds: float) -> None:
    result = {"rows": rows, "complete": complete, "classes": list(CLASSES), "class_names": labels,
              "target": "efficientnet-lite0", "judge": "efficientnet-lite2", "steps": args.steps, "seed": 0,
              "machine": f"{platform.machine()}, {torch.get_num_threads()} torch threads, device {args.device}",
              "wall_seconds_this_call": round(seconds, 1),
              "command": f"python benchmarks/imagenet_transfer.py --steps {args.steps}",
              "note": "captions in the PNGs: target probability / judge probability of the intended class; "
                      "seconds_per_image of each row is that method's own wall time / 20 images"}
    path.write_text(json.dumps(result, indent=1))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, default=STEPS)
    ap.add_argument("--methods", default=None, help="comma-separated subset of the pixel-space methods")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--fresh", action="store_true", help="ignore rows of an earlier, interrupted run")
    args = ap.parse_args()
    t0 = time.perf_counter()
    OUT.mkdir(parents=True, exist_ok=True)
    target, judge = create_model("efficientnet-lite0"), create_model("efficientnet-lite2")
    judge = judge.to(args.device)
    names = [m.name for m in list_methods() if not m.needs_generator]
    if args.methods:
        names = args.methods.split(",")
    units = ",".join(f"logits:{c}" for c in CLASSES)
    labels = [f"{c} {target.classes[c]}" if target.classes else str(c) for c in CLASSES]
    y = torch.tensor(CLASSES)
    path = OUT / "imagenet_transfer.json"
    done = {}
    if path.exists() and not args.fresh:
        old = json.loads(path.read_text())
        if old.get("steps") == args.steps and old.get("classes") == list(CLASSES):
            done = {r["method"]: r for r in old["rows"]}
    rows = []
    for name in names:
        if name in done:
            rows.append(done[name])
            print(f"{name}: kept from the earlier run", flush=True)
            continue
        spec = build_method(name, target.input_space)
        config = AMConfig(**{**spec.config.to_dict(), "steps": args.steps})
        t = time.perf_counter()
        run = visualize(target, units, spec.generator, seed=0, config=config, priors=spec.priors,
                        transforms=spec.transforms, batch_size=len(CLASSES), device=args.device, method=name)
        secs = time.perf_counter() - t
        space = spec.generator.space
        p_target = probabilities(target, run.images.to(args.device), space).cpu()[torch.arange(len(y)), y]
        p_judge = probabilities(judge, run.images.to(args.device), space).cpu()
        row = {"method": name, "target_prob": float(p_target.mean()),
               "target_rate": float((p_target > 0.5).float().mean()),
               "judge_rate": float((p_judge.argmax(1) == y).float().mean()),
               "judge_prob": float(p_judge[torch.arange(len(y)), y].mean()),
               "seconds_per_image": secs / len(CLASSES), "steps": args.steps}
        rows.append(row)
        imgs = to_uint8(run.images, space)
        grid([imgs[i : i + 10] for i in (0, 10)], cell_labels=[
            [f"{labels[i]}\n{p_target[i]:.2f} / {p_judge[i, y[i]]:.2f}" for i in range(j, j + 10)] for j in (0, 10)],
            cell=112).save(OUT / f"imagenet_{name}.png")
        print(f"{name}: " + ", ".join(f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}" for k, v in row.items()),
              flush=True)
        write(path, rows, labels, args, complete=False, seconds=time.perf_counter() - t0)
    write(path, rows, labels, args, complete=True, seconds=time.perf_counter() - t0)
    cols = ["method", "target_prob", "judge_rate", "judge_prob", "seconds_per_image"]
    print("| " + " | ".join(cols) + " |\n|" + "---|" * len(cols))
    for r in rows:
        print("| " + " | ".join(f"{r[c]:.3g}" if isinstance(r[c], float) else str(r[c]) for c in cols) + " |")


if __name__ == "__main__":
    main()
