"""Each training loop lowers its loss and resumes from a checkpoint exactly (tiny data, few steps)."""

import json

import pytest
import torch
import torch.nn.functional as F

from dgnam import DgnamError
from dgnam.train.common import Checkpoint, hold_out
from dgnam.train.classifier import ClassifierConfig, train_classifier
from dgnam.train.dae import DAEConfig, train_dae
from dgnam.train.generator import GeneratorConfig, train_generator
from dgnam.weights import load_state_dict
from dgnam.zoo.fmnist import FMNIST_GEN_SPACE, FMNIST_SPACE, FashionCNN, FashionDiscriminator, FashionGenerator

from helpers import dgnam, fashion_mnist, one_line_error

# the generators trained here for a few steps on a few images draw one image whatever the code, and say so
pytestmark = pytest.mark.filterwarnings("ignore:.* draws nearly the same image whatever its code")


def _data(n=192, seed=0):
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 3
    x = torch.rand(n, 1, 28, 28, generator=g) * 0.2
    for c in range(3):  # three easy classes: a bright band at a class-specific place
        x[y == c, :, 4 + 8 * c : 10 + 8 * c, :] += 0.7
    return x.clamp(0, 1), y


class Killed(Exception):
    pass


@pytest.fixture
def kill_after_first_checkpoint(monkeypatch):
    """Simulate a run killed right after its first checkpoint was written."""
    real = Checkpoint.save

    def save_then_die(self, state):
        real(self, state)
        raise Killed

    def arm():
        monkeypatch.setattr(Checkpoint, "save", save_then_die)

    def disarm():
        monkeypatch.setattr(Checkpoint, "save", real)

    return arm, disarm


def test_classifier_loss_falls_and_resume_is_exact(tmp_path, kill_after_first_checkpoint):
    x, y = _data()
    cfg = ClassifierConfig(epochs=3, batch_size=32, lr=3e-3, seed=0)
    torch.manual_seed(0)
    full = train_classifier(FashionCNN(3), FMNIST_SPACE, (x, y), (x[:64], y[:64]), tmp_path / "a", "c", cfg, progress=False)
    losses = [h["train_loss"] for h in full["history"]]
    assert losses[-1] < losses[0]
    # killed after one epoch, then resumed
    arm, disarm = kill_after_first_checkpoint
    torch.manual_seed(0)
    arm()
    with pytest.raises(Killed):
        train_classifier(FashionCNN(3), FMNIST_SPACE, (x, y), (x[:64], y[:64]), tmp_path / "b", "c", cfg, progress=False)
    disarm()
    # the resumed run must not depend on the fresh model's initialization
    torch.manual_seed(123)
    resumed = train_classifier(FashionCNN(3), FMNIST_SPACE, (x, y), (x[:64], y[:64]), tmp_path / "b", "c", cfg, progress=False)
    assert [h["epoch"] for h in resumed["history"]] == [1, 2, 3]
    a, b = load_state_dict(tmp_path / "a" / "c.safetensors"), load_state_dict(tmp_path / "b" / "c.safetensors")
    for k in a:
        assert torch.allclose(a[k], b[k], atol=1e-5), k


def test_generator_loss_falls_and_resume_is_exact(tmp_path, kill_after_first_checkpoint):
    x, y = _data(128)
    torch.manual_seed(0)
    enc = FashionCNN(3).eval()
    cfg = GeneratorConfig(epochs=3, batch_size=32, lr=1e-3, seed=0)

    def run(out, init_seed):
        torch.manual_seed(init_seed)
        g, d = FashionGenerator(256), FashionDiscriminator(256)
        return train_generator(enc, "fc6", FMNIST_SPACE, g, d, FMNIST_GEN_SPACE, x, x[:32], out, "g", cfg, progress=False)

    full = run(tmp_path / "a", 0)
    img = [h["loss_img"] for h in full["history"]]
    assert img[-1] < img[0]
    arm, disarm = kill_after_first_checkpoint
    arm()
    with pytest.raises(Killed):
        run(tmp_path / "b", 0)
    disarm()
    resumed = run(tmp_path / "b", 99)
    assert len(resumed["history"]) == 3
    a, b = load_state_dict(tmp_path / "a" / "g.safetensors"), load_state_dict(tmp_path / "b" / "g.safetensors")
    for k in a:
        assert torch.allclose(a[k], b[k], atol=1e-5), k
    assert (tmp_path / "a" / "g.codestats.safetensors").exists()


def test_generator_feature_loss_on_the_code_layer(tmp_path):
    """With the comparator at the inverted layer itself, the feature loss is G(y)'s code error, and training lowers
    it; an unknown comparator layer is refused by name."""
    x, _ = _data(128)
    torch.manual_seed(0)
    enc = FashionCNN(3).eval()
    cfg = GeneratorConfig(epochs=3, batch_size=32, lr=1e-3, w_feat=10.0, comparator_layer="fc6", seed=0)
    torch.manual_seed(0)
    card = train_generator(enc, "fc6", FMNIST_SPACE, FashionGenerator(256), FashionDiscriminator(256), FMNIST_GEN_SPACE,
                           x, x[:32], tmp_path, "g", cfg, progress=False)
    assert card["config"]["comparator_layer"] == "fc6"
    feat = [h["loss_feat"] for h in card["history"]]
    assert feat[-1] < feat[0]
    bad = GeneratorConfig(epochs=1, batch_size=32, comparator_layer="fc7", seed=0)
    with pytest.raises(DgnamError, match="fc6"):
        train_generator(enc, "fc6", FMNIST_SPACE, FashionGenerator(256), FashionDiscriminator(256), FMNIST_GEN_SPACE,
                        x, x[:32], tmp_path / "bad", "g", bad, progress=False)


