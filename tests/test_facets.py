import json
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from dgnam import DgnamError, ImageSpace
from dgnam.facets import (CenterBias, CenterBiasedPixels, FacetConfig, FacetDirection, centre_mask,
                          cluster_features, facets, find_facets, synthesize_facets)
from dgnam.priors import gaussian_blur
from dgnam.units import encode

from conftest import SPACE


def blobs(n_per=50, dim=20, seed=0):
    g = np.random.default_rng(seed)
    centres = g.normal(0, 10, (3, dim))
    x = np.concatenate([c + g.normal(0, 0.5, (n_per, dim)) for c in centres])
    return x, np.repeat(np.arange(3), n_per)


@pytest.mark.parametrize("reduce", ["tsne", "umap", "pca"])
def test_clustering_recovers_separated_blobs(reduce):
    from sklearn.metrics import adjusted_rand_score

    x, truth = blobs()
    cl = cluster_features(x, 3, reduce=reduce, pca_dim=10, perplexity=20)
    assert adjusted_rand_score(truth, cl.labels) == 1.0
    assert cl.features.shape == (150, 10) and cl.centers.shape == (3, 10)
    assert cl.embedding.shape[1] == (10 if reduce == "pca" else 2)
    # a blob's own points are nearest their own cluster's centre
    assert (cl.nearest_center(x) == cl.labels).all()


def test_umap_without_umap_learn_is_refused_naming_the_extra(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "umap" else real(name, *a))
    x, _ = blobs()
    with pytest.raises(DgnamError, match=r"pip install 'dgnam\[umap\]'"):
        cluster_features(x, 3, reduce="umap")
    with pytest.raises(DgnamError, match="umap-learn"):
        FacetConfig(reduce="umap").validate()
    with pytest.raises(DgnamError, match="use tsne, umap, pca"):
        FacetConfig(reduce="isomap").validate()


def test_clustering_needs_enough_points():
    with pytest.raises(DgnamError, match="facets"):
        cluster_features(np.zeros((3, 4)), 5)


@pytest.mark.parametrize("reduce", ["tsne", "umap", "pca"])
def test_clustering_needs_as_many_distinct_points_as_facets(reduce):
    """Identical top images (a folder of blank frames) crashed the process in t-SNE (a segfault) and, with PCA,
    left k-means facets empty (then "init codes contain NaN")."""
    with pytest.raises(DgnamError, match="only 1 distinct images .* among the 50 top ones for 3 facets: lower --k"):
        cluster_features(torch.zeros(50, 10), 3, reduce)
    two = np.repeat(np.eye(2, 10), 25, axis=0)
    with pytest.raises(DgnamError, match="only 2 distinct"):
        cluster_features(two, 3, reduce)
    assert sorted(np.bincount(cluster_features(two, 2, reduce).labels)) == [25, 25]
    with pytest.raises(DgnamError, match="features of 1 of the 50 images are NaN/inf"):
        cluster_features(np.where(np.arange(50)[:, None] == 7, np.nan, two), 2, reduce)


class TinyEncoder(nn.Module):
    """Stands in for the layer a generator inverts: 10-d ReLU codes of 12x12 images."""

    def __init__(self):
        super().__init__()
        self.flat = nn.Flatten()
        self.code = nn.Sequential(nn.Linear(144, 10), nn.ReLU())

    def forward(self, x):
        return self.code(self.flat(x))


def pattern_images(n_per=30, seed=0):
    """Three kinds of 12x12 images (a bar, a blob, a frame) with noise: a unit may respond to several kinds."""
    g = torch.Generator().manual_seed(seed)
    base = torch.zeros(3, 1, 12, 12)
    base[0, :, 5:7, :] = 1
    base[1, :, 3:9, 3:9] = 1
    base[2, :, :2] = 1
    base[2, :, -2:] = 1
    x = torch.cat([b + 0.1 * torch.randn(n_per, 1, 12, 12, generator=g) for b in base]).clamp(0, 1)
    return x


