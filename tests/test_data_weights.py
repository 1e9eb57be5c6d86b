import gzip
import pickle
import struct

import numpy as np
import pytest
import torch
from PIL import Image

from dgnam.data import FashionMNIST, ImageFolder, load_dataset, read_idx
from dgnam.errors import DgnamError
from dgnam.weights import load_state_dict, save_safetensors, sha256


def _write_idx(path, arr):
    header = struct.pack(">BBBB", 0, 0, 0x08, arr.ndim) + struct.pack(">" + "I" * arr.ndim, *arr.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + arr.astype(np.uint8).tobytes())


def test_idx_round_trip_and_fashion_mnist_folder(tmp_path):
    imgs = np.random.RandomState(0).randint(0, 256, (5, 28, 28))
    labels = np.arange(5)
    for split in ("train", "t10k"):
        _write_idx(tmp_path / f"{split}-images-idx3-ubyte.gz", imgs)
        _write_idx(tmp_path / f"{split}-labels-idx1-ubyte.gz", labels)
    assert (read_idx(tmp_path / "train-images-idx3-ubyte.gz") == imgs).all()
    ds = FashionMNIST("test", root=tmp_path)
    x, y = ds.tensors()
    assert x.shape == (5, 1, 28, 28) and y.tolist() == [0, 1, 2, 3, 4]
    assert torch.allclose(x[2, 0], torch.tensor(imgs[2] / 255.0, dtype=torch.float32))



def test_a_folder_of_idx_files_given_as_an_image_folder_names_the_fashion_mnist_spec(tmp_path):
    """The README said to point --data at a folder with the Fashion-MNIST IDX files; such a folder was read as an
    image folder and refused with "no images found". The error now names the spec that reads it."""
    imgs = np.random.RandomState(0).randint(0, 256, (5, 28, 28))
    for split in ("train", "t10k"):
        _write_idx(tmp_path / f"{split}-images-idx3-ubyte.gz", imgs)
        _write_idx(tmp_path / f"{split}-labels-idx1-ubyte.gz", np.arange(5))
    with pytest.raises(DgnamError, match=f"--data fashion-mnist:{tmp_path}"):
        load_dataset(str(tmp_path))
    assert len(load_dataset(f"fashion-mnist:{tmp_path}")) == 5
    assert len(FashionMNIST("test", root=f"fashion-mnist:{tmp_path}")) == 5  # demo's --data takes the spec too
    with pytest.raises(DgnamError, match="--data fashion-mnist:DIR"):  # what the not-found error asks for works
        FashionMNIST("train", root=tmp_path / "nowhere")

def test_idx_errors(tmp_path):
    (tmp_path / "bad.gz").write_bytes(gzip.compress(b"\x01\x02\x03\x04garbage"))
    with pytest.raises(DgnamError, match="not an IDX"):
        read_idx(tmp_path / "bad.gz")
    with pytest.raises(DgnamError, match="apt-get install dataset-fashion-mnist"):
        FashionMNIST("train", root=tmp_path / "nowhere")


def test_image_folder(tmp_path):
    for c in ("cats", "dogs"):
        (tmp_path / c).mkdir()
        for i in range(2):
            Image.fromarray(np.full((40, 30, 3), 60 * i, np.uint8)).save(tmp_path / c / f"{i}.png")
    ds = ImageFolder(tmp_path, size=(16, 16), channels=1)
    x, y = ds.tensors()
    assert ds.classes == ["cats", "dogs"] and x.shape == (4, 1, 16, 16) and y.tolist() == [0, 0, 1, 1]
    flat = ImageFolder(tmp_path / "cats", size=(8, 8))  # images without sub-folders: one class, the folder's
    assert flat.classes == ["cats"] and flat.tensors()[1].tolist() == [0, 0]
    (tmp_path / "empty").mkdir()
    with pytest.raises(DgnamError, match="no images"):
        ImageFolder(tmp_path / "empty", size=(8, 8))


