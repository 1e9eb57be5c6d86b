"""Pixel-space priors, transforms, the Fourier parametrization and the published presets, on constructed images."""

import pytest
import torch

from dgnam import AMConfig, DgnamError, visualize
from dgnam.generators import FourierGenerator
from dgnam.imagespace import ImageSpace, caffe_space, convert
from dgnam.methods import build_method, list_methods
from dgnam.presets import YOSINSKI_SETTINGS, caffe_units_space, yosinski_config, yosinski_priors
from dgnam.priors import (AlphaNorm, Blur, ClipSmallContribution, ClipSmallNorm, ClipToSpace, L2Decay, L2Penalty,
                          StepState, TotalVariation, gaussian_blur)
from dgnam.transforms import LUCID_ANGLES, Jitter, Pad, RandomRotate, RandomScale, standard_transforms

from conftest import SPACE
from helpers import total_variation


def _state(step=0, grad=None):
    return StepState(step=step, steps=10, lr=1.0, grad=grad)


def _high_freq_energy(x):
    f = torch.fft.rfft2(x).abs() ** 2
    h = x.shape[-2]
    return float(f[..., h // 4 : 3 * h // 4, x.shape[-1] // 4 :].sum())


def test_blur_lowers_high_frequency_energy_only_every_n_steps():
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    blur = Blur(1.0, every=4)
    y = x.clone()
    blur.after_step(y, _state(step=1))
    assert torch.equal(x, y)  # not a blur step
    blur.after_step(y, _state(step=4))
    assert _high_freq_energy(y) < 0.1 * _high_freq_energy(x)
    const = torch.full((1, 1, 8, 8), 0.7)
    assert torch.allclose(gaussian_blur(const, 2.0), const, atol=1e-6)  # mean and constants are kept


@pytest.mark.parametrize("percentile", [20, 50, 90])
def test_small_norm_clip_zeroes_exactly_that_fraction(percentile):
    x = torch.randn(3, 3, 10, 10, generator=torch.Generator().manual_seed(1))
    norms = x.norm(dim=1)
    ClipSmallNorm(percentile).after_step(x, _state())
    zero = (x == 0).all(1)
    assert int(zero[0].sum()) == percentile  # 100 pixels
    assert (zero.flatten(1).sum(1) == percentile).all()
    # the zeroed ones are the smallest-norm pixels
    kept_min = torch.where(zero, torch.inf, norms).flatten(1).min(1).values
    cut_max = torch.where(zero, norms, -torch.inf).flatten(1).max(1).values
    assert (cut_max <= kept_min).all()


def test_small_contribution_clip_uses_the_linearized_contribution():
    g = torch.Generator().manual_seed(2)
    x = torch.randn(1, 3, 10, 10, generator=g)
    grad = torch.zeros_like(x)
    grad[..., :5, :] = 1.0  # only the top half of the image contributes
    y = x.clone()
    ClipSmallContribution(50).after_step(y, _state(grad=grad))
    assert (y[..., 5:, :] == 0).all()  # exactly the 50 non-contributing pixels are cleared
    assert torch.equal(y[..., :5, :], x[..., :5, :])


def test_total_variation_falls_under_the_tv_prior(tiny_model):
    noisy = SPACE.encode(torch.rand(1, 1, 12, 12, generator=torch.Generator().manual_seed(3)))
    run = visualize(tiny_model, "logits:0", None, steps=30, priors=[TotalVariation(5.0)],
                    config=AMConfig(steps=30, lr_start=0.05, lr_policy="constant"), init=noisy, progress=False)
    assert float(total_variation(run.codes)) < 0.5 * float(total_variation(noisy))
    flat = torch.zeros(1, 1, 5, 5)
    assert float(total_variation(flat)) == pytest.approx(0.0, abs=1e-4)


def test_alpha_norm_and_decay():
    x = torch.tensor([[[[2.0, -1.0]]]])
    assert float(AlphaNorm(0.5, alpha=6).penalty(x, x)) == pytest.approx(0.5 * (64 + 1))
    y = x.clone()
    L2Decay(0.7).after_step(y, _state())
    assert torch.allclose(y, 0.7 * x)


def test_pixel_priors_refuse_non_image_codes():
    with pytest.raises(DgnamError, match="pixel generator"):
        ClipSmallNorm(10).after_step(torch.zeros(2, 10), _state())


def test_transforms_are_a_function_of_seed_and_step():
    x = torch.randn(4, 3, 20, 20, generator=torch.Generator().manual_seed(4))
    chain = standard_transforms(20, seed=7)
    out1 = x
    for f in chain:
        out1 = f(out1, 3)
    out2 = x[2:3]
    for f in standard_transforms(20, seed=7):
        out2 = f(out2, 3)
    assert torch.allclose(out1[2:3], out2, atol=1e-6)  # same draw for every batch item: batching changes nothing
    assert Jitter(2)(x, 0).shape[-1] == 18 and Pad(3)(x, 0).shape[-1] == 26
    assert RandomScale([2.0])(x, 0).shape[-1] == 40
    r = RandomRotate([90.0])(x[:, :, 1:-1, 1:-1], 0)
    assert torch.allclose(r, torch.rot90(x[:, :, 1:-1, 1:-1], 1, dims=(-2, -1)), atol=1e-4) or \
        torch.allclose(r, torch.rot90(x[:, :, 1:-1, 1:-1], -1, dims=(-2, -1)), atol=1e-4)


def test_the_runs_seed_reaches_lucids_random_transforms():
    """--seed must govern all of a method's randomness: lucid's jitter/scale/rotation draws were seeded with 0
    whatever the run's seed, so two seeds shared every transform."""
    x = torch.randn(1, 3, 20, 20, generator=torch.Generator().manual_seed(0))

    def views(seed):
        out = []
        for step in range(8):
            y = x
            for t in build_method("lucid", SPACE, seed=seed).transforms:
                y = t(y, step)
            out.append(y)
        return out

    assert all(torch.equal(a, b) for a, b in zip(views(3), views(3)))  # a function of the seed
    assert not all(a.shape == b.shape and torch.equal(a, b) for a, b in zip(views(0), views(3)))
    assert [t.seed for t in build_method("lucid", SPACE).transforms if hasattr(t, "seed")][0] == 0  # default as before


def test_fourier_generator_images_in_range_and_activation_rises(tiny_model):
    g = FourierGenerator((12, 12), channels=1)
    codes = g.init_codes([0, 1])
    img = g(codes)
    assert img.shape == (2, 1, 12, 12) and (img > 0).all() and (img < 1).all()
    rgb = FourierGenerator((9, 10), channels=3)
    assert rgb(rgb.init_codes([0])).shape == (1, 3, 9, 10)
    spec = build_method("lucid", SPACE)
    start = visualize(tiny_model, "logits:1", spec.generator, config=spec.config, steps=0, progress=False)
    run = visualize(tiny_model, "logits:1", spec.generator, config=spec.config, transforms=spec.transforms, steps=60,
                    progress=False)
    a0, a1 = start.records[0]["activation"], run.records[0]["activation"]
    assert a1 > a0 + 0.05 and a1 > 1.5 * a0 > 0


def test_yosinski_presets_match_the_published_table():
    t = YOSINSKI_SETTINGS
    assert (t[1].decay, t[1].blur_radius, t[1].blur_every, t[1].small_norm_percentile, t[1].iterations,
            t[1].lr_policy, t[1].lr, t[1].progress) == (0, 0.5, 4, 50, 500, "progress", 100, 2.0)
    assert (t[2].decay, t[2].blur_radius, t[2].small_norm_percentile, t[2].iterations, t[2].lr_policy, t[2].lr) == \
        (0.3, 0, 20, 750, "constant", 100)
    assert (t[3].decay, t[3].blur_radius, t[3].blur_every, t[3].iterations, t[3].lr_policy, t[3].lr) == \
        (0.0001, 1.0, 4, 1000, "constant", 100)
    assert (t[4].decay, t[4].blur_radius, t[4].blur_every, t[4].small_contribution_percentile, t[4].iterations,
            t[4].lr_policy, t[4].lr, t[4].progress) == (0, 0.5, 4, 90, 1000, "progress", 1e8, 2.0)
    spec = build_method("yosinski2", SPACE)
    assert spec.config.steps == 750 and spec.config.normalize == "none" and spec.config.lr_start == 100
    (decay, clip, in_range) = spec.priors
    assert decay.factor == pytest.approx(0.7) and clip.percentile == 20 and isinstance(in_range, ClipToSpace)
    assert [type(p).__name__ for p in yosinski_priors(t[4])] == ["Blur", "ClipSmallContribution"]
    assert yosinski_config(t[1]).lr_policy == "progress"
    names = {m.name for m in list_methods()}
    assert {"yosinski1", "yosinski2", "yosinski3", "yosinski4", "lucid", "pixel-l2-blur", "pixel", "dgn-am"} <= names


def test_caffe_units_space_is_0_255_minus_the_mean():
    target = ImageSpace(size=(4, 4), color="RGB", mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225))
    caffe = caffe_units_space(target)
    x01 = torch.rand(1, 3, 4, 4)
    raw = caffe.encode(x01)
    assert torch.allclose(raw, x01 * 255 - torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1) * 255, atol=1e-4)
    assert torch.allclose(convert(raw, caffe, target), target.encode(x01), atol=1e-5)
    # code 0 is the target's mean colour
    assert torch.allclose(convert(torch.zeros(1, 3, 4, 4), caffe, target), torch.zeros(1, 3, 4, 4), atol=1e-5)
    # the same for a BGR target (CaffeNet's space): the mean stays in the target's channel order
    bgr = caffe_space(4)
    assert torch.allclose(convert(torch.zeros(1, 3, 4, 4), caffe_units_space(bgr), bgr), torch.zeros(1, 3, 4, 4),
                          atol=1e-4)