def test_dgnam_facets_start_from_mean_code(tiny_model, tiny_gen, tmp_path):
    torch.manual_seed(0)
    enc = TinyEncoder().eval()
    x = pattern_images()
    cfg = FacetConfig(k=3, top_fraction=0.6, reduce="pca", pca_dim=5, center_images=4, top_real=3)
    f = facets(tiny_model, "logits:1", x, tiny_gen, cfg, encoder=(enc, "code"), steps=0, progress=False)
    for j in range(3):
        want = encode(enc, "code", SPACE.encode(x[f.init_indices[j]])).mean(0)
        assert torch.allclose(f.run.codes[j], want, atol=1e-6)
        # the start images are members of the facet, and the members are sorted by activation
        assert set(f.init_indices[j].tolist()) <= set(f.members[j].tolist())
        a = f.activations[[int((f.indices == i).nonzero()[0, 0]) for i in f.members[j]]]
        assert (a[:-1] >= a[1:]).all()
    assert sum(len(m) for m in f.members) == len(f.indices) == round(0.6 * len(x))
    assert f.embed_layer == "fc"  # the deepest 1-D layer before the output


def test_facet_start_codes_are_read_in_the_encoders_own_space(tiny_model, tiny_gen):
    # an encoder that normalizes its input differently from the target must get its own encoding of the images
    from dgnam import ImageSpace

    enc = TinyEncoder().eval()
    enc.input_space = ImageSpace(size=(12, 12), color="GRAY", mean=(0.3,), std=(0.4,))
    x = pattern_images()
    cfg = FacetConfig(k=2, top_fraction=0.5, reduce="pca", pca_dim=5, center_images=3, top_real=2)
    f = facets(tiny_model, "logits:1", x, tiny_gen, cfg, encoder=(enc, "code"), steps=0, progress=False)
    for j in range(2):
        want = encode(enc, "code", enc.input_space.encode(x[f.init_indices[j]])).mean(0)
        assert torch.allclose(f.run.codes[j], want, atol=1e-6)


def test_facets_writes_run_and_grid(tiny_model, tiny_gen, tmp_path):
    enc = TinyEncoder().eval()
    cfg = FacetConfig(k=2, top_fraction=0.5, reduce="tsne", perplexity=5, center_images=3, top_real=2)
    f = facets(tiny_model, "logits:0", pattern_images(), tiny_gen, cfg, encoder=(enc, "code"), steps=5,
               out=tmp_path / "run", progress=False)
    doc = json.loads((tmp_path / "run" / "results.json").read_text())
    assert len(doc["records"]) == 2 and doc["facets"]["unit"] == "logits:0"
    assert {"facet", "facet_size", "nearest_facet", "top_images", "init_images"} <= set(doc["records"][0])
    assert 0.0 <= f.fidelity <= 1.0 and f.fidelity == np.mean([n == j for j, n in enumerate(f.nearest)])
    for name in ("facets.png", "embedding.png", "grid.png"):
        assert (tmp_path / "run" / name).exists()
    # evaluated, the facets are one unit's images: one row, their diversity measured among them
    from dgnam.evaluate import RealData, evaluate_run

    real = RealData(torch.rand(30, 1, 12, 12, generator=torch.Generator().manual_seed(0)), torch.arange(30) % 5)
    ev = evaluate_run(tmp_path / "run", judge=tiny_model, model=tiny_model, data=real)
    assert [(u["unit"], u["images"]) for u in ev["units"]] == [("logits:0", 2)] and ev["units"][0]["diversity"] > 0
    assert f.run.out == tmp_path / "run" and not (tmp_path / "run" / ".dgnam-partial").exists()


