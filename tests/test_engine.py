import json
import re
from dataclasses import replace

import pytest
import torch

from dgnam import AMConfig, DgnamError, L2Decay, LearnedGenerator, PixelGenerator, build_method, parse_units, visualize
from dgnam.optimize import RELEASED_FC6_MEDIAN_BOUND, Pipeline, bound_scaled_lr, optimize
from dgnam.priors import Prior, dgnam_code_priors
from dgnam.run import Run
from dgnam.units import LayerReader, layer_shapes, resolve_units

from conftest import SPACE


def test_activation_rises(tiny_model, tiny_gen):
    run = visualize(tiny_model, "logits:0,1,2", tiny_gen, restarts=2, steps=40, progress=False)
    for rec in run.records:
        assert rec["activation"] > 0
    # compare with the starting activation of the same seeds
    start = visualize(tiny_model, "logits:0,1,2", tiny_gen, restarts=2, steps=0, progress=False)
    for a, b in zip(run.records, start.records):
        assert a["activation"] > 1.2 * b["activation"] > 0


def test_best_restarts_keeps_the_highest_final_activation_per_unit(tiny_model, tiny_gen):
    run = visualize(tiny_model, "logits:2,fc:0,logits:0", tiny_gen, restarts=3, steps=5, progress=False)
    kept = run.best_restarts()
    assert [run.records[k]["unit_index"] for k in kept] == [0, 1, 2]
    for k in kept:
        same = [r["activation"] for r in run.records if r["unit_index"] == run.records[k]["unit_index"]]
        assert run.records[k]["activation"] == max(same) and len(same) == 3
    # ties keep the earliest restart
    tied = Run(records=[{"unit_index": 0, "activation": 1.0}, {"unit_index": 0, "activation": 1.0}])
    assert tied.best_restarts() == [0]


def test_visualize_gives_the_model_back_as_it_was(tiny_model, tiny_gen):
    """visualize borrows the caller's modules: mode, requires_grad and memory format come back unchanged, so the
    model still trains and later runs see the same tensors."""
    tiny_model.train()
    tiny_model.features[1].eval()  # a mixed-mode model: a frozen BatchNorm inside a training network
    tiny_model.logits.weight.requires_grad_(False)
    before = {k: v.clone() for k, v in tiny_model.state_dict().items()}
    strides = {k: v.stride() for k, v in tiny_model.state_dict().items()}
    run = visualize(tiny_model, "logits:0", tiny_gen, steps=3, progress=False, channels_last=True)
    assert run.records[0]["activation"] == run.records[0]["activation"]  # it ran (not NaN)
    assert tiny_model.training and not tiny_model.features[1].training and tiny_model.features[0].training
    assert tiny_model.features[0].weight.requires_grad and not tiny_model.logits.weight.requires_grad
    w = tiny_model.features[3].weight  # (8, 6, 3, 3): NCHW and NHWC differ
    assert w.is_contiguous() and not w.is_contiguous(memory_format=torch.channels_last)
    for k, v in tiny_model.state_dict().items():
        assert torch.equal(v, before[k]) and v.stride() == strides[k], k
    assert all(p.requires_grad for p in tiny_gen.parameters()) and tiny_gen.training


def test_visualize_keeps_the_callers_gradients_and_runs_3d_models(tiny_model, tiny_gen):
    """Gradients the caller accumulated survive a run unchanged (same tensor, values and layout), and channels_last
    is skipped rather than failing for a model with 5-D weights."""
    tiny_model(SPACE.encode(torch.rand(2, *SPACE.shape))).sum().backward()
    w = tiny_model.features[3].weight
    g, g_before = w.grad, w.grad.clone()
    visualize(tiny_model, "logits:0", tiny_gen, steps=2, progress=False, channels_last=True)
    assert w.grad is g and torch.equal(g, g_before) and g.is_contiguous()

    class Volume(torch.nn.Module):  # a Conv3d over a stack of the image
        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv3d(1, 2, 1)
            self.logits = torch.nn.Linear(2, 3)

        def forward(self, x):
            return self.logits(self.conv(x.unsqueeze(2).repeat(1, 1, 2, 1, 1)).mean((2, 3, 4)))

    run = visualize(Volume(), "logits:1", tiny_gen, steps=2, progress=False, channels_last=True, input_space=SPACE)
    assert run.records[0]["activation"] == run.records[0]["activation"]


def test_double_models_generators_and_numpy_codes_run(tiny_model, tiny_gen):
    """A .double() target or generator, and float64 start codes (numpy's default), run and agree with float32."""
    import copy

    import numpy as np

    init = torch.from_numpy(np.abs(np.random.RandomState(0).randn(1, 10)))  # float64
    ref = visualize(tiny_model, "logits:0", tiny_gen, steps=3, init=init.float(), progress=False)
    for model, gen in [(copy.deepcopy(tiny_model).double(), tiny_gen), (tiny_model, copy.deepcopy(tiny_gen).double())]:
        run = visualize(model, "logits:0", gen, steps=3, init=init, progress=False)
        assert run.records[0]["activation"] == pytest.approx(ref.records[0]["activation"], rel=1e-4, abs=1e-4)


def test_a_layer_the_forward_never_runs_is_a_one_line_error(tiny_model):
    tiny_model.aux = torch.nn.Linear(3, 2)  # registered, but forward() never calls it
    with pytest.raises(DgnamError, match="did not run in the model's forward pass"):
        resolve_units(tiny_model, parse_units("aux:0"), SPACE.encode(torch.rand(1, *SPACE.shape)))


def test_code_stays_in_clip_range_after_every_step(tiny_model, tiny_gen):
    upper = tiny_gen.code_stats.upper()
    seen = []

    class Spy(Prior):
        def after_step(self, code, state):
            seen.append(code.clone())

    priors = dgnam_code_priors(tiny_gen.code_stats, l2="none") + [Spy()]
    units = resolve_units(tiny_model, parse_units("fc:3") * 4, SPACE.encode(torch.rand(1, 1, 12, 12)))
    pipe = Pipeline(tiny_gen, tiny_model, units, SPACE)
    codes = tiny_gen.init_codes([0, 1, 2, 3]) * 5
    optimize(pipe, units, codes, AMConfig(steps=30), priors)
    assert len(seen) == 30
    for c in seen:
        assert (c >= 0).all() and (c <= upper + 1e-6).all()
    assert any((c == upper).any() for c in seen)  # the bound is actually reached, so the clip did work


def test_a_generator_of_an_unbounded_latent_keeps_its_negative_codes(tiny_model, tiny_gen):
    """A GAN's Gaussian z (code_lower=None): the default prior clipped it at 0, the lower end of the paper's ReLU
    code, so half of every start code was cut away before the first step. Now its default prior is the L2 decay,
    with U from code statistics where given; PPGN's chains keep the same range."""
    from dgnam import ppgn
    from dgnam.priors import ClipCode, CodeStats, L2Decay

    gan = LearnedGenerator(tiny_gen.net, code_shape=(10,), space=tiny_gen.space, code_lower=None, name="gan")
    assert [type(p) for p in gan.default_priors()] == [L2Decay]
    seen = []

    class Spy(Prior):
        def after_step(self, code, state):
            seen.append(code.clone())

    visualize(tiny_model, "fc.0:1,logits:2", gan, steps=5, priors=gan.default_priors() + [Spy()], progress=False)
    assert all((c < 0).any() for c in seen)
    seen.clear()
    visualize(tiny_model, "fc.0:1,logits:2", tiny_gen, steps=5, priors=tiny_gen.default_priors() + [Spy()],
              progress=False)
    assert all((c >= 0).all() for c in seen)  # the paper's code, as before
    gan.code_stats = CodeStats(mean=torch.zeros(10), std=torch.full((10,), 0.5))  # z truncated above at 1.5
    (clip, _decay) = gan.default_priors()
    z = torch.randn(64, 10, generator=torch.Generator().manual_seed(0)) * 3
    clip.clip_(z)
    assert z.max() == 1.5 and z.min() < -2
    assert ppgn.code_clip(gan).lower is None and ppgn.code_clip(tiny_gen).lower == 0.0
    chain = ppgn.sample(gan, None, ppgn.ClassCondition(tiny_model, [1]), n_chains=2, config=ppgn.PPGNConfig(steps=5))
    assert chain.final_codes.min() < -0.5 and chain.final_codes.max() <= 1.5
    gan.code_stats = None
    assert ppgn.code_clip(gan) is None
    with pytest.raises(DgnamError, match="clips nothing"):
        ClipCode(None, lower=None)
    truncated = LearnedGenerator(tiny_gen.net, code_shape=(10,), space=tiny_gen.space, code_lower=-3.0,
                                 code_stats=CodeStats(mean=torch.zeros(10), std=torch.ones(10)))
    z = torch.randn(64, 10, generator=torch.Generator().manual_seed(0)) * 3
    truncated.default_priors()[0].clip_(z)
    assert z.min() == -3 and z.max() == 3  # the README's [-3, 3]


def test_with_transforms_the_best_is_scored_on_the_image_as_shown(tiny_model, tiny_gen):
    """The best code is picked on jittered views, but its reported activation is the shown image's, and it is never
    below the final image's."""
    from dgnam.transforms import Jitter, Pad

    units = resolve_units(tiny_model, parse_units("logits:2") * 3, SPACE.encode(torch.rand(1, 1, 12, 12)))
    pipe = Pipeline(tiny_gen, tiny_model, units, SPACE, [Pad(2), Jitter(2)])
    res = optimize(pipe, units, tiny_gen.init_codes([0, 1, 2]), AMConfig(steps=15))
    with torch.no_grad():
        shown = pipe.activations(units, pipe.images(res.best_codes))
    assert torch.allclose(res.best_activations, shown, atol=1e-5)
    assert (res.best_activations >= res.activations - 1e-6).all()


