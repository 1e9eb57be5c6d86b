"""Each training loop lowers its loss and resumes from a checkpoint exactly (tiny data, few steps)."""

import pytest
import torch

from dgnam import DgnamError
from dgnam.train.common import Checkpoint
from dgnam.imagespace import ImageSpace
from dgnam.train.classifier import ClassifierConfig, train_classifier
from dgnam.train.generator import GeneratorConfig, train_generator
from dgnam.weights import load_state_dict
from dgnam.zoo.fmnist import FMNIST_GEN_SPACE, FMNIST_SPACE, FashionCNN, FashionDiscriminator, FashionGenerator


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
