"""The Python API's answers to a researcher's plausible mistakes: a one-line DgnamError naming the fix (never torch's
traceback), no silently wrong result, and the model given back as it was. Each case was found by using the API on a
model of one's own; each test fails on the code before the fix."""

import json

import pytest
import torch
from torch import nn

from conftest import SPACE, TinyNet

from dgnam import AMConfig, DgnamError, ImageSpace, L2Decay, build_method, visualize
from dgnam.evaluate import RealData, evaluate_run
from dgnam.units import Unit, encode, parse_units


def _real(n=40, classes=("a", "b", "c", "d", "e")):
    g = torch.Generator().manual_seed(0)
    return RealData(torch.rand(n, 1, 12, 12, generator=g), torch.arange(n) % len(classes), classes=list(classes))


def test_evaluate_run_leaves_no_input_space_on_the_model(tiny_model, tmp_path):
    """A model without input_space got the run's written onto it; the next evaluation of a run in another space then
    read its images in the first run's space, and activations came out wrong without a word."""
    out_a, out_b = tmp_path / "a", tmp_path / "b"
    other = ImageSpace(size=(12, 12), color="GRAY", mean=(0.2,), std=(0.5,))
    visualize(tiny_model, "logits:0", None, restarts=2, steps=3, out=out_a, progress=False)
    visualize(tiny_model, "logits:0", None, restarts=2, steps=3, input_space=other, out=out_b, progress=False)
    bare = TinyNet()
    bare.load_state_dict(tiny_model.state_dict())
    bare.eval()
    bare.classes = tiny_model.classes
    evaluate_run(out_a, judge=tiny_model, model=bare, data=_real())
    assert not hasattr(bare, "input_space")
    evaluate_run(out_b, judge=tiny_model, model=bare, data=_real())
    records = json.loads((out_b / "results.json").read_text())["records"]
    # the PNG's activation is the run's own to PNG rounding: the images were read in the run's space
    assert [r["png_activation"] for r in records] == pytest.approx([r["activation"] for r in records], abs=0.05)


def test_start_images_in_another_layout_are_refused_not_scrambled(tiny_model):
    img = SPACE.encode(torch.rand(1, 1, 12, 12))
    hwc = torch.rand(1, 12, 12, 1)
    with pytest.raises(DgnamError, match=r"\(12, 12, 1\) per item, generator expects \(1, 12, 12\)"):
        visualize(tiny_model, "logits:1", None, init=hwc, steps=0, progress=False)
    run = visualize(tiny_model, "logits:1", None, init=img.flatten(1), steps=0, progress=False)  # flat: reshaped
    assert torch.equal(run.images, img)


