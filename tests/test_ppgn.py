import json
import os
import re

import pytest
import torch

from dgnam import DgnamError, ImageSpace
from dgnam.ppgn import (ClassCondition, CodeDAE, JointPrior, PPGNConfig, UnitCondition, hole_mask, inpaint, load_dae,
                        parse_box, prior_term, sample, scale_box)
from dgnam.train.dae import DAEConfig, train_dae
from dgnam.units import parse_units, resolve_units

from conftest import SPACE


def blob_codes(n=2048, seed=0):
    """Codes of two kinds, non-negative like ReLU codes, inside the tiny generator's range [0, 4]."""
    g = torch.Generator().manual_seed(seed)
    centres = torch.tensor([[2.5] * 5 + [0.5] * 5, [0.5] * 5 + [2.5] * 5])
    pick = torch.randint(0, 2, (n,), generator=g)
    return (centres[pick] + 0.2 * torch.randn(n, 10, generator=g)).clamp_min(0)


@pytest.fixture(scope="module")
def tiny_dae(tmp_path_factory):
    out = tmp_path_factory.mktemp("dae")
    codes = blob_codes()
    card = train_dae(codes, blob_codes(256, seed=1), out, "tiny-dae",
                     DAEConfig(epochs=6, batch_size=128, lr=3e-3, noise_std=0.7, hidden=64), progress=False)
    return load_dae(out / "tiny-dae.safetensors"), card


def test_dae_denoises_and_loads_with_its_card(tiny_dae):
    dae, card = tiny_dae
    m = card["metrics"]
    assert m["denoise_mse"] < 0.5 * m["noisy_input_mse"]
    assert m["prior_norm_random_start"] > m["prior_norm_real"]
    assert card["arch"] == {"dim": 10, "hidden": 64, "layers": 2} and len(card["sha256"]) == 64


def test_dae_training_resumes_exactly(tmp_path, monkeypatch):
    from dgnam.train import common

    codes, test = blob_codes(512), blob_codes(128, seed=1)
    cfg = DAEConfig(epochs=2, batch_size=128, hidden=16, noise_std=0.5)
    train_dae(codes, test, tmp_path / "a", "d", cfg, progress=False)
    save = common.Checkpoint.save

    def save_then_die(self, state):
        save(self, state)
        raise KeyboardInterrupt  # killed right after the first epoch's checkpoint

    monkeypatch.setattr(common.Checkpoint, "save", save_then_die)
    with pytest.raises(KeyboardInterrupt):
        train_dae(codes, test, tmp_path / "b", "d", cfg, progress=False)
    monkeypatch.setattr(common.Checkpoint, "save", save)
    train_dae(codes, test, tmp_path / "b", "d", cfg, progress=False)  # resumes at epoch 2
    a, b = load_dae(tmp_path / "a" / "d.safetensors"), load_dae(tmp_path / "b" / "d.safetensors")
    for pa, pb in zip(a.parameters(), b.parameters()):
        assert torch.equal(pa, pb)


def test_a_checkpoint_of_other_settings_is_refused_not_continued(tmp_path):
    """A rerun with another lr, other data or another size used to continue the old checkpoint (or keep its finished
    weights) while the card described the new settings. Now it names what differs; the same settings continue; a
    checkpoint written before settings were stored is taken as it is; a damaged one is one line."""

    codes, test = blob_codes(512), blob_codes(128, seed=1)
    cfg = DAEConfig(epochs=1, batch_size=128, hidden=16, noise_std=0.5)
    train_dae(codes, test, tmp_path, "d", cfg, progress=False)
    for other, needle in [(DAEConfig(epochs=1, batch_size=128, hidden=16, noise_std=0.5, lr=0.05), "lr 0.001 -> 0.05"),
                          (DAEConfig(epochs=2, batch_size=128, hidden=16, noise_std=0.5), "epochs 1 -> 2"),
                          (DAEConfig(epochs=1, batch_size=128, hidden=64, noise_std=0.5), "hidden 16 -> 64")]:
        with pytest.raises(DgnamError, match=f"other settings \\({needle}\\).*--fresh"):
            train_dae(codes, test, tmp_path, "d", other, progress=False)
    with pytest.raises(DgnamError, match="train_codes"):
        train_dae(blob_codes(512, seed=5), test, tmp_path, "d", cfg, progress=False)
    assert train_dae(codes, test, tmp_path, "d", cfg, progress=False)["history"][-1]["epoch"] == 1  # same: continues
    fresh = train_dae(codes, test, tmp_path, "d", DAEConfig(epochs=1, batch_size=128, hidden=16, noise_std=0.5,
                                                             lr=0.05), resume=False, progress=False)
    assert fresh["config"]["lr"] == 0.05
    ckpt = tmp_path / "d-ckpt" / "checkpoint.pt"
    state = torch.load(ckpt, weights_only=True)
    state.pop("settings")  # as an older dgnam wrote it
    torch.save(state, ckpt)
    train_dae(codes, test, tmp_path, "d", cfg, progress=False)
    for bad, needle in [({"model": {}}, "no epoch count"), (b"", "unreadable"), ({"epoch": 1, "history": []},
                                                                                  "does not fit this training")]:
        if isinstance(bad, bytes):
            ckpt.write_bytes(bad)
        else:
            torch.save(bad, ckpt)
        with pytest.raises(DgnamError, match=needle):
            train_dae(codes, test, tmp_path, "d", cfg, progress=False)


def test_load_dae_rejects_a_changed_file(tiny_dae, tmp_path):
    dae, card = tiny_dae
    from dgnam.weights import save_safetensors

    save_safetensors(CodeDAE(10, 64).state_dict(), tmp_path / "x.safetensors")
    (tmp_path / "x.json").write_text(json.dumps(card))  # the card's hash is not this file's
    with pytest.raises(DgnamError, match="SHA-256"):
        load_dae(tmp_path / "x.safetensors")


class Kill(Exception):
    """What :func:`kill_at` raises: a chain killed at an iteration."""


def kill_at(iteration):
    """An ``on_step`` that kills the chain (raises :class:`Kill`) once it has run ``iteration`` iterations."""
    def on_step(t):
        if t == iteration:
            raise Kill

    return on_step


