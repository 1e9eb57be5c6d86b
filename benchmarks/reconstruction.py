"""How recognizable fmnist-g-fc6's reconstructions are: the held-out judge's accuracy on the generator's
reconstructions G(E(x)) of Fashion-MNIST test images, next to its accuracy on the originals.

    python benchmarks/reconstruction.py            # writes benchmarks/results/reconstruction.json and a PNG
"""

from __future__ import annotations

import json
import platform
import time
from pathlib import Path

import torch

from dgnam import create_model
from dgnam.data import FashionMNIST
from dgnam.evaluate import classify
from dgnam.images import grid
from dgnam.imagespace import convert, to_uint8
from dgnam.units import encode

OUT = Path(__file__).parent / "results"


def main() -> None:
    t0 = time.perf_counter()
    enc, judge, gen = create_model("fmnist-cnn"), create_model("fmnist-judge"), create_model("fmnist-g-fc6")
    x, y = FashionMNIST("test").tensors()
    space = enc.input_space
    codes = encode(enc, "fc6", space.encode(x))
    with torch.no_grad():
        rec = torch.cat([gen(codes[i : i + 1000]) for i in range(0, len(codes), 1000)])
    j_orig, _ = classify(judge, space.encode(x), space)
    j_rec, _ = classify(judge, rec, gen.space)
    e_rec, _ = classify(enc, rec, gen.space)
    rec28 = convert(rec, gen.space, space)
    mse = float((space.decode(rec28).clamp(0, 1) - x).pow(2).mean())
    res = {
        "images": len(y),
        "judge_accuracy_originals": float((j_orig == y).float().mean()),
        "judge_accuracy_reconstructions": float((j_rec == y).float().mean()),
        "target_accuracy_reconstructions": float((e_rec == y).float().mean()),
        "pixel_mse01": mse,
        "seconds": round(time.perf_counter() - t0, 1),
        "machine": f"{platform.machine()}, {torch.get_num_threads()} threads, torch {torch.__version__}",
    }
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "reconstruction.json").write_text(json.dumps(res, indent=1) + "\n")
    idx = [int((y == c).nonzero()[k]) for k in range(2) for c in range(10)]
    orig = to_uint8(space.encode(x[idx]), space)
    recs = to_uint8(rec28[idx], space)
    grid([orig[:10], recs[:10], orig[10:], recs[10:]], row_labels=["test image", "G(E(x))", "test image", "G(E(x))"],
         cell=56, label_width=90).save(OUT / "reconstruction.png")
    for k, v in res.items():
        print(f"{k:34s} {v}")


if __name__ == "__main__":
    main()
