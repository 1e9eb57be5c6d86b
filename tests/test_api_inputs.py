"""The Python API's answers to a researcher's plausible mistakes: a one-line DgnamError naming the fix (never torch's
traceback), no silently wrong result, and the model given back as it was. Each case was found by using the API on a
model of one's own; each test fails on the code before the fix."""

import json
import warnings

import pytest
import torch
from torch import nn

from conftest import SPACE, TinyNet

from dgnam import DgnamError, ImageSpace, L2Decay, build_method, visualize
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
    m = TinyNet().eval()  # a span was refused ("list several as fc.0:1,2,3"); it is three units now
    m.input_space = SPACE
    assert [r["unit"] for r in visualize(m, "fc.0:1-3", None, steps=1, progress=False).records] == [
        "fc.0:1", "fc.0:2", "fc.0:3"]


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
    # a minus after the colon reads as a negative index; the message says where the minimizing minus goes
    with pytest.raises(DgnamError, match=r"channel -3 out of range.*put the minus first: -features\.3:3\)$"):
        UnitCondition(tiny_model, "features.3:-3")


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


# --- Targets written the way real code is written (found by a helper using the API on such models) ---------------


class _ViewNet(nn.Module):
    """A hand-written forward that flattens with .view, which fails on a channels_last tensor."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.fc = nn.Linear(4 * 12 * 12, 3)

    def forward(self, x):
        h = torch.relu(self.conv(x))
        return self.fc(h.view(h.size(0), -1))


def test_a_model_that_flattens_with_view_runs_by_default():
    """visualize runs in channels_last by default; such a model failed with a message about its input shape."""
    torch.manual_seed(0)
    net = _ViewNet().eval()
    net.input_space = SPACE
    run = visualize(net, "logits:1,conv:0", None, steps=3, progress=False)
    assert len(run.records) == 2
    assert net.conv.weight.is_contiguous()  # given back as it was


def test_a_model_that_edits_its_input_in_place_keeps_the_code_and_the_callers_images():
    class InPlace(nn.Module):
        def __init__(self, net):
            super().__init__()
            self.net = net

        def forward(self, x):
            x.mul_(2.0).sub_(0.1)  # e.g. a normalization written in place
            return self.net(x)

    torch.manual_seed(0)
    net = InPlace(TinyNet().eval()).eval()
    net.input_space = SPACE
    start = SPACE.encode(torch.rand(1, 1, 12, 12, generator=torch.Generator().manual_seed(1)))
    run = visualize(net, "logits:0", None, init=start, steps=0, progress=False)
    assert torch.equal(run.images, start)  # the pixel generator's code was the tensor the model edited
    with torch.no_grad():
        assert run.records[0]["activation"] == pytest.approx(float(net(start.clone())[0, 0]), abs=1e-5)
    visualize(net, "logits:0", None, steps=3, progress=False)  # and the gradient runs (torch refused the in-place op)
    images = start.clone()
    encode(net, "logits", images)
    assert torch.equal(images, start)  # encode left the caller's images alone


def test_a_module_called_twice_warns_which_call_is_read():
    class Twice(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = nn.Conv2d(1, 3, 3, padding=1)
            self.conv2 = nn.Conv2d(3, 3, 3, padding=1)
            self.relu = nn.ReLU()  # shared, as in a ResNet block

        def forward(self, x):
            return self.relu(self.conv2(self.relu(self.conv1(x)))).mean((2, 3))

    torch.manual_seed(0)
    net = Twice().eval()
    net.input_space = SPACE
    with pytest.warns(UserWarning, match=r"layer 'relu' runs 2 times in one forward pass.*first call"):
        run = visualize(net, "relu:0", None, steps=0, progress=False)
    x = run.images
    with torch.no_grad():
        first = net.relu(net.conv1(x))[0, 0, 6, 6]
    assert run.records[0]["activation"] == pytest.approx(float(first), abs=1e-5)


def test_a_hidden_unit_of_a_model_whose_output_is_no_tensor_runs():
    """The record's position came from a pass through the whole model, whose dataclass output was refused."""
    from dataclasses import dataclass

    @dataclass
    class Out:
        scores: torch.Tensor

    class Wrapped(nn.Module):
        def __init__(self):
            super().__init__()
            self.net = TinyNet()

        def forward(self, x):
            return Out(self.net(x))

    torch.manual_seed(0)
    net = Wrapped().eval()
    net.input_space = SPACE
    run = visualize(net, "net.features.0:2", None, steps=2, progress=False)
    assert run.records[0]["position"] == [6, 6]
    with pytest.raises(DgnamError, match="returns Out, not a tensor"):
        visualize(net, "logits:0", None, steps=2, progress=False)


