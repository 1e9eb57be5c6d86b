import pytest
import torch
from torch import nn

from dgnam import ImageSpace, LearnedGenerator, CodeStats

torch.set_num_threads(1)

SPACE = ImageSpace(size=(12, 12), color="GRAY", lo=0.0, hi=1.0, mean=(0.5,), std=(0.25,))
GEN_SPACE = ImageSpace(size=(14, 14), color="GRAY", lo=-1.0, hi=1.0, fit="crop")


class TinyNet(nn.Module):
    """conv -> relu -> conv -> relu -> pool -> fc (ReLU) -> logits, with BatchNorm to check eval mode."""

    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 6, 3, padding=1), nn.BatchNorm2d(6), nn.ReLU(),
            nn.Conv2d(6, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        )
        self.flatten = nn.Flatten()
        self.fc = nn.Sequential(nn.Linear(8 * 6 * 6, 16), nn.ReLU())
        self.logits = nn.Linear(16, 5)

    def forward(self, x):
        return self.logits(self.fc(self.flatten(self.features(x))))


def seeded_tiny_net() -> TinyNet:
    """A factory that gives the same weights in every process (as one that loads a checkpoint does), for CLI runs
    that are resumed: `conftest:TinyNet` draws new random weights each time."""
    torch.manual_seed(0)
    return TinyNet()


class TinyGen(nn.Module):
    def __init__(self, dim=10):
        super().__init__()
        self.fc = nn.Linear(dim, 8 * 7 * 7)
        self.up = nn.ConvTranspose2d(8, 1, 4, 2, 1)

    def forward(self, z):
        return torch.tanh(self.up(torch.nn.functional.leaky_relu(self.fc(z), 0.3).view(-1, 8, 7, 7)))


@pytest.fixture
def tiny_model():
    torch.manual_seed(0)
    m = TinyNet()
    m.input_space = SPACE
    m.classes = ["a", "b", "c", "d", "e"]
    # make BatchNorm running stats non-trivial so eval vs train mode would differ
    m.features[1].running_mean.uniform_(-0.5, 0.5)
    m.features[1].running_var.uniform_(0.5, 2.0)
    return m.eval()


@pytest.fixture
def tiny_gen():
    torch.manual_seed(1)
    stats = CodeStats(mean=torch.full((10,), 1.0), std=torch.full((10,), 1.0))
    return LearnedGenerator(TinyGen(10), code_shape=(10,), space=GEN_SPACE, code_stats=stats, name="tiny")


class TwiceNet(nn.Module):
    """A shared ``relu`` called twice in one forward pass, as in a ResNet block (for the CLI's warning)."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 3, 3, padding=1)
        self.conv2 = nn.Conv2d(3, 3, 3, padding=1)
        self.relu = nn.ReLU()

    def forward(self, x):
        return self.relu(self.conv2(self.relu(self.conv1(x)))).mean((2, 3))


class Colour64Net(nn.Module):
    """A 64 px colour classifier with a ``features`` stack and a ``fc6`` code layer (a user's own encoder)."""

    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(4))
        self.fc6 = nn.Sequential(nn.Flatten(), nn.Linear(8 * 16, 12), nn.ReLU())
        self.logits = nn.Linear(12, 2)
        self.input_space = ImageSpace(size=(64, 64), color="RGB")

    def forward(self, x):
        return self.logits(self.fc6(self.features(x)))


def seeded_colour64_net() -> Colour64Net:
    torch.manual_seed(0)
    return Colour64Net().eval()