def test_the_default_comparator_is_the_encoders_last_conv_layer_before_the_code(tmp_path):
    """The comparator defaulted to "features", fmnist-cnn's conv stack, so `dgnam train generator --encoder` of
    any other network (a ResNet's layer4 and avgpool) was refused until --comparator-layer was found: the default is
    now the deepest top-level conv layer before the code (fmnist-cnn: still features), else the code layer."""
    from torch import nn

    from dgnam.train.generator import default_comparator_layer

    x = FMNIST_SPACE.encode(torch.rand(1, 1, 28, 28))
    assert default_comparator_layer(FashionCNN().eval(), "fc6", x) == "features"
    resnet_like = nn.Sequential()
    for name, m in [("conv", nn.Conv2d(1, 4, 3)), ("layer1", nn.Conv2d(4, 8, 3)), ("layer2", nn.Conv2d(8, 8, 3, 2)),
                    ("avgpool", nn.AdaptiveAvgPool2d(1)), ("flat", nn.Flatten()), ("fc", nn.Linear(8, 3))]:
        resnet_like.add_module(name, m)
    assert default_comparator_layer(resnet_like, "avgpool", x) == "layer2"
    assert default_comparator_layer(resnet_like, "layer2", x) == "layer1"  # only layers before the code
    mlp = nn.Sequential(nn.Flatten(), nn.Linear(784, 16), nn.ReLU(), nn.Linear(16, 3))
    assert default_comparator_layer(mlp, "2", x) == "2"
    # trained with it (and recorded resolved in the card, so a resume compares the layer itself)
    x01, _ = _data(64)
    with pytest.warns(UserWarning, match="g draws nearly the same image whatever its code"):  # 2 steps: said so
        card = train_generator(resnet_like.eval(), "avgpool", FMNIST_SPACE, FashionGenerator(8),
                               FashionDiscriminator(8), FMNIST_GEN_SPACE, x01, x01[:16], tmp_path, "g",
                               GeneratorConfig(epochs=1, batch_size=32), progress=False)
    assert card["config"]["comparator_layer"] == "layer2" and card["metrics"]["test_spread"] < 0.01


def test_the_shipped_generators_reconstructions_vary_as_the_images_do():
    """test_spread, the measure behind the warning above, on the shipped prior and 300 test images: its
    reconstructions vary about as much as the images themselves (0.78 over 1,000), far from the warning's 0.1."""
    from dgnam import create_model
    from dgnam.train.generator import MIN_RECONSTRUCTION_SPREAD, _reconstruction_metrics

    x01 = fashion_mnist("test").tensors(300)[0]
    enc, gen = create_model("fmnist-cnn"), create_model("fmnist-g-fc6")
    m = _reconstruction_metrics(enc, "fc6", gen, gen.space, enc.input_space, x01, torch.device("cpu"))
    assert m["test_spread"] > 5 * MIN_RECONSTRUCTION_SPREAD and m["test_mse01"] < 0.1


def test_card_records_the_command_and_the_weights_hash(tmp_path, monkeypatch):
    """The card says how to remake the weights, also when the CLI ran as ``python -m dgnam``, and hashes the file."""
    from dgnam.weights import sha256

    x, y = _data(64)
    argv = ["/venv/lib/dgnam/__main__.py", "train", "classifier", "--name", "my net"]
    monkeypatch.setattr("sys.argv", argv)
    card = train_classifier(FashionCNN(3), FMNIST_SPACE, (x, y), (x[:32], y[:32]), tmp_path, "c",
                            ClassifierConfig(epochs=1, batch_size=32, seed=0), progress=False)
    assert card["command"] == "dgnam train classifier --name 'my net'"
    assert card["sha256"] == sha256(tmp_path / "c.safetensors") and card["seed"] == 0
    monkeypatch.setattr("sys.argv", ["script.py"])  # called from Python: no command remakes it
    card = train_classifier(FashionCNN(3), FMNIST_SPACE, (x, y), (x[:32], y[:32]), tmp_path / "py", "c",
                            ClassifierConfig(epochs=1, batch_size=32, seed=0), progress=False)
    assert card["command"] is None


# --------------------------------------------------------------------------------------------------------------------
# `dgnam train ...` on bad input: one line naming the fix, never a traceback (run as the user runs it)



def _folder(root, classes=("cat", "dog"), per_class=10):
    """A tiny image folder with one sub-folder per class (no test split of its own)."""
    import numpy as np
    from PIL import Image

    for ci, c in enumerate(classes):
        (root / c).mkdir(parents=True)
        for i in range(per_class):
            Image.fromarray(np.full((28, 28), 40 + 150 * ci + i, np.uint8)).save(root / c / f"{i}.png")
    return root


@pytest.mark.parametrize("what, config", [
    ("--epochs", ClassifierConfig(epochs=0)), ("--epochs", ClassifierConfig(epochs=-1)),
    ("--batch-size", ClassifierConfig(batch_size=0)), ("--lr", ClassifierConfig(lr=-1.0)),
    ("--lr", ClassifierConfig(lr=float("nan"))),
    ("--epochs", GeneratorConfig(epochs=0)), ("--batch-size", GeneratorConfig(batch_size=0)),
    ("--lr", GeneratorConfig(lr=0.0)), ("--w-adv", GeneratorConfig(w_adv=-1.0)),
    ("--epochs", DAEConfig(epochs=0)), ("--batch-size", DAEConfig(batch_size=0)), ("--lr", DAEConfig(lr=-1.0)),
    ("--noise", DAEConfig(noise_std=-1.0)),
])
def test_trainers_refuse_numbers_they_cannot_train_with(tmp_path, what, config):
    """0 epochs wrote a model without metrics (a crash or NaN in the CLI), batch size 0 divided by zero, lr <= 0
    made the optimizer raise, a negative noise std or loss weight trained silently: each is refused by its flag."""
    x, y = _data(32)
    with pytest.raises(DgnamError, match=what):
        if isinstance(config, ClassifierConfig):
            train_classifier(FashionCNN(3), FMNIST_SPACE, (x, y), (x, y), tmp_path, "c", config, progress=False)
        elif isinstance(config, GeneratorConfig):
            train_generator(FashionCNN(3).eval(), "fc6", FMNIST_SPACE, FashionGenerator(256), FashionDiscriminator(256),
                            FMNIST_GEN_SPACE, x, x, tmp_path, "g", config, progress=False)
        else:
            train_dae(torch.rand(300, 16), torch.rand(20, 16), tmp_path, "d", config, progress=False)
    assert not list(tmp_path.iterdir())  # nothing written


