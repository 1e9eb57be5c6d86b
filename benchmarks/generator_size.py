"""Does a generator for a 64 px encoder gain from drawing at 64 px, rather than at the zoo's 32 px upsampled?

`dgnam train generator --size 64` builds `fmnist-g-fc6` with one more stage (bilinear upsampling by 2, then a 3x3
convolution that starts as the identity), so it starts as the 32 px generator upsampled. This script checks what that
buys on a 64 px colour domain that ships offline: 64x64 crops of four scikit-image photos (astronaut, coffee, chelsea,
rocket), the class being the photo (training crops from each photo's left half, test crops from its right half). It
trains a small encoder on them (its `fc6` is the code), then the same DeePSiM recipe twice with the same seed and
budget, at 32 px (upsampled to the encoder's 64) and at 64 px, and compares:

- reconstruction of held-out crops, G(E(x)) against x at 64 px: pixel MSE, and the encoder's agreement (does the
  reconstruction get the class of its source);
- DGN-AM on the 4 class logits (published settings, 8 restarts): the mean final activation; the images (each
  class's two highest) are in `generator_size.png` beside the reconstructions.

    OMP_NUM_THREADS=1 python benchmarks/generator_size.py    # writes benchmarks/results/generator_size.json, .png

The models are trained under runs/bench/generator_size/ (a killed training resumes; delete the folder after a change
to the architecture, whose checkpoint would be refused).
"""

from __future__ import annotations

import dataclasses
import json
import platform
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import nn

from dgnam import ImageSpace, build_method, load_model, visualize
from dgnam.images import grid
from dgnam.imagespace import convert, to_uint8
from dgnam.train.generator import GeneratorConfig, train_generator
from dgnam.units import encode
from dgnam.zoo.fmnist import FMNIST_GEN_SPACE, FashionDiscriminator, FashionGenerator

OUT = Path(__file__).parent / "results"
WORK = Path("runs/bench/generator_size")
PHOTOS = ("astronaut", "coffee", "chelsea", "rocket")
SIDE, SHORT = 64, 160  # crops of SIDE px from each photo shrunk to a short side of SHORT px
TRAIN_PER_CLASS, TEST_PER_CLASS = 2000, 250
GEN_EPOCHS = 2  # 8000 crops, batch 64: 250 steps per generator
RESTARTS = 8