def test_a_killed_chain_resumes_from_its_checkpoint_and_ends_as_an_uninterrupted_one(tiny_model, tiny_gen, tiny_dae,
                                                                                      tmp_path):
    import dataclasses

    dae, _ = tiny_dae
    conds = [ClassCondition(tiny_model, [0]), ClassCondition(tiny_model, [1])]
    # noise and resets draw from the chains' generators, whose state the checkpoint must carry
    cfg = PPGNConfig(steps=12, burn_in=2, keep_every=2, eps3=0.1, reset_every=5, seed=3)
    whole = sample(tiny_gen, dae, conds, n_chains=2, config=cfg)
    ck = tmp_path / "chain.ckpt"
    with pytest.raises(Kill):
        sample(tiny_gen, dae, conds, 2, cfg, checkpoint=ck, checkpoint_every=5, on_step=kill_at(17))
    assert torch.load(ck, weights_only=True)["t_global"] == 15  # the last write before the kill
    resumed = sample(tiny_gen, dae, conds, 2, cfg, checkpoint=ck, checkpoint_every=5)
    for f in ("codes", "images", "steps", "scores", "segment", "score_history", "prior_history", "final_codes"):
        assert torch.equal(getattr(whole, f), getattr(resumed, f)), f
    with pytest.raises(DgnamError, match="another chain"):
        sample(tiny_gen, dae, conds, 2, dataclasses.replace(cfg, seed=4), checkpoint=ck)
    with pytest.raises(DgnamError, match="another chain"):
        sample(tiny_gen, dae, conds[::-1], 2, cfg, checkpoint=ck)
    # a checkpoint from elsewhere with the chain's key (a digest of public settings) but crafted contents: still
    # tensors only (weights_only), and refused in one line rather than failing deep in the chain
    state = torch.load(ck, weights_only=True)
    for crafted in ({k: v for k, v in state.items() if k != "h"}, {**state, "h": torch.zeros(2, 3)},
                    {**state, "rng": state["rng"][:1]}, {**state, "t_global": 10**9}):
        torch.save(crafted, ck)
        with pytest.raises(DgnamError, match="is no state of this chain"):
            sample(tiny_gen, dae, conds, 2, cfg, checkpoint=ck)
    ck.unlink()
    os.mkfifo(ck)  # the read never returned
    with pytest.raises(DgnamError, match="not a plain file"):
        sample(tiny_gen, dae, conds, 2, cfg, checkpoint=ck)
    ck.unlink()
    ck.write_bytes(b"not a checkpoint")
    with pytest.raises(DgnamError, match="cannot be read"):
        sample(tiny_gen, dae, conds, 2, cfg, checkpoint=ck)


def test_prior_alone_moves_toward_the_dae_fixed_points(tiny_model, tiny_gen, tiny_dae):
    dae, _ = tiny_dae
    cond = ClassCondition(tiny_model, [0])
    cfg = PPGNConfig(eps1=1.0, eps2=0.0, eps3=0.0, lr=0.05, steps=120)
    chain = sample(tiny_gen, dae, cond, n_chains=6, config=cfg)
    start, end = chain.prior_history[:, :5].mean(), chain.prior_history[:, -5:].mean()
    assert end < 0.5 * start
    # the chain ends near the codes R was trained on (one of the two kinds)
    centres = torch.tensor([[2.5] * 5 + [0.5] * 5, [0.5] * 5 + [2.5] * 5])
    dist = torch.cdist(chain.final_codes, centres).min(1).values
    assert dist.mean() < torch.cdist(torch.randn(6, 10).clamp(0, 4), centres).min(1).values.mean()


def test_condition_alone_raises_the_class_probability(tiny_model, tiny_gen, tiny_dae):
    dae, _ = tiny_dae
    with torch.no_grad():
        tiny_model.logits.weight.mul_(20)  # a confident classifier: an untrained one's softmax hardly moves
    cond = ClassCondition(tiny_model, [3])
    cfg = PPGNConfig(eps1=0.0, eps3=0.0, lr=0.2, steps=40)
    chain = sample(tiny_gen, dae, cond, n_chains=4, config=cfg)
    p0 = cond.probs(tiny_gen(torch.stack([torch.randn(10, generator=torch.Generator().manual_seed(i)) for i in range(4)])),
                    tiny_gen.space)
    p1 = cond.probs(tiny_gen(chain.final_codes), tiny_gen.space)
    assert (p1 > p0).all() and p1.mean() > 1.5 * p0.mean()
    assert chain.score_history[:, -5:].mean() > chain.score_history[:, 0].mean()


def test_a_seed_of_any_size_runs_and_seeds_that_ran_draw_as_before(tiny_model, tiny_gen, tiny_dae):
    """Chain i draws from seed * 1_000_003 + i: a seed over about 1.8e13 (20240101123456, a timestamp) overflowed
    torch's 64 bits in a traceback. Taken modulo 2**64, as torch reads a negative seed, every seed that ran draws
    what it drew."""
    from dgnam.ppgn import _Noise

    dae, _ = tiny_dae
    cfg = PPGNConfig(steps=3, seed=20240101123456)
    a, b = (sample(tiny_gen, dae, ClassCondition(tiny_model, [3]), 2, cfg) for _ in range(2))
    assert torch.equal(a.final_codes, b.final_codes) and torch.isfinite(a.final_codes).all()
    for seed in (-7, 0, 3, 2**40):
        old = torch.stack([torch.randn(5, generator=torch.Generator().manual_seed(seed * 1_000_003 + i)) for i in range(2)])
        assert torch.equal(_Noise(seed, 2).normal((5,)), old)
    for bad in (None, 1.5, True):  # None reached None * 1_000_003, a TypeError from inside the sampler
        with pytest.raises(DgnamError, match=r"^PPGN seed=.*: give an int"):
            sample(tiny_gen, dae, ClassCondition(tiny_model, [3]), 1, PPGNConfig(steps=1, seed=bad))


def test_chain_keeps_samples_and_moves_between_classes(tiny_model, tiny_gen, tiny_dae):
    dae, _ = tiny_dae
    cfg = PPGNConfig.for_samples(5, steps=20, burn_in=5)
    assert cfg.keep_every == 3
    chain = sample(tiny_gen, dae, [ClassCondition(tiny_model, [1]), ClassCondition(tiny_model, [2])], 2, cfg)
    assert chain.codes.shape == (2, 10, 10) and chain.images.shape[:2] == (2, 10)
    assert chain.segment.tolist() == [0] * 5 + [1] * 5
    assert chain.steps.tolist() == [8, 11, 14, 17, 20, 28, 31, 34, 37, 40]
    # its figure starts each class on a row of its own, labelled (one run of ten images hid where the target changed)
    grouped = chain.grid(names=["one", "two"])
    assert grouped.size == (150 + 5 * (96 + 4) + 4, 2 * (96 + 14 + 4) + 4)  # label column, 2 rows of 5 (not 1 of 10)
    assert chain.grid().size == grouped.size  # the default names label the rows ("condition 0", "condition 1")
    with pytest.raises(DgnamError, match="1 names for the chain's 2 conditions"):
        chain.grid(names=["one"])
    upper = tiny_gen.code_stats.upper()
    assert (chain.codes >= 0).all() and (chain.codes <= upper + 1e-6).all()
    with pytest.raises(DgnamError, match="steps"):
        PPGNConfig.for_samples(50, steps=20)
    odd = PPGNConfig.for_samples(4, steps=26, burn_in=5)  # 21 / 4 leaves a remainder: still exactly 4 kept
    chain = sample(tiny_gen, dae, ClassCondition(tiny_model, [1]), 1, odd)
    assert chain.steps.tolist() == [11, 16, 21, 26]