def test_progress_policy_steps_so_the_linear_gain_is_the_target(tiny_model):
    """Under the progress policy one step raises a linear objective by exactly `progress` (when under the cap)."""
    spec = build_method("yosinski1", SPACE)
    run0 = visualize(tiny_model, "logits:2", spec.generator, config=spec.config, priors=[], steps=0, progress=False)
    run1 = visualize(tiny_model, "logits:2", spec.generator, config=AMConfig(**{**spec.config.to_dict(), "progress": 0.01, "lr_start": 1e12}),
                     priors=[], steps=1, progress=False)
    gain = run1.records[0]["activation"] - run0.records[0]["activation"]
    assert gain == pytest.approx(0.01, rel=0.2)
    capped = visualize(tiny_model, "logits:2", spec.generator, config=AMConfig(**{**spec.config.to_dict(), "lr_start": 1e-3}),
                       priors=[], steps=1, progress=False)
    assert abs(capped.records[0]["activation"] - run0.records[0]["activation"]) < 0.01 * gain  # the cap binds


def test_blur_is_scipys_gaussian_filter():
    """Yosinski et al.'s code blurs with scipy.ndimage.gaussian_filter: kernel cut at 4 sigma, edges extended by
    scipy's reflect (the edge pixel repeated). The blur cut at 3 sigma with torch's reflect differed at the border."""
    from scipy.ndimage import gaussian_filter

    x = torch.randn(2, 3, 12, 28, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    for sigma in (0.5, 1.0, 2.5, 8.0):  # (at 8 the kernel is wider than the image: the reflection repeats)
        want = torch.stack([torch.stack([torch.from_numpy(gaussian_filter(x[b, c].numpy(), sigma)) for c in range(3)])
                            for b in range(2)])
        assert torch.allclose(gaussian_blur(x, sigma), want, atol=1e-12)


def test_jitter_is_lucids_random_crop_and_rotation_prefers_zero():
    """Lucid's jitter(d) crops to H - d (shifts of 0..d); ours cropped 2d and shifted up to 2d. Its rotation list
    holds 0 six times."""
    x = torch.arange(20.0).view(1, 1, 1, 20).expand(1, 1, 20, 20)
    offsets = {int(Jitter(4, seed=s)(x, step)[0, 0, 0, 0]) for s in range(5) for step in range(40)}
    assert offsets == {0, 1, 2, 3, 4}
    assert Jitter(4)(x, 0).shape[-2:] == (16, 16)
    assert LUCID_ANGLES.count(0) == 6 and len(LUCID_ANGLES) == 26


def test_yosinski_keeps_pixels_in_range():
    """The released optimizer crops the image to 0..255 before every iteration; without it a responsive target drove
    pixels far outside any image."""

    class Bright(torch.nn.Module):  # the brighter the better, without limit
        def forward(self, x):
            return 1e4 * x.sum((1, 2, 3))[:, None].repeat(1, 2)

    net = Bright()
    net.input_space = SPACE
    spec = build_method("yosinski2", SPACE)
    run = visualize(net, "logits:0", spec.generator, priors=spec.priors, config=AMConfig(**{
        **spec.config.to_dict(), "steps": 20}), progress=False)
    x01 = SPACE.decode(convert(run.images, spec.generator.space, SPACE))
    assert float(x01.max()) <= 1.0 + 1e-5 and float(x01.min()) >= -1e-5
    assert float(x01.mean()) > 0.85  # it did climb to the top of the range (but for the 20 % small-norm pixels)


def test_l2_penalty_is_the_papers_norm():
    y = torch.tensor([[3.0, 4.0], [0.0, 0.0]])
    assert L2Penalty(0.5).penalty(y, y).tolist() == pytest.approx([2.5, 0.0], abs=1e-5)
    assert L2Penalty(0.5, squared=True).penalty(y, y).tolist() == pytest.approx([12.5, 0.0])


@pytest.mark.parametrize("name", ["yosinski3", "lucid"])
def test_a_method_named_alone_runs_that_method(tiny_model, name):
    """``visualize(model, units, method="yosinski3")`` ran plain pixel AM (lr 0.14, no decay, no blur) and recorded it
    as yosinski3; named alone it runs the method, as `dgnam visualize --prior yosinski3` does (seeded by the run's
    seed, which lucid's transform draws follow), the same as passing build_method's settings by hand."""
    spec = build_method(name, SPACE, seed=3)
    by_hand = visualize(tiny_model, "logits:0,1", spec.generator, steps=6, seed=3, config=spec.config,
                        priors=spec.priors, transforms=spec.transforms, method=name, progress=False)
    named = visualize(tiny_model, "logits:0,1", steps=6, seed=3, method=name, progress=False)
    assert named.config["config"]["lr_start"] == spec.config.lr_start != 0.14164305949008502
    assert named.config["priors"] == by_hand.config["priors"]
    assert named.config["transforms"] == by_hand.config["transforms"]
    assert named.config["priors"] or named.config["transforms"]  # yosinski3's decay and blur, lucid's transforms
    assert torch.equal(named.images, by_hand.images)
    assert {r["method"] for r in named.records} == {name}


def test_a_method_named_alone_that_does_not_fit_the_generator_is_refused(tiny_model, tiny_gen):
    with pytest.raises(DgnamError, match="method='dgn-am' needs a learned generator"):
        visualize(tiny_model, "logits:0", method="dgn-am", steps=1, progress=False)
    with pytest.raises(DgnamError, match="method='yosinski3' optimizes pixels and would ignore the generator"):
        visualize(tiny_model, "logits:0", tiny_gen, method="yosinski3", steps=1, progress=False)
    # the generator's own method, and a label that names no method, run as before
    assert visualize(tiny_model, "logits:0", tiny_gen, method="dgn-am", steps=1, progress=False).records
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a label of one's own is no typo: no warning
        run = visualize(tiny_model, "logits:0", method="my-label", steps=1, progress=False)
    assert run.records[0]["method"] == "my-label" and run.config["priors"] == []
    # but a near miss of a registered name (which ran plain pixel AM under that name) says what it ran
    with pytest.warns(UserWarning, match="method='yosinski33' is no registered method.*did you mean 'yosinski3'"):
        assert visualize(tiny_model, "logits:0", method="yosinski33", steps=1, progress=False).config["priors"] == []
