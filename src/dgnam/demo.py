"""``dgnam demo``: DGN-AM against plain pixel-space AM on the 10 class logits of the embedded Fashion-MNIST target.

Both methods get the same units, seeds, restarts and iteration budget (the paper's 200). For each class the restart
with the highest final activation is kept. The judge (``fmnist-judge``, never used in optimization) names what each
image shows; each activation is divided by the highest activation of that class's logit among the real test images.
"""

from __future__ import annotations

import json
import shutil
import time
from contextlib import ExitStack
from pathlib import Path

import numpy as np
import torch

from .atomic import LOCK, folder_lock, write_json_atomic
from .data import FashionMNIST
from .defaults import DEMO_RESTARTS
from .errors import noting_interrupt
from .evaluate import classify
from .images import grid, save_image
from .imagespace import convert, to_uint8
from .methods import build_method
from .run import foreign_entries, visualize
from .zoo import create_model

DEMO_METHODS = ("pixel", "dgn-am")


#: What a demo folder holds: its own files, and one engine run per method (the files `visualize` and `evaluate` write).
DEMO_FILES = ("grid.png", "results.json", "index.html")
RUN_ENTRIES = ("images", "codes", "results.json", "grid.png", "evaluation.json", "nearest.png", "report.html")


def _check_demo_folder(out: Path) -> None:
    """The demo starts fresh, replacing an earlier demo in ``out``; anything else there is refused, not deleted."""
    from .errors import DgnamError

    if not out.exists():
        return
    if not out.is_dir():
        raise DgnamError(f"--out {out} is a file: give a folder for the demo")
    foreign = foreign_entries(out, (*DEMO_FILES, *DEMO_METHODS))  # (dgnam's own: its lock, temporary files)
    for method in DEMO_METHODS:
        sub = out / method
        # an interrupted demo's run may lack results.json: it holds nothing but a run's entries either way
        if sub.exists() and (not sub.is_dir() or foreign_entries(sub, RUN_ENTRIES)):
            foreign.append(f"{method}/")
    if (out / "results.json").exists():
        try:
            ours = "summary" in json.loads((out / "results.json").read_text())
        except (OSError, ValueError, TypeError):
            ours = False
        if not ours:
            foreign.append("results.json")
    if foreign:
        raise DgnamError(f"{out} holds files that are not an earlier demo's ({', '.join(sorted(foreign)[:4])}): the "
                         f"demo replaces its folder, so give another --out")


def run_demo(out: str | Path = "runs/demo", restarts: int = DEMO_RESTARTS, steps: int | None = None, seed: int = 0,
             device: str = "cpu", data: str | None = None, progress: bool = True) -> dict:
    """Run the demo; returns ``{"records": [...], "table": [...], "seconds": s}`` and writes grid.png, results.json,
    index.html (and the two engine runs under ``out/pixel`` and ``out/dgn-am``)."""
    out = Path(out)
    with ExitStack() as stack:
        # OUT and each of its runs (which it deletes and writes again), before anything is deleted: an `evaluate` of
        # OUT/dgn-am locks that run only, and the demo would delete the run under it
        for folder in (out, *(out / m for m in DEMO_METHODS)):
            stack.enter_context(folder_lock(folder, "demo"))
        # it has no resume (run again, it replaces its runs): its note replaces visualize's, which offers resume=True
        stack.enter_context(noting_interrupt(lambda: f"the demo was interrupted: run it again to start over (it "
                                                     f"replaces what it wrote in {out})", replace=True))
        return _run_demo(out, restarts, steps, seed, device, data, progress)


def _empty(folder: Path) -> None:
    """Remove what ``folder`` holds but its lock file (this demo holds the lock: a new file would be another lock)."""
    for entry in folder.iterdir():
        if entry.name == LOCK:
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()


