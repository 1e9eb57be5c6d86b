"""Evaluation metrics on constructed cases with known answers, and `evaluate_run` end to end on a tiny run."""

import json
import re
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from dgnam import DgnamError, visualize
from dgnam.evaluate import (Judge, RealData, activation_percentile, evaluate_run, frechet_distance,
                            mean_pairwise_distance, nearest_neighbors)
from dgnam.units import encode


def test_frechet_identical_sets_is_zero_and_shift_is_squared_distance():
    g = torch.Generator().manual_seed(0)
    a = torch.randn(400, 5, generator=g)
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-6)
    shift = torch.tensor([3.0, 0, 0, 4.0, 0])
    # same covariance, means 5 apart: the distance is |shift|^2 = 25
    assert frechet_distance(a, a + shift) == pytest.approx(25.0, rel=1e-6)
    # a wider spread costs more than a narrower one
    assert frechet_distance(a, 3 * a) > frechet_distance(a, 1.5 * a) > 0
    with pytest.raises(DgnamError, match="at least 2"):
        frechet_distance(a[:1], a)


def test_frechet_of_near_identical_images_is_finite():
    # Judge features of two near-identical synthesized images and 48 real ones (32 of the dimensions, saved from a run
    # where scipy's sqrtm of S_a S_b returned NaN and evaluation.json got a bare NaN). Two images give a rank-1
    # covariance S_a = u u^T / 2 (u their difference), so tr((S_a S_b)^(1/2)) = sqrt(u^T S_b u / 2) exactly.
    z = np.load(Path(__file__).parent / "data" / "frechet_near_singular.npz")
    synth, real = torch.from_numpy(z["synth"]).double(), torch.from_numpy(z["real"]).double()
    s_b = torch.cov(real.T)
    u = synth[0] - synth[1]
    want = float(((synth.mean(0) - real.mean(0)) ** 2).sum() + (u @ u) / 2 + s_b.trace() - 2 * torch.sqrt(u @ s_b @ u / 2))
    assert frechet_distance(synth, real) == pytest.approx(want, rel=1e-9)


def test_frechet_of_few_images_in_many_dimensions_is_exact():
    """Two images in 1280-d judge features (an ImageNet run's unit): the closed form of the rank-1 case holds to
    float precision (the eigendecomposition form was off by 3e-8 and took about 1 s a unit)."""
    g = torch.Generator().manual_seed(3)
    a = torch.randn(2, 1280, generator=g).double()
    b = torch.randn(300, 1280, generator=g).double() * torch.rand(1280, generator=g).double()
    s_b, u = torch.cov(b.T), a[0] - a[1]
    want = float(((a.mean(0) - b.mean(0)) ** 2).sum() + (u @ u) / 2 + s_b.trace() - 2 * torch.sqrt(u @ s_b @ u / 2))
    assert frechet_distance(a, b) == pytest.approx(want, rel=1e-12)
    assert frechet_distance(b, a) == pytest.approx(want, rel=1e-12)  # symmetric


def test_frechet_gaussian_closed_form():
    # 1-d Gaussians N(0, 1) and N(0, 4): (s1 - s2)^2 = (1 - 2)^2 = 1
    g = torch.Generator().manual_seed(1)
    a = torch.randn(200_000, 1, generator=g)
    b = 2 * torch.randn(200_000, 1, generator=g)
    assert frechet_distance(a, b) == pytest.approx(1.0, abs=0.03)


def test_nearest_neighbor_of_a_copy_is_zero():
    g = torch.Generator().manual_seed(2)
    train = torch.randn(50, 8, generator=g)
    query = torch.cat([train[7:8], train[20:21] + 0.01])
    d, i = nearest_neighbors(query, train, k=2)
    assert d[0, 0] == 0 and i[0, 0] == 7
    assert i[1, 0] == 20 and d[1, 0] == pytest.approx(0.01 * 8 ** 0.5, rel=1e-3)
    assert (d[:, 1] > d[:, 0]).all()
    d_self, i_self = nearest_neighbors(train, train, exclude_self=True)
    assert (d_self[:, 0] > 0).all() and (i_self[:, 0] != torch.arange(50)).all()
    # asked for as many neighbours as there are rows, a query's own row came back last, at distance 0
    d_all, i_all = nearest_neighbors(train[:4], train[:4], k=4, exclude_self=True, batch_size=3)
    assert i_all.shape == (4, 3) and (i_all != torch.arange(4)[:, None]).all() and (d_all > 0).all()


def test_activation_percentile_and_pairwise_distance():
    real = torch.arange(1.0, 101.0)  # 1..100
    p = activation_percentile(torch.tensor([0.0, 50.0, 100.0, 1000.0]), real)
    assert p.tolist() == [0.0, 49.5, 99.5, 100.0]  # a tie counts half: only above every real image is 100
    # a ReLU unit that never fires: an image that does not fire it either is not above all real images
    assert activation_percentile(torch.tensor([0.0, 1.0]), torch.zeros(50)).tolist() == [50.0, 100.0]
    pts = torch.tensor([[0.0, 0.0], [3.0, 4.0]])
    assert mean_pairwise_distance(pts) == pytest.approx(5.0)
    assert mean_pairwise_distance(pts[:1]) == 0.0
    square = torch.tensor([[0.0, 0], [1, 0], [0, 1], [1, 1]])
    assert mean_pairwise_distance(square) == pytest.approx((4 * 1 + 2 * 2 ** 0.5) / 6)


def test_evaluate_run_on_tiny_run(tiny_model, tiny_gen, tmp_path):
    judge = tiny_model  # any classifier with an input space; a second copy plays the judge here
    g = torch.Generator().manual_seed(3)
    real = RealData(torch.rand(60, 1, 12, 12, generator=g), torch.arange(60) % 5, name="random")
    out = tmp_path / "run"
    visualize(tiny_model, "logits:0,1", tiny_gen, restarts=3, steps=10, out=out, progress=False)
    ev = evaluate_run(out, judge=judge, model=tiny_model, data=real)
    s = ev["summary"]
    assert s["images"] == 6 and s["units"] == 2 and s["restarts_per_unit"] == 3
    assert s["fid"] is not None and s["fid"] >= 0 and s["diversity"] > 0
    assert 0 <= s["judge_accuracy"] <= 1
    recs = json.loads((out / "results.json").read_text())["records"]
    assert all({"judge_class", "activation_percentile", "nn_ratio", "png_activation"} <= set(r) for r in recs)
    # the activation on the saved PNG is close to the optimizer's (8-bit quantization only)
    for r in recs:
        assert r["png_activation"] == pytest.approx(r["activation"], abs=0.05 * (1 + abs(r["activation"])))
    assert (out / "nearest.png").exists() and (out / "evaluation.json").exists()
    assert Judge(judge).layer == "fc"  # the deepest 1-d layer before the output