def test_a_model_that_returns_a_dict_is_read_by_its_logits(tiny_model):
    class DictOut(nn.Module):
        def __init__(self, net):
            super().__init__()
            self.net = net

        def forward(self, x):
            return {"features": x.mean((1, 2, 3)), "logits": self.net(x)}

    wrapped = DictOut(tiny_model)
    wrapped.input_space = SPACE
    a = visualize(wrapped, "logits:2", None, steps=3, progress=False).records[0]["activation"]
    b = visualize(tiny_model, "logits:2", None, steps=3, progress=False).records[0]["activation"]
    assert a == pytest.approx(b, abs=1e-5)

    class Words(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(144, 3)

        def forward(self, x):
            return "three words"

    words = Words()
    words.input_space = SPACE
    with pytest.raises(DgnamError, match="returns str, not a tensor: wrap it"):
        visualize(words, "logits:0", None, steps=1, progress=False)


def test_a_forward_that_needs_another_argument_is_one_line(tiny_model):
    class TwoArgs(TinyNet):
        def forward(self, x, mode):
            return super().forward(x)

    m = TwoArgs().eval()
    m.input_space = SPACE
    with pytest.raises(DgnamError, match="whose forward takes only the image batch"):
        visualize(m, "logits:0", None, steps=1, progress=False)


def test_plain_mistakes_in_arguments_are_one_line(tiny_model, tmp_path):
    (tmp_path / "afile.txt").write_text("x")
    cases = [
        (dict(out=tmp_path / "afile.txt"), "is a file"),
        (dict(device="gpu"), "unknown device 'gpu'"),
        (dict(input_space=(1, 12, 12)), "give an ImageSpace"),
        (dict(config={"steps": 3}), "give an AMConfig"),
        (dict(priors=[L2Decay]), "L2Decay\\(\\) rather than L2Decay"),
        (dict(steps=2.5), "steps=2.5: give an int"),
    ]
    if not torch.cuda.is_available():
        cases.append((dict(device="cuda"), "no CUDA device: use --device cpu"))
    for kwargs, needle in cases:
        with pytest.raises(DgnamError, match=needle):
            visualize(tiny_model, "logits:0", None, progress=False, **kwargs)
    for units, needle in [(3, "give a string"), ([], "non-empty list")]:
        with pytest.raises(DgnamError, match=needle):
            visualize(tiny_model, units, None, progress=False)
    with pytest.raises(DgnamError, match="a class: build an instance"):
        visualize(TinyNet, "logits:0", None, input_space=SPACE, progress=False)
    with pytest.raises(DgnamError, match="give the target's ImageSpace"):
        build_method("lucid", (1, 12, 12))
    with pytest.raises(DgnamError, match=r"list several as fc\.0:1,2,3"):
        m = TinyNet().eval()
        m.input_space = SPACE
        visualize(m, "fc.0:1-3", None, progress=False)


def test_units_and_spaces_are_checked_when_made():
    assert ImageSpace(size=32).size == (32, 32)  # an int is a square, as torchvision's Resize(32) reads
    for kwargs, needle in [(dict(size=(0, 32)), "each >= 1"), (dict(size=(32, 32), std=(0.0,)), "must be > 0"),
                           (dict(size=(32, 32), lo=1.0, hi=1.0), "hi must be above lo"),
                           (dict(size=(32, 32), fit="stretch"), "use crop or resize")]:
        with pytest.raises(DgnamError, match=needle):
            ImageSpace(**kwargs)
    assert Unit("features.2", 3, position=[1, 2]).position == (1, 2)
    for kwargs, needle in [(dict(reduce="max"), "use 'point'"), (dict(channel=3.7), "give an int index"),
                           (dict(position=(1, 2.5)), "two ints")]:
        with pytest.raises(DgnamError, match=needle):
            Unit(**{"layer": "features.2", "channel": 3, **kwargs})


def test_encode_checks_the_images(tiny_model):
    x = SPACE.encode(torch.rand(2, 1, 12, 12))
    assert encode(tiny_model, "fc", x).shape == (2, 16)
    for bad, needle in [(x[0], "got shape \\(1, 12, 12\\)"), (x.numpy(), "got ndarray"),
                        (torch.rand(2, 3, 12, 12), "input shape 1x12x12"), (torch.rand(2, 1, 20, 20), "input shape")]:
        with pytest.raises(DgnamError, match=needle):
            encode(tiny_model, "fc", bad)


def test_facets_refuse_images_outside_0_1(tiny_model):
    from dgnam.facets import FacetConfig, find_facets

    imgs = torch.rand(40, 1, 12, 12)
    cfg = FacetConfig(k=2, top_fraction=0.5, reduce="pca", embed_layer="fc")
    for bad in ((imgs * 255).to(torch.uint8), imgs * 255):
        with pytest.raises(DgnamError, match="expected floats in \\[0, 1\\].*divide 0..255 images by 255"):
            find_facets(tiny_model, "logits:0", bad, cfg)
    assert len(find_facets(tiny_model, "logits:0", imgs, cfg).members) == 2


def test_unit_condition_parses_and_checks_its_units(tiny_model, tiny_gen):
    from dgnam.ppgn import PPGNConfig, UnitCondition, sample

    cond = UnitCondition(tiny_model, "features.3:2")
    assert cond.units == parse_units("features.3:2")
    sample(tiny_gen, None, cond, 1, PPGNConfig(steps=2))
    with pytest.raises(DgnamError, match="channel 300 out of range"):
        UnitCondition(tiny_model, "features.3:300")


def test_no_nan_in_an_evaluation(tiny_model, tmp_path):
    """A unit whose real maximum is <= 0 has no activation ratio: None (null), not NaN, which strict JSON readers
    reject; the summary averages the units that have one."""
    out = tmp_path / "run"
    visualize(tiny_model, "logits:0,1", None, restarts=2, steps=2, out=out, progress=False)
    real = _real()
    with torch.no_grad():
        tiny_model.logits.bias[0] = -1e3  # logit 0 is negative on every real image
    ev = evaluate_run(out, judge=tiny_model, model=tiny_model, data=real)
    units = {u["unit"]: u for u in ev["units"]}
    assert units["logits:0"]["activation_ratio"] is None and units["logits:1"]["activation_ratio"] is not None
    assert ev["summary"]["activation_ratio"] == pytest.approx(units["logits:1"]["activation_ratio"])
    json.loads((out / "evaluation.json").read_text(), parse_constant=lambda c: pytest.fail(f"{c} in the JSON"))


def test_a_generator_file_knows_the_layer_its_card_names(tmp_path):
    """A generator file took its architecture's layer (fc6) even when its card says it inverts fc5, so PPGN's DAE
    check compared the wrong layers."""
    import shutil

    from dgnam.ppgn import CodeDAE, PPGNConfig, ClassCondition, sample
    from dgnam.zoo import create_model, load_model
    from dgnam.zoo.registry import WEIGHTS_DIR

    for suffix in (".safetensors", ".codestats.safetensors"):
        shutil.copy(WEIGHTS_DIR / f"fmnist-g-fc6{suffix}", tmp_path / f"g{suffix}")
    assert load_model(str(tmp_path / "g.safetensors"), "fmnist-g-fc6").code_layer == "fc6"  # no card: the arch's
    (tmp_path / "g.json").write_text(json.dumps({"inverts": {"encoder": "fmnist-cnn", "layer": "fc5"}}))
    gen = load_model(str(tmp_path / "g.safetensors"), "fmnist-g-fc6")
    assert gen.code_layer == "fc5"
    dae = CodeDAE(dim=256)
    dae.code_layer = "fc6"
    with pytest.raises(DgnamError, match="trained on fc6 codes but g inverts fc5"):
        sample(gen, dae, ClassCondition(create_model("fmnist-cnn"), [0]), 1, PPGNConfig(steps=1))


def test_code_statistics_of_another_size_beside_a_generator_are_named(tmp_path):
    """Statistics of another size beside a generator file set its code size, and the weights then failed to load
    with "wrong --arch?"; the message now names the statistics file."""
    import shutil

    from dgnam.priors import CodeStats
    from dgnam.zoo import load_model
    from dgnam.zoo.registry import WEIGHTS_DIR

    shutil.copy(WEIGHTS_DIR / "fmnist-g-fc6.safetensors", tmp_path / "g.safetensors")
    CodeStats(mean=torch.ones(100), std=torch.ones(100)).save(tmp_path / "g.codestats.safetensors")
    with pytest.raises(DgnamError, match="g.codestats.safetensors\\) are 100-d.*replace or remove"):
        load_model(str(tmp_path / "g.safetensors"), "fmnist-g-fc6")


def test_numpy_integers_and_iterables_still_name_units(tiny_model):
    """The new Unit checks refused numpy ints and parse_units refused arrays and generators: both worked before."""
    import numpy as np

    assert Unit("logits", np.int64(3)).channel == 3 and type(Unit("logits", np.int64(3)).channel) is int
    assert Unit("features.2", 1, position=(np.int64(1), np.int64(2))).position == (1, 2)
    assert parse_units(np.array(["logits:0", "logits:1"])) == parse_units("logits:0,1")
    assert parse_units(f"logits:{i}" for i in range(2)) == parse_units("logits:0,1")


def test_encode_blames_the_shape_only_on_the_first_batch(tiny_model):
    """Every batch used to go through the shape probe: a failure later in a large set (out of memory, a bug in the
    model) was reported as a wrong input shape."""
    calls = {"n": 0}

    class Flaky(TinyNet):
        def forward(self, x):
            calls["n"] += 1
            if calls["n"] > 1:
                raise RuntimeError("something else went wrong")
            return super().forward(x)

    m = Flaky().eval()
    m.input_space = SPACE
    with pytest.raises(RuntimeError, match="something else"):
        encode(m, "fc", SPACE.encode(torch.rand(4, 1, 12, 12)), batch_size=2)