def test_chains_do_not_depend_on_their_batch(tiny_model, tiny_gen, tiny_dae):
    dae, _ = tiny_dae
    units = resolve_units(tiny_model, parse_units("features.4:2"), SPACE.encode(torch.rand(1, 1, 12, 12)))
    cfg = PPGNConfig.for_unit(steps=12, reset_every=5, eps3=0.1, lr=0.3)
    three = sample(tiny_gen, dae, UnitCondition(tiny_model, units), 3, cfg)
    one = sample(tiny_gen, dae, UnitCondition(tiny_model, units), 1, cfg)
    assert torch.allclose(three.final_codes[:1], one.final_codes, atol=1e-5)


class Enc(torch.nn.Module):
    """An encoder whose ``code`` layer has the tiny generator's 10-d code."""

    def __init__(self):
        super().__init__()
        self.code = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(144, 10), torch.nn.ReLU())

    def forward(self, x):
        return self.code(x)


def test_inpaint_keeps_the_context_and_fills_the_hole(tiny_model, tiny_gen, tiny_dae):
    dae, _ = tiny_dae
    images = SPACE.encode(torch.rand(3, 1, 12, 12))
    mask = hole_mask((12, 12), (3, 4, 5, 4))
    res = inpaint(tiny_gen, dae, ClassCondition(tiny_model, [0, 1, 2]), images, mask, Enc(), "code", SPACE,
                  PPGNConfig(steps=10, eps4=1e-3))
    out = mask.bool().expand_as(images)
    assert torch.equal(res.result[~out], images[~out])
    assert torch.equal(res.result[out], res.generated[out])
    assert torch.equal(res.masked[out], torch.zeros(int(out.sum())))
    assert res.score_history.shape == (3, 10)


def test_inpaint_encodes_the_masked_image_in_the_encoders_own_space(tiny_model, tiny_gen):
    """Images given in another space than the encoder's are converted before the start code is computed."""
    from dgnam import ImageSpace
    from dgnam.imagespace import convert

    seen = []

    class Spy(Enc):
        def forward(self, x):
            seen.append(x.clone())
            return super().forward(x)

    enc = Spy()
    enc.input_space = SPACE  # mean 0.5, std 0.25
    plain = ImageSpace(size=(12, 12), color="GRAY")  # [0, 1]
    images = plain.encode(torch.rand(2, 1, 12, 12))
    mask = hole_mask((12, 12), (3, 4, 5, 4))
    inpaint(tiny_gen, None, ClassCondition(tiny_model, [0, 1]), images, mask, enc, "code", plain, PPGNConfig(steps=1))
    want = convert(images * (1 - mask), plain, SPACE)
    assert torch.allclose(seen[0], want, atol=1e-6) and seen[0].min() < -1  # in SPACE's range, not [0, 1]


def test_step_size_falls_linearly_to_lr_end(tiny_model, tiny_gen):
    released = PPGNConfig.for_inpainting()
    sizes = [released.step_size(t) for t in range(released.steps)]
    assert released.steps == 21 and sizes[0] == 1.0 and sizes[-1] == pytest.approx(1e-32)
    assert all(a > b for a, b in zip(sizes, sizes[1:])) and sizes[10] == pytest.approx(0.5)
    assert PPGNConfig(steps=5).step_size(4) == 1.0  # no lr_end: constant, the class-sampling setting
    # the chain's last step has size lr_end = 0: the last two kept codes are the same
    chain = sample(tiny_gen, None, ClassCondition(tiny_model, [1]), 2, PPGNConfig(steps=6, lr=0.5, lr_end=0.0, eps3=0))
    assert torch.equal(chain.codes[:, -1], chain.codes[:, -2]) and not torch.equal(chain.codes[:, 0], chain.codes[:, 1])
    with pytest.raises(DgnamError, match="lr_end"):
        PPGNConfig(lr_end=-1.0).validate()


def test_released_class_score_is_the_shortened_log_softmax_gradient(tiny_model):
    x = SPACE.encode(torch.rand(4, 1, 12, 12)).requires_grad_(True)
    cls = torch.tensor([0, 1, 2, 3])
    logits = tiny_model(x)
    p = logits.softmax(1).gather(1, cls[:, None]).squeeze(1).detach()
    (g_logit,) = torch.autograd.grad(logits.gather(1, cls[:, None]).sum(), x)
    score = ClassCondition(tiny_model, cls, score="released")(x, SPACE)
    (g_released,) = torch.autograd.grad(score.sum(), x)
    assert torch.allclose(g_released, (1 - p).view(-1, 1, 1, 1) * g_logit, atol=1e-6)
    assert torch.allclose(score, logits.log_softmax(1).gather(1, cls[:, None]).squeeze(1), atol=1e-6)  # reads log p
    (g_logp,) = torch.autograd.grad(ClassCondition(tiny_model, cls)(x, SPACE).sum(), x)
    assert not torch.allclose(g_logp, g_released, atol=1e-4)  # the paper's gradient also lowers the other logits
    with pytest.raises(DgnamError, match="class score"):
        ClassCondition(tiny_model, cls, score="prob")


def test_sampling_gives_the_condition_model_back(tiny_model, tiny_gen, tiny_dae):
    dae, _ = tiny_dae
    tiny_model.train()
    tiny_model.features[0].weight.requires_grad_(False)
    bn = tiny_model.features[1]
    stats = bn.running_mean.clone()
    images = SPACE.encode(torch.rand(2, 1, 12, 12))
    cond = ClassCondition(tiny_model, [0, 1])
    sample(tiny_gen, dae, cond, 2, PPGNConfig(steps=3))
    inpaint(tiny_gen, dae, cond, images, hole_mask((12, 12)), Enc(), "code", SPACE, PPGNConfig(steps=2))
    p = cond.probs(images, SPACE)
    assert tiny_model.training and bn.training and dae.training is False  # the loaded DAE was in eval mode already
    assert torch.equal(bn.running_mean, stats)  # ran in eval mode: train-mode BatchNorm would update its statistics
    assert not tiny_model.features[0].weight.requires_grad and tiny_model.logits.weight.requires_grad
    tiny_model.eval()
    assert torch.allclose(p, cond.probs(images, SPACE))