def test_facets_take_the_input_space_of_a_model_without_one(tiny_model, tmp_path):
    """facets(input_space=) for a model without an input_space attribute, as visualize takes it: such a model could
    not be given facets at all (the pixel method's run needs the space too)."""
    from conftest import TinyNet

    bare = TinyNet().eval()
    bare.load_state_dict(tiny_model.state_dict())
    cfg = FacetConfig(k=2, top_fraction=0.5, reduce="pca", center_images=3, top_real=2)
    with pytest.raises(DgnamError, match="input_space=ImageSpace"):
        facets(bare, "logits:0", pattern_images(), None, cfg, steps=3, progress=False)
    f = facets(bare, "logits:0", pattern_images(), None, cfg, steps=3, progress=False, input_space=SPACE,
               out=tmp_path / "run")
    want = facets(tiny_model, "logits:0", pattern_images(), None, cfg, steps=3, progress=False)
    assert not hasattr(bare, "input_space") and f.space == SPACE  # read in it, and not left on the model
    assert [m.tolist() for m in f.members] == [m.tolist() for m in want.members]
    assert torch.equal(f.run.images, want.run.images)
    assert json.loads((tmp_path / "run" / "results.json").read_text())["config"]["target_space"] == json.loads(
        json.dumps(SPACE.to_dict()))
    # another space reads the same pixels as other inputs: other activations, so the given space is the one used
    other = facets(bare, "logits:0", pattern_images(), None, cfg, steps=3, progress=False,
                   input_space=ImageSpace(size=(12, 12), color="GRAY", mean=(0.2,), std=(0.5,)))
    assert not torch.allclose(other.activations, want.activations)


def test_facets_grid_is_the_figure_facets_png_is(tiny_model, tiny_gen, tmp_path, monkeypatch):
    from PIL import Image, ImageDraw

    cfg = FacetConfig(k=3, top_fraction=0.6, reduce="pca", center_images=3, top_real=2)
    f = facets(tiny_model, "logits:1", pattern_images(), tiny_gen, cfg, encoder=(TinyEncoder().eval(), "code"),
               steps=2, out=tmp_path / "run", progress=False)
    figure = f.grid()
    assert isinstance(figure, Image.Image) and figure.size[0] > 3 * 96 and figure.size[1] > 3 * 96  # 3 rows, 1 + 2 columns
    with Image.open(tmp_path / "run" / "facets.png") as written:
        assert figure.size == written.size and np.array_equal(np.asarray(figure), np.asarray(written))
    # one more top real image is one more column of the same width, k more facets more rows
    wider = facets(tiny_model, "logits:1", pattern_images(), tiny_gen, FacetConfig(**{**cfg.__dict__, "top_real": 3}),
                   encoder=(TinyEncoder().eval(), "code"), steps=2, progress=False).grid()
    assert wider.size[1] == figure.size[1] and wider.size[0] - figure.size[0] == 100
    assert [len(x) for x in f.real_images] == [min(2, len(m)) for m in f.members]
    # each synthetic image says which facet's centre it lies nearest: the figure showed a stray one as its facet's
    texts = []
    draw_text = ImageDraw.ImageDraw.text
    monkeypatch.setattr(ImageDraw.ImageDraw, "text", lambda self, xy, t, *a, **kw: (texts.append(t), draw_text(self, xy, t, *a, **kw))[1])
    f.grid()
    want = ["own facet" if int(n) == j else f"nearest facet {int(n)}" for j, n in enumerate(f.nearest)]
    assert [t for t in texts if "facet" in t and "(" not in t] == want
    f.real_images = None
    with pytest.raises(DgnamError, match="no images to draw"):
        f.grid()