def test_image_folder_limit_keeps_every_class_and_hidden_entries_are_skipped(tmp_path):
    for c, n in (("a", 5), ("b", 3), ("c", 2)):
        (tmp_path / c).mkdir()
        for i in range(n):
            Image.fromarray(np.full((8, 8), 20 * i, np.uint8)).save(tmp_path / c / f"{i}.png")
    # a notebook's checkpoint folder and a hidden file are no class and no image
    (tmp_path / ".ipynb_checkpoints").mkdir()
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(tmp_path / ".ipynb_checkpoints" / "x.png")
    (tmp_path / "a" / ".hidden").mkdir()
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(tmp_path / "a" / ".hidden" / "y.png")
    ds = ImageFolder(tmp_path, size=(8, 8), channels=1)
    assert ds.classes == ["a", "b", "c"] and len(ds) == 10
    # the samples are sorted by class: a limit takes the classes in turn instead of the first class only
    assert ds.tensors(4)[1].tolist() == [0, 1, 2, 0]
    assert sorted(ds.tensors(8)[1].tolist()) == [0, 0, 0, 1, 1, 1, 2, 2]
    x, y = ds.tensors()
    assert y.tolist() == [0] * 5 + [1] * 3 + [2] * 2 and x[1].mean() > x[0].mean()  # no limit: the order as sorted
    # half of the split layout is named as such, not read as one class called "train"
    half = tmp_path / "half"
    (half / "train").mkdir(parents=True)
    (tmp_path / "a").rename(half / "train" / "a")
    with pytest.raises(DgnamError, match="has train/ but no test/"):
        load_dataset(str(half), "train", (8, 8), 1)
    (half / ".ipynb_checkpoints").mkdir()  # a notebook's folder beside it changes nothing
    with pytest.raises(DgnamError, match="has train/ but no test/"):
        load_dataset(str(half), "train", (8, 8), 1)


def test_image_folder_with_train_and_test_splits(tmp_path):
    """ROOT/train/<class> and ROOT/test/<class>: each split is its own images, labelled by the same classes."""
    from dgnam.data import load_dataset

    for split, n in (("train", 3), ("test", 1)):
        for c in ("cats", "dogs"):
            (tmp_path / split / c).mkdir(parents=True)
            for i in range(n):
                Image.fromarray(np.full((20, 20), 50 * i, np.uint8)).save(tmp_path / split / c / f"{i}.png")
    tr, te = load_dataset(str(tmp_path), "train", (8, 8), 1), load_dataset(str(tmp_path), "test", (8, 8), 1)
    assert tr.classes == te.classes == ["cats", "dogs"] and (len(tr), len(te)) == (6, 2)
    assert (tr.split, te.split) == ("train", "test") and te.tensors()[1].tolist() == [0, 1]
    (tmp_path / "test" / "birds").mkdir()  # a class only one split has would renumber the labels
    Image.fromarray(np.zeros((20, 20), np.uint8)).save(tmp_path / "test" / "birds" / "0.png")
    with pytest.raises(DgnamError, match="different class sub-folders"):
        load_dataset(str(tmp_path), "test", (8, 8), 1)


class Evil:
    def __reduce__(self):
        import os

        return (os.system, ("echo pwned",))


def test_pickle_with_code_is_refused(tmp_path):
    p = tmp_path / "evil.pt"
    with open(p, "wb") as f:
        pickle.dump({"w": Evil()}, f)
    with pytest.raises(DgnamError, match="refusing"):
        load_state_dict(p)


def test_plain_state_dict_and_hash(tmp_path):
    sd = {"a": torch.randn(3, 4)}
    torch.save(sd, tmp_path / "ok.pt")
    assert torch.equal(load_state_dict(tmp_path / "ok.pt")["a"], sd["a"])
    save_safetensors(sd, tmp_path / "ok.safetensors")
    h = sha256(tmp_path / "ok.safetensors")
    assert torch.equal(load_state_dict(tmp_path / "ok.safetensors", h)["a"], sd["a"])
    with pytest.raises(DgnamError, match="SHA-256"):
        load_state_dict(tmp_path / "ok.safetensors", "0" * 64)
    (tmp_path / "broken.safetensors").write_bytes(b"not really")
    with pytest.raises(DgnamError, match="not a valid safetensors"):
        load_state_dict(tmp_path / "broken.safetensors")