def test_l2_decay_shrinks_code_with_zero_gradient(tiny_gen):
    class Dead(torch.nn.Module):  # activation independent of the image: zero gradient
        def forward(self, x):
            return (x * 0).flatten(1)[:, :3]

    units = [parse_units("logits:1")[0]]
    pipe = Pipeline(tiny_gen, Dead(), units, SPACE)
    codes = torch.full((1, 10), 2.0)
    res = optimize(pipe, units, codes, AMConfig(steps=10), [L2Decay(0.99)])
    assert torch.allclose(res.codes, codes * 0.99**10)


def test_batched_equals_one_at_a_time(tiny_model, tiny_gen):
    units = "logits:0,1,2,3,4,fc:0,fc:5,features.4:2"
    batched = visualize(tiny_model, units, tiny_gen, restarts=4, steps=15, batch_size=32, progress=False)
    single = []
    for u in parse_units(units):
        single += visualize(tiny_model, [u], tiny_gen, restarts=4, steps=15, batch_size=1, progress=False).records
    assert len(batched.records) == 32 == len(single)
    for a, b in zip(batched.records, single):
        assert a["unit"] == b["unit"] and a["restart"] == b["restart"]
        assert a["best_activation"] == pytest.approx(b["best_activation"], rel=1e-4, abs=1e-4)


def test_bound_scaled_lr_keeps_the_released_step_to_bound_ratio(tiny_model, tiny_gen):
    """One step at bound_scaled_lr moves the code by 8/12 of its median bound on average, as the released 8.0 does
    on CaffeNet fc6 (median bound 12)."""
    assert bound_scaled_lr(torch.full((4096,), RELEASED_FC6_MEDIAN_BOUND)) == pytest.approx(8.0)
    upper = tiny_gen.code_stats.upper()
    lr = bound_scaled_lr(upper)
    units = resolve_units(tiny_model, parse_units("logits:0,1"), SPACE.encode(torch.rand(1, 1, 12, 12)))
    codes = 0.01 * torch.rand(2, *tiny_gen.code_shape)
    res = optimize(Pipeline(tiny_gen, tiny_model, units, SPACE), units, codes, AMConfig(steps=1, lr_start=lr))
    moved = (res.codes - codes).abs().flatten(1).mean(1) / upper.median()
    assert moved.tolist() == pytest.approx([8.0 / 12.0] * 2, rel=1e-4)


def test_dgn_am_scaled_method_is_dgn_am_with_the_bound_scaled_lr(tiny_gen):
    """The registered method changes only the starting lr; without code stats it says what to pass."""
    plain, scaled = build_method("dgn-am", SPACE, tiny_gen), build_method("dgn-am-scaled", SPACE, tiny_gen)
    assert scaled.config.lr_start == pytest.approx(bound_scaled_lr(tiny_gen.code_stats.upper()))
    assert {**scaled.config.to_dict(), "lr_start": 0} == {**plain.config.to_dict(), "lr_start": 0}
    assert [type(p) for p in scaled.priors] == [type(p) for p in plain.priors]
    bare = LearnedGenerator(tiny_gen.net, code_shape=(10,), space=tiny_gen.space, name="bare")
    with pytest.raises(DgnamError, match="code-stats"):
        build_method("dgn-am-scaled", SPACE, bare)


def test_code_bounds_that_cannot_clip_are_refused_in_one_line(tiny_model, tiny_gen):
    """Statistics of images that leave a layer silent (median bound 0) made `dgn-am-scaled` run at lr 0 and exit as
    if it had worked; all-zero bounds pinned every image to G(0); negative ones pinned the code below its own lower
    end; statistics of another code size failed deep in torch (`shape '[1, 10]' is invalid`)."""
    import re

    from dgnam import CodeStats, ppgn
    from dgnam.priors import ClipCode

    u = torch.tensor([4.9125, 3.0, 7.77])  # in float32, as the published dgn-am-scaled figures were made: the
    assert bound_scaled_lr(u) == float(8.0 * u.median() / 12.0)  # double's last digits changed 9/10 to 8/10
    with pytest.raises(DgnamError, match="median code bound is 0.*--lr"):
        bound_scaled_lr(torch.tensor([0.0, 0.0, 3.0]))
    with pytest.raises(DgnamError, match="median code bound is nan"):
        bound_scaled_lr(torch.tensor([float("nan")] * 3))
    with pytest.raises(DgnamError, match="every code bound is 0"):
        dgnam_code_priors(CodeStats(mean=torch.zeros(10), std=torch.zeros(10)))
    with pytest.raises(DgnamError, match="1 of the 10 code bounds are NaN/inf"):
        ClipCode(torch.tensor([1.0] * 9 + [float("nan")]))
    with pytest.raises(DgnamError, match="2 of the 10 code bounds are below the clip's lower end 0"):
        ClipCode(torch.tensor([1.0] * 8 + [-1.0, -2.0]))
    # a generator's range is its code_lower: the message named only ClipCode, which a generator's user never builds
    gan = LearnedGenerator(torch.nn.Identity(), code_shape=(3,), space=SPACE, code_lower=5.0,
                           code_stats=CodeStats(mean=torch.zeros(3), std=torch.ones(3)))
    with pytest.raises(DgnamError, match=r"lower end 5: .*the generator's code_lower \(LearnedGenerator"):
        gan.default_priors()
    assert ClipCode(torch.tensor([0.0] * 9 + [1.0])).upper is not None  # dead components are fine
    stats = CodeStats.from_codes(torch.rand(20, 10, generator=torch.Generator().manual_seed(0)))
    assert torch.equal(stats.upper("mean+2.5std"), stats.mean + 2.5 * stats.std)
    assert torch.equal(dgnam_code_priors(stats, bound="p99")[0].upper, stats.percentiles[99.0])
    for kind in ("mean+std", "p", "pxx", "mean+nanstd"):  # were float's "could not convert string to float: ''"
        with pytest.raises(DgnamError, match=f"unknown bound '{re.escape(kind)}': use mean.3std, pNN or bounds"):
            dgnam_code_priors(stats, bound=kind)
    wrong = CodeStats(mean=torch.ones(7), std=torch.ones(7))
    with pytest.raises(DgnamError, match="7 components for a code of 10: give code statistics of this generator"):
        visualize(tiny_model, "logits:0", tiny_gen, steps=2, priors=dgnam_code_priors(wrong), progress=False)
    tiny_gen.code_stats = wrong
    with pytest.raises(DgnamError, match="7 components for a code of 10"):
        ppgn.code_clip(tiny_gen)


def test_layers_after_target_not_executed(tiny_model):
    ran = []
    tiny_model.logits.register_forward_hook(lambda *a: ran.append("logits"))
    tiny_model.fc.register_forward_hook(lambda *a: ran.append("fc"))
    outs = LayerReader(tiny_model, ["features.4"])(SPACE.encode(torch.rand(2, 1, 12, 12)))
    assert outs["features.4"].shape == (2, 8, 12, 12)
    assert ran == []
    LayerReader(tiny_model, ["fc"])(SPACE.encode(torch.rand(2, 1, 12, 12)))
    assert ran == ["fc"]


def test_resume_gives_same_records(tmp_path, tiny_model, tiny_gen):
    kw = dict(restarts=2, steps=8, batch_size=3, progress=False)
    full = visualize(tiny_model, "logits:0,1,2,3", tiny_gen, out=tmp_path / "full", **kw)

    class Boom(Exception):
        pass

    calls = {"n": 0}
    import dgnam.run as runmod

    real = runmod.optimize

    def dying(*a, **k):
        calls["n"] += 1
        if calls["n"] == 2:
            raise Boom  # killed while the second batch is in flight
        return real(*a, **k)

    runmod.optimize = dying
    try:
        with pytest.raises(Boom):
            visualize(tiny_model, "logits:0,1,2,3", tiny_gen, out=tmp_path / "part", **kw)
    finally:
        runmod.optimize = real
    partial = json.loads((tmp_path / "part" / "results.json").read_text())["records"]
    assert len(partial) == 3  # the first batch survived
    with pytest.raises(DgnamError, match="--resume"):
        visualize(tiny_model, "logits:0,1,2,3", tiny_gen, out=tmp_path / "part", **kw)
    resumed = visualize(tiny_model, "logits:0,1,2,3", tiny_gen, out=tmp_path / "part", resume=True, **kw)
    strip = lambda recs: [{k: v for k, v in r.items()} for r in recs]  # noqa: E731
    assert strip(resumed.records) == strip(full.records)
    for rec in full.records:
        assert (tmp_path / "part" / rec["image"]).exists() and (tmp_path / "part" / rec["code"]).exists()
    assert (tmp_path / "part" / "grid.png").exists()
    # the resumed Run holds every image and code, the earlier batch's reloaded from its code files
    assert torch.allclose(resumed.images, full.images, atol=1e-6) and torch.equal(resumed.codes, full.codes)
    assert torch.equal(resumed.best_codes, full.best_codes)


def test_resume_refuses_other_bounds_transforms_or_weights(tmp_path, tiny_model, tiny_gen):
    """What results.json names alike but differs (clip bounds, transforms, retrained weights) is told apart."""
    import copy

    from dgnam.transforms import Jitter

    kw = dict(steps=2, progress=False, out=tmp_path / "r")
    visualize(tiny_model, "logits:0", tiny_gen, **kw)
    visualize(tiny_model, "logits:0", tiny_gen, resume=True, **kw)  # the same settings resume
    other_bounds = dgnam_code_priors(replace(tiny_gen.code_stats, std=tiny_gen.code_stats.std * 2))
    retrained = copy.deepcopy(tiny_model)
    with torch.no_grad():
        retrained.logits.weight.add_(0.1)
    for change, what in [(dict(priors=other_bounds), "priors"), (dict(transforms=[Jitter(1)]), "transforms")]:
        with pytest.raises(DgnamError, match=what):
            visualize(tiny_model, "logits:0", tiny_gen, resume=True, **change, **kw)
    with pytest.raises(DgnamError, match="weights"):
        visualize(retrained, "logits:0", tiny_gen, resume=True, **kw)