def test_evaluate_scores_in_eval_mode_and_gives_the_modules_back(tiny_model, tiny_gen, tmp_path):
    """A target and a judge passed in training mode are scored as in eval mode (BatchNorm's running statistics, as
    the run optimized them), and come back in training mode with BatchNorm's statistics untouched."""
    import copy

    g = torch.Generator().manual_seed(3)
    real = RealData(torch.rand(40, 1, 12, 12, generator=g), torch.arange(40) % 5, name="random")
    out = tmp_path / "run"
    visualize(tiny_model, "logits:0,1", tiny_gen, restarts=2, steps=5, out=out, progress=False)
    judge = copy.deepcopy(tiny_model)
    ref = evaluate_run(out, judge=judge, model=tiny_model, data=real, write=False)
    tiny_model.train(), judge.train()
    stats = tiny_model.features[1].running_mean.clone()
    ev = evaluate_run(out, judge=judge, model=tiny_model, data=RealData(real.images, real.labels), write=False)
    assert tiny_model.training and judge.training and judge.features[1].training
    assert torch.equal(tiny_model.features[1].running_mean, stats)
    assert json.dumps(ev["units"]) == json.dumps(ref["units"])  # activations, judge, Fréchet: all as in eval mode
    assert json.dumps(ev["summary"]) == json.dumps(ref["summary"])
    # on a named device (the CPU here; `dgnam evaluate --device`): the same figures, the models given back as given
    on = evaluate_run(out, judge=judge, model=tiny_model, data=RealData(real.images, real.labels), write=False,
                      device="cpu")
    assert json.dumps(on["units"]) == json.dumps(ref["units"]) and tiny_model.training and judge.training
    with pytest.raises(DgnamError, match="unknown device"):
        evaluate_run(out, judge=judge, model=tiny_model, data=real, write=False, device="gpu0")


def test_evaluate_matches_real_classes_by_name(tiny_model, tiny_gen, tmp_path):
    """An image folder's labels number its sorted sub-folders; the class reference must follow the names."""
    from dgnam.evaluate import FID_REAL_PER_CLASS, load_run_images

    g = torch.Generator().manual_seed(5)
    x, labels = torch.rand(60, 1, 12, 12, generator=g), torch.arange(60) % 5
    x[labels == 4] *= 0.2  # the folder's label 4 ("a", the judge's class 0) looks different from the rest
    out = tmp_path / "run"
    visualize(tiny_model, "logits:0", tiny_gen, restarts=3, steps=5, out=out, progress=False)
    judge = Judge(tiny_model)
    recs = json.loads((out / "results.json").read_text())["records"]
    x01, space = load_run_images(out, recs)
    feats = judge.features(space.encode(x01), space)
    real = RealData(x, labels, classes=["e", "d", "c", "b", "A"])  # names match case and punctuation aside
    real_feats = judge.features(real.space.encode(x), real.space)
    right = frechet_distance(feats, real_feats[labels == 4][:FID_REAL_PER_CLASS])
    wrong = frechet_distance(feats, real_feats[labels == 0][:FID_REAL_PER_CLASS])
    assert abs(right - wrong) > 1e-3 * right
    ev = evaluate_run(out, judge=tiny_model, model=tiny_model, data=real)
    assert ev["units"][0]["fid"] == pytest.approx(right, rel=1e-5)
    assert ev["summary"]["fid"] == pytest.approx(right, rel=1e-5) and "intended" in ev["summary"]["fid_reference"]
    # a folder without the class: no per-class reference, and the set is compared with all real images, saying why
    ev = evaluate_run(out, judge=tiny_model, model=tiny_model,
                      data=RealData(x, labels, classes=["v", "w", "x", "y", "z"]))
    assert ev["units"][0]["fid"] is None and "fewer than 2 real images of class(es) a" in ev["summary"]["fid_reference"]


def test_evaluate_finds_a_memorized_image(tiny_model, tiny_gen, tmp_path):
    """A 'synthesized' image that is a training image has nearest-neighbour ratio 0."""
    from dgnam.images import save_png
    from dgnam.imagespace import to_uint8

    g = torch.Generator().manual_seed(4)
    x = (torch.rand(40, 1, 12, 12, generator=g) * 255).round() / 255  # exactly representable in a PNG
    # a seeded sample of a larger set: records name the training image by its index in the set, not in the sample
    real = RealData(x, torch.arange(40) % 5, indices=torch.arange(100, 140))
    out = tmp_path / "copy"
    visualize(tiny_model, "logits:0", None, restarts=2, steps=1, out=out, progress=False)
    rec0 = json.loads((out / "results.json").read_text())["records"][0]
    save_png(to_uint8(real.space.encode(x[5:6]), real.space)[0], out / rec0["image"], scale=8)
    ev = evaluate_run(out, judge=tiny_model, model=tiny_model, data=real)
    assert ev["summary"]["nn_ratio_min"] == pytest.approx(0.0, abs=1e-5)  # features of other batch shapes round apart
    recs = json.loads((out / "results.json").read_text())["records"]
    assert recs[0]["nn_index"] == 105
    # the typical real-to-real distance: each real image against all the others (the pool a query searches)
    feats = Judge(tiny_model).features(real.space.encode(x), real.space)
    d, _ = nearest_neighbors(feats, feats, exclude_self=True)
    assert ev["summary"]["real_nn_median"] == pytest.approx(float(d[:, 0].median()), rel=1e-5)
    # what these numbers cannot say is said: the judge is the target, 2 images per unit, a sampled search pool
    caveats = " | ".join(ev["summary"]["caveats"])
    assert "judge is the target itself" in caveats and "from 2 images per unit" in caveats
    assert "seeded sample of 40" in caveats
    other = _tiny_net(list("abcde"))  # another network whose file has the target's name is not the target
    tiny_model.zoo_name, other.zoo_name = "tiny", "tiny"
    other.dgnam_source = {"spec": "/elsewhere/tiny.safetensors", "arch": "tiny"}
    try:
        notes = evaluate_run(out, judge=other, model=tiny_model, data=real, write=False)["summary"]["caveats"]
    finally:
        del tiny_model.zoo_name
    assert not any("judge is the target" in c for c in notes)
    # the target loaded twice (`--model mynet:make --judge mynet:make`: no file to hash) is still the target
    twin = _tiny_net(list("abcde"))
    twin.load_state_dict(tiny_model.state_dict())
    notes = evaluate_run(out, judge=twin, model=tiny_model, data=real, write=False)["summary"]["caveats"]
    assert any("judge is the target" in c for c in notes)
    full = RealData(x, torch.arange(40) % 5)  # the whole set: no sampling caveat
    assert not any("seeded sample" in c for c in evaluate_run(out, judge=tiny_model, model=tiny_model, data=full,
                                                              write=False)["summary"]["caveats"])