def test_joint_prior_is_the_encoder_of_the_generated_image(tiny_model, tiny_gen):
    from dgnam.imagespace import convert

    enc = Enc()
    enc.input_space = SPACE
    prior = JointPrior(tiny_gen, enc, "code")
    h = torch.rand(3, 10) * 2
    with torch.no_grad():
        want = enc(convert(tiny_gen(h), tiny_gen.space, SPACE))
    assert torch.allclose(prior_term(prior, h), want - h, atol=1e-6)
    chain = sample(tiny_gen, prior, ClassCondition(tiny_model, [0]), 1, PPGNConfig(steps=3))
    assert chain.prior_history.shape == (1, 3) and torch.isfinite(chain.prior_history).all()
    with pytest.raises(DgnamError, match="input_space"):
        JointPrior(tiny_gen, Enc(), "code")


def test_hole_and_box_parsing():
    m = hole_mask((28, 28))
    assert m.sum() == 144 and m[0, 0, 8, 8] == 1 and m[0, 0, 7, 8] == 0  # 100/227 of 28 -> a centred 12x12 hole
    assert parse_box("1,2,3,4") == (1, 2, 3, 4)
    with pytest.raises(DgnamError, match="x,y,w,h"):
        parse_box("1,2,3")
    with pytest.raises(DgnamError, match="does not fit"):
        hole_mask((28, 28), (20, 20, 10, 10))


def test_bad_sampler_input(tiny_model, tiny_gen):
    with pytest.raises(DgnamError, match="classes"):
        sample(tiny_gen, None, ClassCondition(tiny_model, [0, 1]), 3, PPGNConfig(steps=2))
    with pytest.raises(DgnamError, match="steps"):
        sample(tiny_gen, None, ClassCondition(tiny_model, [0]), 1, PPGNConfig(steps=0))
    with pytest.raises(DgnamError, match="class 7 out of range: the model has classes 0..4"):  # (a named model's)
        sample(tiny_gen, None, ClassCondition(tiny_model, [7]), 1, PPGNConfig(steps=2))
    tiny_model.classes = None  # without class names the condition checks the index against the logits
    with pytest.raises(DgnamError, match="class index out of range: the condition model has classes 0..4"):
        sample(tiny_gen, None, ClassCondition(tiny_model, [7]), 1, PPGNConfig(steps=2))
    with pytest.raises(DgnamError, match="DAE takes 12-d codes but .* 10-d"):  # a DAE of another layer's codes
        sample(tiny_gen, CodeDAE(dim=12), ClassCondition(tiny_model, [0]), 1, PPGNConfig(steps=2))
    with pytest.raises(DgnamError, match="dgnam train dae --layer"):
        inpaint(tiny_gen, CodeDAE(dim=12), ClassCondition(tiny_model, [0]), torch.zeros(1, *SPACE.shape),
                hole_mask(SPACE.size), Enc(), "code", SPACE)
    # NaN passed every comparison, and the chain then blamed the learning rate ("NaN/inf in the PPGN code ... lower
    # --lr"); numpy start codes failed on a missing .to
    for bad in (dict(eps1=float("nan")), dict(lr_end=float("nan")), dict(lr=float("inf"))):
        with pytest.raises(DgnamError, match="each finite"):
            sample(tiny_gen, None, ClassCondition(tiny_model, [0]), 1, PPGNConfig(steps=2, **bad))
    with pytest.raises(DgnamError, match="codes contain NaN or inf"):
        sample(tiny_gen, None, ClassCondition(tiny_model, [0]), 1, PPGNConfig(steps=2),
               init=torch.full((1, 10), float("nan")))
    import numpy as np

    chain = sample(tiny_gen, None, ClassCondition(tiny_model, [0]), 1, PPGNConfig(steps=2), init=np.ones((1, 10)))
    assert torch.isfinite(chain.final_codes).all()
    from dgnam import ImageSpace

    with pytest.raises(DgnamError, match="give finite numbers"):
        ImageSpace(size=(12, 12), color="GRAY", std=(float("nan"),))
    with pytest.raises(DgnamError, match="give finite numbers"):
        ImageSpace(size=(12, 12), color="GRAY", hi=float("inf"))
    other = CodeDAE(dim=10)  # the right size, but trained on another layer's codes (its card says which)
    other.code_layer = "fc5"
    with pytest.raises(DgnamError, match="trained on fc5 codes, but the codes here come from layer 'code'"):
        inpaint(tiny_gen, other, ClassCondition(tiny_model, [0]), torch.zeros(1, *SPACE.shape),
                hole_mask(SPACE.size), Enc(), "code", SPACE)


def test_prior_term_is_r_minus_h(tiny_dae):
    dae, _ = tiny_dae
    h = torch.rand(4, 10)
    assert torch.allclose(prior_term(dae, h), dae(h) - h)


def _tiny_real():
    from dgnam.evaluate import RealData

    return RealData(torch.rand(30, 1, 12, 12, generator=torch.Generator().manual_seed(0)), torch.arange(30) % 5)