def _run_demo(out: Path, restarts: int, steps: int | None, seed: int, device: str, data: str | None,
              progress: bool) -> dict:
    t0 = time.perf_counter()
    _check_demo_folder(out)
    target, judge, gen = create_model("fmnist-cnn"), create_model("fmnist-judge"), create_model("fmnist-g-fc6")
    space = target.input_space
    classes = list(target.classes)
    units = [f"logits:{i}" for i in range(len(classes))]

    test = FashionMNIST("test", root=data)
    x01, y = test.tensors()
    with torch.no_grad():
        real_logits = torch.cat([target(space.encode(x01[i : i + 1000])) for i in range(0, len(y), 1000)])
    real_max = [float(real_logits[y == c, c].max()) for c in range(len(classes))]
    # the real row shows the test image each logit likes most, so that its caption (that logit) is its own value
    example_idx = [int(torch.where(y == c, real_logits[:, c], float("-inf")).argmax()) for c in range(len(classes))]

    out.mkdir(parents=True, exist_ok=True)
    # the files that describe an earlier demo go before its runs are replaced (results.json, which says the demo is
    # complete, first): a killed rerun must not leave them describing images that are no longer there
    for name in sorted(DEMO_FILES, key=lambda n: n != "results.json"):
        (out / name).unlink(missing_ok=True)
    best: dict[str, list[dict]] = {}
    best_images: dict[str, list[np.ndarray]] = {}
    for method in DEMO_METHODS:
        spec = build_method(method, space, gen, seed=seed)
        sub = out / method
        if sub.exists():
            _empty(sub)  # the demo always starts fresh (its lock on the folder stays)
        run = visualize(target, units, spec.generator, restarts=restarts, seed=seed, steps=steps, config=spec.config,
                        priors=spec.priors, transforms=spec.transforms, device=device, out=sub, progress=progress,
                        method=method, batch_size=len(units) * restarts)
        jc, jp = classify(judge, run.images, spec.generator.space)
        pngs = to_uint8(convert(run.images, spec.generator.space, space), space)  # as the target sees them
        chosen, imgs = [], []
        for c, k in enumerate(run.best_restarts()):  # units are the class logits in order
            rec = dict(run.records[k])
            rec.update(method=method, class_name=classes[c], judge_class=int(jc[k]), judge_prob=float(jp[k]),
                       judge_name=classes[int(jc[k])], real_max_activation=real_max[c],
                       activation_ratio=rec["activation"] / real_max[c], image=f"{method}/{rec['image']}",
                       best_image=f"{method}/{rec['best_image']}", code=f"{method}/{rec['code']}")
            chosen.append(rec)
            imgs.append(pngs[k])
        best[method], best_images[method] = chosen, imgs

    real_pngs = to_uint8(space.encode(x01[example_idx]), space)
    rows = [list(real_pngs)] + [best_images[m] for m in DEMO_METHODS]
    caps = [[f"real {real_max[c]:.1f}" for c in range(len(classes))]] + [
        [f"{r['activation']:.1f} {'ok' if r['judge_class'] == r['channel'] else 'no'}" for r in best[m]] for m in DEMO_METHODS
    ]
    img = grid(rows, row_labels=["top real test image", "pixel AM", "DGN-AM"], col_labels=[c.split("/")[0] for c in classes],
               cell_labels=caps, cell=84, label_width=120)
    save_image(img, out / "grid.png")

    records = [r for m in DEMO_METHODS for r in best[m]]
    table = []
    for c, name in enumerate(classes):
        d, p = best["dgn-am"][c], best["pixel"][c]
        table.append({"class": f"{c} {name}", "real max": real_max[c], "DGN-AM act": d["activation"],
                      "DGN-AM / real max": d["activation_ratio"], "DGN-AM judge": f"{d['judge_name']} {d['judge_prob']:.2f}",
                      "pixel act": p["activation"], "pixel / real max": p["activation_ratio"],
                      "pixel judge": f"{p['judge_name']} {p['judge_prob']:.2f}"})
    summary = {m: {"judge_accuracy": float(np.mean([r["judge_class"] == r["channel"] for r in best[m]])),
                   "classes_recognized": int(sum(r["judge_class"] == r["channel"] for r in best[m])),
                   "mean_activation_ratio": float(np.mean([r["activation_ratio"] for r in best[m]]))} for m in DEMO_METHODS}
    seconds = time.perf_counter() - t0
    result = {"records": records, "table": table, "summary": summary, "restarts": restarts, "seed": seed,
              "seconds": round(seconds, 1), "steps": records[0]["steps"]}
    from .display import html_table
    from .report import image_section, write_page

    cols = list(table[0])
    write_page(out / "index.html", "dgnam demo: DGN-AM vs pixel AM on fmnist-cnn class logits", [
        ("Grid", image_section(out / "grid.png", "grid") + "<p>Rows: a real test image of the class, pixel-space AM, "
         "DGN-AM (fmnist-g-fc6 prior). Captions: final logit; ok when the held-out judge agrees.</p>"),
        ("Per class", html_table(table, cols)),
        ("Summary", html_table([{"method": m, **v} for m, v in summary.items()],
                               ["method", "classes_recognized", "judge_accuracy", "mean_activation_ratio"])),
        ("Settings", f"<p>{restarts} restarts per class (best final activation kept), seed {seed}, "
                     f"{result['steps']} steps, {seconds:.0f} s.</p>"),
    ])
    write_json_atomic(out / "results.json", result)  # last: it says the demo is complete
    return result