def test_evaluate_run_errors(tmp_path):
    with pytest.raises(DgnamError, match="not a finished run"):
        evaluate_run(tmp_path)
    # a results.json of another kind (the old `dgnam sample` layout: no unit per record, no model in its config)
    (tmp_path / "results.json").write_text(json.dumps({"config": {"lr": 1.0}, "records": [
        {"sample": 0, "condition": "Bag", "image": "images/s000.png"}]}))
    with pytest.raises(DgnamError, match="without a unit"):
        evaluate_run(tmp_path)
    (tmp_path / "results.json").write_text(json.dumps({"config": {}, "records": [
        {"unit": "logits:0", "image": "images/s000.png"}]}))
    with pytest.raises(DgnamError, match="pass --model"):
        evaluate_run(tmp_path)
    for broken in ([1, 2], {"config": [], "records": []}, {"config": {}, "records": {"a": 1}}):
        (tmp_path / "results.json").write_text(json.dumps(broken))
        with pytest.raises(DgnamError, match="not a run.s|not a list"):
            evaluate_run(tmp_path)
    from dgnam.evaluate import load_real

    for n in (1, -5):
        with pytest.raises(DgnamError, match=f"--real {n}: sample at least 2"):
            load_real(None, n=n)
    # a folder of one image: its only neighbour was itself, so the typical real distance read 0 ("an exact copy")
    from PIL import Image

    (tmp_path / "one" / "a").mkdir(parents=True)
    Image.fromarray(np.full((12, 12), 90, np.uint8)).save(tmp_path / "one" / "a" / "0.png")
    with pytest.raises(DgnamError, match="has 1 image: the evaluation compares with at least 2 real images"):
        load_real(str(tmp_path / "one"), size=(12, 12))


# --------------------------------------------------------------------------------------------------------------------
# The judge must know the target's classes; the defaults are Fashion-MNIST's; incomplete runs; the table's n/a


def _tiny_net(classes, outputs=None):
    """A tiny classifier (conftest's TinyNet) with ``classes`` (or ``outputs`` unnamed ones) on the 12x12 gray SPACE."""
    from conftest import SPACE, TinyNet
    from torch import nn

    torch.manual_seed(0)
    m = TinyNet()
    n = len(classes) if classes else outputs
    m.logits = nn.Linear(16, n)
    m.input_space, m.classes = SPACE, list(classes) if classes else None
    return m.eval()


def _random_real(n=40, classes=None):
    g = torch.Generator().manual_seed(7)
    return RealData(torch.rand(n, 1, 12, 12, generator=g), torch.arange(n) % 5, name="random", classes=classes)


def test_evaluate_refuses_a_judge_of_other_classes(tiny_model, tiny_gen, tmp_path):
    """Class-unit metrics map the target's class to the judge's by name (by index only where names are missing and
    the counts agree); a judge of other classes is a one-line error naming --judge, never an index mapping."""
    out = tmp_path / "run"
    visualize(tiny_model, "logits:0,1", tiny_gen, restarts=2, steps=3, out=out, progress=False)
    other = _tiny_net(["v", "w", "x", "y", "z"])  # as many classes, other names: "a" is no "v"
    with pytest.raises(DgnamError, match=r"the judge TinyNet knows 5 classes, the target TinyNet 5 classes \(a, b "
                                         r"not among the judge's\): give --judge"):
        evaluate_run(out, judge=other, model=tiny_model, data=_random_real(), write=False)
    with pytest.raises(DgnamError, match="knows 3 classes.*5 classes.*--judge"):  # no names, and another count
        evaluate_run(out, judge=_tiny_net(None, outputs=3), model=tiny_model, data=_random_real(), write=False)
    # the same names in another order: by name (the judge's class 4 is the target's "a")
    rev = _tiny_net(["e", "d", "c", "b", "a"])
    ev = evaluate_run(out, judge=rev, model=tiny_model, data=_random_real(), write=False)
    assert [u["class"] for u in ev["units"]] == [4, 3]
    # units that are not class units need no class match
    chan = tmp_path / "chan"
    visualize(tiny_model, "features.3:0", tiny_gen, restarts=2, steps=3, out=chan, progress=False)
    ev = evaluate_run(chan, judge=other, model=tiny_model, data=_random_real(), write=False)
    assert ev["summary"]["judge_accuracy"] is None and "class" not in ev["units"][0]


def test_an_imagenet_target_is_not_judged_by_a_fashion_mnist_judge(tmp_path):
    """An ImageNet class must not be scored as the Fashion-MNIST class of the same index (class 1 is no Trouser)."""
    from dgnam.data import FASHION_MNIST_CLASSES
    from dgnam.zoo.imagenet import imagenet_classes

    names = imagenet_classes()
    target = _tiny_net(names) if names else _tiny_net(None, outputs=1000)
    judge = _tiny_net(FASHION_MNIST_CLASSES)
    out = tmp_path / "run"
    visualize(target, "logits:1", None, restarts=2, steps=1, out=out, progress=False)
    with pytest.raises(DgnamError, match="knows 10 Fashion-MNIST classes.*1000 .*--judge") as e:
        evaluate_run(out, judge=judge, model=target, data=_random_real(), write=False)
    if names:  # the suggestion is the zoo's ImageNet judge
        assert "ImageNet classes (goldfish not among the judge's): give --judge efficientnet-lite2" in str(e.value)


def test_of_class_rejects_a_class_the_judge_does_not_have():
    real = _random_real(classes=["a", "b", "c", "d", "e"])
    with pytest.raises(DgnamError, match="not one of the judge's 2 classes"):  # was an IndexError
        real.of_class(7, ["a", "b"])


def test_classes_whose_names_differ_only_by_punctuation_are_told_apart():
    """Matching by name sets case and punctuation aside (a folder T-shirt_top is the class T-shirt/top), but C, C#
    and C++ (and + and -, whose keys are empty) are three classes: each matched the first, so one class's real images
    were another's Fréchet reference and the judge scored its images against another class."""
    from dgnam.evaluate import judge_classes_of
    from dgnam.units import Unit

    names = ["C", "C#", "C++", "+", "-"]
    real = _random_real(classes=["-", "+", "C++", "C#", "C"])  # label k is class k of the folder: 4 - k of names
    for c in range(5):
        assert real.of_class(c, names).tolist() == (real.labels == 4 - c).tolist(), names[c]
    folder = _random_real(classes=["T-shirt_top", "Trouser", "c", "d", "e"])
    assert folder.of_class(0, ["T-shirt/top", "Trouser"]).tolist() == (folder.labels == 0).tolist()
    target, judge = _tiny_net(names), _tiny_net(list(reversed(names)))
    units = [Unit("logits", c) for c in range(5)]
    assert judge_classes_of(target, judge, units, [True] * 5) == [4, 3, 2, 1, 0]


def test_evaluate_defaults_apply_to_fashion_mnist_targets_only(tiny_model, tiny_gen, tmp_path):
    """Fashion-MNIST and fmnist-judge are the defaults of Fashion-MNIST targets; another target must give --data
    (before anything slow runs) and a judge."""
    out = tmp_path / "run"
    visualize(tiny_model, "logits:0", tiny_gen, restarts=2, steps=2, out=out, progress=False)
    with pytest.raises(DgnamError, match="does not take Fashion-MNIST images.*give --data FOLDER"):
        evaluate_run(out, judge=tiny_model, model=tiny_model)
    with pytest.raises(DgnamError, match="no default judge for the target TinyNet: give --judge"):
        evaluate_run(out, model=tiny_model, data=_random_real())