def test_sample_with_out_writes_a_run_that_evaluate_scores_and_whose_records_are_the_chains(tiny_model, tiny_gen,
                                                                                              tiny_dae, tmp_path):
    """sample(..., out=) writes the folder `dgnam sample` writes (one function writes both), so that a chain sampled
    in Python is scored by evaluate_run and opened by Run.load: only the command line could make such a folder."""
    from PIL import Image

    from dgnam import Run
    from dgnam.evaluate import evaluate_run
    from dgnam.weights import load_state_dict

    dae, _ = tiny_dae
    conds = [ClassCondition(tiny_model, ["b"]), UnitCondition(tiny_model, "features.3:2")]
    out = tmp_path / "s"
    chain = sample(tiny_gen, dae, conds, 1, PPGNConfig.for_samples(3, steps=8), out=out)
    assert chain.out == out and not (out / ".dgnam-partial").exists()
    doc = json.loads((out / "results.json").read_text())
    cfg, recs = doc["config"], doc["records"]
    assert cfg["conditions"] == ["b", "features.3:2"] and cfg["units"] == ["logits:1", "features.3:2"]
    assert (cfg["method"], cfg["prior"], cfg["model"], cfg["generator"], cfg["relu_gradient"]) == (
        "ppgn-h", "dae", "TinyNet", "tiny", "pre")
    assert cfg["dae"] == dae.source and cfg["dae"].endswith("tiny-dae.safetensors")  # the file, as the CLI names it
    assert cfg["sampler"] == json.loads(json.dumps(chain.config.to_dict())) 
    assert ImageSpace.from_dict(cfg["target_space"]) == SPACE
    # one record per kept sample, in the chain's order, each condition's samples its unit's restarts
    assert [r["step"] for r in recs] == chain.steps.tolist()
    assert [r["unit_index"] for r in recs] == chain.segment.tolist() == [0, 0, 0, 1, 1, 1]
    assert [r["restart"] for r in recs] == [0, 1, 2, 0, 1, 2]
    assert [r["unit"] for r in recs] == ["logits:1"] * 3 + ["features.3:2"] * 3
    assert [r["score"] for r in recs] == pytest.approx(chain.scores[0].tolist())
    # a class's samples give its probability (the captions of samples.png), a unit's its score only
    assert [r["probability"] for r in recs[:3]] == pytest.approx(
        conds[0].probs(chain.images[0, :3], tiny_gen.space).tolist())
    assert not any("probability" in r for r in recs[3:])
    assert torch.equal(load_state_dict(out / "codes.safetensors")["codes"], chain.codes[0])
    assert all((out / r["image"]).is_file() for r in recs)
    assert Image.open(out / "samples.png").size == (150 + 3 * 100 + 4, 2 * (96 + 14 + 4) + 4)  # a row per condition
    assert Run.load(out).grid().size[1] > 2 * 96  # one row per condition
    # each cell's caption is its own record's: a class sample's probability, a unit sample's score (not nan)
    texts = drawn_texts(lambda: Run.load(out).grid())
    assert [f"{r['probability']:.2f}" for r in recs[:3]] + [f"{r['score']:.2f}" for r in recs[3:]] == [
        t for t in texts if re.fullmatch(r"-?\d+\.\d\d", t)]
    assert "nan" not in texts
    ev = evaluate_run(out, judge=tiny_model, model=tiny_model, data=_tiny_real())
    assert [(u["unit"], u["images"]) for u in ev["units"]] == [("logits:1", 3), ("features.3:2", 3)]
    assert all("judge_class" in r for r in json.loads((out / "results.json").read_text())["records"])


def test_saved_probabilities_are_each_samples_own_class_read_in_batches(tiny_model, tiny_gen, tmp_path, monkeypatch):
    """save_samples read p(class) one image per forward pass; batched now, each sample must still get its own
    condition's class, whatever the batch boundaries."""
    import dgnam.ppgn
    from dgnam.ppgn import save_samples

    monkeypatch.setattr(dgnam.ppgn, "SAVE_PROBS_BATCH", 2)  # 5 samples per class: batches of 2, 2 and 1
    conds = [ClassCondition(tiny_model, [0]), UnitCondition(tiny_model, "features.3:2"), ClassCondition(tiny_model, [3])]
    chain = sample(tiny_gen, None, conds, 1, PPGNConfig.for_samples(5, steps=6))
    recs = save_samples(chain, tmp_path / "s", conds, tiny_gen)
    assert chain.segment.tolist() == [0] * 5 + [1] * 5 + [2] * 5
    for i, r in enumerate(recs):
        one = chain.images[0, i : i + 1]
        if r["unit_index"] == 1:  # a unit's samples have a score, no probability
            assert "probability" not in r
        else:
            assert r["probability"] == pytest.approx(float(conds[r["unit_index"]].probs(one, tiny_gen.space)),
                                                      rel=1e-5), i


def test_sample_with_out_refuses_a_folder_that_holds_a_run_before_its_chain_runs(tiny_model, tiny_gen, tmp_path):
    from dgnam.ppgn import save_samples

    cond = ClassCondition(tiny_model, [0])
    cfg = PPGNConfig.for_samples(2, steps=4)
    out = tmp_path / "s"
    chain = sample(tiny_gen, None, cond, 1, cfg, out=out)
    before = (out / "results.json").read_bytes()
    steps = []
    with pytest.raises(DgnamError, match=r"exists and is not empty: choose another --out \(Python: out=\) or remove"):
        sample(tiny_gen, None, cond, 1, cfg, out=out, on_step=steps.append)
    assert steps == [] and (out / "results.json").read_bytes() == before  # refused before the chain, nothing written
    with pytest.raises(DgnamError, match="already holds a run: choose another folder, or pass replace=True"):
        save_samples(chain, out, cond, tiny_gen)
    assert save_samples(chain, out, cond, tiny_gen, replace=True) == json.loads(before)["records"]
    with pytest.raises(DgnamError, match="n_chains=1"):
        sample(tiny_gen, None, cond, 2, cfg, out=tmp_path / "two")
    (tmp_path / "file").write_text("")
    with pytest.raises(DgnamError, match="is a file: give a folder"):
        sample(tiny_gen, None, cond, 1, cfg, out=tmp_path / "file")
    assert not (tmp_path / "two").exists()
    # the chain's own checkpoint in the folder is no run: the same call continues from it
    whole = sample(tiny_gen, None, cond, 1, cfg)
    resumable = tmp_path / "c"
    with pytest.raises(Kill):
        sample(tiny_gen, None, cond, 1, cfg, out=resumable, checkpoint=resumable / "chain.pt", checkpoint_every=2,
               on_step=kill_at(3))
    assert not (resumable / "results.json").exists() and (resumable / "chain.pt").exists()
    again = sample(tiny_gen, None, cond, 1, cfg, out=resumable, checkpoint=resumable / "chain.pt", checkpoint_every=2)
    assert torch.equal(again.codes, whole.codes) and (resumable / "results.json").exists()


def test_samples_of_a_callable_condition_are_written_and_evaluate_says_why_it_cannot_score_them(tiny_model, tiny_gen,
                                                                                                   tmp_path):
    from dgnam import Run
    from dgnam.evaluate import evaluate_run

    def brightness(images, space):
        return images.mean((1, 2, 3))

    out = tmp_path / "s"
    sample(tiny_gen, None, brightness, 1, PPGNConfig.for_samples(2, steps=4), out=out)
    doc = json.loads((out / "results.json").read_text())
    assert doc["config"]["conditions"] == ["condition0"] and doc["config"]["units"] == [None]
    assert doc["config"]["model"] is None and doc["config"]["prior"] == "none"
    assert [r["condition"] for r in doc["records"]] == ["condition0"] * 2 and not any("unit" in r for r in doc["records"])
    assert Run.load(out).grid().size[0] > 2 * 96  # drawn, its row labelled by the condition
    with pytest.raises(DgnamError, match="condition that is no unit of the target .*ClassCondition or UnitCondition"):
        evaluate_run(out, judge=tiny_model, model=tiny_model, data=_tiny_real())


# --------------------------------------------------------------------------------------------------------------------
# The command line, on the embedded models (skipped where their weights or Fashion-MNIST are missing)