def test_facets_killed_before_its_outputs_leaves_no_run_that_looks_finished(tiny_model, tiny_gen, tmp_path,
                                                                            monkeypatch):
    """A facets run killed between the engine's results.json and the facet outputs looked complete (evaluate
    scored it): it is now written beside OUT and moved in only when complete."""
    import dgnam.facets as facets_mod

    def killed(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(facets_mod, "embedding_png", killed)  # the last output written
    cfg = FacetConfig(k=2, top_fraction=0.5, reduce="pca", center_images=3, top_real=2)
    with pytest.raises(KeyboardInterrupt):
        facets(tiny_model, "logits:0", pattern_images(), tiny_gen, cfg, encoder=(TinyEncoder().eval(), "code"),
               steps=2, out=tmp_path / "run", progress=False)
    assert not (tmp_path / "run" / "results.json").exists()  # only the staging folder: no run to score
    monkeypatch.undo()
    facets(tiny_model, "logits:0", pattern_images(), tiny_gen, cfg, encoder=(TinyEncoder().eval(), "code"), steps=2,
           out=tmp_path / "run", progress=False)  # the next attempt starts over from the leftover
    assert (tmp_path / "run" / "facets.png").exists() and not (tmp_path / "run" / ".dgnam-partial").exists()
    # `out` may be the working folder itself, or a symlink to an empty folder: nothing is renamed onto it
    target = tmp_path / "empty"
    target.mkdir()
    (tmp_path / "link").symlink_to(target)
    facets(tiny_model, "logits:0", pattern_images(), tiny_gen, cfg, encoder=(TinyEncoder().eval(), "code"), steps=2,
           out=tmp_path / "link", progress=False)
    assert (target / "facets.png").exists()
    here = tmp_path / "here"
    here.mkdir()
    monkeypatch.chdir(here)
    facets(tiny_model, "logits:0", pattern_images(), tiny_gen, cfg, encoder=(TinyEncoder().eval(), "code"), steps=2,
           out=Path("."), progress=False)
    assert (here / "results.json").exists()


def test_facets_take_images_off_0_1_by_float_rounding_only(tiny_model):
    """An antialiased resize overshoots 1 by ~1e-7: accepted; a 0..255 image is refused with its range shown."""
    imgs = pattern_images()
    cfg = FacetConfig(k=2, top_fraction=0.5, reduce="pca", center_images=3, top_real=2)
    find_facets(tiny_model, "logits:0", imgs * (1 + 2e-7), cfg)
    with pytest.raises(DgnamError, match="range over \\[0, 255\\]"):
        find_facets(tiny_model, "logits:0", (imgs * 255).round(), cfg)
    nan = imgs.clone()
    nan[3, 0, 5, 5] = float("nan")  # passed the range check (NaN fails both comparisons); sklearn failed deep inside
    with pytest.raises(DgnamError, match="1 of the .* images hold NaN or inf"):
        find_facets(tiny_model, "logits:0", nan, cfg)


def test_facets_give_the_models_back_as_they_were(tiny_model, tiny_gen):
    enc = TinyEncoder().train()
    tiny_model.train()
    before = {k: v.clone() for k, v in tiny_model.state_dict().items()}
    cfg = FacetConfig(k=2, top_fraction=0.5, reduce="pca", pca_dim=3, center_images=2)
    facets(tiny_model, "logits:0", pattern_images(), tiny_gen, cfg, encoder=(enc, "code"), steps=2, progress=False)
    assert tiny_model.training and enc.training
    assert all(p.requires_grad for m in (tiny_model, enc) for p in m.parameters())
    for k, v in tiny_model.state_dict().items():  # train-mode BatchNorm would have updated its running stats
        assert torch.equal(v, before[k]), k


def test_pixel_facets_start_from_mean_image(tiny_model):
    x = pattern_images()
    cfg = FacetConfig(k=3, top_fraction=0.6, reduce="pca", pca_dim=5, center_images=4)
    f = facets(tiny_model, "logits:2", x, None, cfg, steps=0, progress=False)
    assert f.method == "pixel-facets"
    for j in range(3):
        assert torch.allclose(f.run.codes[j], SPACE.encode(x[f.init_indices[j]]).mean(0), atol=1e-6)
    moved = facets(tiny_model, "logits:2", x, None, cfg, steps=12, progress=False)
    start = [r["activation"] for r in f.run.records]
    assert np.mean([r["activation"] for r in moved.run.records]) > np.mean(start)


def test_facet_term_pulls_each_image_towards_its_own_facet(tiny_model, tiny_gen):
    torch.manual_seed(0)
    enc = TinyEncoder().eval()
    x = pattern_images()
    found = find_facets(tiny_model, "logits:1", x, FacetConfig(k=3, top_fraction=0.6, reduce="pca", pca_dim=5,
                                                               center_images=4))

    def cos_own(f):
        p, c = found.clustering.project(f.synth_features), found.clustering.centers
        return np.mean([p[j] @ c[j] / np.linalg.norm(p[j]) / np.linalg.norm(c[j]) for j in range(3)])

    for gen, kw in ((tiny_gen, {"encoder": (enc, "code")}), (None, {})):
        plain = synthesize_facets(tiny_model, found, x, gen, steps=30, progress=False, **kw)
        pulled = synthesize_facets(tiny_model, found, x, gen, steps=30, progress=False, facet_weight=10.0, **kw)
        assert plain.facet_weight == 0 and pulled.facet_weight == 10.0
        assert cos_own(pulled) > cos_own(plain) + 0.2
        assert pulled.fidelity >= plain.fidelity
    with pytest.raises(DgnamError, match="facet-weight"):
        synthesize_facets(tiny_model, found, x, None, steps=1, progress=False, facet_weight=-1.0)
    term = FacetDirection(tiny_model, found.embed_layer, found.clustering, [0, 1, 2], 1.0, SPACE, SPACE)
    with pytest.raises(DgnamError, match="one image per facet"):
        term.penalty(torch.zeros(2, 1), torch.zeros(2, 1, 12, 12))


def test_centre_bias_confines_updates_to_the_centre():
    gen = CenterBiasedPixels(SPACE, CenterBias(stages=((1.0, 1.0), (0.5, 0.0))))
    code = torch.randn(2, 1, 12, 12, requires_grad=True)
    gen.stage = 1
    (gen(code) * torch.randn(2, 1, 12, 12)).sum().backward()
    inside = centre_mask((12, 12), 0.5).bool().expand_as(code)
    assert (code.grad[~inside] == 0).all() and (code.grad[inside] != 0).all()
    assert torch.equal(gen(code), code)  # the forward value is the image itself
    assert CenterBias().stage(0, 30) == 0 and CenterBias().stage(29, 30) == 2


def test_gaussian_blur_keeps_constants_and_smooths():
    c = torch.full((1, 1, 9, 9), 0.3)
    assert torch.allclose(gaussian_blur(c, 1.0), c, atol=1e-6)
    x = torch.zeros(1, 1, 9, 9)
    x[..., 4, 4] = 1
    b = gaussian_blur(x, 1.0)
    assert b[..., 4, 4] < 1 and b[..., 4, 5] > 0 and abs(float(b.sum()) - 1) < 1e-5


def test_bad_facet_settings(tiny_model, tiny_gen):
    x = pattern_images(n_per=2)
    with pytest.raises(DgnamError, match="facets|images"):
        facets(tiny_model, "logits:0", x, None, FacetConfig(k=10, top_fraction=0.1), progress=False)
    with pytest.raises(DgnamError, match="top-fraction"):
        facets(tiny_model, "logits:0", x, None, FacetConfig(top_fraction=1.5), progress=False)
    with pytest.raises(DgnamError, match="encoder"):
        facets(tiny_model, "logits:0", pattern_images(), tiny_gen, FacetConfig(k=2, top_fraction=0.5, reduce="pca"),
               progress=False)
    with pytest.raises(DgnamError, match="expected"):
        facets(tiny_model, "logits:0", torch.rand(10, 1, 8, 8), None, FacetConfig(k=2), progress=False)
    for seed in (-1, 2**32):  # scikit-learn's random_state is 0..2**32-1: 2**32 failed in PCA, after the data were read
        with pytest.raises(DgnamError, match=rf"--seed {seed}: give a seed in 0\.\.4294967295"):
            facets(tiny_model, "logits:0", x, None, FacetConfig(k=2, reduce="pca", seed=seed), progress=False)


def test_cli_facets_on_the_embedded_models(tmp_path):
    import subprocess
    import sys

    from dgnam.zoo.registry import WEIGHTS_DIR

    from helpers import fashion_mnist

    if not all((WEIGHTS_DIR / f).exists() for f in ("fmnist-cnn.safetensors", "fmnist-g-fc6.safetensors")):
        pytest.skip("embedded fmnist-cnn / fmnist-g-fc6 weights not built yet")
    fashion_mnist("test")
    out = tmp_path / "f"
    p = subprocess.run([sys.executable, "-m", "dgnam", "facets", "--model", "fmnist-cnn", "--unit", "logits:Sandal",
                        "--split", "test", "--limit", "600", "--k", "3", "--top-fraction", "0.1", "--reduce", "pca",
                        "--steps", "5", "--generator", "fmnist-g-fc6", "--out", str(out)],
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    doc = json.loads((out / "results.json").read_text())
    assert doc["facets"]["embed_layer"] == "fc6" and len(doc["records"]) == 3
    assert (out / "facets.png").exists()
    # a low fidelity comes with the note that says why and what to try
    from dgnam.cli.beyond import FIDELITY_HINT_BELOW

    assert ("--facet-weight 10" in p.stderr) == (doc["facets"]["fidelity"] < FIDELITY_HINT_BELOW)


def test_cli_facets_on_an_image_folder_name_the_real_images_by_file(tmp_path):
    """With --limit a folder's rows are taken from each class in turn: the records name the files, which row
    indices alone do not identify."""
    from PIL import Image
    from typer.testing import CliRunner

    from dgnam.cli import app
    from dgnam.imagespace import to_uint8
    from dgnam.zoo.fmnist import FMNIST_SPACE

    from helpers import fashion_mnist

    x, y = fashion_mnist("test").tensors(400)
    folder = tmp_path / "data"
    for c, name in ((5, "Sandal"), (7, "Sneaker"), (9, "Ankle boot")):
        (folder / name).mkdir(parents=True)
        for i, img in enumerate(to_uint8(FMNIST_SPACE.encode(x[y == c][:20]), FMNIST_SPACE)):
            Image.fromarray(img).save(folder / name / f"{i:02d}.png")
    out = tmp_path / "f"
    r = CliRunner().invoke(app, ["facets", "--model", "fmnist-cnn", "--unit", "logits:Sandal", "--data", str(folder),
                                 "--limit", "30", "--k", "2", "--top-fraction", "0.5", "--reduce", "pca", "--steps",
                                 "2", "--center-images", "3", "--out", str(out)])
    assert r.exit_code == 0, r.output
    recs = json.loads((out / "results.json").read_text())["records"]
    files = [f for rec in recs for f in rec["top_files"] + rec["init_files"]]
    assert files and all((folder / f).is_file() for f in files)
    assert len(recs[0]["top_files"]) == len(recs[0]["top_images"])
    # the unit's top images: its own class's files come first
    assert recs[0]["top_files"][0].startswith("Sandal/")
    assert json.loads((out / "results.json").read_text())["config"]["real_images"] == {
        "data": str(folder), "split": "train", "limit": 30}
    # a folder with train/ and test/: the files are under --data (train/Sandal/...), as the record says
    split = tmp_path / "split"
    split.mkdir()
    import shutil

    shutil.copytree(folder, split / "train")
    shutil.copytree(folder, split / "test")
    r = CliRunner().invoke(app, ["facets", "--model", "fmnist-cnn", "--unit", "logits:Sandal", "--data", str(split),
                                 "--k", "2", "--top-fraction", "0.5", "--reduce", "pca", "--steps", "1",
                                 "--center-images", "3", "--out", str(tmp_path / "g")])
    assert r.exit_code == 0, r.output
    rec = json.loads((tmp_path / "g" / "results.json").read_text())["records"][0]
    assert rec["top_files"][0].startswith("train/") and (split / rec["top_files"][0]).is_file()


def test_cli_facets_split_of_a_plain_folder_is_refused(tmp_path):
    """A plain image folder reads the same images for every split: `facets --split test` clustered all of them,
    training images included, and recorded split "test", where `code-stats --split test` refuses the same folder."""
    import numpy as np
    from PIL import Image

    from helpers import dgnam, one_line_error

    data = tmp_path / "data"
    (data / "Sandal").mkdir(parents=True)
    for i in range(10):
        Image.fromarray(np.full((28, 28), 40 + 10 * i, np.uint8)).save(data / "Sandal" / f"{i}.png")
    out = tmp_path / "f"
    for split in ("test", "bogus"):
        one_line_error(dgnam("facets", "--model", "fmnist-cnn", "--unit", "logits:Sandal", "--data", data, "--split",
                             split, "--k", "2", "--top-fraction", "1", "--reduce", "pca", "--steps", "1",
                             "--center-images", "2", "--out", out), f"--split {split}", "plain image folder")
        assert not (out / "results.json").exists()


def test_an_amconfig_given_as_config_names_am_config(tiny_model):
    """visualize's ``config=AMConfig(...)`` given to facets, whose ``config`` is the FacetConfig, failed with
    "'AMConfig' object has no attribute 'validate'"; a FacetConfig as ``am_config`` failed only after clustering."""
    from dgnam import AMConfig

    x = pattern_images()
    with pytest.raises(DgnamError, match=r"config is of type AMConfig, not FacetConfig: .*am_config=AMConfig"):
        facets(tiny_model, "logits:0", x, None, config=AMConfig(steps=2), progress=False)
    with pytest.raises(DgnamError, match=r"config is of type AMConfig, not FacetConfig"):
        find_facets(tiny_model, "logits:0", x, AMConfig(steps=2))
    with pytest.raises(DgnamError, match=r"am_config is of type FacetConfig, not AMConfig: .*as config="):
        facets(tiny_model, "logits:0", x, None, am_config=FacetConfig(k=2), progress=False)
    found = find_facets(tiny_model, "logits:0", x, FacetConfig(k=2, top_fraction=0.5, reduce="pca"))
    with pytest.raises(DgnamError, match=r"am_config is of type dict, not AMConfig, e\.g\. AMConfig\(steps=100\)"):
        synthesize_facets(tiny_model, found, x, am_config={"steps": 2}, progress=False)
    f = facets(tiny_model, "logits:0", x, None, FacetConfig(k=2, top_fraction=0.5, reduce="pca"),
               am_config=AMConfig(steps=2), progress=False)
    assert len(f.run.records) == 2


def test_the_embedding_figure_names_its_facets(tmp_path, monkeypatch):
    """embedding.png was coloured dots only: nothing tied a colour to a row of facets.png (facet j), nor said what
    the axes are. Each facet's number is now written at the middle of its points, under a title."""
    import numpy as np

    from dgnam.facets import cluster_features, embedding_png

    from test_engine import drawn_text

    rng = np.random.default_rng(0)
    feats = np.concatenate([rng.normal(c, 0.1, (10, 5)) for c in (0.0, 3.0, 6.0)])
    cl = cluster_features(feats, 3, reduce="pca")
    texts = drawn_text(monkeypatch)
    embedding_png(cl, tmp_path / "e.png", title="logits:5: 30 top images, PCA of fc6")
    assert sorted(t for t in texts if t.startswith("facet")) == ["facet 0", "facet 1", "facet 2"]
    assert "logits:5: 30 top images, PCA of fc6" in texts