def test_judge_layer_of_a_judge_that_pools_functionally(tiny_model, tiny_gen, tmp_path):
    """EfficientNet pools with F.adaptive_avg_pool2d: its only one-dimensional layer before the output is a dropout,
    taken as the features; a judge without any names --judge-layer, which evaluate_run takes as judge_layer."""
    from conftest import SPACE
    from torch import nn

    class Pooled(nn.Module):
        def __init__(self, dropout: bool):
            super().__init__()
            self.conv = nn.Conv2d(1, 8, 3)
            self.drop = nn.Dropout(0.5) if dropout else None
            self.fc = nn.Linear(8, 5)

        def forward(self, x):
            h = torch.flatten(torch.nn.functional.adaptive_avg_pool2d(self.conv(x).relu(), 1), 1)
            return self.fc(self.drop(h) if self.drop is not None else h)

    torch.manual_seed(0)
    with_drop, plain = Pooled(True), Pooled(False)
    for m in (with_drop, plain):
        m.input_space, m.classes = SPACE, ["a", "b", "c", "d", "e"]
    assert Judge(with_drop.eval()).layer == "drop"
    with pytest.raises(DgnamError, match="pass --judge-layer") as e:
        Judge(plain.eval())
    assert "--embed-layer" not in str(e.value)
    assert Judge(plain, layer="conv").layer == "conv"
    out = tmp_path / "run"
    visualize(tiny_model, "logits:0", tiny_gen, restarts=2, steps=2, out=out, progress=False)
    ev = evaluate_run(out, judge=plain, model=tiny_model, data=_random_real(), judge_layer="conv", write=False)
    assert ev["settings"]["judge_layer"] == "conv"
    with pytest.raises(DgnamError, match="--judge-layer 'cnv': the judge has no such layer"):
        evaluate_run(out, judge=plain, model=tiny_model, data=_random_real(), judge_layer="cnv", write=False)
    # a ResNet's pooling module, (C, 1, 1) per image, is its penultimate features: the judge's layer and the facets'
    # clustering layer, as a one-dimensional layer would be (both were refused, naming an option to pass)
    from dgnam.units import default_embed_layer, encode

    resnet_like = nn.Sequential(nn.Conv2d(1, 8, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 5))
    resnet_like.input_space, resnet_like.classes = SPACE, ["a", "b", "c", "d", "e"]
    x = SPACE.encode(torch.rand(3, *SPACE.shape))
    assert Judge(resnet_like.eval()).layer == "2" == default_embed_layer(resnet_like, x)
    assert torch.allclose(Judge(resnet_like).features(x, SPACE), encode(resnet_like, "3", x))  # = the flattened


def _truncate(out, keep: int) -> None:
    """A run killed after ``keep`` of its images (records are written after each batch)."""
    doc = json.loads((out / "results.json").read_text())
    doc["records"] = doc["records"][:keep]
    (out / "results.json").write_text(json.dumps(doc))


def test_evaluate_refuses_an_incomplete_run_unless_partial(tiny_model, tiny_gen, tmp_path):
    out = tmp_path / "run"
    visualize(tiny_model, "logits:0,1", tiny_gen, restarts=2, steps=2, out=out, progress=False)
    ev = evaluate_run(out, judge=tiny_model, model=tiny_model, data=_random_real())
    assert ev["summary"]["complete"] and ev["summary"]["images_expected"] == 4 and ev["records_scored"] == 4
    _truncate(out, 3)
    with pytest.raises(DgnamError, match=r"has 3 of 4 images: finish it with `dgnam visualize \.\.\. --resume`"):
        evaluate_run(out, judge=tiny_model, model=tiny_model, data=_random_real())
    ev = evaluate_run(out, judge=tiny_model, model=tiny_model, data=_random_real(), partial=True)
    assert not ev["summary"]["complete"] and ev["summary"]["images_expected"] == 4
    written = json.loads((out / "evaluation.json").read_text())
    assert written["records_scored"] == 3 and written["summary"]["images"] == 3 and not written["summary"]["complete"]


def _image_folder(root, classes=("a", "b", "c", "d", "e"), per_class=4):
    from PIL import Image

    g = torch.Generator().manual_seed(8)
    for c in classes:
        (root / c).mkdir(parents=True)
        for i in range(per_class):
            a = (torch.rand(12, 12, generator=g) * 255).byte().numpy()
            Image.fromarray(a).save(root / c / f"{i}.png")
    return root


def tiny_judge():
    """``--judge test_evaluate:tiny_judge`` / ``--model``: a tiny classifier with classes a..e on the 12x12 SPACE."""
    return _tiny_net(["a", "b", "c", "d", "e"])


def test_cli_evaluate_shows_n_a_and_marks_a_partial_run(tiny_model, tiny_gen, tmp_path, monkeypatch):
    """Metrics that do not apply read n/a (not None) in the table, the summary line and report.html; a run scored
    with --partial says so in the output and the report, which also says how many images it scored."""
    from typer.testing import CliRunner

    from dgnam.cli import app

    monkeypatch.chdir(tmp_path)
    data = _image_folder(tmp_path / "real")
    out = tmp_path / "run"
    visualize(tiny_judge(), "features.3:0,1", tiny_gen, restarts=2, steps=2, out=out, progress=False)
    args = ["evaluate", str(out), "--model", "test_evaluate:tiny_judge", "--judge", "test_evaluate:tiny_judge",
            "--data", str(data), "--real", "20"]
    r = CliRunner().invoke(app, args)
    assert r.exit_code == 0, r.output
    assert "None" not in r.output and "judge accuracy n/a" in r.output and "n/a" in r.output.split("Fréchet")[0]
    page = (out / "report.html").read_text()
    assert "None" not in page and "<td>n/a</td>" in page and "Scored 4 of the run's 4 images" in page
    _truncate(out, 3)
    r = CliRunner().invoke(app, args)
    assert r.exit_code != 0 and "3 of 4 images" in str(r.exception) and "--partial" in str(r.exception)
    r = CliRunner().invoke(app, args + ["--partial"])
    assert r.exit_code == 0, r.output
    assert "INCOMPLETE RUN: scored 3 of 4 images" in r.output
    # the loud line and the notes are on stderr (they were on stdout, among the results a script reads); the
    # summary line on stdout still says it
    assert r.stderr.startswith("INCOMPLETE RUN") and "INCOMPLETE RUN" in r.stdout.splitlines()[-2], r.stdout
    assert not any(ln.startswith(("INCOMPLETE", "note:")) for ln in r.stdout.splitlines()), r.stdout
    # in colour on a terminal, plain with NO_COLOR (no-color.org): it was yellow either way
    assert "\x1b[" in CliRunner().invoke(app, args + ["--partial"], color=True).stderr
    r = CliRunner().invoke(app, args + ["--partial"], color=True, env={"NO_COLOR": "1"})
    assert r.exit_code == 0 and "INCOMPLETE RUN" in r.stderr and "\x1b[" not in r.stderr, r.stderr
    page = (out / "report.html").read_text()
    assert "INCOMPLETE RUN" in page and "Scored 3 of the run's 4 images" in page