def test_resume_with_custom_transforms_extra_state_and_an_older_runs_record(tmp_path, tiny_model, tiny_gen):
    """A transform that is a plain class (or holds a tensor) records the same settings in every process, a model
    whose state_dict holds extra state runs, and a run recorded before weights and transforms were recorded resumes."""

    class Shift:  # the Transform protocol, not a dataclass
        def __init__(self):
            self.by = 1
            self.kernel = torch.ones(2)

        def __call__(self, x, step):
            return torch.roll(x, self.by, dims=-1)

    class Versioned(type(tiny_model)):
        def get_extra_state(self):
            return {"version": 2}

        def set_extra_state(self, state):
            pass

    model = Versioned()
    model.load_state_dict(tiny_model.state_dict(), strict=False)
    model.input_space = tiny_model.input_space
    kw = dict(steps=2, progress=False, out=tmp_path / "r")
    visualize(model, "logits:0", tiny_gen, transforms=[Shift()], **kw)
    visualize(model, "logits:0", tiny_gen, transforms=[Shift()], resume=True, **kw)  # a new Shift, same settings
    # an older run: no weights, transforms or model source recorded, and the clip bounds left out of the priors
    path = tmp_path / "old" / "results.json"
    visualize(tiny_model, "logits:0,1", tiny_gen, **{**kw, "out": tmp_path / "old"})
    doc = json.loads(path.read_text())
    for key in ("weights", "transforms", "model_source"):
        del doc["config"][key]
    doc["config"]["priors"] = [{k: v for k, v in p.items() if not str(v).startswith("tensor:")}
                               for p in doc["config"]["priors"]]
    doc["records"] = doc["records"][:1]
    path.write_text(json.dumps(doc))
    run = visualize(tiny_model, "logits:0,1", tiny_gen, resume=True, **{**kw, "out": tmp_path / "old"})
    assert len(run.records) == 2 and run.images.shape[0] == 2


def test_records_say_which_spatial_unit_they_show(tiny_model, tiny_gen):
    """A conv channel without @Y,X is read at its centre, as released; the record says where."""
    run = visualize(tiny_model, "features.3:1,features.3:2@1,4,features.3:0:mean,fc:0", tiny_gen, steps=1,
                    progress=False)
    assert [r["position"] for r in run.records] == [[6, 6], [1, 4], None, None]  # features.3 is 8x12x12


def test_records_have_required_fields(tmp_path, tiny_model, tiny_gen):
    run = visualize(tiny_model, "logits:a,c", tiny_gen, steps=3, out=tmp_path / "r", progress=False)
    data = json.loads((tmp_path / "r" / "results.json").read_text())
    for rec in data["records"]:
        for key in ("unit", "restart", "seed", "activation", "best_activation", "steps", "code_l2", "image"):
            assert key in rec
    assert [r["channel"] for r in run.records] == [0, 2]
    # a class asked for by name ran as its index: the records keep the name (hidden units have none)
    assert [r["class_name"] for r in run.records] == ["a", "c"]
    assert "class_name" not in visualize(tiny_model, "fc:0", tiny_gen, steps=1, progress=False).records[0]


def test_pixel_generator_shares_loop(tiny_model):
    run = visualize(tiny_model, "logits:1", None, steps=30, progress=False)
    start = visualize(tiny_model, "logits:1", None, steps=0, progress=False)
    assert run.records[0]["activation"] > start.records[0]["activation"]
    assert run.images.shape == (1, 1, 12, 12)


def test_unit_parsing_and_resolution(tiny_model):
    us = parse_units("features.4:3@1,2,features.4:1:mean,logits:b")
    ex = SPACE.encode(torch.rand(1, 1, 12, 12))
    r = resolve_units(tiny_model, us, ex)
    assert r[0].position == (1, 2) and r[1].reduce == "mean" and r[2].channel == 1
    with pytest.raises(DgnamError, match="closest: features.4"):
        resolve_units(tiny_model, parse_units("feature.4:0"), ex)
    with pytest.raises(DgnamError, match=r"0\.\.7"):
        resolve_units(tiny_model, parse_units("features.4:8"), ex)
    with pytest.raises(DgnamError, match="x in 0..11"):
        resolve_units(tiny_model, parse_units("features.4:0@1,12"), ex)
    with pytest.raises(DgnamError, match="unknown class name"):
        resolve_units(tiny_model, parse_units("logits:zebra"), ex)
    with pytest.raises(DgnamError, match="class names name the model's outputs.*index 0..7"):  # not "channel 1 of 0..7"
        resolve_units(tiny_model, parse_units("features.4:b"), ex)
    with pytest.raises(DgnamError, match="@Y,X picks one position and :mean averages them all"):  # was ignored
        parse_units("features.4:3@1,2:mean")
    # a suffix belongs to its item of a shared-layer list, :mean as @Y,X does: `1:mean` was a layer `1`, channel `mean`
    assert [u.address for u in parse_units("features.4:0,1:mean,2@1,3,0-1:mean")] == [
        "features.4:0", "features.4:1:mean", "features.4:2@1,3", "features.4:0-1:mean"]
    assert [u.address for u in resolve_units(tiny_model, parse_units("features.4:0:mean,1:mean"), ex)] == [
        "features.4:0:mean", "features.4:1:mean"]
    tiny_model.classes = ["a", "10-19", "c", "d", "e"]  # a class may be named like a range
    try:
        assert resolve_units(tiny_model, parse_units("logits:10-19"), ex)[0].channel == 1
    finally:
        tiny_model.classes = ["a", "b", "c", "d", "e"]
    # spans: every channel of a range or of the layer, each keeping its position or :mean (the 1000 logits of an
    # ImageNet model had to be typed out)
    assert [u.address for u in resolve_units(tiny_model, parse_units("features.4:1-3@2,2,logits:4"), ex)] == [
        "features.4:1@2,2", "features.4:2@2,2", "features.4:3@2,2", "logits:4"]
    assert [u.channel for u in resolve_units(tiny_model, parse_units("logits:all"), ex)] == [0, 1, 2, 3, 4]
    assert [u.address for u in resolve_units(tiny_model, parse_units("features.4:ALL:mean"), ex)] == [
        f"features.4:{c}:mean" for c in range(8)]
    for bad in ("features.4:3-1", "features.4:1-8"):
        with pytest.raises(DgnamError, match="not a range within the layer's channels 0..7: write features.4:A-B"):
            resolve_units(tiny_model, parse_units(bad), ex)
    tiny_model.classes = ["a", "b, the second", "c", "d", "e"]
    try:
        with pytest.raises(DgnamError, match="has a comma, which separates units: give its index, logits:1"):
            resolve_units(tiny_model, parse_units("logits:b, the second"), ex)
    finally:
        tiny_model.classes = ["a", "b", "c", "d", "e"]
    names = [n for n, _, _ in layer_shapes(tiny_model, ex)]
    assert "features.4" in names and names[-1] == "logits"


def test_a_number_that_also_names_another_class_warns(tiny_model):
    """Image folders 0..10 sort as 0, 1, 10, 2, ...: `logits:2` and `--class 2` read 2 as an index (the folder "10")
    with no word that the folder "2" is class 3. Now a warning says so and names the index to give; a number that
    names no other class, and a span, stay silent."""
    import warnings

    from dgnam.ppgn import class_indices

    ex = torch.zeros(1, *SPACE.shape)
    tiny_model.classes = ["0", "1", "10", "2", "3"]
    try:
        with pytest.warns(UserWarning, match="unit logits:2: class 2 is read as an index, the class named '10'; the "
                                             "class named '2' is index 3: give 3 to mean it"):
            assert [u.channel for u in resolve_units(tiny_model, parse_units("logits:2"), ex)] == [2]
        with pytest.warns(UserWarning, match="^class 3 is read as an index, the class named '2'; the class named "
                                             "'3' is index 4: give 4 to mean it"):
            assert class_indices(tiny_model, ["3"]) == [3]
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            assert class_indices(tiny_model, [0, "1"]) == [0, 1]
            assert len(resolve_units(tiny_model, parse_units("logits:0,logits:all,features.4:2"), ex)) == 7
        # a number past the classes that names one: the error gives its index
        with pytest.raises(DgnamError, match=r"class 10 out of range: the model has classes 0..4 \(the class named "
                                             r"'10' is index 2: give 2\)"):
            class_indices(tiny_model, ["10"])
        with pytest.raises(DgnamError, match=r"channel 10 out of range; layer 'logits' has channels 0..4 \(the class "
                                             r"named '10' is index 2: give logits:2\)"):
            resolve_units(tiny_model, parse_units("logits:10"), ex)
    finally:
        tiny_model.classes = ["a", "b", "c", "d", "e"]


def test_nan_is_reported_with_unit(tiny_model, tiny_gen):
    class Nan(torch.nn.Module):
        def forward(self, x):
            return x.flatten(1)[:, :3] * float("nan")

    with pytest.raises(DgnamError, match="logits:2"):
        visualize(Nan(), "logits:2", tiny_gen, steps=2, progress=False, input_space=SPACE)