def test_a_unit_without_a_gradient_is_one_line():
    class Probe(nn.Module):  # a linear probe on a backbone run without gradients
        def __init__(self):
            super().__init__()
            self.backbone = TinyNet()
            self.head = nn.Linear(5, 2)

        def forward(self, x):
            with torch.no_grad():
                f = self.backbone(x)
            return self.head(f)

    net = Probe().eval()
    net.input_space = SPACE
    with pytest.raises(DgnamError, match=r"do not depend differentiably on the image.*no_grad"):
        visualize(net, "logits:0", None, steps=2, progress=False)


def test_batchnorm_with_batch_statistics_warns_that_items_interact():
    net = nn.Sequential(nn.Conv2d(1, 3, 3), nn.BatchNorm2d(3, track_running_stats=False), nn.Flatten(),
                        nn.LazyLinear(2)).eval()
    net(torch.zeros(2, 1, 12, 12))
    net.input_space = SPACE
    with pytest.warns(UserWarning, match=r"BatchNorm layer\(s\) '1' normalize with the batch's own statistics.*--batch-size 1"):
        visualize(net, "2:0", None, steps=0, progress=False)
    with warnings.catch_warnings():  # the advice taken: one image per batch, nothing to warn about
        warnings.simplefilter("error")
        visualize(net, "2:0", None, restarts=2, batch_size=1, steps=0, progress=False)


def test_units_resolve_when_layers_after_them_fail_on_one_image():
    """Counting how often a layer runs takes the probe past the requested layer; a head that fails there (here
    BatchNorm1d on batch statistics, which needs two images) must not refuse a unit the forward reaches first."""
    from dgnam.units import resolve_units

    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(1, 3, 3), nn.ReLU(), nn.Flatten(), nn.Linear(300, 4),
                        nn.BatchNorm1d(4, track_running_stats=False)).eval()
    x = SPACE.encode(torch.full((1, 1, 12, 12), 0.5))
    with pytest.warns(UserWarning, match="batch's own statistics"):
        (u,) = resolve_units(net, parse_units("1:2"), x)
    assert u.channel == 2

    class TwiceThenFail(nn.Module):  # a shared relu, then a head that needs two images: the calls seen still count
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(1, 1, 3, padding=1)
            self.relu = nn.ReLU()
            self.head = nn.Sequential(nn.Flatten(), nn.BatchNorm1d(144, track_running_stats=False))

        def forward(self, x):
            return self.head(self.relu(self.conv(self.relu(x))))

    with pytest.warns(UserWarning) as got:  # (its head warns too)
        resolve_units(TwiceThenFail().eval(), parse_units("relu:0"), x)
    assert any("'relu' runs at least 2 times" in str(w.message) for w in got)


def test_a_unit_without_a_gradient_is_refused_even_beside_a_penalty_prior():
    """A penalty prior depends on the code, so the objective had a gradient and the run optimized the prior alone."""
    from dgnam import L2Penalty

    class Detached(nn.Module):
        def __init__(self):
            super().__init__()
            self.net = TinyNet()

        def forward(self, x):
            return self.net(x.detach())

    net = Detached().eval()
    net.input_space = SPACE
    with pytest.raises(DgnamError, match="do not depend differentiably"):
        visualize(net, "logits:0", None, priors=[L2Penalty(1e-3)], steps=2, progress=False)