def test_a_model_from_the_working_directory_leaves_sys_path_alone(tmp_path, monkeypatch):
    """`--model mymod:build` imports from the working directory (as `python -m`) without leaving it on sys.path,
    where a stray torch.py or numpy.py there would shadow the real package for the rest of the process."""
    import sys

    from dgnam.zoo import load_model

    (tmp_path / "my_tiny_net.py").write_text("import torch\n\ndef build():\n    return torch.nn.Linear(3, 2)\n")
    monkeypatch.chdir(tmp_path)
    before = list(sys.path)
    model = load_model("my_tiny_net:build")
    assert isinstance(model, torch.nn.Linear) and not model.training
    assert sys.path == before


def test_a_factory_that_needs_arguments_is_one_line(tmp_path, monkeypatch):
    """`--generator mygan:make_gan` (or `--model`) whose factory takes an argument was a TypeError traceback; a
    factory with defaults still runs. An error raised inside the user's factory or module was a traceback through
    importlib and torch: it is one line naming the user's file and line, with the error itself chained."""
    from dgnam.zoo import load_model

    (tmp_path / "my_factories.py").write_text(
        "import torch\n\ndef needs(size):\n    return torch.nn.Linear(size, 2)\n\n"
        "def defaults(size=3, *args, **kw):\n    return torch.nn.Linear(size, 2)\n\n"
        "def broken():\n    return torch.nn.Linear(3, 2)(None)\n")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(DgnamError, match=r"my_factories:needs takes arguments \(size\): .*no arguments"):
        load_model("my_factories:needs")
    assert isinstance(load_model("my_factories:defaults"), torch.nn.Linear)
    with pytest.raises(DgnamError, match=r"my_factories:broken\(\) failed: TypeError: .*my_factories.py, line 10\)$"
                       ) as got:
        load_model("my_factories:broken")  # (the TypeError is raised inside torch: the line named is the user's)
    assert isinstance(got.value.__cause__, TypeError)
    (tmp_path / "my_syntax.py").write_text("def make(:\n")
    with pytest.raises(DgnamError, match=r"cannot import 'my_syntax:make': .*my_syntax.py, line 1\)"):
        load_model("my_syntax:make")
    (tmp_path / "my_raising.py").write_text("import torch\nraise RuntimeError('needs a GPU')\n")
    with pytest.raises(DgnamError, match=r"importing my_raising .*RuntimeError: needs a GPU .*my_raising.py, line 2"):
        load_model("my_raising:make")
    with pytest.raises(DgnamError, match=r"a module name, not a file: my_factories:defaults for ./my_factories.py"):
        load_model("my_factories.py:defaults")


def test_corrupt_bytes_are_not_called_dangerous_and_checkpoints_never_advise_unsafe_loading(tmp_path):
    """Random bytes in a .pt read as "a pickle that carries code"; an unreadable checkpoint quoted torch's advice to
    load it with weights_only=False. Both now say what the file is, and refuse."""
    import os as _os

    from dgnam.train.common import Checkpoint

    junk = tmp_path / "junk.pt"
    junk.write_bytes(bytes(range(256)) * 3)
    with pytest.raises(DgnamError, match="corrupt or not written by torch.save"):
        load_state_dict(junk)
    ckpt = Checkpoint(tmp_path / "c")
    ckpt.dir.mkdir()

    class Obj:
        def __reduce__(self):
            return (_os.getcwd, ())

    torch.save({"epoch": Obj()}, ckpt.path)
    with pytest.raises(DgnamError, match="refusing to load it") as e:
        ckpt.load()
    assert "weights_only" not in str(e.value) and "\n" not in str(e.value)
    ckpt.path.write_bytes(b"")
    with pytest.raises(DgnamError, match="unreadable \\(EOFError\\)"):
        ckpt.load()