def test_report_shows_the_minimized_units_figures(tiny_gen, tmp_path, monkeypatch):
    """The summary's activation figures leave minimized units out; report.html shows theirs beside them (it showed
    only the caveat pointing at evaluation.json)."""
    from typer.testing import CliRunner

    from dgnam.cli import app

    monkeypatch.chdir(tmp_path)
    out = tmp_path / "run"
    visualize(tiny_judge(), "-logits:1,logits:2", tiny_gen, restarts=2, steps=5, out=out, progress=False)
    r = CliRunner().invoke(app, ["evaluate", str(out), "--model", "test_evaluate:tiny_judge", "--judge",
                                 "test_evaluate:tiny_judge", "--data", str(_image_folder(tmp_path / "real")),
                                 "--real", "20"])
    assert r.exit_code == 0, r.output
    page = (out / "report.html").read_text()
    minimized = json.loads((out / "evaluation.json").read_text())["summary"]["minimized"]
    figures = page.split("image(s) of minimized units, whose percentile should be low")[1].split("</table>")[0]
    assert f"<td>{minimized['activation_percentile']:.3f}</td>" in figures and "<td>2</td>" in figures


def test_evaluate_refuses_a_target_whose_weights_changed_since_the_run(tmp_path, tiny_gen):
    """The run records its target's weights digest; a file retrained in place is not scored as if it made the run."""
    from dgnam.weights import save_safetensors
    from dgnam.zoo import load_model
    from dgnam.zoo.fmnist import FashionCNN

    path = tmp_path / "net.safetensors"
    torch.manual_seed(0)
    save_safetensors(FashionCNN().state_dict(), path)
    net = load_model(str(path), "fmnist-cnn")
    out = tmp_path / "run"
    visualize(net, "logits:0", None, steps=2, out=out, progress=False)
    real = RealData(torch.rand(30, 1, 28, 28), torch.arange(30) % 10, name="random")
    judge = load_model(str(path), "fmnist-cnn")
    evaluate_run(out, judge=judge, data=real, write=False)  # reloaded from the recorded file: the same weights
    torch.manual_seed(1)
    save_safetensors(FashionCNN().state_dict(), path)  # retrained in place
    with pytest.raises(DgnamError, match="other weights now"):
        evaluate_run(out, judge=judge, data=real, write=False)


def test_the_last_module_of_a_sequential_counts_as_a_class_unit():
    """README's `classifier.3:0,1,2` on a Sequential is a class score: judge accuracy applies to it."""
    from dgnam.evaluate import _class_units
    from dgnam.imagespace import ImageSpace

    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3))
    net.input_space = ImageSpace(size=(4, 4), color="GRAY")
    from dgnam.units import parse_units

    units = parse_units("3:0,1,1:0")
    assert _class_units(net, units) == [True, True, False]


def test_a_fashion_mnist_default_chosen_on_the_format_alone_is_said():
    """A 28x28 gray 10-output model without class names gets Fashion-MNIST's data and judge (a user's own classifier
    usually is one), but an MNIST-digits net looks the same: the evaluation says what it assumed."""
    from torch import nn

    from dgnam.data import FASHION_MNIST_CLASSES
    from dgnam import ImageSpace
    from dgnam.evaluate import _assumed_fashion_mnist, _class_set

    net = nn.Sequential(nn.Flatten(), nn.Linear(784, 10))
    net.input_space = ImageSpace(size=(28, 28), color="GRAY")
    assert _class_set(net) == "Fashion-MNIST"
    note = _assumed_fashion_mnist(net, "Fashion-MNIST", True, True)
    assert "the real images and the judge are Fashion-MNIST's" in note and "--data and --judge" in note
    assert "the judge are" in _assumed_fashion_mnist(net, "Fashion-MNIST", False, True)
    assert _assumed_fashion_mnist(net, "Fashion-MNIST", False, False) is None  # both given: nothing assumed
    net.classes = list(FASHION_MNIST_CLASSES)  # named: known, not assumed
    assert _assumed_fashion_mnist(net, _class_set(net), True, True) is None


def test_a_resume_knows_every_field_evaluate_adds(tiny_model, tmp_path):
    """run.EVALUATION_FIELDS is what a resume drops from the records: it must be exactly what evaluate writes."""
    from dgnam.run import EVALUATION_FIELDS

    out = tmp_path / "run"
    before = visualize(tiny_model, "logits:0", None, restarts=2, steps=2, out=out, progress=False).records
    real = _random_real()
    real.files = [f"{i}.png" for i in range(len(real.labels))]  # as an image folder's: nn_files too
    evaluate_run(out, judge=tiny_model, model=tiny_model, data=real)
    after = json.loads((out / "results.json").read_text())["records"]
    assert set(after[0]) - set(before[0]) == set(EVALUATION_FIELDS)


def test_an_image_folders_nearest_training_images_are_named_by_file(tiny_model, tmp_path):
    """Records and nearest.png named a folder's nearest training image by its index ("#6"), which sends the user
    counting files: they name the file now (``nn_files``), as facets' ``top_files`` do."""
    from PIL import Image

    from dgnam.images import save_png

    rng = np.random.default_rng(0)
    for c in ("a", "b"):
        (tmp_path / "real" / c).mkdir(parents=True)
        for i in range(5):
            Image.fromarray(rng.integers(0, 256, (12, 12), dtype=np.uint8)).save(tmp_path / "real" / c / f"{i}.png")
    out = tmp_path / "run"
    visualize(tiny_model, "logits:0", None, restarts=2, steps=1, out=out, progress=False)
    rec0 = json.loads((out / "results.json").read_text())["records"][0]
    copied = np.asarray(Image.open(tmp_path / "real" / "b" / "3.png"))
    save_png(copied, out / rec0["image"], scale=8)  # the synthesized image is a copy of b/3.png
    evaluate_run(out, judge=tiny_model, model=tiny_model, data=tmp_path / "real")
    recs = json.loads((out / "results.json").read_text())["records"]
    assert recs[0]["nn_files"][0] == str(Path("b") / "3.png") and recs[0]["nn_distance"] == pytest.approx(0, abs=1e-5)
    assert all(len(r["nn_files"]) == len(r["nn_indices"]) for r in recs) and (out / "nearest.png").exists()
    real = RealData(torch.rand(6, 1, 12, 12), torch.arange(6) % 2)  # data given as tensors: no files to name
    evaluate_run(out, judge=tiny_model, model=tiny_model, data=real, write=True)
    assert "nn_files" not in json.loads((out / "results.json").read_text())["records"][0]