def test_a_diverging_unit_keeps_its_last_finite_code_and_the_others_go_on(tmp_path, tiny_model, tiny_gen):
    """One unit turning NaN mid-run used to stop the batch with an error, and a resume hit the same error again:
    the other units, and every later batch, could never be made. It is now kept at its last finite code, its record
    says when, and the rest run as they would alone."""

    class NanAbove(torch.nn.Module):
        """logits 0 and 1 are linear; logit 2 is linear below 1 and NaN from there: ascent reaches it."""

        def __init__(self):
            super().__init__()
            torch.manual_seed(3)
            self.lin = torch.nn.Linear(144, 3)

        def forward(self, x):
            z = self.lin(x.flatten(1))
            return torch.cat([z[:, :2], torch.where(z[:, 2:] < 1.0, z[:, 2:], float("nan"))], 1)

    model = NanAbove().eval()
    x0 = torch.zeros(1, 1, 12, 12)
    assert model.lin(x0.flatten(1))[0, 2] < 1.0  # a finite start
    with pytest.warns(UserWarning, match="NaN/inf in logits:2 restart 0 \\(step [0-9]+\\): each record keeps its last finite code"):
        run = visualize(model, "logits:0,1,2", tiny_gen, steps=12, out=tmp_path / "run", progress=False,
                        input_space=SPACE, batch_size=3)
    recs = {r["unit"]: r for r in run.records}
    assert "diverged_at" not in recs["logits:0"] and "diverged_at" not in recs["logits:1"]
    k = recs["logits:2"]["diverged_at"]
    assert 0 < k <= 12
    assert all(torch.isfinite(torch.tensor([r["activation"], r["best_activation"]])).all() for r in run.records)
    assert torch.isfinite(run.codes).all() and torch.isfinite(run.images).all()
    # the others ran as they would alone
    alone = visualize(model, "logits:0,1", tiny_gen, steps=12, progress=False, input_space=SPACE, batch_size=2)
    assert torch.allclose(run.codes[:2], alone.codes, atol=1e-5)
    # the run is whole: a resume has nothing left to do and keeps the record
    again = visualize(model, "logits:0,1,2", tiny_gen, steps=12, out=tmp_path / "run", progress=False,
                      input_space=SPACE, batch_size=3, resume=True)
    assert [r.get("diverged_at") for r in again.records] == [None, None, k]


def test_a_dead_unit_is_flagged_not_passed_off_as_an_optimum(tiny_model, tiny_gen):
    """A ReLU channel that is 0 on every image has a zero gradient: the run ended "successfully" with activation 0
    and nothing said that the image shows nothing of the unit."""
    with torch.no_grad():
        tiny_model.features[3].bias[5] = -1e4  # conv channel 5, before its ReLU: dead on every image
    with pytest.warns(UserWarning, match="stayed at its start value through all 4 steps for features.4:5 restart 0: "):
        run = visualize(tiny_model, "features.4:5,7", tiny_gen, steps=4, progress=False)  # 5 is live unless killed
    dead, live = run.records
    assert dead["unchanged"] is True and dead["activation"] == 0.0
    assert "unchanged" not in live and live["activation"] > 0


def test_nan_at_the_start_names_the_model_not_the_learning_rate(tiny_gen):
    class Nan(torch.nn.Module):
        def forward(self, x):
            return x.flatten(1)[:, :3] * float("nan")

    with pytest.raises(DgnamError, match="start code .* check the model"):
        visualize(Nan(), "logits:2", tiny_gen, steps=2, progress=False, input_space=SPACE)


def test_the_progress_policy_is_refused_where_it_would_silently_be_a_constant_lr(tiny_model):
    for kw in ({"normalize": "mean_abs"}, {"normalize": "none", "optimizer": "adam"}):
        with pytest.raises(DgnamError, match="progress"):
            visualize(tiny_model, "logits:0", config=AMConfig(steps=2, lr_policy="progress", **kw), progress=False)
    visualize(tiny_model, "logits:0", config=AMConfig(steps=2, lr_policy="progress", normalize="none"), progress=False)


def test_bad_generator_output_is_refused(tiny_model, tiny_gen):
    from dgnam import ImageSpace

    tiny_gen.space = ImageSpace(size=(20, 20), color="GRAY")
    with pytest.raises(DgnamError, match="cannot be adapted"):
        visualize(tiny_model, "logits:0", tiny_gen, steps=1, progress=False)


def test_resume_names_each_difference_and_keeps_the_batch_size(tmp_path, tiny_model, tiny_gen):
    """A resume at another --batch-size gave a run that matches no uninterrupted one (the batch shape changes float
    rounding); a refusal named only "config", not which setting. Both are told now."""
    kw = dict(restarts=2, progress=False, out=tmp_path / "r")
    visualize(tiny_model, "logits:0", tiny_gen, steps=3, batch_size=2, **kw)
    with pytest.raises(DgnamError, match="batch_size 2 -> 1"):
        visualize(tiny_model, "logits:0", tiny_gen, steps=3, batch_size=1, resume=True, **kw)
    with pytest.raises(DgnamError, match="config.steps 3 -> 4"):
        visualize(tiny_model, "logits:0", tiny_gen, steps=4, batch_size=2, resume=True, **kw)
    doc = json.loads((tmp_path / "r" / "results.json").read_text())
    del doc["config"]["batch_size"]  # a run recorded before the batch size was
    (tmp_path / "r" / "results.json").write_text(json.dumps(doc))
    visualize(tiny_model, "logits:0", tiny_gen, steps=3, batch_size=1, resume=True, **kw)


def test_a_resume_mends_what_a_kill_or_a_hand_broke(tmp_path, tiny_model, tiny_gen):
    """Metrics of an evaluation made before the resume are dropped from the records with its files; a finished
    record's missing or truncated PNG is rewritten from its code (it crashed the grid); a results.json of another
    shape and NaN start codes are one line."""
    from dgnam.run import EVALUATION_FIELDS

    out = tmp_path / "r"
    visualize(tiny_model, "logits:0,1", tiny_gen, steps=2, out=out, progress=False)
    path = out / "results.json"
    doc = json.loads(path.read_text())
    doc["records"][0].update({k: 0.5 for k in EVALUATION_FIELDS})  # scored with --partial
    doc["records"] = doc["records"][:1]
    path.write_text(json.dumps(doc))
    img = out / doc["records"][0]["image"]
    first = img.read_bytes()
    img.write_bytes(first[:60])  # truncated
    (out / doc["records"][0]["best_image"]).unlink()
    run = visualize(tiny_model, "logits:0,1", tiny_gen, steps=2, out=out, progress=False, resume=True)
    assert not any(k in rec for rec in run.records for k in EVALUATION_FIELDS)
    assert img.read_bytes() == first and (out / doc["records"][0]["best_image"]).exists()
    for broken in ([1, 2, 3], {"config": {}, "records": [{"unit": "logits:0"}]}, {"config": None, "records": []}):
        path.write_text(json.dumps(broken))
        with pytest.raises(DgnamError, match="is not a run `dgnam visualize` wrote"):
            visualize(tiny_model, "logits:0,1", tiny_gen, steps=2, out=out, progress=False, resume=True)
    with pytest.raises(DgnamError, match="NaN or inf"):
        visualize(tiny_model, "logits:0", tiny_gen, init=torch.full((1, 10), float("nan")), progress=False)


def test_a_resume_writes_and_reads_no_file_outside_its_run(tmp_path, tiny_model, tiny_gen):
    """A shared run's results.json names its files: a resume redrew an "unreadable" PNG over whatever a record named
    (../victim.txt, an absolute path), and opened a FIFO it named, never to return. Each is refused in one line,
    before anything is written; links inside the folder still work."""
    import os

    out = tmp_path / "r"
    visualize(tiny_model, "logits:0,1", tiny_gen, steps=2, out=out, progress=False)
    path = out / "results.json"
    good = path.read_text()
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    os.mkfifo(out / "images" / "fifo.png")
    (out / "images" / "link.png").symlink_to(out / json.loads(good)["records"][0]["image"])
    for field, name, why in (("image", "../victim.txt", "outside the run folder"),
                             ("best_image", str(victim), "outside the run folder"),
                             ("code", "codes/../../victim.txt", "outside the run folder"),
                             ("image", "images/fifo.png", "not a plain file"), ("image", 7, "no run dgnam wrote")):
        doc = json.loads(good)
        doc["records"][0][field] = name
        path.write_text(json.dumps(doc))
        with pytest.raises(DgnamError, match=why):
            visualize(tiny_model, "logits:0,1", tiny_gen, steps=2, out=out, progress=False, resume=True)
        assert victim.read_text() == "precious"
    (out / "images" / "fifo.png").unlink()
    (tmp_path / "elsewhere").mkdir()
    (out / "codes").rename(tmp_path / "elsewhere" / "codes")
    (out / "codes").symlink_to(tmp_path / "elsewhere" / "codes")  # a resume would write its new codes there
    path.write_text(good)
    with pytest.raises(DgnamError, match="has codes, which is .* outside the run folder"):
        visualize(tiny_model, "logits:0,1,2", tiny_gen, steps=2, out=out, progress=False, resume=True)
    (out / "codes").unlink()
    (tmp_path / "elsewhere" / "codes").rename(out / "codes")
    doc = json.loads(good)
    doc["records"][0]["image"] = "images/link.png"  # a link that stays inside the run is the run's file
    path.write_text(json.dumps(doc))
    visualize(tiny_model, "logits:0,1", tiny_gen, steps=2, out=out, progress=False, resume=True)