def test_warnings_point_at_the_callers_line():
    net = nn.Sequential(nn.Conv2d(1, 3, 3), nn.BatchNorm2d(3, track_running_stats=False)).eval()
    net.input_space = SPACE
    with pytest.warns(UserWarning) as got:
        visualize(net, "0:0", None, steps=0, progress=False)
    assert got[0].filename == __file__


def test_device_none_is_where_the_model_is():
    from dgnam.modules import as_device

    net = TinyNet()
    assert as_device(None, like=net) == torch.device("cpu") and as_device(None) == torch.device("cpu")
    with pytest.raises(DgnamError, match="unknown device"):
        as_device("gpu0", like=net)


def test_a_name_or_a_class_where_a_module_is_taken_is_one_line(tiny_model, tiny_gen):
    """visualize(model, "logits:1", "fmnist-g-fc6") failed with "'str' object has no attribute 'named_parameters'"
    from deep inside, and so did a name given to sample() as its generator or DAE, or to a condition as its model."""
    from dgnam.ppgn import ClassCondition, sample

    cases = [
        (lambda: visualize(tiny_model, "logits:0", "fmnist-g-fc6", progress=False),
         r"generator is the name 'fmnist-g-fc6': pass the module itself, e\.g\. dgnam\.load_model\('fmnist-g-fc6'\)"),
        (lambda: visualize("fmnist-cnn", "logits:0", None, progress=False), "model is the name 'fmnist-cnn'"),
        (lambda: visualize(tiny_model, "logits:0", nn.Linear(3, 4), progress=False),
         "Linear is not a dgnam generator: wrap it in LearnedGenerator"),
        (lambda: sample(tiny_gen, "dae.safetensors", ClassCondition(tiny_model, 1)), "dae is the name 'dae.safetensors'"),
        (lambda: sample("gen", None, ClassCondition(tiny_model, 1)), "generator is the name 'gen'"),
        (lambda: ClassCondition(TinyNet, 1), r"model is a class: build an instance, e\.g\. TinyNet\(\)"),
        (lambda: ClassCondition(3, 1), "model is int: give an nn.Module instance"),
    ]
    for call, needle in cases:
        with pytest.raises(DgnamError, match=needle):
            call()


def test_a_device_this_torch_lacks_is_refused_in_one_line():
    """Not only CUDA: an Apple user's --device mps on a torch without MPS (or an absent XPU) failed deep inside the
    first .to() with torch's traceback, and the meta device (shapes, no values) at the first copy out."""
    from dgnam.modules import as_device

    for name, backend in [("cuda", torch.cuda), ("mps", torch.backends.mps), ("xpu", torch.xpu)]:
        if not backend.is_available():
            with pytest.raises(DgnamError, match=f"this torch has no {name.upper()} device: use --device cpu"):
                as_device(name)
    with pytest.raises(DgnamError, match="holds no data"):
        as_device("meta")
    if torch.cuda.is_available():
        with pytest.raises(DgnamError, match="this machine has CUDA devices 0.."):
            as_device(f"cuda:{torch.cuda.device_count()}")
    assert as_device("cpu") == torch.device("cpu")


def test_a_one_dimensional_layer_records_the_position_it_reads():
    class Seq(nn.Module):  # Conv1d over the image's rows: output (N, C, L)
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv1d(12, 4, 3)
            self.out = nn.Linear(4 * 10, 2)

        def forward(self, x):
            h = self.conv(x[:, 0])
            return self.out(h.flatten(1))

    torch.manual_seed(0)
    net = Seq().eval()
    net.input_space = SPACE
    run = visualize(net, "conv:3", None, steps=0, progress=False)
    with torch.no_grad():
        want = net.conv(run.images[:, 0])[0, 3, 5]
    assert run.records[0]["position"] == [5]
    assert run.records[0]["activation"] == pytest.approx(float(want), abs=1e-5)