def crops(seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Random 64x64 crops (flipped at random) of each photo: train and test from disjoint halves of the photo
    (left half train, right half test), so that test crops are no copies of training crops."""
    import skimage.data

    rng = np.random.default_rng(seed)
    sets: dict[str, list] = {"train": [], "test": []}
    labels: dict[str, list] = {"train": [], "test": []}
    for c, name in enumerate(PHOTOS):
        img = Image.fromarray(getattr(skimage.data, name)())
        s = SHORT / min(img.size)
        a = np.asarray(img.resize((round(img.size[0] * s), round(img.size[1] * s)), Image.BILINEAR))
        half = a.shape[1] // 2
        for part, (lo, hi), n in (("train", (0, half), TRAIN_PER_CLASS), ("test", (half, a.shape[1]), TEST_PER_CLASS)):
            for _ in range(n):
                y = rng.integers(0, a.shape[0] - SIDE + 1)
                x = rng.integers(lo, hi - SIDE + 1)
                crop = a[y : y + SIDE, x : x + SIDE]
                sets[part].append(crop[:, ::-1] if rng.random() < 0.5 else crop)
                labels[part].append(c)
    t = {k: torch.from_numpy(np.stack(v).copy()).permute(0, 3, 1, 2).float() / 255 for k, v in sets.items()}
    return t["train"], torch.tensor(labels["train"]), t["test"], torch.tensor(labels["test"])


class Encoder(nn.Module):
    """A small 64 px colour classifier; ``fc6`` (ReLU, 128-d) is the code the generators invert."""

    def __init__(self, classes: int = len(PHOTOS)) -> None:
        super().__init__()
        block = lambda i, o: [nn.Conv2d(i, o, 3, padding=1), nn.BatchNorm2d(o), nn.ReLU(), nn.MaxPool2d(2)]  # noqa: E731
        self.features = nn.Sequential(*block(3, 32), *block(32, 64), *block(64, 64), *block(64, 128))  # 64 -> 4
        self.fc6 = nn.Sequential(nn.Flatten(), nn.Linear(128 * 4 * 4, 128), nn.ReLU())
        self.logits = nn.Linear(128, classes)
        self.input_space = ImageSpace(size=(SIDE, SIDE), color="RGB")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.logits(self.fc6(self.features(x)))


def train_encoder(x: torch.Tensor, y: torch.Tensor, seed: int) -> Encoder:
    torch.manual_seed(seed)
    enc = Encoder()
    opt = torch.optim.Adam(enc.parameters(), lr=1e-3)
    xe = enc.input_space.encode(x)
    for epoch in range(3):
        perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed + epoch))
        for i in range(0, len(x), 64):
            b = perm[i : i + 64]
            loss = nn.functional.cross_entropy(enc(xe[b]), y[b])
            opt.zero_grad()
            loss.backward()
            opt.step()
    return enc.eval()


def main() -> None:
    t0 = time.perf_counter()
    WORK.mkdir(parents=True, exist_ok=True)
    x_tr, y_tr, x_te, y_te = crops(seed=0)
    enc = train_encoder(x_tr, y_tr, seed=0)
    space = enc.input_space
    with torch.no_grad():
        enc_acc = float((enc(space.encode(x_te)).argmax(1) == y_te).float().mean())
    print(f"encoder: test accuracy {enc_acc:.3f} on {len(y_te)} held-out crops")
    codes_te = encode(enc, "fc6", space.encode(x_te))
    rows, recs, syn = {}, {}, {}
    spec_units = ",".join(f"logits:{c}" for c in range(len(PHOTOS)))
    for side in (32, 64):
        name = f"g{side}"
        gen_space = dataclasses.replace(FMNIST_GEN_SPACE, size=(side, side), color="RGB")
        torch.manual_seed(0)
        net = FashionGenerator(codes_te.shape[1], channels=3, size=side)
        t = time.perf_counter()
        train_generator(enc, "fc6", space, net, FashionDiscriminator(codes_te.shape[1], channels=3), gen_space,
                        x_tr, x_te, WORK, name, GeneratorConfig(epochs=GEN_EPOCHS, seed=0), data_name="skimage crops",
                        progress=False, test_name="right halves of the photos")
        train_s = time.perf_counter() - t
        gen = load_model(WORK / f"{name}.safetensors", arch="fmnist-g-fc6")  # as a user loads it: card, code stats
        with torch.no_grad():
            rec = convert(gen(codes_te), gen.space, space)
            agree = float((enc(rec).argmax(1) == y_te).float().mean())
        recs[side] = rec
        mse = float((space.decode(rec).clamp(0, 1) - x_te).pow(2).mean())
        spec = build_method("dgn-am", space, gen)
        run = visualize(enc, spec_units, spec.generator, restarts=RESTARTS, seed=0, config=spec.config,
                        priors=spec.priors, progress=False)
        top2 = [k for c in range(len(PHOTOS)) for k in sorted(
            (k for k, r in enumerate(run.records) if r["channel"] == c), key=lambda k: -run.records[k]["activation"])[:2]]
        syn[side] = to_uint8(convert(run.images[top2], gen.space, space), space)  # each class's two highest
        acts = [r["activation"] for r in run.records]
        rows[name] = {"side": side, "parameters": sum(p.numel() for p in net.parameters()),
                      "train_seconds": round(train_s, 1), "test_mse01": mse, "encoder_agreement": agree,
                      "dgnam_mean_activation": float(np.mean(acts)), "dgnam_gen_space": list(gen.space.size)}
        print(f"{name}: {rows[name]}")
    res = {"domain": f"{SIDE}x{SIDE} RGB crops of skimage {', '.join(PHOTOS)} (class = photo)",
           "train_images": len(y_tr), "test_images": len(y_te), "encoder_test_accuracy": enc_acc,
           "generator_epochs": GEN_EPOCHS, "dgnam_restarts": RESTARTS, "rows": rows,
           "seconds": round(time.perf_counter() - t0, 1),
           "machine": f"{platform.machine()} ({platform.processor() or 'cpu'}), {torch.get_num_threads()} threads, "
                      f"torch {torch.__version__}"}
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "generator_size.json").write_text(json.dumps(res, indent=1) + "\n")
    idx = [int((y_te == c).nonzero()[k]) for c in range(len(PHOTOS)) for k in range(2)]
    to_img = lambda t: to_uint8(t, space)  # noqa: E731
    grid([to_img(space.encode(x_te[idx])), to_img(recs[32][idx]), to_img(recs[64][idx]),
          syn[32], syn[64]],
         row_labels=["test crop", "G32(E(x)), up", "G64(E(x))", "DGN-AM G32, 2", "DGN-AM G64, 2"],
         col_labels=[f"{PHOTOS[i // 2]}" for i in range(len(idx))], cell=96, label_width=120
         ).save(OUT / "generator_size.png")
    print(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