def test_weights_with_nan_are_refused_where_they_are_loaded(tmp_path):
    """NaN weights loaded without a word, and surfaced only as NaN activations ("lower the learning rate")."""
    from dgnam.weights import load_into, save_safetensors
    from dgnam.zoo import load_model
    from dgnam.zoo.fmnist import FashionJudge

    state = FashionJudge().state_dict()
    state["penult.0.weight"][0, 0] = float("nan")
    save_safetensors(state, tmp_path / "j.safetensors")
    with pytest.raises(DgnamError, match="tensor penult.0.weight holds NaN or inf values"):
        load_model(str(tmp_path / "j.safetensors"), "fmnist-judge")
    state["logits.bias"][0] = float("inf")
    with pytest.raises(DgnamError, match=r"holds NaN or inf values \(and 1 more\)"):
        load_into(FashionJudge(), state)


def test_a_generators_code_statistics_are_checked_against_its_card(tmp_path):
    """The [0, U] bounds decide every DGN-AM run: statistics replaced beside a generator file (or in the zoo) that
    its card does not record are refused, not used as the generator's own."""
    import json
    import shutil

    from dgnam.priors import CodeStats
    from dgnam.zoo import create_model, load_model
    from dgnam.zoo.registry import CARDS_DIR, WEIGHTS_DIR

    assert create_model("fmnist-g-fc6").code_stats is not None  # the zoo's own pass the check
    shutil.copy(WEIGHTS_DIR / "fmnist-g-fc6.safetensors", tmp_path / "g.safetensors")
    shutil.copy(WEIGHTS_DIR / "fmnist-g-fc6.codestats.safetensors", tmp_path / "g.codestats.safetensors")
    shutil.copy(CARDS_DIR / "fmnist-g-fc6.json", tmp_path / "g.json")
    assert load_model(str(tmp_path / "g.safetensors"), "fmnist-g-fc6").code_stats is not None
    stats = CodeStats.load(tmp_path / "g.codestats.safetensors")
    CodeStats(mean=stats.mean * 2, std=stats.std).save(tmp_path / "g.codestats.safetensors")
    with pytest.warns(UserWarning, match="is not the code statistics g's card records"):  # Python: said
        load_model(str(tmp_path / "g.safetensors"), "fmnist-g-fc6")
    from dgnam.cli.common import generator_arg

    with pytest.raises(DgnamError, match="is not the code statistics g's card records.*--code-stats FILE"):
        generator_arg(str(tmp_path / "g.safetensors"), "fmnist-g-fc6")  # the CLI: refused
    # ... unless --code-stats gives the bounds to use (it was refused too, before --code-stats was read)
    g = generator_arg(str(tmp_path / "g.safetensors"), "fmnist-g-fc6", WEIGHTS_DIR / "fmnist-g-fc6.codestats.safetensors")
    assert torch.equal(g.code_stats.mean, stats.mean)
    card = json.loads((tmp_path / "g.json").read_text())
    del card["code_stats"]["sha256"]  # a card of an older version records none: not checked
    (tmp_path / "g.json").write_text(json.dumps(card))
    assert load_model(str(tmp_path / "g.safetensors"), "fmnist-g-fc6").code_stats is not None


def test_a_card_naming_millions_of_classes_is_refused_before_memory_is_spent_on_them(tmp_path):
    """A card beside a 10-class classifier listing 3,000,000 classes built a 3 GB head (3.5 GB at the peak, 13 s)
    before the weights' 10 outputs refused it; the architecture is now checked on the meta device first."""
    import json
    import subprocess
    import sys

    from dgnam.zoo import create_model

    save_safetensors(dict(create_model("fmnist-cnn").state_dict()), tmp_path / "c.safetensors")
    (tmp_path / "c.json").write_text(json.dumps({"classes": [f"c{i}" for i in range(3_000_000)]}))
    script = ("import resource, sys\nfrom dgnam import DgnamError, load_model\ntry:\n"
              "    load_model(sys.argv[1], arch='fmnist-cnn')\nexcept DgnamError as e:\n    print(e)\n"
              "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)")
    p = subprocess.run([sys.executable, "-c", script, str(tmp_path / "c.safetensors")], capture_output=True,
                       text=True, timeout=300)
    message, peak_kb = p.stdout.strip().splitlines()
    assert "logits.weight: file (10, 256) vs model (3000000, 256)" in message, p.stderr
    assert int(peak_kb) < 2_000_000  # torch itself is ~0.7 GB; the 3,000,000 x 256 head alone is 3 GB