def test_dae_too_few_codes_names_the_flags(tmp_path):
    with pytest.raises(DgnamError, match=r"lower --batch-size \(to 16, say.*a larger --limit"):
        train_dae(torch.rand(64, 16), torch.rand(20, 16), tmp_path, "d", DAEConfig(batch_size=256), progress=False)


def test_hold_out_tests_every_class_on_images_it_does_not_train_on():
    y = torch.tensor([0] * 20 + [1] * 3 + [2] * 1)
    tr, te = hold_out(y, 0.1, seed=0)
    assert set(tr.tolist()).isdisjoint(te.tolist()) and len(tr) + len(te) == len(y)
    assert y[te].tolist() == [0, 0, 1]  # 10% of 20, at least one of 3, none of a class with a single image
    assert 23 in tr.tolist()
    assert torch.equal(hold_out(y, 0.1, seed=0)[1], te) and not torch.equal(hold_out(y, 0.5, seed=1)[1], te)
    with pytest.raises(DgnamError, match="two or more"):
        hold_out(torch.tensor([0, 1, 2]))


def test_train_classifier_on_a_folder_holds_out_a_test_set_and_keeps_its_classes(tmp_path):
    """The folder has no test split: it was tested on its training images, with 10 outputs for 2 classes."""
    data, out = _folder(tmp_path / "data"), tmp_path / "out"
    p = dgnam("train", "classifier", "--arch", "fmnist-cnn", "--data", str(data), "--epochs", "1", "--batch-size", "8",
              "--out", str(out), fresh=True)  # (a new interpreter, as a user's)
    assert p.returncode == 0, p.stderr
    card = json.loads((out / "fmnist-cnn.json").read_text())
    assert card["metrics"]["test_images"] == 2 and "held out" in card["test"]
    assert card["classes"] == ["cat", "dog"]
    assert load_state_dict(out / "fmnist-cnn.safetensors")["logits.weight"].shape[0] == 2
    from dgnam.zoo import load_model  # loaded back with --arch: two outputs, named as the folder's classes

    net = load_model(str(out / "fmnist-cnn.safetensors"), "fmnist-cnn")
    assert net.classes == ("cat", "dog") and net(torch.zeros(1, 1, 28, 28)).shape == (1, 2)
    # and without it: the card names the architecture (the same model), and refuses another
    assert card["arch"] == "fmnist-cnn"
    again = load_model(out / "fmnist-cnn.safetensors")
    assert again.classes == net.classes and torch.equal(again(torch.ones(1, 1, 28, 28)), net(torch.ones(1, 1, 28, 28)))
    with pytest.raises(DgnamError, match="says it holds fmnist-cnn, not fmnist-judge: drop the architecture option"):
        load_model(out / "fmnist-cnn.safetensors", "fmnist-judge")
    (out / "fmnist-cnn.json").write_text(json.dumps({**card, "arch": "resnet50"}))
    for arch in (None, "fmnist-cnn"):
        with pytest.raises(DgnamError, match="names the architecture 'resnet50', which this dgnam does not have"):
            load_model(out / "fmnist-cnn.safetensors", arch)
    card.pop("arch")  # a card written before it named the architecture: the option is needed, as before
    (out / "fmnist-cnn.json").write_text(json.dumps(card))
    with pytest.raises(DgnamError, match="is a weights file: say which architecture it holds"):
        load_model(out / "fmnist-cnn.safetensors")
    # a folder with its own train/ and test/ is tested on its test images, nothing held out
    split = tmp_path / "split"
    _folder(split / "train"), _folder(split / "test", per_class=3)
    p = dgnam("train", "classifier", "--arch", "fmnist-cnn", "--data", str(split), "--epochs", "1", "--batch-size",
              "8", "--out", str(tmp_path / "out2"))
    assert p.returncode == 0, p.stderr
    card = json.loads((tmp_path / "out2" / "fmnist-cnn.json").read_text())
    assert card["metrics"]["test_images"] == 6 and card["test"].endswith("test split")
    assert card["classes"] == ["cat", "dog"]


def test_train_classifier_no_augment_learns_classes_a_mirror_image_changes(tmp_path):
    """Training images were always mirrored at random: on a folder whose classes differ only by side (a bar on the
    left or on the right; text and digits likewise) the classifier stayed at chance, and no option turned it off."""
    import numpy as np
    from PIL import Image

    for c, cols in (("left", slice(2, 10)), ("right", slice(18, 26))):
        (tmp_path / "data" / c).mkdir(parents=True)
        for i in range(20):
            a = np.full((28, 28), 20 + i, np.uint8)
            a[:, cols] = 220
            Image.fromarray(a).save(tmp_path / "data" / c / f"{i}.png")
    p = dgnam("train", "classifier", "--arch", "fmnist-judge", "--data", tmp_path / "data", "--epochs", "6",
              "--batch-size", "8", "--lr", "3e-3", "--no-augment", "--out", tmp_path / "out")
    assert p.returncode == 0, p.stderr
    card = json.loads((tmp_path / "out" / "fmnist-judge.json").read_text())
    assert card["config"]["augment"] is False
    assert card["metrics"]["test_accuracy"] == 1.0


