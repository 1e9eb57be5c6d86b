"""Evaluation metrics on constructed cases with known answers, and `evaluate_run` end to end on a tiny run."""

import json

import pytest
import torch

from dgnam import DgnamError, visualize
from dgnam.evaluate import (Judge, RealData, activation_percentile, evaluate_run, frechet_distance,
                            mean_pairwise_distance, nearest_neighbors)


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


def test_activation_percentile_and_pairwise_distance():
    real = torch.arange(1.0, 101.0)  # 1..100
    p = activation_percentile(torch.tensor([0.0, 50.0, 100.0, 1000.0]), real)
    assert p.tolist() == [0.0, 50.0, 100.0, 100.0]
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
    assert ev["units"][0]["fid"] is None and "lack class(es) a" in ev["summary"]["fid_reference"]


def test_evaluate_finds_a_memorized_image(tiny_model, tiny_gen, tmp_path):
    """A 'synthesized' image that is a training image has nearest-neighbour ratio 0."""
    from dgnam.images import save_png
    from dgnam.imagespace import to_uint8

    g = torch.Generator().manual_seed(4)
    x = (torch.rand(40, 1, 12, 12, generator=g) * 255).round() / 255  # exactly representable in a PNG
    real = RealData(x, torch.arange(40) % 5)
    out = tmp_path / "copy"
    visualize(tiny_model, "logits:0", None, restarts=2, steps=1, out=out, progress=False)
    rec0 = json.loads((out / "results.json").read_text())["records"][0]
    save_png(to_uint8(real.space.encode(x[5:6]), real.space)[0], out / rec0["image"], scale=8)
    ev = evaluate_run(out, judge=tiny_model, model=tiny_model, data=real)
    assert ev["summary"]["nn_ratio_min"] == pytest.approx(0.0, abs=1e-6)
    recs = json.loads((out / "results.json").read_text())["records"]
    assert recs[0]["nn_index"] == 5


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