def test_a_run_can_leave_its_images_on_disk(tmp_path, tiny_model, tiny_gen):
    """The command line's runs hold no image in memory (a thousand classes x ten restarts at 256 px is 8 GB): with
    ``return_images=False`` the records and files are those of a run that keeps them, and a resume mends a broken
    PNG from its code file."""
    kw = dict(restarts=2, steps=3, batch_size=3, progress=False)
    kept = visualize(tiny_model, "logits:0,1", tiny_gen, out=tmp_path / "a", **kw)
    lean = visualize(tiny_model, "logits:0,1", tiny_gen, out=tmp_path / "b", return_images=False, **kw)
    assert lean.images is None and lean.codes is None and lean.records == kept.records
    for rec in kept.records:
        for f in ("image", "best_image", "code"):
            assert (tmp_path / "a" / rec[f]).read_bytes() == (tmp_path / "b" / rec[f]).read_bytes()
    img = tmp_path / "b" / kept.records[1]["image"]
    best = tmp_path / "b" / kept.records[1]["best_image"]
    img.write_bytes(img.read_bytes()[:60])
    best.unlink()
    visualize(tiny_model, "logits:0,1", tiny_gen, out=tmp_path / "b", resume=True, return_images=False, **kw)
    assert img.read_bytes() == (tmp_path / "a" / kept.records[1]["image"]).read_bytes()
    assert best.read_bytes() == (tmp_path / "a" / kept.records[1]["best_image"]).read_bytes()
    with pytest.raises(DgnamError, match="give out=FOLDER"):
        visualize(tiny_model, "logits:0", tiny_gen, return_images=False, **kw)


def test_a_refusal_shows_where_two_lists_differ(tmp_path, tiny_model, tiny_gen):
    """Long lists were cut to the same prefix on both sides ("units ["logits:0", ... -> ["logits:0", ..."): the
    refusal now names the item that differs."""
    kw = dict(steps=2, progress=False, out=tmp_path / "r")
    visualize(tiny_model, "logits:0,1,2,3", tiny_gen, **kw)
    with pytest.raises(DgnamError, match='units\\[3\\] "logits:3" -> "logits:4"'):
        visualize(tiny_model, "logits:0,1,2,4", tiny_gen, resume=True, **kw)
    other_bounds = dgnam_code_priors(replace(tiny_gen.code_stats, std=tiny_gen.code_stats.std * 2))
    with pytest.raises(DgnamError, match="priors\\[0\\]\\.upper"):
        visualize(tiny_model, "logits:0,1,2,3", tiny_gen, priors=other_bounds, resume=True, **kw)


def test_the_overview_grid_is_capped_with_a_warning(tmp_path, tiny_model, tiny_gen, monkeypatch):
    """1000 units x 16 restarts made a 200-Mpx grid.png that Pillow refuses to open, inlined in the report."""
    from PIL import Image

    import dgnam.images

    monkeypatch.setattr(dgnam.images, "GRID_MAX_ROWS", 2)
    monkeypatch.setattr(dgnam.images, "GRID_MAX_COLS", 2)
    with pytest.warns(UserWarning, match="grid.png shows the first 2 of 5 units and 2 of 3 restarts"):
        visualize(tiny_model, "logits:all", tiny_gen, restarts=3, steps=0, out=tmp_path / "a", progress=False)
    small = Image.open(tmp_path / "a" / "grid.png").size
    visualize(tiny_model, "logits:0,1", tiny_gen, restarts=2, steps=0, out=tmp_path / "b", progress=False)
    assert small == Image.open(tmp_path / "b" / "grid.png").size  # the same 2 x 2 cells


def test_a_figure_too_big_is_refused_before_any_image_is_read():
    """A run of 300 units asked at --cell 2000 failed only after decoding 300 PNGs: the size is known before."""
    from dgnam.run import overview_grid

    records = [{"unit_index": i, "unit": f"logits:{i}", "activation": 1.0} for i in range(300)]

    def picture(k):
        raise AssertionError(f"image {k} read before the size check")

    with pytest.raises(DgnamError, match=re.escape("300 x 1 images at 2000 px would be over")):
        overview_grid(records, picture, max_units=300, cell=2000)
    read = []
    figure = overview_grid(records[:2], lambda k: read.append(k) or torch.zeros(8, 8, dtype=torch.uint8).numpy(), cell=8)
    assert read == [0, 1] and figure.size[0] > 8  # a figure that fits is drawn from every image


def test_unit_column_reads_what_unit_activations_reads(tiny_model):
    """The evaluation reads each unit on every real image at once; per image it is the optimizer's reading."""
    from dgnam.units import unit_activations, unit_column

    torch.manual_seed(0)
    outs = {"a": torch.randn(6, 4, 5, 7), "b": torch.randn(6, 3), "c": torch.randn(6, 2, 9)}
    for u in parse_units("a:1,a:2@4,0,a:3:mean,b:2,c:1,c:0:mean"):
        assert torch.allclose(unit_column(outs[u.layer], u), unit_activations(outs, [u] * 6), atol=1e-6), u.address


# --------------------------------------------------------------------------------------------------------------------
# Other objectives: a minimized unit (-LAYER:CH) and a direction in a layer's activation space (LAYER:dir=FILE)


def test_a_minimized_unit_falls_while_the_same_unit_maximized_rises(tiny_model, tiny_gen):
    units = "logits:1,-logits:1"
    start = visualize(tiny_model, units, tiny_gen, restarts=2, steps=0, progress=False).records
    run = visualize(tiny_model, units, tiny_gen, restarts=2, steps=20, progress=False)
    end = run.records
    # the restart kept of a minimized unit is its lowest
    assert [end[k]["activation"] for k in run.best_restarts()] == [
        max(r["activation"] for r in end[:2]), min(r["activation"] for r in end[2:])]
    assert [(r["unit"], r["goal"]) for r in end] == [("logits:1", "maximize")] * 2 + [("-logits:1", "minimize")] * 2
    # the records hold the raw activation: both goals start from the same value (the same seeds)
    assert [r["activation"] for r in start[:2]] == [r["activation"] for r in start[2:]]
    for a, b in zip(start, end):
        if b["goal"] == "maximize":
            assert b["activation"] > a["activation"] + 0.03 and b["best_activation"] >= b["activation"]
        else:  # its best is its lowest
            assert b["activation"] < a["activation"] - 0.03 and b["best_activation"] <= b["activation"]
    # the loop itself: per step, the minimized item's activation falls, its best is the lowest seen
    pipe = Pipeline(tiny_gen, tiny_model, parse_units(units), SPACE)
    codes = tiny_gen.init_codes([0, 0], "randn")
    res = optimize(pipe, parse_units(units), codes, AMConfig(steps=15), dgnam_code_priors(tiny_gen.code_stats),
                   keep_history=True)
    hist = torch.stack(res.history)  # (steps + 1, 2), raw activations
    assert hist[-1, 0] > hist[0, 0] and hist[-1, 1] < hist[0, 1]
    assert float(res.best_activations[0]) == float(hist[:, 0].max())
    assert float(res.best_activations[1]) == float(hist[:, 1].min())


def test_a_one_hot_direction_runs_as_its_channel(tiny_model, tiny_gen):
    """Lucid's `direction` with v = e_c is the unit c: the same images, codes and activations, also at a position,
    as a channel mean and minimized."""
    from dgnam.units import Unit

    pairs = [(Unit("logits", direction=torch.eye(5)[3]), Unit("logits", 3)),
             (Unit("features.4", direction=torch.eye(8)[7]), Unit("features.4", 7)),
             (Unit("fc", direction=torch.eye(16)[8]), Unit("fc", 8)),
             (Unit("features.4", direction=torch.eye(8)[6], position=(1, 4)), Unit("features.4", 6, position=(1, 4))),
             (-Unit("features.4", direction=torch.eye(8)[5], reduce="mean"), -Unit("features.4", 5, reduce="mean"))]
    kw = dict(restarts=2, steps=12, progress=False, batch_size=16)
    directions = visualize(tiny_model, [d for d, _ in pairs], tiny_gen, **kw)
    channels = visualize(tiny_model, [c for _, c in pairs], tiny_gen, **kw)
    assert torch.allclose(directions.codes, channels.codes, atol=1e-5)
    assert torch.allclose(directions.images, channels.images, atol=1e-5)
    for d, c in zip(directions.records, channels.records):
        assert d["unit"].split(":dir=")[0] == c["unit"].split(":")[0] and d["position"] == c["position"]
        assert d["activation"] == pytest.approx(c["activation"], abs=1e-5) and d["activation"] != 0
        assert d["best_step"] == c["best_step"]