def test_train_commands_refuse_bad_options_in_one_line(tmp_path):
    data = str(_folder(tmp_path / "data"))
    cls = ["train", "classifier", "--arch", "fmnist-cnn", "--data", data, "--out", str(tmp_path / "c")]
    one_line_error(dgnam(*cls, "--epochs", "0"), "--epochs")
    one_line_error(dgnam(*cls, "--batch-size", "0"), "--batch-size")
    one_line_error(dgnam(*cls, "--lr", "-1"), "--lr")
    (tmp_path / "file").write_text("")  # refused after the images are read, before the note on stderr
    one_line_error(dgnam(*cls[:-1], str(tmp_path / "file"), "--epochs", "1"), "is a file")
    gen = ["train", "generator", "--data", data, "--out", str(tmp_path / "g")]
    one_line_error(dgnam(*gen, "--epochs", "0"), "--epochs")
    one_line_error(dgnam(*gen, "--limit", "0"), "--limit")
    one_line_error(dgnam(*gen, "--encoder", "fmnist-g-fc6"), "--encoder", "give a classifier")
    one_line_error(dgnam(*gen, "--layer", "fc7"), "--layer fc7 of fmnist-cnn", "closest: fc6")
    one_line_error(dgnam(*gen, "--comparator-layer", "conv9"), "--comparator-layer conv9 of fmnist-cnn")
    dae = ["train", "dae", "--data", data, "--out", str(tmp_path / "d")]
    one_line_error(dgnam(*dae, "--epochs", "0"), "--epochs")
    one_line_error(dgnam(*dae, "--noise", "-1"), "--noise")
    one_line_error(dgnam(*dae, "--limit", "8"), "--limit", "--batch-size")
    assert not (tmp_path / "c").exists() and not (tmp_path / "g").exists() and not (tmp_path / "d").exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_train_commands_refuse_cuda_without_it(tmp_path):
    data = str(_folder(tmp_path / "data"))
    for cmd in (["classifier", "--arch", "fmnist-cnn"], ["generator"], ["dae"]):
        one_line_error(dgnam("train", *cmd, "--data", data, "--device", "cuda", "--out", str(tmp_path / "o")),
                        "--device cpu")


def test_generator_and_dae_on_a_plain_folder_test_on_held_out_images(tmp_path):
    """A folder without test/ has no test images: the generator's and the DAE's test metrics come from a held-out
    share, as the classifier's do, and their cards say so."""
    data = str(_folder(tmp_path / "data"))
    p = dgnam("train", "generator", "--data", data, "--epochs", "1", "--batch-size", "8", "--out", str(tmp_path / "g"))
    assert p.returncode == 0, p.stderr
    assert "held out" in json.loads((tmp_path / "g" / "fmnist-g-fc6.json").read_text())["test"]
    p = dgnam("train", "dae", "--data", data, "--epochs", "1", "--batch-size", "8", "--out", str(tmp_path / "d"))
    assert p.returncode == 0, p.stderr
    assert "held out" in json.loads((tmp_path / "d" / "fmnist-dae-fc6.json").read_text())["codes"]["test"]


def test_a_generator_of_a_file_encoder_finds_that_encoder_again(tmp_path):
    """`train generator --encoder FILE --encoder-arch A` records the file and architecture in the card, so inpaint
    (and sample --prior joint, facets) load that encoder without --encoder; the card used to name only the file's
    stem, which nothing could load."""
    from dgnam.cli.beyond import _inverts

    data = str(_folder(tmp_path / "data"))
    p = dgnam("train", "classifier", "--arch", "fmnist-cnn", "--data", data, "--epochs", "1", "--batch-size", "8",
              "--name", "enc", "--limit", "16", "--out", str(tmp_path / "c"))
    assert p.returncode == 0, p.stderr
    enc = tmp_path / "c" / "enc.safetensors"
    m = json.loads((tmp_path / "c" / "enc.json").read_text())["metrics"]
    assert m["train_images"] + m["test_images"] == 16  # --limit, then 10 % of each class held out
    # no --encoder-arch and, below, no --generator-arch: the cards `train` wrote name the architectures
    p = dgnam("train", "generator", "--data", data, "--epochs", "1", "--batch-size", "8", "--encoder", str(enc),
              "--name", "g", "--out", str(tmp_path / "g"))
    assert p.returncode == 0, p.stderr
    g = tmp_path / "g" / "g.safetensors"
    assert json.loads((tmp_path / "g" / "g.json").read_text())["arch"] == "fmnist-g-fc6"
    assert _inverts(str(g), "fmnist-g-fc6") == (str(enc.resolve()), "fc6", "fmnist-cnn")
    p = dgnam("inpaint", "test:0", "--class", "0", "--generator", str(g), "--prior", "joint", "--steps", "1",
              "--out", str(tmp_path / "i.png"))
    assert p.returncode == 0, p.stderr
    assert (tmp_path / "i-filled.png").exists()
    # the embedded DAE denoises fmnist-cnn's fc6 codes, not this encoder's (of the same size): refused
    for cmd in (["inpaint", "test:0"], ["sample"]):
        one_line_error(dgnam(*cmd, "--class", "0", "--generator", str(g), "--generator-arch", "fmnist-g-fc6",
                             "--steps", "1", "--out", str(tmp_path / "x.png")), "embedded code DAE", "--dae")