def test_numpy_start_codes_run_as_tensors_and_alike_restarts_are_flagged(tiny_model, tiny_gen):
    """``init=np.zeros(...)`` failed deep inside ("the truth value of an array ... is ambiguous"); a config with
    negative steps ran and recorded ``best_step: -2``; restarts that all start from one code came out identical,
    and evaluate then reported diversity 0 without a word."""
    import numpy as np

    codes = np.random.default_rng(0).random((2, 10))
    a = visualize(tiny_model, "logits:0,1", tiny_gen, steps=3, init=codes, progress=False)
    b = visualize(tiny_model, "logits:0,1", tiny_gen, steps=3, init=torch.from_numpy(codes), progress=False)
    assert torch.equal(a.codes, b.codes)
    with pytest.raises(DgnamError, match="init is object: give randn, zeros or a tensor of codes"):
        visualize(tiny_model, "logits:0", tiny_gen, steps=3, init=object(), progress=False)
    from dgnam import AMConfig

    with pytest.raises(DgnamError, match="config.steps=-2: give steps >= 0"):
        visualize(tiny_model, "logits:0", tiny_gen, config=AMConfig(steps=-2), progress=False)
    with pytest.warns(UserWarning, match="the 3 restarts all start from the same code \\(init=zeros\\)"):
        run = visualize(tiny_model, "logits:0", tiny_gen, steps=3, restarts=3, init="zeros", progress=False)
    assert torch.equal(run.codes[0], run.codes[2])  # what the warning is about
    with pytest.warns(UserWarning, match="init=one code"):
        visualize(tiny_model, "logits:0", tiny_gen, steps=3, restarts=2, init=torch.rand(1, 10), progress=False)


def test_a_path_names_a_model_as_its_string_does(tmp_path):
    """``load_model(Path(...))`` worked for an existing weights file only: a folder, a mistyped file or a zoo name
    given as a Path raised "argument of type 'PosixPath' is not iterable" instead of the string's answer."""
    from pathlib import Path

    from dgnam.zoo import load_model

    for spec in (tmp_path, tmp_path / "mistyped-model"):
        with pytest.raises(DgnamError, match="unknown model .*`dgnam models` lists the zoo"):
            load_model(spec)
    assert type(load_model(Path("fmnist-cnn"))) is type(load_model("fmnist-cnn"))


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # (torch.compile's imports use torch.jit.script_method)
def test_compiled_and_data_parallel_models_are_read_by_their_own_layer_names(tiny_model, tiny_gen):
    """torch.compile and DataParallel name every layer `_orig_mod.X` / `module.X` and hide the model's attributes
    (DataParallel): `fc.0` was an unknown layer and class names were unknown. The wrapped model is read and run."""
    from dgnam.units import layer_names

    ref = visualize(tiny_model, "fc.0:2,logits:b", tiny_gen, steps=4, progress=False).records
    for wrapped in (torch.compile(tiny_model), nn.DataParallel(tiny_model)):
        assert layer_names(wrapped) == layer_names(tiny_model)
        got = visualize(wrapped, "fc.0:2,logits:b", tiny_gen, steps=4, progress=False).records
        assert [r["activation"] for r in got] == [r["activation"] for r in ref]
        z = SPACE.encode(torch.rand(3, 1, 12, 12, generator=torch.Generator().manual_seed(0)))
        assert torch.equal(encode(wrapped, "fc.0", z), encode(tiny_model, "fc.0", z))
    assert tiny_model.training is False and all(p.requires_grad for p in tiny_model.parameters())


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # torch.jit.script is deprecated, but models ship in it
def test_a_torchscript_model_is_run_for_its_output_and_refused_for_its_layers_in_one_line():
    """TorchScript modules take no forward hooks: torch raised deep inside, and restoring the model then failed
    with "'OrderedDictWrapper' object has no attribute 'update'" (its _buffers)."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(1, 3, 3), nn.BatchNorm2d(3), nn.ReLU(), nn.Flatten(), nn.Linear(300, 4)).train()
    scripted = torch.jit.script(net)
    buffers = [b for b in scripted.buffers()]
    with pytest.raises(DgnamError, match=r"layer '2' is TorchScript .*pass the nn.Module it was made from"):
        visualize(scripted, "2:0", None, steps=2, progress=False, input_space=SPACE)
    start = visualize(scripted, "logits:1", None, steps=0, progress=False, input_space=SPACE).records[0]
    run = visualize(scripted, "logits:1", None, steps=3, progress=False, input_space=SPACE)  # the output needs no hook
    assert run.records[0]["activation"] > start["activation"]
    assert scripted.training and all(a is b for a, b in zip(scripted.buffers(), buffers))  # given back as it was


def test_a_lazy_model_that_never_ran_is_one_line():
    """nn.LazyLinear before its first forward: torch raised "Attempted to use an uninitialized parameter in
    requires_grad_" from inside the loop's set-up."""
    net = nn.Sequential(nn.Conv2d(1, 3, 3), nn.ReLU(), nn.Flatten(), nn.LazyLinear(4))
    with pytest.raises(DgnamError, match=r"'3.weight' of the Sequential is not initialized .*model\(x\)"):
        visualize(net, "logits:1", None, steps=2, progress=False, input_space=SPACE)
    with pytest.raises(DgnamError, match="not initialized"):
        encode(net, "1", SPACE.encode(torch.rand(2, 1, 12, 12)))
    net(torch.rand(1, 1, 12, 12))  # initialized by a forward: it runs
    assert len(visualize(net, "logits:1", None, steps=2, progress=False, input_space=SPACE).records) == 1