def test_a_sum_of_channels_reads_and_optimizes_the_sum(tiny_model, tiny_gen):
    """`LAYER:A+B` (Lucid's channel(A) + channel(B), a neuron interaction; weighted `A+0.5*B`, class names on the
    logits) was refused ("unknown class name"): it is the direction with the weights at those channels, so it reads
    the weighted sum of the channels' activations at the unit's position or mean, and the run raises it."""
    from dgnam.units import LayerReader, unit_column

    ex = torch.zeros(1, *SPACE.shape)
    summed, logit_sum, mean = resolve_units(tiny_model, parse_units("features.4:1+2@2,3,-logits:a+-0.5*c,"
                                                                    "features.4:1 + 2.5e0*5:mean"), ex)
    assert summed.direction.tolist() == [0, 1, 1, 0, 0, 0, 0, 0] and summed.address.startswith("features.4:dir=1+2#")
    assert summed.address.endswith("@2,3") and mean.address.endswith(":mean") and mean.direction_name == "1+2.5e0*5"
    assert mean.direction.tolist() == [0, 1, 0, 0, 0, 2.5, 0, 0]
    assert logit_sum.direction.tolist() == [1, 0, -0.5, 0, 0] and logit_sum.sign == -1
    assert resolve_units(tiny_model, parse_units("logits:a+-c+-2"), ex)[0].direction.tolist() == [1, 0, -2, 0, 0]
    x = torch.randn(3, *SPACE.shape, generator=torch.Generator().manual_seed(0))
    parts = parse_units("features.4:1@2,3,features.4:2@2,3,logits:0,logits:2,features.4:1:mean,features.4:5:mean")
    with torch.no_grad():
        outs = LayerReader(tiny_model, ["features.4", "logits"])(x)
        got, one = ([unit_column(outs[u.layer], u) for u in us] for us in ([summed, logit_sum, mean], parts))
    assert torch.allclose(got[0], one[0] + one[1], atol=1e-6)
    assert torch.allclose(got[1], one[2] - 0.5 * one[3], atol=1e-6)
    assert torch.allclose(got[2], one[4] + 2.5 * one[5], atol=1e-5)
    # the run raises the sum, and its records and code files keep the vector as a direction's
    start = visualize(tiny_model, "features.4:1+2", tiny_gen, restarts=2, steps=0, progress=False).records
    end = visualize(tiny_model, "features.4:1+2", tiny_gen, restarts=2, steps=15, progress=False).records
    assert all(b["activation"] > a["activation"] + 0.03 for a, b in zip(start, end))
    assert end[0]["direction"] == "1+2" and end[0]["unit"] == resolve_units(
        tiny_model, parse_units("features.4:1+2"), ex)[0].address
    # its address reads back as the sum (no file named "1+2" is looked for), to the same vector
    again = resolve_units(tiny_model, parse_units(end[0]["unit"]), ex)[0]
    assert again.address == end[0]["unit"] and torch.equal(again.direction, summed.direction)
    from dgnam.units import require_plain_units
    with pytest.raises(DgnamError, match="features.4:dir=1.2#.* is a minimized unit, a direction or a sum"):
        require_plain_units([again], "facets")
    for bad, needle in [("logits:a+zz", "unknown class name 'zz'"), ("logits:1+9", "channel 9 out of range"),
                        ("logits:1+*2", "cannot read the term '*2'"), ("logits:1+-1*1", "cancel out"),
                        ("features.4:b+3", "class names name the model's outputs")]:
        with pytest.raises(DgnamError, match=re.escape(needle)):
            resolve_units(tiny_model, parse_units(bad), ex)
    tiny_model.classes = ["a", "b+c", "c", "d", "e"]  # a class whose name holds + is still that class
    try:
        assert resolve_units(tiny_model, parse_units("logits:B+C"), ex)[0].channel == 1
    finally:
        tiny_model.classes = ["a", "b", "c", "d", "e"]


def test_unit_arithmetic_is_the_sum_of_channels(tiny_model):
    """Lucid's objective arithmetic on Units (`a + 0.5 * b`, `a - b`, `sum(units)`, `-(a + b)`) builds the sum
    `LAYER:A+0.5*B` the string gives, resolving to the same vector; what it cannot mean is refused in one line."""
    from dgnam.units import Unit

    ex = torch.zeros(1, *SPACE.shape)
    a, b, c = Unit("features.4", 1), Unit("features.4", 2), Unit("logits", "a")

    def vector(u):
        return resolve_units(tiny_model, [u], ex)[0].direction.tolist()

    assert (a + b).address == "features.4:1+2" and vector(a + b) == vector(parse_units("features.4:1+2")[0])
    assert vector(a + 0.5 * b) == [0, 1, 0.5, 0, 0, 0, 0, 0] and vector(a - b / 4) == [0, 1, -0.25, 0, 0, 0, 0, 0]
    assert vector(-a + 0.1 * b) == pytest.approx([0, -1, 0.1, 0, 0, 0, 0, 0])
    assert sum([a, b, a]) == Unit("features.4", "1+2+1") and vector(sum([a, b, a])) == [0, 2, 1, 0, 0, 0, 0, 0]
    # all weights negative: the minimized sum, so records say "minimize"; one unit weighted 1 is that unit
    assert -a - b == -(a + b) == Unit("features.4", "1+2", sign=-1) and 1 * a == a and (a + b - b).channel == "1+2+-2"
    assert vector(c + Unit("logits", "c") * 3) == [1, 0, 3, 0, 0]
    # weights computed with numpy or torch (a probe's coefficients) weight as numbers do
    import numpy as np

    assert np.float32(0.5) * b == b * torch.tensor(0.5) == torch.tensor([0.5]) * b == b / np.int64(2) == 0.5 * b
    # the address reads back as the same unit
    u = Unit("features.4", 1, position=(2, 3)) + Unit("features.4", 5, position=(2, 3)) * 1e-7
    again = parse_units(u.address)[0]
    assert again == u and vector(again) == pytest.approx([0, 1, 0, 0, 0, 1e-7, 0, 0])
    assert all(parse_units(v.address) == [v] for v in (-a + 0.1 * b, a - b, -(a + b), 2 * a))
    # (written 1e16: the "+" of 1e+16 would split the term)
    assert vector(a + b * 1e16) == pytest.approx([0, 1, 1e16, 0, 0, 0, 0, 0])
    for bad, needle in [(lambda: a + c, "sums across layers are not supported"),
                        (lambda: a + Unit("features.4", 2, reduce="mean"), "same position and reduce"),
                        (lambda: a + Unit("features.4", "0-3"), "a span or a negative index"),
                        (lambda: a + Unit("features.4", direction=torch.ones(8)), "add the vectors instead"),
                        (lambda: a / 0, "non-zero number"), (lambda: a * float("nan"), "a finite number")]:
        with pytest.raises(DgnamError, match=re.escape(needle)):
            bad()
    with pytest.raises(TypeError):
        a + 1
    # the same sums written in a unit list, a layer in each term, are refused saying how to write them
    for bad, needle in [("features.4:1+features.4:2", "name the layer once, features.4:A+B"),
                        ("fc:1,logits:1+ 0.5*features.4:2@1,1", "separate units, logits:...,features.4:...")]:
        with pytest.raises(DgnamError, match=re.escape(needle)):
            parse_units(bad)


def test_units_of_every_kind_batched_equal_one_at_a_time(tiny_model, tiny_gen):
    """Each batch item keeps its own objective: maximized, minimized and direction units, with restarts, in one
    batch compute what they compute alone."""
    from dgnam.units import Unit

    g = torch.Generator().manual_seed(0)
    units = [Unit("logits", 1), -Unit("logits", 1), Unit("features.4", direction=torch.randn(8, generator=g),
                                                         position=(2, 3)),
             -Unit("fc", direction=torch.rand(16, generator=g)), Unit("features.4", 0, reduce="mean")]
    batched = visualize(tiny_model, units, tiny_gen, restarts=2, steps=10, batch_size=10, progress=False)
    for k, u in enumerate(units):
        alone = visualize(tiny_model, [u], tiny_gen, restarts=2, steps=10, batch_size=1, progress=False).records
        for a, b in zip(batched.records[2 * k : 2 * k + 2], alone):
            assert a["unit"] == b["unit"] == u.address and a["goal"] == u.goal
            assert a["activation"] == pytest.approx(b["activation"], rel=1e-4, abs=1e-4)
            assert a["best_activation"] == pytest.approx(b["best_activation"], rel=1e-4, abs=1e-4)