def test_train_generator_gives_the_encoder_back_as_it_was(tmp_path):
    """The encoder is borrowed: it was left in eval mode with requires_grad off (a user's classifier mid-training
    stopped learning)."""
    x, _ = _data(64)
    torch.manual_seed(0)
    enc = FashionCNN(3).train()
    train_generator(enc, "fc6", FMNIST_SPACE, FashionGenerator(256), FashionDiscriminator(256), FMNIST_GEN_SPACE, x,
                    x[:32], tmp_path, "g", GeneratorConfig(epochs=1, batch_size=32, seed=0), progress=False)
    assert enc.training and all(p.requires_grad for p in enc.parameters())


def test_generator_epochs_default_to_about_1000_steps(tmp_path, monkeypatch):
    """Without epochs the trainer runs the epochs nearest PRIOR_TRAIN_STEPS optimizer steps (the budget that made the
    best DGN-AM prior) and records the number: the CLI's default was 8 epochs, about 7,500 steps on Fashion-MNIST,
    the length benchmarks/generator_training.py finds worst."""
    from dgnam.train.generator import epochs_for_steps

    assert GeneratorConfig().epochs is None
    assert [epochs_for_steps(n, 64) for n in (60_000, 30_000, 20_000, 4_000, 10)] == [1, 2, 3, 16, 1000]
    assert epochs_for_steps(64, 32, steps=5) == 2  # 2 steps per epoch: 2.5 -> 2 (round half to even), not 0 or 3
    monkeypatch.setattr("dgnam.train.generator.PRIOR_TRAIN_STEPS", 4)  # 2 epochs of 2 steps, for a quick test
    x, _ = _data(64)
    torch.manual_seed(0)
    card = train_generator(FashionCNN(3), "fc6", FMNIST_SPACE, FashionGenerator(256), FashionDiscriminator(256),
                           FMNIST_GEN_SPACE, x, x[:32], tmp_path, "g", GeneratorConfig(batch_size=32, seed=0),
                           progress=False)
    assert card["config"]["epochs"] == 2 and len(card["history"]) == 2


def _colour_folder(root, per_class=8):
    """Two classes that differ only in hue (the same gray level): a gray model cannot tell them apart."""
    import numpy as np
    from PIL import Image

    for c, rgb in (("red", (200, 40, 40)), ("green", (40, 146, 40))):  # about the same luma
        (root / c).mkdir(parents=True)
        for i in range(per_class):
            a = np.zeros((30, 30, 3), np.uint8)
            a[4:26, 4:26] = np.array(rgb) + i
            Image.fromarray(a).save(root / c / f"{i}.png")
    return root


def test_a_colour_folder_trains_colour_models_that_load_back_in_colour(tmp_path):
    """`train classifier --color RGB` keeps the folder's colour (it was read as gray), and `train generator` on a
    colour encoder trains a colour generator and a discriminator of the encoder's channels (it crashed on 3
    channels); their cards record the image spaces and loading the files restores them."""
    from dgnam.zoo import load_model

    data = str(_colour_folder(tmp_path / "data"))
    p = dgnam("train", "classifier", "--arch", "fmnist-cnn", "--data", data, "--color", "RGB", "--epochs", "1",
              "--batch-size", "8", "--name", "c", "--out", str(tmp_path / "c"))
    assert p.returncode == 0, p.stderr
    assert "read as 3x28x28 RGB" in p.stderr
    card = json.loads((tmp_path / "c" / "c.json").read_text())
    assert card["input_space"]["color"] == "RGB" and len(card["input_space"]["mean"]) == 3
    net = load_model(str(tmp_path / "c" / "c.safetensors"), "fmnist-cnn")
    assert net.input_space.shape == (3, 28, 28) and net.input_space.mean == tuple(card["input_space"]["mean"])
    assert net(torch.zeros(1, 3, 28, 28)).shape == (1, 2)
    p = dgnam("train", "generator", "--encoder", str(tmp_path / "c" / "c.safetensors"), "--encoder-arch",
              "fmnist-cnn", "--data", data, "--epochs", "1", "--batch-size", "8", "--name", "g", "--out",
              str(tmp_path / "g"))
    assert p.returncode == 0, p.stderr
    assert json.loads((tmp_path / "g" / "g.json").read_text())["space"]["color"] == "RGB"
    g = load_model(str(tmp_path / "g" / "g.safetensors"), "fmnist-g-fc6")
    assert g.space.color == "RGB" and g(torch.rand(2, 256)).shape == (2, 3, 32, 32)
    p = dgnam("visualize", "--model", str(tmp_path / "c" / "c.safetensors"), "--arch", "fmnist-cnn", "--generator",
              str(tmp_path / "g" / "g.safetensors"), "--generator-arch", "fmnist-g-fc6", "--units", "logits:red",
              "--steps", "2", "--out", str(tmp_path / "run"))
    assert p.returncode == 0, p.stderr
    # an architecture that cannot take the folder's classes or colours is refused, not trained with the wrong head
    one_line_error(dgnam("train", "classifier", "--arch", "efficientnet-lite0", "--data", data, "--out",
                         str(tmp_path / "e")), "fixed 1000-class head")
    one_line_error(dgnam("train", "classifier", "--arch", "fmnist-cnn", "--data", data, "--color", "CMYK", "--out",
                         str(tmp_path / "e")), "--color CMYK")
    one_line_error(dgnam("train", "classifier", "--arch", "fmnist-cnn", "--color", "RGB", "--out", str(tmp_path / "e")),
                   "Fashion-MNIST is gray")
    # a folder whose name begins like the data set's is a folder (as load_dataset reads it)
    from dgnam.data import is_fashion_mnist

    assert not is_fashion_mnist("fashion-mnist-rgb") and is_fashion_mnist("fashion-mnist:/data")
    assert is_fashion_mnist(None)
    # without --color an architecture keeps its own colour order (caffenet's BGR was refused as a --color)
    one_line_error(dgnam("train", "classifier", "--arch", "caffenet", "--data", str(tmp_path / "none"), "--out",
                         str(tmp_path / "e")), "does not exist")