def test_a_judge_without_names_takes_a_named_folders_images_by_the_targets_names(tiny_model, tiny_gen, tmp_path):
    """A folder's labels number its sorted sub-folders. A judge without names is matched to the target by index, so
    its class c is the target's class c: the real images of that class are the folder's of the target's name c (by
    the judge's index they were another class's)."""
    out = tmp_path / "run"
    visualize(tiny_model, "logits:0", tiny_gen, restarts=2, steps=2, out=out, progress=False)
    folder_order = ["e", "d", "c", "b", "a"]  # the target's class 0 ("a") is the folder's label 4
    real = _random_real(classes=folder_order)
    ev = evaluate_run(out, judge=_tiny_net(None, outputs=5), model=tiny_model, data=real, write=False)
    named = evaluate_run(out, judge=_tiny_net(list("abcde")), model=tiny_model, data=real, write=False)
    assert ev["units"][0]["fid"] == pytest.approx(named["units"][0]["fid"])
    assert ev["summary"]["fid_reference"] == named["summary"]["fid_reference"]


def test_an_imagenet_folder_named_by_wordnet_ids_gives_each_class_its_images():
    from dgnam.zoo.imagenet import imagenet_classes, imagenet_wnids

    names = imagenet_classes()
    if names is None or imagenet_wnids() is None:
        pytest.skip("needs the imagenet-classes package")
    real = RealData(torch.rand(4, 3, 8, 8), torch.tensor([0, 0, 1, 1]), classes=["n01443537", "n07920052"])
    assert real.of_class(967, list(names)).tolist() == [False, False, True, True]  # espresso
    assert real.of_class(1, list(names)).tolist() == [True, True, False, False]  # goldfish
    assert not real.of_class(5, list(names)).any()


def test_a_conv_judge_layer_is_averaged_over_its_positions(tiny_model):
    """A conv layer's flat C*H*W features made the Fréchet covariances take minutes and tens of GB."""
    from conftest import SPACE

    x = SPACE.encode(torch.rand(6, 1, 12, 12, generator=torch.Generator().manual_seed(0)))
    f = Judge(tiny_model, layer="features.3").features(x, SPACE)
    full = encode(tiny_model, "features.3", x, pool=False).view(6, 8, -1)
    assert f.shape == (6, 8) and torch.allclose(f, full.mean(2), atol=1e-6)
    # a (N, C, L) or (N, T, D) layer: which axis is the position is unknown, and flat it is the blow-up again
    seq = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3), torch.nn.Flatten(2), torch.nn.ReLU()).eval()
    with pytest.raises(DgnamError, match=r"layer '2' outputs \(4, 100\) per image: pick a layer of"):
        encode(seq, "2", torch.rand(2, 1, 12, 12), pool=True)


def test_real_images_that_are_mostly_copies_leave_nn_ratio_undefined(tiny_model, tmp_path):
    """With most real images duplicated, the typical real-to-real distance is 0: nn_ratio divided by it (a
    ZeroDivisionError traceback); it is undefined now, and said so."""
    g = torch.Generator().manual_seed(1)
    x = torch.rand(20, 1, 12, 12, generator=g).repeat(2, 1, 1, 1)
    real = RealData(x, torch.arange(40) % 5)
    out = tmp_path / "run"
    visualize(tiny_model, "logits:0", None, restarts=2, steps=1, out=out, progress=False)
    ev = evaluate_run(out, judge=tiny_model, model=tiny_model, data=real)
    assert ev["summary"]["real_nn_median"] == 0 and ev["summary"]["nn_ratio"] is None
    recs = json.loads((out / "results.json").read_text())["records"]
    assert all(r["nn_ratio"] is None and r["nn_distance"] > 0 for r in recs)
    assert any("nn_ratio is undefined" in c for c in ev["summary"]["caveats"])


def test_the_default_judge_is_never_the_target():
    from dgnam.evaluate import _suggested_judge
    from dgnam.zoo.imagenet import imagenet_classes

    if imagenet_classes() is None:
        pytest.skip("needs the imagenet-classes package")
    lite = _tiny_net(imagenet_classes())
    lite.zoo_name = "efficientnet-lite0"
    assert _suggested_judge(lite) == "efficientnet-lite2"
    lite.zoo_name = "efficientnet-lite2"  # was: no default judge
    assert _suggested_judge(lite) == "efficientnet-lite0"


def test_a_file_named_like_the_judge_is_judged_by_the_judge():
    """A weights file is named by its stem: a user's classifier saved as fmnist-judge.safetensors is not the zoo's
    judge, so the zoo's judge still scores it (there was no default judge for it)."""
    from dgnam.data import FASHION_MNIST_CLASSES
    from dgnam.evaluate import _suggested_judge

    net = _tiny_net(list(FASHION_MNIST_CLASSES))
    net.zoo_name = "fmnist-judge"
    assert _suggested_judge(net) is None  # the zoo's judge itself
    net.dgnam_source = {"spec": "ck/fmnist-judge.safetensors", "arch": "fmnist-cnn"}
    assert _suggested_judge(net) == "fmnist-judge"


def test_the_judge_is_the_target_when_their_weights_are_the_same(tmp_path):
    import shutil

    from dgnam.zoo import load_model
    from dgnam.zoo.registry import WEIGHTS_DIR, model_weights_sha256

    shutil.copy(WEIGHTS_DIR / "fmnist-cnn.safetensors", tmp_path / "copy.safetensors")  # a copy under another name
    zoo, copy = load_model("fmnist-cnn"), load_model(str(tmp_path / "copy.safetensors"), "fmnist-cnn")
    assert model_weights_sha256(zoo) is not None and model_weights_sha256(zoo) == model_weights_sha256(copy)
    assert model_weights_sha256(load_model("fmnist-judge")) != model_weights_sha256(zoo)


class _NanWhere(torch.nn.Module):
    """``base`` with logit 0 replaced by ``value`` on the images where ``where(x)`` holds (x in the target's space)."""

    def __init__(self, base, where, value=float("nan")):
        super().__init__()
        self.base, self.where, self.value = base, where, value
        self.input_space, self.classes = base.input_space, base.classes

    def forward(self, x):
        out = self.base(x)
        bad = self.where(x)[:, None] & (torch.arange(out.shape[1]) == 0)
        return torch.where(bad, torch.full_like(out, self.value), out)