def test_crafted_code_statistics_and_cards_beside_a_generator_are_one_line(tmp_path):
    """Files that come with shared weights: a statistics key "pad" (read as a percentile), a count "abc", a std or
    bounds of another size than the mean, and a card whose code_stats is no object were tracebacks (ValueError,
    a broadcast RuntimeError in the first step, AttributeError)."""
    import json
    import shutil

    from safetensors.torch import save_file

    from dgnam.priors import CodeStats
    from dgnam.zoo import load_model
    from dgnam.zoo.registry import WEIGHTS_DIR

    shutil.copy(WEIGHTS_DIR / "fmnist-g-fc6.safetensors", tmp_path / "g.safetensors")
    stats = CodeStats.load(WEIGHTS_DIR / "fmnist-g-fc6.codestats.safetensors")
    path = tmp_path / "g.codestats.safetensors"
    good = {"mean": stats.mean, "std": stats.std}
    for tensors, meta in (({**good, "pad": stats.mean.clone()}, None), (good, {"count": "abc"}),
                          ({**good, "std": stats.std[:5].clone()}, None), ({**good, "bounds": stats.mean[:3].clone()}, None),
                          (good, {"count": "-4"})):
        save_file(tensors, path, metadata=meta)
        with pytest.raises(DgnamError, match="is not a CodeStats file .*`dgnam code-stats`"):
            load_model(str(tmp_path / "g.safetensors"), "fmnist-g-fc6")
    save_file(good, path)
    (tmp_path / "g.json").write_text(json.dumps({"code_stats": [1]}))  # no object: no SHA-256 recorded
    assert torch.equal(load_model(str(tmp_path / "g.safetensors"), "fmnist-g-fc6").code_stats.mean, stats.mean)


def test_a_zoo_generator_without_its_statistics_says_so_and_takes_code_stats(tmp_path, monkeypatch):
    import shutil

    from dgnam.cli.common import generator_arg
    from dgnam.zoo import registry

    shutil.copy(registry.WEIGHTS_DIR / "fmnist-g-fc6.safetensors", tmp_path / "fmnist-g-fc6.safetensors")
    stats = registry.WEIGHTS_DIR / "fmnist-g-fc6.codestats.safetensors"
    monkeypatch.setattr(registry, "WEIGHTS_DIR", tmp_path)  # an install that lost the statistics file
    with pytest.raises(DgnamError, match="the code statistics of fmnist-g-fc6 are missing"):
        generator_arg("fmnist-g-fc6")
    assert generator_arg("fmnist-g-fc6", code_stats=stats).code_stats is not None  # the fix it names works


def test_safetensors_files_are_byte_identical_for_the_same_contents(tmp_path):
    """safetensors wrote metadata keys in a random order: two identical runs wrote code files of other SHA-256s (and
    readable by their owner only)."""
    import hashlib
    import os

    from safetensors import safe_open

    from dgnam.weights import save_safetensors

    digests = set()
    for i in range(8):
        path = tmp_path / f"{i}.safetensors"
        save_safetensors({"b": torch.zeros(3), "a": torch.ones(2)}, path,
                         {"seed": "3", "restart": "0", "unit": "logits:0", "note": "ü"})
        digests.add(hashlib.sha256(path.read_bytes()).hexdigest())
    assert len(digests) == 1
    with safe_open(str(path), "pt") as f:
        assert f.metadata() == {"seed": "3", "restart": "0", "unit": "logits:0", "note": "ü"}
        assert torch.equal(f.get_tensor("a"), torch.ones(2))
    mask = os.umask(0)
    os.umask(mask)  # (read the process's umask back, unchanged)
    assert os.stat(path).st_mode & 0o777 == 0o666 & ~mask  # a plain file's permissions, not owner-only