def test_a_classifier_file_of_a_fixed_head_with_folder_classes_in_its_card_is_refused_naming_why(tmp_path):
    """An older `train classifier` kept efficientnet's 1000 outputs, trained the first ones on the folder's classes
    and wrote those in the card: neither name list fits the head. Loaded with ImageNet's names, output 0 ("cat")
    was "tench"."""
    from dgnam.weights import save_safetensors
    from dgnam.zoo import get_entry, load_model

    entry = get_entry("efficientnet-lite0")
    save_safetensors(entry.build().state_dict(), tmp_path / "old.safetensors")
    (tmp_path / "old.json").write_text(json.dumps({"classes": ["cat", "dog"]}))
    with pytest.raises(DgnamError, match="holds efficientnet-lite0's fixed head, trained by an older .* on the 2 "
                                         "classes of its card.*retrain it"):
        load_model(str(tmp_path / "old.safetensors"), "efficientnet-lite0")


def test_training_and_loading_leave_the_callers_random_stream_alone(tmp_path):
    """train_* seeded torch's global RNG and building a zoo model drew its discarded init from it: a caller's own
    random numbers after the call depended on whether they trained or loaded a model first."""
    from dgnam import create_model
    from dgnam.ppgn import CodeDAE  # noqa: F401  (the trainer's model)

    g = torch.Generator().manual_seed(0)
    codes, test = torch.rand(300, 16, generator=g), torch.rand(20, 16, generator=g)
    torch.manual_seed(123)
    want = torch.rand(3)
    torch.manual_seed(123)
    train_dae(codes, test, tmp_path, "d", DAEConfig(epochs=1, batch_size=64, hidden=8), progress=False)
    create_model("fmnist-cnn")
    assert torch.equal(torch.rand(3), want)
    torch.manual_seed(123)
    a = create_model("fmnist-cnn", pretrained=False)  # an untrained model draws from the caller's stream, as torch's own
    b = create_model("fmnist-cnn", pretrained=False)
    assert not torch.equal(a.state_dict()["logits.weight"], b.state_dict()["logits.weight"])


def _photo_folder(root, side=64, per_class=6):
    """Two classes of colour images of ``side`` px (a user's own domain)."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    for c in ("a", "b"):
        (root / c).mkdir(parents=True)
        for i in range(per_class):
            Image.fromarray(rng.integers(0, 256, (side, side, 3), dtype=np.uint8)).save(root / c / f"{i}.png")
    return root


def test_a_generator_for_a_larger_encoder_can_draw_at_its_resolution(tmp_path):
    """A 64 px encoder could only get a 32 px generator, upsampled to 64. `--size 64` trains one that draws at 64
    (the default stays 32), the card records it, loading the file builds it at that size, and a resume at another
    size is refused naming it."""
    from dgnam.zoo import load_model

    data, out = str(_photo_folder(tmp_path / "data")), str(tmp_path / "g")
    enc = ["--encoder", "conftest:seeded_colour64_net", "--data", data, "--batch-size", "4", "--out", out]
    p = dgnam("train", "generator", *enc, "--epochs", "1", "--name", "d")
    assert p.returncode == 0, p.stderr
    assert "d (32x32 RGB)" in p.stdout
    p = dgnam("train", "generator", *enc, "--epochs", "1", "--name", "g", "--size", "64")
    assert p.returncode == 0, p.stderr
    assert "g (64x64 RGB)" in p.stdout
    assert json.loads((tmp_path / "g" / "g.json").read_text())["space"]["size"] == [64, 64]
    g = load_model(str(tmp_path / "g" / "g.safetensors"), "fmnist-g-fc6")
    assert g.space.size == (64, 64) and g(torch.rand(2, 12)).shape == (2, 3, 64, 64)
    one_line_error(dgnam("train", "generator", *enc, "--epochs", "2", "--name", "g"),
                   "space.size[0] 64 -> 32", "--fresh")
    one_line_error(dgnam("train", "generator", *enc, "--name", "h", "--size", "48"), "--size 48", "32, 64, 128, 256")
    one_line_error(dgnam("train", "generator", *enc, "--name", "h", "--size", "128"), "--size 128", "up to 64")
    one_line_error(dgnam("train", "generator", *enc, "--arch", "deepsim-fc6", "--size", "64"), "--size",
                   "deepsim-fc6 draws 256x256")
    # a card whose size the architecture cannot be built at is one line naming the card
    card = json.loads((tmp_path / "g" / "g.json").read_text())
    card["space"]["size"] = [48, 48]
    (tmp_path / "g" / "g.json").write_text(json.dumps(card))
    with pytest.raises(DgnamError, match=r"the card beside g.safetensors \(g.json\) gives an output size "
                                         r"fmnist-g-fc6 cannot be built with .*fix or remove that file"):
        load_model(str(tmp_path / "g" / "g.safetensors"), "fmnist-g-fc6")


def test_the_generator_architecture_at_each_size():
    """Size 32 is the zoo's architecture layer for layer (its weights load); each doubling adds one stage."""
    from dgnam.zoo import get_entry

    zoo_keys = set(get_entry("fmnist-g-fc6").build().state_dict())
    assert set(FashionGenerator(256).state_dict()) == zoo_keys
    small = FashionGenerator(256, channels=3)
    for side, stages in ((32, 0), (64, 1), (128, 2)):
        torch.manual_seed(0)
        g = FashionGenerator(256, channels=3, size=side)
        small.load_state_dict(g.state_dict(), strict=False)
        code = 3 * torch.rand(2, 256)
        assert g(code).shape == (2, 3, side, side)
        if stages:  # untrained, the larger generator draws the 32 px one's image upsampled (its stages start as
            with torch.no_grad():  # the identity), up to the LeakyReLU applied once more and the last conv's reach
                up = F.interpolate(small(code), size=(side, side), mode="bilinear", align_corners=False)
                assert torch.corrcoef(torch.stack([g(code).flatten(), up.flatten()]))[0, 1] > 0.99
        assert set(g.state_dict()) - zoo_keys == {f"upconv{i}.{w}" for i in range(1, stages + 1) for w in ("weight", "bias")}
    with pytest.raises(DgnamError, match="32, 64, 128, 256 px images, not 48"):
        FashionGenerator(256, size=48)