def test_minus_and_direction_units_parse_check_and_read_back(tiny_model, tmp_path, monkeypatch):
    import numpy as np

    from dgnam.units import Unit

    ex = SPACE.encode(torch.rand(1, 1, 12, 12))
    us = parse_units("-features.4:1,2@1,2,logits:0,-fc:3")
    assert [(u.layer, u.channel, u.position, u.sign) for u in us] == [
        ("features.4", 1, None, -1), ("features.4", 2, (1, 2), -1), ("logits", 0, None, 1), ("fc", 3, None, -1)]
    assert [u.address for u in us] == ["-features.4:1", "-features.4:2@1,2", "logits:0", "-fc:3"]
    assert -us[0] == Unit("features.4", 1) and Unit("logits", 0, sign=-1) == -us[2]
    assert [u.goal for u in resolve_units(tiny_model, parse_units("-logits:b"), ex)] == ["minimize"]
    monkeypatch.chdir(tmp_path)
    v = np.arange(1, 9, dtype=np.float32)
    np.save("probe.npy", v)
    from safetensors.numpy import save_file

    save_file({"w": v[None]}, "probe.safetensors")  # a (1, C) probe is one vector
    a, b = parse_units("features.4:dir=probe.npy@1,2,-features.4:dir=probe.safetensors:mean")
    assert torch.equal(a.direction, torch.from_numpy(v)) and a.position == (1, 2) and a.channel is None
    assert b.sign == -1 and b.reduce == "mean" and a.digest == b.digest
    assert a.address == f"features.4:dir=probe.npy#{a.digest}@1,2"
    assert b.address == f"-features.4:dir=probe.safetensors#{a.digest}:mean"
    assert resolve_units(tiny_model, [a, b], ex) == [a, b]
    # a record's address reads back: the vector from the run's copy, or from the file while it holds the same one
    assert parse_units(a.address, {a.digest: torch.from_numpy(v)}) == [a] == parse_units(a.address)
    np.save("probe.npy", v * 2)
    with pytest.raises(DgnamError, match="holds another vector"):
        parse_units(a.address)
    assert parse_units(a.address, {a.digest: torch.from_numpy(v)}) == [a]
    # the layer's channel count, in one line
    for unit in ("fc:dir=probe.npy", "logits:dir=probe.npy:mean"):
        with pytest.raises(DgnamError, match=r"the direction has 8 values, but layer '(fc|logits)' has (16|5) "
                                             r"channels: give a vector of \2 values") as e:
            resolve_units(tiny_model, parse_units(unit), ex)
        assert "\n" not in str(e.value)
    # only arrays: a pickled .npy (it could run code), a matrix, a wrong suffix, NaN and zeros are refused
    np.save("objects.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    np.save("matrix.npy", np.ones((2, 8), dtype=np.float32))
    np.save("nan.npy", np.full(8, np.nan, dtype=np.float32))
    np.save("zeros.npy", np.zeros(8, dtype=np.float32))
    (tmp_path / "probe.pt").write_bytes(b"")
    for spec, needle in [("fc:dir=objects.npy", "not a readable .npy array"), ("fc:dir=matrix.npy", r"shape \(2, 8\)"),
                         ("fc:dir=nan.npy", "NaN"), ("fc:dir=zeros.npy", "all zeros"),
                         ("fc:dir=probe.pt", "give a .npy or .safetensors"), ("fc:dir=gone.npy", "is not a file"),
                         ("fc:dir=", "give the vector's file")]:
        with pytest.raises(DgnamError, match=needle):
            parse_units(spec)
    for kwargs, needle in [(dict(channel=1, direction=v), "not both"), (dict(sign=2), "give 1 \\(maximize\\)"),
                           (dict(direction=v, direction_name="a,b"), "without , : @ #"),
                           (dict(channel=1, direction_name="x"), "direction_name names a direction")]:
        with pytest.raises(DgnamError, match=needle):
            Unit(**{"layer": "fc", "channel": None, **kwargs})


def test_resume_refuses_a_direction_whose_vector_changed(tmp_path, tiny_model, tiny_gen):
    import numpy as np

    vec = tmp_path / "probe.npy"
    np.save(vec, np.linspace(-1, 1, 16, dtype=np.float32))
    kw = dict(restarts=2, steps=2, batch_size=1, progress=False, out=tmp_path / "r")
    first = visualize(tiny_model, f"fc:dir={vec}", tiny_gen, **kw)
    assert json.loads((tmp_path / "r" / "results.json").read_text())["config"]["directions"] == [
        {"unit": 0, "file": "probe.npy", "digest": first.records[0]["direction_digest"]}]
    assert visualize(tiny_model, f"fc:dir={vec}", tiny_gen, resume=True, **kw).records == first.records
    np.save(vec, np.linspace(-1, 1, 16, dtype=np.float32)[::-1].copy())
    with pytest.raises(DgnamError, match=r"directions\[0\]\.digest .*; resume with the same ones") as e:
        visualize(tiny_model, f"fc:dir={vec}", tiny_gen, resume=True, **kw)
    assert "\n" not in str(e.value)


def test_facets_and_ppgn_refuse_what_only_visualize_optimizes(tiny_model):
    from dgnam.facets import find_facets
    from dgnam.ppgn import UnitCondition

    with pytest.raises(DgnamError, match="takes plain units.*-logits:1 is a minimized unit"):
        UnitCondition(tiny_model, "-logits:1")
    with pytest.raises(DgnamError, match="facets takes plain units"):
        find_facets(tiny_model, "-logits:1", torch.rand(40, 1, 12, 12))


def test_a_unit_at_a_relu_output_rises_by_the_gradient_before_the_relu():
    """DGN-AM on hidden ReLU units (`fc6.1:k`, `features.16:k` of fmnist-cnn) ended at 0 in 38 of 40 runs: lr 8
    overshoots into the ReLU's zero, whose gradient is zero for good. The released code's gradient is that of the
    layer before Caffe's in-place ReLU: the value read stays the ReLU's output, the gradient is its input's."""
    torch.manual_seed(0)
    lin = torch.nn.Linear(144, 3)
    for relu, inplace in [(torch.nn.ReLU, False), (torch.nn.ReLU, True), (torch.nn.ReLU6, True)]:
        net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Sequential(lin, relu(inplace=inplace)))
        x = torch.rand(4, 1, 12, 12, requires_grad=True)
        if relu is torch.nn.ReLU6:  # MobileNet's: flat above 6 as well, where unit 2 is on all 4 images here
            x = (x * 60).detach().requires_grad_()
        reader = LayerReader(net, ["1", "1.1"])
        exact, pre = reader(x), reader(x, "pre")
        for name in ("1", "1.1"):
            assert torch.equal(exact[name], pre[name]) and (pre[name] >= 0).all()  # the value: the ReLU's output
        (g,) = torch.autograd.grad(pre["1"][:, 2].sum(), x)
        (g_lin,) = torch.autograd.grad(lin(x.flatten(1))[:, 2].sum(), x)
        assert torch.allclose(g, g_lin)  # the gradient: the ReLU's input's, where the unit is 0 (or 6) too
        if relu is torch.nn.ReLU6:
            (g_exact,) = torch.autograd.grad(exact["1"][:, 2].sum(), x)
            assert (exact["1"][:, 2] == 6).all() and not g_exact.any() and g.abs().sum() > 0
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Sequential(lin, torch.nn.ReLU()))
    with torch.no_grad():
        lin.bias[2] = -2.0  # 0 on every image at the start (its input -1.56 on the start image)
    kw = dict(steps=20, progress=False, input_space=SPACE)
    with pytest.warns(UserWarning, match="stayed at its start value"):  # the unit at 0 has no gradient
        exact = visualize(net, "1:2", None, config=AMConfig(steps=20, lr_start=0.05, relu_gradient="exact"), **kw)
    assert exact.records[0]["activation"] == 0 and exact.records[0]["unchanged"]
    pre = visualize(net, "1:2", None, config=AMConfig(steps=20, lr_start=0.05), **kw)
    assert pre.records[0]["activation"] > 0 and "unchanged" not in pre.records[0]
    before_relu = visualize(net, "1.0:2", None, config=AMConfig(steps=20, lr_start=0.05), **kw)
    assert torch.equal(pre.images, before_relu.images)  # the same steps as maximizing the ReLU's input itself
    with pytest.raises(DgnamError, match="unknown relu_gradient 'through': use pre or exact"):
        visualize(net, "1:2", None, config=AMConfig(relu_gradient="through"), **kw)


def test_a_unit_at_its_cap_keeps_its_latest_image_as_the_best():
    """A ReLU6 unit reached 6 within two steps and stayed there while the image went on changing: the first image at
    6, noise, was kept as the best (``_best.png`` of an EfficientNet head unit). Of equal activations the latest
    counts now; a higher one still wins."""
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Sequential(torch.nn.Linear(144, 3), torch.nn.ReLU6()))
    pipe_units = resolve_units(net, parse_units("1:0"), SPACE.encode(torch.rand(1, 1, 12, 12)))
    gen = PixelGenerator(SPACE)
    pipe = Pipeline(gen, net, pipe_units, SPACE)
    res = optimize(pipe, pipe_units, gen.init_codes([0]), AMConfig(steps=12, lr_start=2.0, lr_end=2.0,
                                                                   relu_gradient="pre"), [], keep_history=True)
    hist = torch.stack(res.history)[:, 0]
    assert hist[2:].eq(6).all() and hist[0] < 6  # at the cap from step 2 on, the image still moving
    assert res.best_steps.item() == 12 and torch.equal(res.best_codes, res.codes)


def test_a_unit_at_its_ceiling_from_the_start_is_not_called_unresponsive():
    """A ReLU6 unit at 6 on the start image stays at 6 while its input rises: the warning said it "did not respond
    (ReLU units whose input stayed below 0)"; it names the ceiling and the layer to read instead."""
    torch.manual_seed(0)
    lin = torch.nn.Linear(144, 2)
    with torch.no_grad():
        lin.bias[:] = torch.tensor([100.0, -100.0])  # unit 0 at 6 on any image, unit 1 at 0
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Sequential(lin, torch.nn.ReLU6()))
    kw = dict(steps=5, progress=False, input_space=SPACE, config=AMConfig(steps=5, relu_gradient="exact"))
    with pytest.warns(UserWarning) as got:
        run = visualize(net, "1:0,1", None, **kw)
    said = [str(w.message) for w in got]
    assert [r["activation"] for r in run.records] == [6.0, 0.0] and all(r["unchanged"] for r in run.records)
    assert any("ceiling" in m and "1:0 restart 0" in m and "1:1" not in m for m in said), said
    assert any("did not respond" in m and "1:1 restart 0" in m and "1:0" not in m for m in said), said


def test_a_run_made_before_relu_gradient_goes_on_as_it_was_made(tiny_model, tiny_gen, tmp_path):
    out = tmp_path / "old"
    visualize(tiny_model, "fc.0:1,fc:3", tiny_gen, steps=4, batch_size=1, out=out, progress=False)
    doc = json.loads((out / "results.json").read_text())
    del doc["config"]["config"]["relu_gradient"]  # as a run of an earlier version recorded it
    doc["records"] = doc["records"][:1]
    (out / "results.json").write_text(json.dumps(doc))
    with pytest.warns(UserWarning, match="made before relu_gradient existed.*relu_gradient='exact'"), \
            pytest.warns(UserWarning, match="stayed at its start value"):
        run = visualize(tiny_model, "fc.0:1,fc:3", tiny_gen, steps=4, batch_size=1, out=out, resume=True,
                        progress=False)
    with pytest.warns(UserWarning, match="stayed at its start value"):  # fc:3 is 0 there, and through the ReLU stays
        alone = visualize(tiny_model, "fc:3", tiny_gen, steps=4, progress=False,
                          config=AMConfig(steps=4, relu_gradient="exact"))
    assert run.records[1]["activation"] == alone.records[0]["activation"]
    assert "relu_gradient" not in json.loads((out / "results.json").read_text())["config"]["config"]