def test_safetensors_saves_from_two_threads_to_one_file_do_not_collide(tmp_path):
    """The temporary file beside the target was named by the process only: one thread's move removed the other's."""
    import threading

    from dgnam.weights import load_state_dict, save_safetensors

    errors = []

    def write(v):
        try:
            for _ in range(20):
                save_safetensors({"x": torch.full((64,), float(v))}, tmp_path / "same.safetensors", {"who": str(v)})
        except Exception as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=write, args=(v,)) for v in (1, 2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert float(load_state_dict(tmp_path / "same.safetensors")["x"][0]) in (1.0, 2.0)
    assert [p.name for p in tmp_path.iterdir()] == ["same.safetensors"]  # no temporary file left behind


def test_fashion_mnist_is_not_handed_to_a_model_of_another_input_shape(tmp_path):
    """It was returned at 28x28 gray whatever the model took, and failed later inside the model."""
    from dgnam.data import load_dataset

    for size, channels in (((32, 32), 1), ((28, 28), 3)):
        with pytest.raises(DgnamError, match="give --data an image folder"):
            load_dataset("fashion-mnist:" + str(tmp_path), "test", size, channels)


def test_image_files_are_read_as_viewers_show_them(tmp_path):
    """EXIF orientation applied, 16-bit and float files scaled by their range (Pillow's convert clipped them to
    white or black), and an unreadable or oversized file a one-line error that names the fix."""
    from dgnam.data import open_image

    half = np.zeros((20, 40, 3), np.uint8)
    half[:, 20:] = 255  # stored: left black, right white
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to view"
    Image.fromarray(half).save(tmp_path / "turned.jpg", exif=exif, quality=95)
    up = np.asarray(open_image(tmp_path / "turned.jpg"))
    assert up.shape == (40, 20, 3)  # portrait, as shown
    assert up[:15].mean() < 40 and up[25:].mean() > 215  # the black half on top after the turn

    g16 = np.full((8, 8), 8000, np.uint16)
    Image.fromarray(g16).save(tmp_path / "g16.png")
    assert np.asarray(open_image(tmp_path / "g16.png")).mean() == pytest.approx(8000 / 65535 * 255, abs=1)
    Image.fromarray(np.full((8, 8), 0.5, np.float32)).save(tmp_path / "f.tif")
    assert np.asarray(open_image(tmp_path / "f.tif", channels=3)).shape == (8, 8, 3)
    assert np.asarray(open_image(tmp_path / "f.tif")).mean() == pytest.approx(128, abs=1)
    Image.fromarray(np.full((8, 8), 3.0, np.float32)).save(tmp_path / "f3.tif")
    with pytest.raises(DgnamError, match=r"float image with values over \[3, 3\]: give values in \[0, 1\]"):
        open_image(tmp_path / "f3.tif")
    (tmp_path / "zero.png").write_bytes(b"")
    with pytest.raises(DgnamError, match="cannot read image .*zero.png.*replace or delete the file"):
        open_image(tmp_path / "zero.png")
    with pytest.raises(DgnamError, match="cannot read image .*absent.png: no such file; check the path"):
        open_image(tmp_path / "absent.png")
    Image.new("L", (4, 4)).save(tmp_path / "bomb.png")
    limit = Image.MAX_IMAGE_PIXELS
    try:
        Image.MAX_IMAGE_PIXELS = 4  # 16 pixels is more than twice the limit: Pillow's bomb error
        with pytest.raises(DgnamError, match="downscale it first"):
            open_image(tmp_path / "bomb.png")
    finally:
        Image.MAX_IMAGE_PIXELS = limit


def test_a_huge_photo_is_shrunk_in_uint8_and_comes_out_as_the_float_path_would_make_it():
    """A 108-megapixel photo took 3.5 GB as float32 on its way to 224 x 224; an image 16 times the input or more is
    now box-averaged in uint8 first (Pillow's reducing_gap), and must still give the same picture."""
    from dgnam.imagespace import ImageSpace, PRESHRINK_GAP, convert_channels, fit_size, from_uint8

    def float_path(a, space):
        t = torch.tensor(a, dtype=torch.float32).permute(2, 0, 1)[None] / 255.0
        return fit_size(convert_channels(t, space.channels), space.size, "resize")

    rng = np.random.default_rng(0)
    small = rng.integers(0, 256, (24, 18, 3), dtype=np.uint8)
    yy, xx = np.mgrid[0:20, 0:16] / 4.0  # a smooth scene with sharp-edged shapes, scaled up 20 times
    scene = np.stack([np.sin(yy) * 100 + 128, np.cos(xx) * 100 + 128, (yy + xx) * 12], -1)
    scene[5:12, 4:9] = (250, 20, 20)
    big = np.asarray(Image.fromarray(scene.astype(np.uint8)).resize((16 * 20, 20 * 20), Image.BICUBIC))
    space = ImageSpace(size=(10, 8))
    assert min(big.shape[0] // 10, big.shape[1] // 8) >= 2 * PRESHRINK_GAP  # the shrinking path is taken
    for a, tol in ((small, 0.0), (big, 1.5 / 255)):
        want = float_path(a, space)
        assert (space.decode(from_uint8([a], space)) - want).abs().max() <= tol + 1e-6
        rgba = np.concatenate([a, np.zeros_like(a[..., :1])], -1)  # fully transparent: the stored colour counts
        assert torch.equal(from_uint8([rgba], space), from_uint8([a], space))
    gray = ImageSpace(size=(10, 8), color="GRAY")
    assert (gray.decode(from_uint8([big[..., 1]], gray)) - float_path(big[..., 1:2], gray)).abs().max() <= 1.5 / 255


def test_image_folder_refuses_empty_classes_and_follows_linked_folders(tmp_path):
    """An empty class folder became a class of the model with no image; images in a linked folder were skipped."""
    for c in ("a", "b"):
        (tmp_path / "d" / c).mkdir(parents=True)
        Image.fromarray(np.full((6, 6), 90, np.uint8)).save(tmp_path / "d" / c / "0.png")
    (tmp_path / "more").mkdir()
    Image.fromarray(np.full((6, 6), 200, np.uint8)).save(tmp_path / "more" / "1.png")
    (tmp_path / "d" / "b" / "linked").symlink_to(tmp_path / "more", target_is_directory=True)
    (tmp_path / "d" / "b" / "linked" / "loop").symlink_to(tmp_path / "d" / "b", target_is_directory=True)
    ds = ImageFolder(tmp_path / "d", size=(4, 4), channels=1)
    assert ds.files() == ["a/0.png", "b/0.png", "b/linked/1.png"]  # the loop back up is walked once
    (tmp_path / "d" / "c_empty").mkdir()
    with pytest.raises(DgnamError, match="class folder.*c_empty.*hold no images"):
        ImageFolder(tmp_path / "d", size=(4, 4))
    with pytest.raises(DgnamError, match="is a file: give a folder"):
        ImageFolder(tmp_path / "more" / "1.png", size=(4, 4))


def test_a_fifo_named_as_an_image_is_refused_not_waited_on(tmp_path):
    """A FIFO (or a device) named x.png in an image folder was opened by Pillow, and the read never returned."""
    import os

    (tmp_path / "d" / "a").mkdir(parents=True)
    Image.fromarray(np.full((6, 6), 90, np.uint8)).save(tmp_path / "d" / "a" / "0.png")
    os.mkfifo(tmp_path / "d" / "a" / "pipe.png")
    ds = ImageFolder(tmp_path / "d", size=(4, 4), channels=1)
    with pytest.raises(DgnamError, match="pipe.png: it is not a plain file"):
        ds.tensors()


def test_class_names_of_every_script_are_told_apart():
    from dgnam.evaluate import RealData

    real = RealData(torch.zeros(4, 1, 4, 4), torch.tensor([0, 0, 1, 1]), classes=["中国", "日本"])
    assert real.of_class(1, ["中国", "日本"]).tolist() == [False, False, True, True]
    assert real.of_class(0, ["中国", "日本"]).tolist() == [True, True, False, False]