def test_train_generator_refuses_a_space_that_is_not_its_output(tmp_path):
    """A 64 px generator trained with the 32 px space wrote a card saying 32 px: the file then loaded as the 32 px
    architecture and failed on its extra weights. The output is checked against gen_space before training."""
    x, _ = _data(64)
    torch.manual_seed(0)
    with pytest.raises(DgnamError, match="the generator draws 1x64x64 images but gen_space says 1x32x32"):
        train_generator(FashionCNN(3), "fc6", FMNIST_SPACE, FashionGenerator(256, size=64), FashionDiscriminator(256),
                        FMNIST_GEN_SPACE, x, x[:32], tmp_path, "g", GeneratorConfig(epochs=1, batch_size=32, seed=0),
                        progress=False)
    assert not (tmp_path / "g.safetensors").exists()


def test_a_generator_of_a_layer_before_its_relu_loads_without_the_lower_end_0(tmp_path):
    """The card records the codes' lower end as measured: 0 for fc6 (a ReLU's output), none for fc6.0 (the Linear
    before it), whose codes go below 0. Every generator file loaded with the paper's 0, which cut such codes in half
    (or refused bounds below 0 with advice about ClipCode)."""
    from dgnam.priors import ClipCode
    from dgnam.zoo import load_model

    x, _ = _data(96)
    torch.manual_seed(0)
    enc = FashionCNN(3).eval()
    cfg = GeneratorConfig(epochs=1, batch_size=32, seed=0)
    for layer, lower in (("fc6", 0.0), ("fc6.0", None)):
        card = train_generator(enc, layer, FMNIST_SPACE, FashionGenerator(256), FashionDiscriminator(256),
                               FMNIST_GEN_SPACE, x, x[:32], tmp_path, layer, cfg, progress=False)
        assert card["code_lower"] == lower
        g = load_model(tmp_path / f"{layer}.safetensors", "fmnist-g-fc6")
        assert g.code_lower == lower
        clip = g.default_priors()[0]
        assert isinstance(clip, ClipCode) and clip.lower == lower
    card_path = tmp_path / "fc6.0.json"
    card_path.write_text(json.dumps({**json.loads(card_path.read_text()), "code_lower": "low"}))
    with pytest.raises(DgnamError, match="gives code_lower 'low': give a number or null"):
        load_model(tmp_path / "fc6.0.safetensors", "fmnist-g-fc6")


def test_a_classifier_file_named_like_a_zoo_model_is_not_that_zoo_model(tmp_path):
    """`dgnam train classifier --arch fmnist-cnn` names its file fmnist-cnn.safetensors, and a file's model is named
    by its stem: the encoder of the zoo generator (fmnist-cnn, even given as --encoder fmnist-cnn) was the user's
    file instead of the zoo model, so `sample --prior joint`, `inpaint` and `facets` used other weights silently."""
    from dgnam.cli.beyond import _encoder_for
    from dgnam.facets import _zoo_encoder
    from dgnam.weights import save_safetensors, tensor_digest
    from dgnam.zoo import create_model, load_model

    torch.manual_seed(5)
    save_safetensors(FashionCNN().state_dict(), tmp_path / "fmnist-cnn.safetensors")
    mine = load_model(str(tmp_path / "fmnist-cnn.safetensors"), "fmnist-cnn")
    zoo = tensor_digest(list(create_model("fmnist-cnn").state_dict().values()))
    for given in (None, "fmnist-cnn"):
        enc, layer = _encoder_for("fmnist-g-fc6", None, mine, given, None)
        assert layer == "fc6" and enc is not mine and tensor_digest(list(enc.state_dict().values())) == zoo
    enc, _ = _zoo_encoder(create_model("fmnist-g-fc6"), mine)
    assert enc is not mine and tensor_digest(list(enc.state_dict().values())) == zoo
    target = create_model("fmnist-cnn")  # the zoo model itself is still its own encoder
    assert _encoder_for("fmnist-g-fc6", None, target, None, None)[0] is target
    # a generator file (named after its architecture by default) inverts whatever its card says, not the zoo's
    save_safetensors(FashionGenerator(256).state_dict(), tmp_path / "fmnist-g-fc6.safetensors")
    assert _zoo_encoder(load_model(str(tmp_path / "fmnist-g-fc6.safetensors"), "fmnist-g-fc6"), target) is None