def test_the_public_modules_are_attributes_of_a_plain_import():
    """The README writes ``dgnam.ppgn.load_dae(FILE)`` and ``dgnam.ppgn.Condition``: after a plain ``import dgnam``
    that was "module 'dgnam' has no attribute 'ppgn'" (a fresh process: the tests import the modules themselves)."""
    import subprocess
    import sys

    code = ("import dgnam\n"
            "assert callable(dgnam.ppgn.load_dae) and callable(dgnam.ppgn.sample) and dgnam.ppgn.Condition\n"
            "assert callable(dgnam.facets.facets) and callable(dgnam.train.dae.train_dae)\n"
            "assert callable(dgnam.train.classifier.train_classifier) and callable(dgnam.train.generator.train_generator)\n"
            "for bad in ('nope', '__wrapped__'):\n"
            "    assert not hasattr(dgnam, bad) and not hasattr(dgnam.train, bad)\n"
            "assert all(hasattr(dgnam, n) for n in dgnam.__all__)\n"
            "assert dgnam.units.Unit is dgnam.Unit and callable(dgnam.zoo.registry.get_entry) and dgnam.imagespace\n"
            "assert not hasattr(dgnam, '__main__')  # (importing it would run the command line)\n")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr


def test_the_command_lines_help_and_usage_errors_do_not_import_torch():
    """``dgnam --help`` took 3.5 s, 3 of them importing torch: the package's names load on first use, and the command
    line imports torch only when a command runs. A fresh process: the tests have imported torch long since."""
    import subprocess
    import sys

    code = ("import sys\n"
            "from typer.testing import CliRunner\n"
            "import dgnam, dgnam.cli\n"
            "for args, code in [(['--help'], 0), (['visualize', '--help'], 0), (['train', 'generator', '--help'], 0),\n"
            "                   (['--version'], 0), (['visualise'], 2), (['visualize'], 2), (['-q', 'sample', '--help'], 0)]:\n"
            "    r = CliRunner().invoke(dgnam.cli.app, args)\n"
            "    assert r.exit_code == code, (args, r.output)\n"
            "assert 'torch' not in sys.modules, 'torch imported'\n"
            "import dgnam.run  # imports the submodule dgnam.optimize, which must not hide the function of that name\n"
            "from dgnam import optimize, visualize\n"
            "assert callable(dgnam.optimize) and dgnam.optimize is optimize and optimize.__module__ == 'dgnam.optimize'\n"
            "assert visualize is dgnam.run.visualize and set(dgnam.__all__) <= set(dir(dgnam))\n")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