from dgnam.zoo.registry import WEIGHTS_DIR  # noqa: E402

from helpers import dgnam, drawn_texts, fashion_mnist, one_line_error  # noqa: E402

ZOO_FILES = ("fmnist-cnn.safetensors", "fmnist-g-fc6.safetensors", "fmnist-dae-fc6.safetensors")
needs_zoo = pytest.mark.skipif(not all((WEIGHTS_DIR / f).exists() for f in ZOO_FILES),
                               reason="embedded fmnist-cnn / fmnist-g-fc6 / fmnist-dae-fc6 weights not built yet")


@needs_zoo
def test_cli_sample_walks_through_classes(tmp_path):
    out = tmp_path / "s"
    p = dgnam("sample", "--class", "Sandal", "--class", "3", "--n", "4", "--steps", "12", "--burn-in", "4", "--out", str(out))
    assert p.returncode == 0, p.stderr
    doc = json.loads((out / "results.json").read_text())
    assert doc["config"]["conditions"] == ["Sandal", "Dress"] and len(doc["records"]) == 8
    assert all(0 <= r["probability"] <= 1 for r in doc["records"]) and (out / "samples.png").exists()
    # each class's samples on a row of their own, labelled (one row of eight unlabelled images before)
    from PIL import Image

    assert Image.open(out / "samples.png").size == (150 + 4 * 100 + 4, 2 * (96 + 14 + 4) + 4)
    assert doc["config"]["sampler"]["eps1"] == 1e-5 and doc["config"]["sampler"]["lr"] == 1.0  # the published defaults
    # the run reads like a `visualize` run: `dgnam evaluate` scores it, one unit per class, the samples as restarts
    assert [(r["unit_index"], r["restart"]) for r in doc["records"]] == [(0, 0), (0, 1), (0, 2), (0, 3),
                                                                          (1, 0), (1, 1), (1, 2), (1, 3)]
    p = dgnam("evaluate", str(out), "--real", "200", fresh=True)  # (a new interpreter, as a user's)
    assert p.returncode == 0, p.stderr
    ev = json.loads((out / "evaluation.json").read_text())
    assert [u["unit"] for u in ev["units"]] == doc["config"]["units"] and len(doc["config"]["units"]) == 2
    assert all("judge_class" in r for r in json.loads((out / "results.json").read_text())["records"])
    page = (out / "report.html").read_text()  # the run's figure, the nearest images and the tables in one page
    assert page.count("data:image/png;base64") == 2 and "samples.png" in page and "logits:5" in page
    one_line_error(dgnam("sample", "--class", "1", "--n", "2", "--steps", "6", "--out", str(out)), "--overwrite")
    p = dgnam("sample", "--class", "1", "--n", "2", "--steps", "6", "--burn-in", "2", "--out", str(out), "--overwrite")
    assert p.returncode == 0 and len(list((out / "images").glob("*.png"))) == 2, p.stderr  # the 8 earlier ones gone
    new = str(tmp_path / "new")
    one_line_error(dgnam("sample", "--class", "Hat", "--out", new), "unknown class")
    one_line_error(dgnam("sample", "--class", "12", "--out", new), "class 12 out of range: the model has classes 0..9")
    one_line_error(dgnam("sample", "--class", "1", "--unit", "fc6:0", "--out", new), "--class")
    one_line_error(dgnam("sample", "--class", "1", "--n", "500", "--out", new), "--steps")
    # asked-for settings are not silently replaced: one unit per chain, --steps 0 and a burn-in past the chain refused
    one_line_error(dgnam("sample", "--unit", "fc6:0,1", "--out", new), "one unit per chain")
    one_line_error(dgnam("sample", "--class", "1", "--steps", "0", "--out", new), "--steps")
    one_line_error(dgnam("sample", "--class", "1", "--steps", "20", "--burn-in", "50", "--out", new), "--burn-in 50")
    assert not (tmp_path / "new").exists()
    p = dgnam("sample", "--class", "1", "--n", "2", "--steps", "6", "--burn-in", "2", "--prior", "joint", "--out",
            str(tmp_path / "j"))
    assert p.returncode == 0 and len(json.loads((tmp_path / "j" / "results.json").read_text())["records"]) == 2, p.stderr


@needs_zoo
def test_evaluate_refuses_a_sample_run_whose_target_was_retrained_since(tmp_path):
    """A `sample` run records its target's weights as `visualize` does: a target file retrained in place since was
    scored with its new weights, without a word."""
    from dgnam.weights import save_safetensors
    from dgnam.zoo import create_model

    net = create_model("fmnist-cnn")
    path = tmp_path / "net.safetensors"
    save_safetensors(net.state_dict(), path)
    out = tmp_path / "s"
    p = dgnam("sample", "--model", str(path), "--arch", "fmnist-cnn", "--class", "1", "--n", "2", "--steps", "4",
              "--burn-in", "2", "--out", str(out))
    assert p.returncode == 0, p.stderr
    torch.manual_seed(1)
    save_safetensors({k: v + 0.01 * torch.randn_like(v) if v.is_floating_point() else v
                      for k, v in net.state_dict().items()}, path)  # retrained in place
    one_line_error(dgnam("evaluate", str(out), "--real", "200"), "other weights now")


def test_scale_box_maps_a_hole_on_a_file_onto_the_model_input():
    assert scale_box((0, 0, 28, 28), (56, 56), (28, 28)) == (0, 0, 14, 14)
    assert scale_box((30, 30, 24, 24), (56, 56), (28, 28)) == (15, 15, 12, 12)
    assert scale_box((10, 0, 20, 30), (30, 40), (30, 40)) == (10, 0, 20, 30)  # same size: unchanged
    # a box that falls between model pixels covers every pixel it touches
    assert scale_box((1, 1, 1, 1), (56, 56), (28, 28)) == (0, 0, 1, 1)
    assert scale_box((3, 5, 2, 2), (56, 84), (28, 28)) == (1, 2, 1, 2)  # rows 5-6 land on rows 2.5-3.5
    with pytest.raises(DgnamError, match="84x56 photo"):
        scale_box((80, 0, 10, 10), (56, 84), (28, 28), "photo")