def test_the_relu_gradient_of_a_unit_does_not_depend_on_the_other_units_of_its_run():
    """Only a ReLU inside the layer read counts: a Dropout after a ReLU passes the ReLU's very tensor on, and it had
    the input's gradient only when the ReLU's layer was read in the same run. A ReLU input of -inf read as NaN."""
    torch.manual_seed(0)
    lin = torch.nn.Linear(144, 3)
    net = torch.nn.Sequential(torch.nn.Flatten(), lin, torch.nn.ReLU(), torch.nn.Dropout(0.5)).eval()
    with torch.no_grad():
        lin.bias[2] = -2.0
    kw = dict(progress=False, input_space=SPACE, config=AMConfig(steps=20, lr_start=0.05), batch_size=2)
    with pytest.warns(UserWarning, match="stayed at its start value"):  # through the ReLU before the Dropout
        alone = visualize(net, "3:2", None, **kw).records[0]
    with pytest.warns(UserWarning, match="stayed at its start value"):
        beside = visualize(net, "2:0,3:2", None, **kw).records[1]
    assert beside["activation"] == alone["activation"] == 0
    with torch.no_grad():
        lin.weight.fill_(-3e38)
    x = torch.ones(2, 1, 12, 12)
    assert torch.equal(LayerReader(net, ["2"])(x, "pre")["2"], torch.zeros(2, 3))  # not NaN


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # torch.jit.script is deprecated, but models ship in it
def test_a_torchscript_part_of_a_model_is_no_layer_but_the_rest_are():
    class Act(torch.nn.Module):
        def forward(self, x):
            return torch.tanh(x)

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(144, 6), torch.jit.script(Act()),
                              torch.nn.Linear(6, 3))
    example = SPACE.encode(torch.rand(1, 1, 12, 12))
    assert [n for n, _t, _s in layer_shapes(net, example)] == ["0", "1", "3", "logits"]  # it refused the model
    assert len(visualize(net, "1:2,3:0", None, steps=2, progress=False, input_space=SPACE).records) == 2
    with pytest.raises(DgnamError, match="layer '2' is TorchScript"):
        visualize(net, "2:0", None, steps=2, progress=False, input_space=SPACE)


def test_settings_and_code_ranges_are_checked_when_made(tiny_model, tmp_path):
    """A bad relu_gradient or optimizer failed at the first step, after the run folder was made: the corrected call
    was then told to resume."""
    with pytest.raises(DgnamError, match="unknown relu_gradient 'Pre': use pre or exact"):
        visualize(tiny_model, "fc:1", None, config=AMConfig(relu_gradient="Pre"), out=tmp_path / "r", progress=False)
    with pytest.raises(DgnamError, match="unknown optimizer 'Adam': use sgd, adam"):
        AMConfig(optimizer="Adam")
    assert not (tmp_path / "r").exists()
    for bad in ("0", float("nan"), True):
        with pytest.raises(DgnamError, match="code_lower=.*give the code's lowest value as a number"):
            LearnedGenerator(torch.nn.Identity(), code_shape=(3,), space=SPACE, code_lower=bad)


def test_code_bounds_of_another_size_are_refused_before_the_run_folder_is_made(tiny_model, tiny_gen, tmp_path):
    """Code statistics of another size than the code (a factory's mistake) failed at the first step, after visualize
    had made the run folder: the corrected call was then told to --resume a run killed before its first results."""
    from dgnam.priors import CodeStats

    gen = LearnedGenerator(tiny_gen.net, code_shape=(10,), space=tiny_gen.space,
                           code_stats=CodeStats(mean=torch.zeros(8), std=torch.ones(8)), code_lower=-3.0)
    with pytest.raises(DgnamError, match="8 components for a code of 10"):
        visualize(tiny_model, "logits:1", gen, steps=2, out=tmp_path / "run", progress=False)
    assert not (tmp_path / "run" / "images").exists()  # (its lock file alone is no run)
    gen.code_stats = CodeStats(mean=torch.zeros(10), std=torch.ones(10))
    visualize(tiny_model, "logits:1", gen, steps=2, out=tmp_path / "run", progress=False)  # no --resume needed


def test_after_its_first_pass_a_reader_hooks_only_the_relu_that_made_each_output():
    """A block read whole (a conv stack) had the input of every in-place ReLU inside it copied at every step, for a
    gradient only its output's own ReLU can use."""
    torch.manual_seed(0)
    stack = torch.nn.Sequential(torch.nn.Conv2d(1, 3, 3), torch.nn.ReLU(inplace=True), torch.nn.Conv2d(3, 3, 3),
                                torch.nn.ReLU(inplace=True), torch.nn.MaxPool2d(2))
    head = torch.nn.Sequential(torch.nn.Conv2d(3, 2, 1), torch.nn.ReLU(inplace=True))
    net = torch.nn.Sequential(stack, head)
    hooked = []  # per ReLU call: whether the reader hooked it (its pre-hooks besides this one)
    for m in net.modules():
        if isinstance(m, torch.nn.ReLU):
            m.register_forward_pre_hook(lambda m, i: hooked.append(len(m._forward_pre_hooks) > 1))
    reader = LayerReader(net, ["0", "1"])
    x = torch.rand(2, 1, 12, 12, requires_grad=True)
    first = reader(x, "pre")
    grads = torch.autograd.grad(first["1"][:, 1].sum(), x)
    assert reader._output_relus == {"0": set(), "1": {id(head[1])}}
    assert hooked == [True, True, True]
    hooked.clear()
    again = reader(x, "pre")
    assert torch.equal(first["1"], again["1"]) and torch.equal(first["0"], again["0"])
    assert torch.equal(torch.autograd.grad(again["1"][:, 1].sum(), x)[0], grads[0])  # the same gradient
    assert hooked == [False, False, True]  # the stack's ReLUs, whose outputs no layer read is, are left alone


def drawn_text(monkeypatch) -> list[str]:
    """Every string a figure draws (Pillow's ImageDraw.text), in order."""
    from PIL import ImageDraw

    texts: list[str] = []
    text = ImageDraw.ImageDraw.text
    monkeypatch.setattr(ImageDraw.ImageDraw, "text", lambda self, xy, t, *a, **kw: (texts.append(t), text(self, xy, t, *a, **kw))[1])
    return texts


def test_grid_row_labels_keep_the_whole_unit_class_goal_and_facet(monkeypatch):
    """grid.png cut each row label to one 150-px line: '_blocks.15._project_conv:123' read '_blocks.15._project_co…'
    (every channel of that layer the same label), 'logits:268 Mexican hairless dog (xoloitzcuintli)' read 'logits:268
    Mexican hairl…', a minimized unit was told only by a leading '-', and a facets run's rows all read
    'logits:5 Sandal' (which facet, nowhere). The cells' numbers are named above the labels."""
    import numpy as np

    from dgnam.run import overview_grid

    img = np.zeros((28, 28), np.uint8)
    base = {"restart": 0, "activation": 1.0, "goal": "maximize"}
    records = [
        {**base, "unit": "_blocks.15._project_conv:123", "unit_index": 0},
        {**base, "unit": "logits:268", "unit_index": 1, "class_name": "Mexican hairless dog (xoloitzcuintli)"},
        {**base, "unit": "-logits:3", "unit_index": 2, "class_name": "Dress", "goal": "minimize"},
        {**base, "unit": "logits:5", "unit_index": 3, "class_name": "Sandal", "facet": 1, "facet_size": 88},
    ]
    texts = drawn_text(monkeypatch)
    overview_grid(records, lambda k: img)
    shown = " ".join(texts)
    assert "…" not in shown and "final activation" in shown
    assert "conv:123" in shown and "(xoloitzcuintli)" in shown and "(minimized)" in shown and "facet 1 (88 imgs)" in shown
    texts.clear()
    overview_grid([{"unit": "logits:3", "unit_index": 0, "restart": 0, "sample": 0, "condition": "Dress",
                    "probability": 0.5, "score": -0.7}], lambda k: img)
    assert "sample 0" in texts and "p(class)" in texts and "restart 0" not in texts  # a chain's samples


def test_grid_column_labels_too_wide_for_a_cell_take_a_second_line(monkeypatch):
    """quality_grid.png's 64-px class columns read '0 T-shirt/to' and '9 Ankle b…' (one line cut to the cell). A label that
    does not fit is broken onto a second line, whole; a grid whose labels fit keeps its one-line header."""
    import numpy as np

    from dgnam.images import grid

    img = np.zeros((28, 28), np.uint8)
    short = grid([[img, img]], col_labels=["0 Bag", "1 Coat"], cell=64)
    texts = drawn_text(monkeypatch)
    long = grid([[img, img]], col_labels=["0 T-shirt/top", "9 Ankle boot"], cell=64)
    assert "…" not in " ".join(texts) and "T-shirt/top" in texts and "boot" in texts
    assert long.height == short.height + 14  # one more line of header, the cells below it as before
    assert np.array_equal(np.asarray(long)[-68:], np.asarray(short)[-68:])  # the cells are drawn alike


def test_grid_keeps_an_images_aspect_ratio():
    """A 16x48 (HxW) input's PNG was stretched into the square cell: three times too tall. It now fills the cell's
    width, centred, with the white of the page above and below; a square image still fills its cell."""
    import numpy as np

    from dgnam.images import grid

    wide = np.zeros((16, 48), np.uint8)  # black
    fig = np.asarray(grid([[wide]], cell=96, pad=4))
    cell = fig[4 : 4 + 96, 4 : 4 + 96, 0]
    dark = np.flatnonzero((cell < 128).all(1))  # the rows of the cell the image covers
    assert len(dark) == 32 and dark[0] == 32 and (cell[:32] == 255).all()
    assert (np.asarray(grid([[np.zeros((12, 12), np.uint8)]], cell=96, pad=4))[4:100, 4:100] == 0).all()