def test_a_target_that_is_nan_on_real_images_gets_no_percentile_of_100(tiny_model, tiny_gen, tmp_path):
    """NaN sorts above every number: a target that is NaN on some real images put every image at percentile 100,
    whatever its activation, without a word. Those images are now left out of the reference, with a warning; an image
    whose own (saved, 8-bit) activation is inf gets no activation figures, where it wrote `Infinity` (not JSON)."""
    out = tmp_path / "run"
    visualize(tiny_model, "logits:0,1", tiny_gen, restarts=2, steps=3, out=out, progress=False)
    real = _random_real()
    corner = lambda x: x[:, 0, 0, 0] > 0  # noqa: E731  (about half of the uniform real images)
    n_bad = int(corner(tiny_model.input_space.encode(real.images)).sum())
    assert 0 < n_bad < len(real.images)
    with pytest.warns(UserWarning, match=f"NaN/inf for logits:0 on {n_bad} of the 40 real images"):
        evaluate_run(out, judge=tiny_model, model=_NanWhere(tiny_model, corner), data=real)
    keep = ~corner(tiny_model.input_space.encode(real.images))
    with torch.no_grad():
        finite_real = tiny_model(tiny_model.input_space.encode(real.images[keep]))[:, 0]
    recs = json.loads((out / "results.json").read_text())["records"]
    assert any(r["activation_percentile"] < 100 for r in recs if r["unit"] == "logits:0")
    for rec in recs:
        if rec["unit"] == "logits:0":
            want = activation_percentile(torch.tensor([rec["png_activation"]]), finite_real)
            assert rec["activation_percentile"] == pytest.approx(float(want))
    # inf on every image: no figures for those records, and the files stay JSON
    always = lambda x: torch.ones(len(x), dtype=torch.bool)  # noqa: E731
    with pytest.warns(UserWarning, match="the target gives inf on the image as saved"), \
            pytest.warns(UserWarning, match="on 40 of the 40 real images: its percentiles and ratios are left out"):
        evaluate_run(out, judge=tiny_model, model=_NanWhere(tiny_model, always, float("inf")), data=real)
    zero = [r for r in json.loads((out / "results.json").read_text())["records"] if r["unit"] == "logits:0"]
    assert zero and all(r["png_activation"] is None and r["activation_percentile"] is None for r in zero)

    def strict(name):
        raise ValueError(f"{name} is not JSON")

    for name in ("results.json", "evaluation.json"):
        json.loads((out / name).read_text(), parse_constant=strict)


def test_real_images_are_read_a_chunk_at_a_time_with_the_same_figures(tiny_model, tiny_gen, tmp_path, monkeypatch):
    """The whole real set was converted at once (several float copies: tens of GB for 10,000 ImageNet images) and
    run 500 images a batch. Chunks and batch sizes now follow the image size; the figures stay what they were."""
    import dgnam.units

    out = tmp_path / "run"
    visualize(tiny_model, "logits:0,1", tiny_gen, restarts=2, steps=3, out=out, progress=False)
    whole = evaluate_run(out, judge=tiny_model, model=tiny_model, data=_random_real(60), write=False)["summary"]
    assert dgnam.units.read_batch_size(torch.zeros(60, 1, 12, 12)) == 500  # all 60 in one batch and chunk
    monkeypatch.setattr(dgnam.units, "READ_BATCH_VALUES", 7 * 144)  # 7 images a batch, 28 a chunk
    assert dgnam.units.read_batch_size(torch.zeros(60, 1, 12, 12)) == 7
    parts = evaluate_run(out, judge=tiny_model, model=tiny_model, data=_random_real(60), write=False)["summary"]
    for key in ("fid", "activation_percentile", "activation_ratio", "nn_ratio", "judge_accuracy"):
        assert parts[key] == pytest.approx(whole[key], rel=1e-5, abs=1e-6), key


def test_the_report_escapes_class_names_from_a_folder(tmp_path):
    """A class folder's name reaches the page through the Fréchet reference; it must show as text, never run."""
    from PIL import Image

    from dgnam.cli.evaluation import _write_report

    Image.new("L", (4, 4)).save(tmp_path / "nearest.png")
    s = {"images": 2, "units": 1, "restarts_per_unit": 2, "fid": 1.0, "judge_accuracy": 1.0,
         "fid_reference": "all 9 real images (fewer than 2 real images of class(es) <script>alert(1)</script>)",
         "real_nn_median": 1.0}
    page = _write_report(tmp_path, {"summary": s, "units": [{"unit": "<b>u</b>"}]}, ["unit"]).read_text()
    assert "<script>" not in page and "&lt;script&gt;" in page and "<b>u</b>" not in page


def test_evaluate_reads_no_file_outside_the_run_and_runs_no_code_it_names(tiny_model, tiny_gen, tmp_path,
                                                                          monkeypatch):
    """A shared run folder is data: a record naming an image outside it (its pixels went into nearest.png), a figure
    linked out of it (grid.png -> a private file, inlined into report.html as base64) and a FIFO (the read never
    returned) are refused in one line; and a target recorded as an import path is not imported and called (a module
    in the working directory ran), the user names it with --model."""
    from typer.testing import CliRunner

    from dgnam.cli import app
    from PIL import Image

    out = tmp_path / "run"
    visualize(tiny_model, "logits:0,1", tiny_gen, restarts=2, steps=2, out=out, progress=False)
    path = out / "results.json"
    good = path.read_text()
    Image.new("L", Image.open(out / json.loads(good)["records"][0]["image"]).size).save(tmp_path / "private.png")
    os.mkfifo(out / "images" / "fifo.png")
    for name, why in (("../private.png", "outside the run folder"), (str(tmp_path / "private.png"), "outside"),
                      ("images/fifo.png", "not a plain file")):
        doc = json.loads(good)
        doc["records"][1]["image"] = name
        path.write_text(json.dumps(doc))
        with pytest.raises(DgnamError, match=why):
            evaluate_run(out, judge=tiny_model, model=tiny_model, data=_random_real(), write=False)
    path.write_text(good)
    (tmp_path / "secret.txt").write_text("SECRET=hunter2")
    (out / "grid.png").unlink()
    (out / "grid.png").symlink_to(tmp_path / "secret.txt")
    monkeypatch.chdir(tmp_path)
    r = CliRunner().invoke(app, ["evaluate", str(out), "--model", "test_evaluate:tiny_judge", "--judge",
                                 "test_evaluate:tiny_judge", "--data", str(_image_folder(tmp_path / "real"))])
    assert isinstance(r.exception, DgnamError) and "grid.png" in str(r.exception) and "outside" in str(r.exception)
    assert not (out / "report.html").exists()

    (tmp_path / "payload.py").write_text("open('ran', 'w').write('ran')\ndef build():\n    return None\n")
    for source in ({"spec": "payload:build", "arch": None}, {"spec": "payload:build", "arch": "tiny"}):
        doc = json.loads(good)
        doc["config"]["model_source"] = source
        path.write_text(json.dumps(doc))
        with pytest.raises(DgnamError, match="names the import path payload:build as its model: .* pass --model "
                                             "payload:build"):
            evaluate_run(out, judge=tiny_model, data=_random_real(), write=False)
    doc = json.loads(good)
    doc["config"].update(model="payload:build", model_source=None)
    path.write_text(json.dumps(doc))
    with pytest.raises(DgnamError, match="import path"):
        evaluate_run(out, judge=tiny_model, data=_random_real(), write=False)
    doc["config"].update(model=["fmnist-cnn"])
    path.write_text(json.dumps(doc))
    with pytest.raises(DgnamError, match="no model name"):
        evaluate_run(out, judge=tiny_model, data=_random_real(), write=False)
    assert not (tmp_path / "ran").exists()