@needs_zoo
def test_cli_inpaint(tmp_path):
    fashion_mnist("test")
    p = dgnam("inpaint", "test:0", "--class", "Ankle boot", "--steps", "5", "--out", str(tmp_path / "i.png"),
              fresh=True)  # (a new interpreter, as a user's)
    assert p.returncode == 0, p.stderr
    from PIL import Image

    assert Image.open(tmp_path / "i.png").width > 3 * 112
    one_line_error(dgnam("inpaint", "test:0", "--class", "9", "--mask", "20,20,10,10"), "does not fit")
    # a file of another size: the mask is given in its own pixels and scaled with it
    from dgnam.data import FashionMNIST

    big = tmp_path / "big.png"
    Image.fromarray((FashionMNIST("test")[0][0][0] * 255).byte().numpy()).resize((56, 56)).save(big)
    p = dgnam("inpaint", str(big), "--class", "9", "--mask", "30,30,24,24", "--steps", "2", "--out", str(tmp_path / "b.png"))
    assert p.returncode == 0, p.stderr
    # beside the panels: the file at its own size, only the hole replaced
    import numpy as np

    orig, filled = np.asarray(Image.open(big)), np.asarray(Image.open(tmp_path / "b-filled.png"))
    assert filled.shape == orig.shape == (56, 56)
    hole = np.zeros((56, 56), bool)
    hole[30:54, 30:54] = True
    assert (filled[~hole] == orig[~hole]).all() and (filled[hole] != orig[hole]).any()
    one_line_error(dgnam("inpaint", "test:0", "--class", "9", "--out", str(tmp_path / "s.png"), "--filled",
                         str(tmp_path / "s.png")), "different names")
    one_line_error(dgnam("inpaint", str(big), "--class", "9", "--mask", "40,40,20,20"), "56x56")
    one_line_error(dgnam("inpaint", "test:0", "--class", "9", "--mask", "3,4"), "x,y,w,h")
    one_line_error(dgnam("inpaint", "test:0", "--class", "10"), "out of range")
    p = dgnam("inpaint", "test:0", "--class", "9", "--prior", "joint", "--steps", "3", "--out", str(tmp_path / "j.png"))
    assert p.returncode == 0 and (tmp_path / "j.png").exists(), p.stderr
    one_line_error(dgnam("inpaint", "test:0", "--class", "9", "--prior", "joint", "--dae", "x.safetensors"), "--dae")
    one_line_error(dgnam("inpaint", "test:0", "--class", "9", "--prior", "gan"), "use dae")


@needs_zoo
def test_embedded_dae_and_generator_know_their_layer():
    from dgnam import create_model

    gen, dae = create_model("fmnist-g-fc6"), load_dae()
    assert gen.code_layer == "fc6" and dae.code_layer == "fc6"
    dae.code_layer = "fc5"  # as a DAE of fmnist-cnn's fc5 codes (also 256-d) would be
    with pytest.raises(DgnamError, match="trained on fc5 codes but fmnist-g-fc6 inverts fc6"):
        sample(gen, dae, ClassCondition(create_model("fmnist-cnn"), [1]), 1, PPGNConfig(steps=2))


@needs_zoo
def test_a_dae_of_another_encoders_layer_is_refused_in_python_as_on_the_command_line(tmp_path):
    """A generator of your own encoder's fc6 with the embedded DAE (fmnist-cnn's fc6: the same size and layer name)
    ran silently in Python, while `dgnam sample` refuses it: generators and DAEs now carry the SHA-256 of the encoder
    weights whose codes they take (card or zoo entry), and sample / inpaint compare them."""
    import shutil

    from dgnam import create_model, load_model
    from dgnam.zoo.registry import WEIGHTS_DIR as W

    zoo_gen, zoo_dae = create_model("fmnist-g-fc6"), load_dae()
    assert zoo_gen.code_encoder_sha256 and zoo_gen.code_encoder_sha256 == zoo_dae.code_encoder_sha256
    net = create_model("fmnist-cnn")
    sample(zoo_gen, zoo_dae, ClassCondition(net, [1]), 1, PPGNConfig(steps=2))  # the embedded pair still runs
    # a generator file whose card says it inverts fc6 of other encoder weights (as `dgnam train generator` writes it)
    mine = "ab" * 32
    shutil.copy(W / "fmnist-g-fc6.safetensors", tmp_path / "g.safetensors")
    shutil.copy(W / "fmnist-g-fc6.codestats.safetensors", tmp_path / "g.codestats.safetensors")
    (tmp_path / "g.json").write_text(json.dumps({"inverts": {"layer": "fc6", "encoder": "mine",
                                                             "weights_sha256": mine}}))
    gen = load_model(str(tmp_path / "g.safetensors"), "fmnist-g-fc6")
    assert gen.code_encoder_sha256 == mine
    with pytest.raises(DgnamError, match="other encoder weights than the ones g inverts") as e:
        sample(gen, zoo_dae, ClassCondition(net, [1]), 1, PPGNConfig(steps=2))
    assert "\n" not in str(e.value)
    images, mask = torch.rand(1, 1, 28, 28), hole_mask((28, 28))
    with pytest.raises(DgnamError, match="other encoder weights"):
        inpaint(gen, zoo_dae, ClassCondition(net, [1]), images, mask, net, "fc6", config=PPGNConfig(steps=1))
    # the DAE of that encoder's codes (its card names the same weights) is taken
    codes = torch.rand(64, 256)
    train_dae(codes, codes[:16], tmp_path, "dae-mine", DAEConfig(epochs=1, batch_size=32, hidden=16),
              source={"encoder": "mine", "layer": "fc6", "weights_sha256": mine}, progress=False)
    dae = load_dae(tmp_path / "dae-mine.safetensors")
    assert dae.code_encoder_sha256 == mine
    sample(gen, dae, ClassCondition(net, [1]), 1, PPGNConfig(steps=2))


@needs_zoo
def test_the_zoo_lists_the_dae_and_loads_it_by_name(tmp_path):
    """The shipped DAE is a zoo model like the others (`dgnam models`, create_model), and --dae takes its name."""
    from dgnam import create_model, list_models

    assert list_models(kind="dae") == ["fmnist-dae-fc6"]
    dae = create_model("fmnist-dae-fc6")
    assert isinstance(dae, CodeDAE) and dae.code_layer == "fc6" and not dae.training
    h = torch.rand(3, 256, generator=torch.Generator().manual_seed(0))
    assert torch.equal(load_dae()(h), dae(h)) and torch.equal(load_dae("fmnist-dae-fc6")(h), dae(h))
    with pytest.raises(DgnamError, match="fmnist-cnn is a classifier, not a code DAE"):
        load_dae("fmnist-cnn")
    with pytest.raises(DgnamError, match="does not exist"):
        load_dae(tmp_path / "none.safetensors")


def test_paste_inside_keeps_every_pixel_outside_the_hole():
    import numpy as np

    from dgnam.images import paste_inside

    photo = np.random.default_rng(0).integers(0, 256, (40, 60, 3), dtype=np.uint8)
    fill = np.full((28, 28), 200, np.uint8)  # a gray fill at the model's size
    inside = np.zeros((40, 60), bool)
    inside[10:20, 5:25] = True
    out = paste_inside(photo, fill, inside)
    assert out.shape == photo.shape and (out[~inside] == photo[~inside]).all()
    assert (out[inside] == 200).all()  # resized flat gray, as RGB
    with pytest.raises(ValueError):
        paste_inside(photo, fill, inside[:10])