def test_a_generator_card_records_the_encoder_weights_it_inverts(tmp_path):
    """The card named the encoder file only: after that file was retrained in place, `visualize --init` refused codes
    of the encoder the generator was trained on and took codes of the new weights, and `sample --prior joint`,
    `inpaint` and `facets` used the new weights, silently. The card records the weights' SHA-256: those codes are
    taken, the others refused, and the replaced encoder is refused naming why."""
    from dgnam.cli.beyond import _encoder_for
    from dgnam.cli.run import _init_codes
    from dgnam.weights import save_safetensors, sha256
    from dgnam.zoo import load_model

    x, _ = _data(64)
    enc_file = tmp_path / "enc.safetensors"
    torch.manual_seed(0)
    save_safetensors(FashionCNN(3).state_dict(), enc_file)
    (tmp_path / "enc.json").write_text(json.dumps({"classes": ["a", "b", "c"]}))
    enc = load_model(str(enc_file), "fmnist-cnn")
    old_sha = sha256(enc_file)
    torch.manual_seed(0)
    cfg = GeneratorConfig(epochs=1, batch_size=32, seed=0)
    card = train_generator(enc, "fc6", FMNIST_SPACE, FashionGenerator(256), FashionDiscriminator(256),
                           FMNIST_GEN_SPACE, x, x[:16], tmp_path, "g", cfg, progress=False)
    assert card["inverts"]["weights_sha256"] == old_sha
    gen = str(tmp_path / "g.safetensors")
    assert _encoder_for(gen, None, enc, None, None)[1] == "fc6"  # the same weights: found again

    def codes(sha, name):
        save_safetensors({"codes": torch.rand(1, 256)}, tmp_path / name, metadata={
            "model": str(enc_file.resolve()), "arch": "fmnist-cnn", "layer": "fc6", "weights_sha256": sha})
        return str(tmp_path / name)

    old_codes = codes(old_sha, "old.safetensors")
    torch.manual_seed(1)  # the encoder file retrained in place
    save_safetensors(FashionCNN(3).state_dict(), enc_file)
    new_codes = codes(sha256(enc_file), "new.safetensors")
    assert _init_codes(old_codes, gen).shape == (1, 256)
    with pytest.raises(DgnamError, match="other fmnist-cnn weights"):
        _init_codes(new_codes, gen)
    with pytest.raises(DgnamError, match="other weights now"):
        _encoder_for(gen, None, enc, None, None)


def test_a_code_dae_of_another_encoder_is_refused_as_the_prior_of_a_generator(tmp_path):
    """Only the layer of a `train dae` file was checked against the generator: a DAE of fmnist-cnn's fc6 codes ran as
    the PPGN prior of a generator inverting another network's fc6 (same size) without a word, while the embedded
    DAE is refused there. Its card names the encoder (its file and weights as a generator's card does)."""
    from dgnam.cli.beyond import _code_prior
    from dgnam.ppgn import CodeDAE
    from dgnam.weights import save_safetensors

    save_safetensors(FashionGenerator(256).state_dict(), tmp_path / "g.safetensors")
    enc = str(tmp_path / "enc.safetensors")
    (tmp_path / "g.json").write_text(json.dumps({"inverts": {"layer": "fc6", "encoder": "enc", "source": {
        "spec": enc, "arch": "fmnist-cnn"}, "weights_sha256": "a" * 64}}))
    gen = str(tmp_path / "g.safetensors")

    def dae(name, codes):
        save_safetensors(CodeDAE(256, 16, 1).state_dict(), tmp_path / f"{name}.safetensors")
        (tmp_path / f"{name}.json").write_text(json.dumps({"arch": {"dim": 256, "hidden": 16, "layers": 1},
                                                           "codes": codes}))
        return str(tmp_path / f"{name}.safetensors")

    zoo_codes = dae("zoo", {"encoder": "fmnist-cnn", "layer": "fc6"})
    with pytest.raises(DgnamError, match="denoises codes of fmnist-cnn, not of the encoder"):
        _code_prior("dae", zoo_codes, None, lambda: None, gen, None)
    mine = {"encoder": "enc.safetensors", "source": {"spec": enc, "arch": "fmnist-cnn"}, "layer": "fc6"}
    assert isinstance(_code_prior("dae", dae("mine", {**mine, "weights_sha256": "a" * 64}), None, lambda: None, gen,
                                  None), CodeDAE)
    with pytest.raises(DgnamError, match="other weights of"):  # the encoder file retrained between the two
        _code_prior("dae", dae("retrained", {**mine, "weights_sha256": "b" * 64}), None, lambda: None, gen, None)
    # the zoo generator and a DAE of the zoo encoder's codes agree; a card that does not say is taken as before
    assert isinstance(_code_prior("dae", zoo_codes, None, lambda: None, "fmnist-g-fc6", None), CodeDAE)
    assert isinstance(_code_prior("dae", dae("old", {"encoder": "c/enc.safetensors", "layer": "fc6"}), None,
                                  lambda: None, gen, None), CodeDAE)


def test_code_stats_split_of_a_plain_folder_is_refused(tmp_path):
    """A plain image folder reads the same images for every split: `code-stats --split test` (or a typo) measured
    all of them, training images included, without a word."""
    data = _folder(tmp_path / "data")
    for split in ("test", "bogus"):
        one_line_error(dgnam("code-stats", "--data", data, "--split", split, "--out", tmp_path / "s.safetensors"),
                       f"--split {split}", "plain image folder")
    assert not (tmp_path / "s.safetensors").exists()
    p = dgnam("code-stats", "--data", data, "--out", tmp_path / "s.safetensors")
    assert p.returncode == 0, p.stderr


def test_default_names_of_trained_generators_and_daes_name_their_layer():
    """`train dae --layer fc5` wrote fmnist-dae-fc6.safetensors (and `train generator --layer fc5` fmnist-g-fc6): a
    file named like a zoo entry that holds something else, and a second layer trained into the same folder found the
    first's checkpoint and was refused. The zoo's name is kept for what the zoo entry is (its cards' commands)."""
    from dgnam.cli.train import default_name

    assert default_name("fmnist-g-fc6", "fmnist-cnn", None, "fc6", "g") == "fmnist-g-fc6"
    assert default_name("fmnist-dae-fc6", "fmnist-cnn", None, "fc6", "dae") == "fmnist-dae-fc6"
    assert default_name("fmnist-g-fc6", "fmnist-cnn", None, "fc5", "g") == "g-fc5"
    assert default_name("fmnist-dae-fc6", "ck/enc.safetensors", "fmnist-cnn", "fc6", "dae") == "dae-fc6"