def test_real_images_given_as_a_path_are_read_as_the_same_string(tiny_model, tiny_gen, tmp_path):
    """``data=Path(folder)``, as ``run_dir`` and ``out`` take one, failed with "'PosixPath' object has no attribute
    'startswith'": it reads the folder the string names, and evaluation.json records it as that string."""
    out = tmp_path / "run"
    visualize(tiny_model, "logits:0,1", tiny_gen, restarts=2, steps=2, out=out, progress=False)
    folder = _image_folder(tmp_path / "real")
    by_str = evaluate_run(out, judge=tiny_model, model=tiny_model, data=str(folder), write=False)
    by_path = evaluate_run(out, judge=tiny_model, model=tiny_model, data=folder)
    assert by_path["summary"]["fid"] == by_str["summary"]["fid"]
    assert by_path["summary"]["fid_reference"] == by_str["summary"]["fid_reference"]
    assert json.loads((out / "evaluation.json").read_text())["settings"]["data"] == str(folder)
    with pytest.raises(DgnamError, match=r"data is a Tensor: .*RealData\(images, labels\)"):
        evaluate_run(out, judge=tiny_model, model=tiny_model, data=torch.rand(4, 1, 12, 12), write=False)


def test_evaluate_a_run_with_a_minimized_logit_and_a_direction(tiny_model, tiny_gen, tmp_path):
    """A minimized unit's percentile reads how low it went (near 0), with its own summary and no judge accuracy
    against its class; a direction is scored with the vector the run saved, after its file is gone."""
    from dgnam.weights import load_state_dict, save_safetensors

    vec = tmp_path / "probe.npy"
    np.save(vec, np.random.RandomState(0).randn(16).astype(np.float32))
    out = tmp_path / "run"
    visualize(tiny_model, f"-logits:1,logits:1,fc:dir={vec}", tiny_gen, restarts=2, steps=20, out=out, progress=False)
    vec.unlink()
    ev = evaluate_run(out, judge=tiny_model, model=tiny_model, data=_random_real(60))
    recs = json.loads((out / "results.json").read_text())["records"]
    by_goal = {g: [r for r in recs if r["goal"] == g] for g in ("minimize", "maximize")}
    assert [r["unit"] for r in by_goal["minimize"]] == ["-logits:1"] * 2
    for r in by_goal["minimize"]:
        assert r["activation_percentile"] < 5 and r["judge_correct"] is None  # lower than (almost) every real image
    for r in recs:  # what the run optimized is what evaluate reads on the PNG (the direction: from the saved vector)
        assert r["png_activation"] == pytest.approx(r["activation"], abs=0.05 * (1 + abs(r["activation"])))
    plain = [r for r in by_goal["maximize"] if r["unit"] == "logits:1"]
    assert all(r["activation_percentile"] > 50 and r["judge_correct"] is not None for r in plain)
    rows = {u["unit"]: u for u in ev["units"]}
    assert rows["-logits:1"]["goal"] == "minimize" and "judge_accuracy" not in rows["-logits:1"]
    assert rows["logits:1"]["goal"] == "maximize" and "judge_accuracy" in rows["logits:1"]
    direction = recs[4]["unit"]
    assert direction.startswith("fc:dir=probe.npy#") and "judge_accuracy" not in rows[direction]
    s = ev["summary"]
    assert s["minimized"]["images"] == 2 and s["minimized"]["activation_percentile"] < 5
    assert s["activation_percentile"] == pytest.approx(np.mean([r["activation_percentile"] for r in by_goal["maximize"]]))
    assert any("minimized class unit (-logits:1)" in c for c in s["caveats"])
    # a vector that is not the one the address names is refused, not scored
    code = out / recs[4]["code"]
    saved = load_state_dict(code)
    save_safetensors({**saved, "direction": saved["direction"] * 2}, code)
    with pytest.raises(DgnamError, match="the run's saved copy of it holds another vector"):
        evaluate_run(out, judge=tiny_model, model=tiny_model, data=_random_real(60), write=False)


def test_evaluate_run_takes_the_run_that_visualize_returned(tiny_model, tiny_gen, tmp_path):
    """``evaluate_run(visualize(..., out=F))`` failed with "expected str, bytes or os.PathLike object, not Run": the
    Run is scored from its folder, as the folder itself is; a run kept in memory only is refused in one line."""
    from dgnam import Run

    out = tmp_path / "run"
    run = visualize(tiny_model, "logits:0,1", tiny_gen, restarts=2, steps=2, out=out, progress=False)
    real = _random_real()
    by_run = evaluate_run(run, judge=tiny_model, model=tiny_model, data=real, write=False)
    by_dir = evaluate_run(out, judge=tiny_model, model=tiny_model, data=real, write=False)
    assert by_run["summary"]["fid"] == by_dir["summary"]["fid"] and by_run["summary"]["images"] == 4
    assert evaluate_run(Run.load(out), judge=tiny_model, model=tiny_model, data=real,
                        write=False)["summary"]["fid"] == by_dir["summary"]["fid"]
    in_memory = visualize(tiny_model, "logits:0", tiny_gen, steps=2, progress=False)
    with pytest.raises(DgnamError, match="not written to a folder"):
        evaluate_run(in_memory, judge=tiny_model, model=tiny_model, data=real)
    with pytest.raises(DgnamError, match="run_dir is a int"):
        evaluate_run(3, judge=tiny_model, model=tiny_model, data=real)


def test_the_report_says_what_made_the_run_and_what_scored_it(tmp_path):
    """report.html gave a run's numbers (judge accuracy, Fréchet distance) with no word of the method, generator,
    steps or seed that made its images, nor of the judge that scored them: a shared page could not be read alone."""
    from PIL import Image

    from dgnam.cli.evaluation import _write_report

    Image.new("L", (4, 4)).save(tmp_path / "nearest.png")
    config = {"model": "fmnist-cnn", "generator": "fmnist-g-fc6", "method": "dgn-am", "restarts": 3, "seed": 7,
              "config": {"steps": 5}}
    (tmp_path / "results.json").write_text(json.dumps({"config": config, "records": []}))
    s = {"images": 2, "units": 1, "restarts_per_unit": 2, "fid": 1.0, "judge_accuracy": 1.0, "fid_reference": "x",
         "real_nn_median": 1.0}
    ev = {"summary": s, "units": [{"unit": "logits:0"}],
          "settings": {"judge": "fmnist-judge", "judge_layer": "penult", "data": "fashion-mnist", "real_images": 500}}
    page = _write_report(tmp_path, ev, ["unit"]).read_text()
    rows = dict(re.findall(r"<tr><td>([^<]+)</td><td>([^<]+)</td></tr>", page.split("<h2>Settings</h2>")[1]))
    assert rows == {"target": "fmnist-cnn", "method": "dgn-am", "generator": "fmnist-g-fc6", "steps": "5",
                    "restarts per unit": "3", "seed": "7", "judge": "fmnist-judge", "judge layer": "penult",
                    "real images": "500 of fashion-mnist"}