def test_a_unit_condition_at_a_relu_output_follows_the_relus_input(tiny_model, tiny_gen):
    """As in visualize (AMConfig.relu_gradient): a chain whose hidden ReLU unit fell to 0 had no gradient left."""
    from dgnam.ppgn import _chain_key

    images = tiny_gen(torch.randn(3, 10, generator=torch.Generator().manual_seed(0))).detach().requires_grad_(True)
    pre, exact = (UnitCondition(tiny_model, "fc:3", relu_gradient=r) for r in ("pre", "exact"))
    before = UnitCondition(tiny_model, "fc.0:3")  # the ReLU's input itself
    assert torch.equal(pre(images, tiny_gen.space), exact(images, tiny_gen.space))  # the value: the ReLU's output
    (g,) = torch.autograd.grad(pre(images, tiny_gen.space).sum(), images)
    (g_before,) = torch.autograd.grad(before(images, tiny_gen.space).sum(), images)
    assert torch.allclose(g, g_before) and g.abs().sum() > 0
    with pytest.raises(DgnamError, match="unknown relu_gradient 'x'"):
        UnitCondition(tiny_model, "fc:3", relu_gradient="x")
    cfg = PPGNConfig(steps=2)  # a chain of another rule is another chain; one written before the option had exact's key
    legacy = UnitCondition(tiny_model, "fc:3")
    del legacy.relu_gradient  # as a condition was before the option
    keys = [_chain_key(tiny_gen, None, [c], 1, cfg, None) for c in (pre, exact, legacy)]
    assert keys[0] != keys[1] and keys[1] == keys[2]


def test_a_chain_keeps_a_plain_generator_subclass_unclipped(tiny_model, tiny_gen):
    """A Generator subclass that declares no code range (one's own GAN wrapper, say) is not clipped by visualize's
    default priors (none), but PPGN clipped its chains at 0, the lower end of the paper's ReLU code, as if it were
    one: half of a Gaussian z was cut away at every step. Its chains are now unclipped too."""
    from dgnam import Generator, ppgn

    class MyGen(Generator):
        def __init__(self):
            super().__init__()
            self.net, self.code_shape, self.space = tiny_gen.net, (10,), tiny_gen.space

        def forward(self, z):
            return self.net(z)

    g = MyGen()
    assert g.default_priors() == [] and ppgn.code_clip(g) is None
    chain = sample(g, None, ClassCondition(tiny_model, [1]), n_chains=2, config=PPGNConfig(steps=5))
    assert chain.final_codes.min() < -0.5
    assert ppgn.code_clip(tiny_gen).lower == 0.0  # a learned generator keeps the paper's [0, U]


def test_a_class_condition_takes_class_names(tiny_model):
    """`dgnam sample --class Sandal` and units such as ``logits:Sandal`` take names; ``ClassCondition(model,
    ["Sandal"])`` failed with "too many dimensions 'str'" and ``ClassCondition(model, "Sandal")`` with "new(): invalid
    data type 'str'"."""
    from dgnam import create_model
    from dgnam.ppgn import ClassCondition

    net = create_model("fmnist-cnn", pretrained=False)
    assert ClassCondition(net, ["Sandal"]).classes.tolist() == [5]
    assert ClassCondition(net, "sandal").classes.tolist() == [5]  # one class, matched as the CLI matches it
    assert ClassCondition(net, ["Sandal", 7, "9"]).classes.tolist() == [5, 7, 9]
    assert ClassCondition(net, 3).classes.tolist() == [3]
    assert ClassCondition(net, torch.tensor([1, 2])).classes.tolist() == [1, 2]
    with pytest.raises(DgnamError, match="unknown class 'Sandals': give an index or one of T-shirt/top"):
        ClassCondition(net, ["Sandals"])
    with pytest.raises(DgnamError, match="class 10 out of range: the model has classes 0..9"):
        ClassCondition(net, [10])
    with pytest.raises(DgnamError, match="unknown class 'Sandal': give an index or one of a, b"):
        ClassCondition(tiny_model, "Sandal")  # the tiny model's classes are a..e
    assert ClassCondition(tiny_model, ["B"]).classes.tolist() == [1]


def test_a_chain_through_several_classes_shows_each_class_on_its_own_labelled_rows(monkeypatch):
    """samples.png of `dgnam sample --class 3 --class Sandal` ran both classes' samples together in rows of ten,
    with nothing saying which class an image was drawn for (its caption's p(class) is of that class)."""
    import numpy as np

    from dgnam.images import wrapped_grid

    from test_engine import drawn_text

    texts = drawn_text(monkeypatch)
    arrays = [np.zeros((12, 12), np.uint8)] * 15
    figure = wrapped_grid(arrays, [f"{i}:0.50" for i in range(15)], groups=[0] * 12 + [1] * 3,
                          names=["logits:3\nDress", "logits:5\nSandal"])
    assert figure.size == (150 + 10 * 100 + 4, 3 * (96 + 14 + 4) + 4)  # 10 + 2 of Dress, then 3 of Sandal
    assert texts.index("Dress") < texts.index("0:0.50") < texts.index("11:0.50") < texts.index("Sandal")
    assert texts.index("Sandal") < texts.index("12:0.50")


@needs_zoo
def test_sample_with_out_writes_what_dgnam_sample_writes_byte_for_byte(tmp_path):
    """The Python call and the command line write a run with the same function: the same chain gives the same files."""
    from dgnam.zoo import create_model

    p = dgnam("sample", "--class", "Sandal", "--class", "3", "--n", "3", "--steps", "8", "--out", tmp_path / "cli",
              env={"OMP_NUM_THREADS": "1"})  # (the test process runs one thread: the same float rounding)
    assert p.returncode == 0, p.stderr
    net = create_model("fmnist-cnn")
    sample(create_model("fmnist-g-fc6"), load_dae(), [ClassCondition(net, c) for c in ("Sandal", 3)], 1,
           PPGNConfig.for_samples(3, steps=8), out=tmp_path / "py")
    files = sorted(f.relative_to(tmp_path / "cli") for f in (tmp_path / "cli").rglob("*") if f.is_file())
    assert files == sorted(f.relative_to(tmp_path / "py") for f in (tmp_path / "py").rglob("*") if f.is_file())
    assert len(files) == 9
    for f in files:
        assert (tmp_path / "cli" / f).read_bytes() == (tmp_path / "py" / f).read_bytes(), f
