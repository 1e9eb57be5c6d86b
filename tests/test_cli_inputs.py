"""Bad input to the CLI gets one line naming the fix, and nothing the user asked for is silently dropped (run in
process with typer's runner; `test_cli.py` runs the real `python -m dgnam` for the exit code and the printing)."""

import json
import shutil

import pytest
import torch
from typer.testing import CliRunner

from dgnam import DgnamError, visualize
from dgnam.cli import app
from dgnam.zoo.registry import WEIGHTS_DIR

from helpers import fashion_mnist, signal_a_started_run


def run(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def refused(needle, *args):
    r = run(*args)
    assert isinstance(r.exception, DgnamError), (r.output, r.exception)
    msg = str(r.exception)
    assert "\n" not in msg and needle in msg, msg
    return msg


def test_a_zoo_architecture_without_weights_is_refused_not_run_at_random():
    refused("caffenet ships no weights", "visualize", "--model", "caffenet", "--units", "logits:1", "--steps", "1")
    refused("--generator FILE --generator-arch deepsim-fc6", "visualize", "--model", "fmnist-cnn", "--generator",
            "deepsim-fc6", "--units", "logits:1")
    r = run("layers", "caffenet")  # the architecture alone is enough to list its layers
    assert r.exit_code == 0 and "conv5" in r.output
    refused("no zoo model matches", "models", "nothing")
    refused("classifier, dae, generator", "models", "--kind", "generators")
    refused("no zoo dae matches", "models", "fmnist-cnn", "--kind", "dae")
    r = run("models", "--kind", "dae")
    assert r.exit_code == 0 and "fmnist-dae-fc6" in r.output and "fmnist-judge" not in r.output


def test_commands_that_read_real_images_need_a_declared_input_space(tmp_path):
    for args in (["encode", "test:0", "--model", "conftest:TinyNet", "--layer", "fc", "--out", tmp_path / "c.safetensors"],
                 ["code-stats", "--model", "conftest:TinyNet", "--layer", "fc", "--out", tmp_path / "s.safetensors"],
                 ["train", "generator", "--encoder", "conftest:TinyNet", "--layer", "fc", "--out", tmp_path / "g"],
                 ["train", "dae", "--encoder", "conftest:TinyNet", "--layer", "fc", "--out", tmp_path / "d"]):
        refused("conftest:TinyNet has no input_space", *args)


def test_a_generator_file_brings_its_code_stats_or_is_refused(tmp_path):
    """`dgnam train generator` writes NAME.codestats.safetensors beside NAME.safetensors: it is found; without it
    DGN-AM would clip the code at 0 only, so the run is refused until --code-stats gives the bounds."""
    g = tmp_path / "g.safetensors"
    shutil.copy(WEIGHTS_DIR / "fmnist-g-fc6.safetensors", g)
    base = ["visualize", "--model", "fmnist-cnn", "--generator", g, "--generator-arch", "fmnist-g-fc6",
            "--units", "logits:0", "--steps", "2"]
    refused("has no code statistics", *base, "--out", tmp_path / "a")
    r = run(*base, "--code-stats", WEIGHTS_DIR / "fmnist-g-fc6.codestats.safetensors", "--out", tmp_path / "b")
    assert r.exit_code == 0, r.output
    shutil.copy(WEIGHTS_DIR / "fmnist-g-fc6.codestats.safetensors", tmp_path / "g.codestats.safetensors")
    r = run(*base, "--out", tmp_path / "c")
    assert r.exit_code == 0, r.output
    priors = {p["prior"]: p for p in json.loads((tmp_path / "c" / "results.json").read_text())["config"]["priors"]}
    assert priors["ClipCode"]["upper"] is not None  # the upper bound is there
    assert json.loads((tmp_path / "b" / "results.json").read_text())["config"]["priors"] == \
        json.loads((tmp_path / "c" / "results.json").read_text())["config"]["priors"]


def test_visualize_refuses_what_it_would_silently_drop_or_misuse(tmp_path):
    base = ["visualize", "--model", "fmnist-cnn", "--units", "logits:0", "--steps", "2"]
    refused("would ignore --generator", *base, "--generator", "fmnist-g-fc6", "--prior", "pixel")
    codes = tmp_path / "c.safetensors"
    from safetensors.torch import save_file

    save_file({"codes": torch.rand(1, 256)}, str(codes))  # as `dgnam encode` writes them
    refused("identical images", *base, "--generator", "fmnist-g-fc6", "--init", codes, "--restarts", "2")
    refused("identical images", *base, "--generator", "fmnist-g-fc6", "--init", "zeros", "--restarts", "2")
    refused("--init nothing.safetensors: give randn, zeros", *base, "--init", "nothing.safetensors")
    # a run's own code file is a start too
    r = run(*base, "--generator", "fmnist-g-fc6", "--out", tmp_path / "r1")
    assert r.exit_code == 0, r.output
    code = next((tmp_path / "r1" / "codes").glob("*.safetensors"))
    r = run(*base, "--generator", "fmnist-g-fc6", "--init", code, "--out", tmp_path / "r2")
    assert r.exit_code == 0, r.output
    (tmp_path / "f").write_text("")
    refused("is a file", *base, "--out", tmp_path / "f")
    refused("the model declares its input space, 1x28x28", *base, "--input-shape", "3x64x64", "--out", tmp_path / "s")
    refused("H, W >= 1", *base, "--input-shape", "3x0x32", "--out", tmp_path / "s")
    # the declared shape again keeps the model's normalization, which a bare shape would have dropped
    r = run(*base, "--input-shape", "1x28x28", "--out", tmp_path / "same")
    assert r.exit_code == 0, r.output
    assert json.loads((tmp_path / "same" / "results.json").read_text())["config"]["target_space"]["mean"] == [0.286]
    refused("no layer or no channel", "visualize", "--model", "fmnist-cnn", "--units", "logits")
    # architectures given where nothing takes them were silently ignored
    refused("--arch caffenet is for a weights file, and fmnist-cnn is a zoo model", *base, "--arch", "caffenet")
    refused("--generator-arch deepsim-fc8 is for a --generator weights file: drop", *base, "--generator-arch",
            "deepsim-fc8")
    refused("--generator-arch fmnist-g-fc6 is for a --generator weights file, and fmnist-g-fc6 is not one", *base,
            "--generator", "fmnist-g-fc6", "--generator-arch", "fmnist-g-fc6")
    refused("--judge-arch fmnist-judge names the architecture of a weights file", "evaluate", tmp_path / "r1",
            "--judge-arch", "fmnist-judge")


def test_facets_and_inpaint_inputs(tmp_path):
    fashion_mnist("train")
    base = ["facets", "--model", "fmnist-cnn", "--limit", "300", "--k", "3", "--reduce", "pca", "--steps", "2"]
    refused("one unit at a time", *base, "--unit", "logits:0,1", "--out", tmp_path / "a")
    refused("that 10 facets need", "facets", "--model", "fmnist-cnn", "--limit", "100", "--k", "10",
            "--unit", "logits:0", "--out", tmp_path / "b")
    refused("--limit 0", *base, "--unit", "logits:0", "--limit", "0", "--out", tmp_path / "c")
    refused("--lr-start must be positive", *base, "--unit", "logits:0", "--lr-start", "0", "--out", tmp_path / "d")
    # --seed's range is the clustering's, as --help says: 2**32 was shown as valid, then refused after the data
    r = run(*base, "--unit", "logits:0", "--seed", str(2**32), "--out", tmp_path / "d")
    assert r.exit_code == 2 and "4294967295" in r.output and not isinstance(r.exception, DgnamError), r.output
    assert "0<=x<=4294967295" in run("facets", "--help").output.replace(" ", "")
    # visualize's name for the starting step size works here too (facets knew only --lr-start)
    refused("--lr/--lr-start must be positive", *base, "--unit", "logits:0", "--lr", "0", "--out", tmp_path / "d")
    r = run(*base, "--unit", "logits:0", "--lr", "2.5", "--out", tmp_path / "lr")
    assert r.exit_code == 0, (r.output, r.exception)
    assert json.loads((tmp_path / "lr" / "results.json").read_text())["config"]["config"]["lr_start"] == 2.5
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x.txt").write_text("earlier")
    refused("not empty", *base, "--unit", "logits:0", "--out", tmp_path / "full")
    (tmp_path / "killed" / ".dgnam-partial" / "images").mkdir(parents=True)  # what a killed facets run leaves
    r = run(*base, "--unit", "logits:0", "--out", tmp_path / "killed")  # run again, as the Ctrl-C message says
    assert r.exit_code == 0 and (tmp_path / "killed" / "facets.png").exists(), (r.output, r.exception)
    refused("test:INDEX with INDEX >= 0", "inpaint", "test:-1", "--class", "0")
    refused("width and height", "inpaint", "test:0", "--class", "0", "--mask", "10,10,0,0")
    refused("give an image file name", "inpaint", "test:0", "--class", "0", "--out", tmp_path / "x")
    fashion_mnist("test")
    out = tmp_path / "new" / "sub" / "i.png"  # folders that do not exist yet are made
    r = run("inpaint", "test:0", "--class", "0", "--steps", "2", "--out", out)
    assert r.exit_code == 0 and out.exists(), r.output


def test_resume_removes_an_evaluation_of_the_unfinished_run(tmp_path, tiny_model, tiny_gen):
    from dgnam import visualize
    from dgnam.run import EVALUATION_FILES

    out = tmp_path / "r"
    visualize(tiny_model, "logits:0", tiny_gen, steps=2, out=out, progress=False)
    for name in EVALUATION_FILES:
        (out / name).write_text("of one image")
    visualize(tiny_model, "logits:0", tiny_gen, steps=2, out=out, progress=False, resume=True)  # nothing new: kept
    assert all((out / n).exists() for n in EVALUATION_FILES)
    # a resume that adds records (the run was interrupted): the evaluation no longer describes the run
    data = json.loads((out / "results.json").read_text())
    data["records"] = []
    (out / "results.json").write_text(json.dumps(data))
    visualize(tiny_model, "logits:0", tiny_gen, steps=2, out=out, progress=False, resume=True)
    assert not any((out / n).exists() for n in EVALUATION_FILES)


def test_version():
    from dgnam import __version__

    r = run("--version")
    assert r.exit_code == 0 and r.output.strip() == f"dgnam {__version__}"


def test_encode_takes_fashion_mnist_images_by_index_like_inpaint(tmp_path):
    fashion_mnist("test")
    from dgnam.weights import load_state_dict

    r = run("encode", "test:3", "test:4", "--out", tmp_path / "c.safetensors", "--device", "cpu")
    assert r.exit_code == 0, r.output
    assert load_state_dict(tmp_path / "c.safetensors")["codes"].shape == (2, 256)
    assert "wrote 2 codes of 256 components" in r.output
    r = run("encode", "test:3", "--out", tmp_path / "one.safetensors")
    assert "wrote 1 code of 256 components" in r.output, r.output  # (it said "1 codes")
    refused("test:INDEX with INDEX >= 0", "encode", "test:x", "--out", tmp_path / "d.safetensors")


def test_a_fashion_mnist_image_by_index_reaches_a_model_of_another_size_and_colour(tmp_path):
    """test:INDEX (encode, inpaint) is read as the same 28x28 gray file would be: resized to the model's input and
    made RGB for a colour model. It was encoded as it was, so a 64 px colour model got a 1x28x28 tensor."""
    ds = fashion_mnist("test")
    from PIL import Image

    from dgnam.weights import load_state_dict

    png = tmp_path / "t3.png"
    Image.fromarray(ds.images[3].numpy()).save(png)
    for spec, name in (("test:3", "a"), (png, "b")):
        r = run("encode", spec, "--model", "conftest:seeded_colour64_net", "--layer", "fc6", "--out",
                tmp_path / f"{name}.safetensors")
        assert r.exit_code == 0, (r.output, r.exception)
    a, b = (load_state_dict(tmp_path / f"{n}.safetensors")["codes"] for n in "ab")
    assert a.shape == (1, 12) and torch.equal(a, b)


def test_sample_resumes_a_killed_chain_and_ends_as_an_uninterrupted_run(tmp_path, monkeypatch):
    import dgnam.ppgn as ppgn
    from dgnam.cli.beyond import CHAIN_CHECKPOINT
    from dgnam.weights import load_state_dict

    args = ["sample", "--class", "1", "--class", "2", "--n", "3", "--steps", "12", "--burn-in", "3", "--eps3", "0.01"]
    r = run(*args, "--out", tmp_path / "whole")
    assert r.exit_code == 0, (r.output, r.exception)

    class Kill(Exception):
        pass

    def kill(t):
        if t == 17:  # in the second class, after the checkpoint written at the end of the first
            raise Kill

    real = ppgn.sample
    monkeypatch.setattr(ppgn, "sample", lambda *a, **kw: real(*a, **kw, on_step=kill))
    k = tmp_path / "killed"
    assert isinstance(run(*args, "--out", k).exception, Kill)
    monkeypatch.setattr(ppgn, "sample", real)
    assert (k / CHAIN_CHECKPOINT).exists() and not (k / "results.json").exists()
    refused("pass --resume to continue it", *args, "--out", k)
    refused("another chain", *args, "--seed", "1", "--resume", "--out", k)
    r = run(*args, "--resume", "--out", k)
    assert r.exit_code == 0, (r.output, r.exception)
    done = json.loads((k / "results.json").read_text())
    assert done["records"] == json.loads((tmp_path / "whole" / "results.json").read_text())["records"]
    assert torch.equal(load_state_dict(k / "codes.safetensors")["codes"],
                       load_state_dict(tmp_path / "whole" / "codes.safetensors")["codes"])
    assert not (k / CHAIN_CHECKPOINT).exists()
    refused("no interrupted chain to resume (its run is complete)", *args, "--resume", "--out", k)


def test_a_long_run_table_shows_its_first_rows_and_says_where_all_are(tmp_path):
    r = run("visualize", "--model", "fmnist-cnn", "--units", "fc6:all", "--steps", "0", "--out", tmp_path / "v")
    assert r.exit_code == 0, (r.output, r.exception)
    assert len(json.loads((tmp_path / "v" / "results.json").read_text())["records"]) == 256
    assert "the first 100 of 256 rows: all are in" in r.output and "results.json" in r.output
    assert "fc6:99" in r.output and "fc6:100 " not in r.output and "fc6:255" not in r.output


def test_dae_option_takes_the_zoo_dae_by_name_and_a_dae_is_not_a_model(tmp_path):
    r = run("sample", "--class", "1", "--n", "2", "--steps", "6", "--burn-in", "2", "--dae", "fmnist-dae-fc6",
            "--out", tmp_path / "s")
    assert r.exit_code == 0, (r.output, r.exception)
    assert json.loads((tmp_path / "s" / "results.json").read_text())["config"]["dae"] == "fmnist-dae-fc6"
    refused("is a code DAE", "visualize", "--model", "fmnist-dae-fc6", "--units", "fc6:0", "--out", tmp_path / "v")
    refused("not a code DAE", "sample", "--class", "1", "--dae", "fmnist-judge", "--out", tmp_path / "j")
    refused("drop it with --class", "sample", "--class", "1", "--relu-gradient", "exact", "--out", tmp_path / "r")
    refused("unknown --relu-gradient 'x'", "facets", "--model", "fmnist-cnn", "--unit", "fc6:2", "--relu-gradient", "x",
            "--out", tmp_path / "f")
    refused("unknown --relu-gradient 'through': use pre or exact", "visualize", "--model", "fmnist-cnn", "--units",
            "fc6:0", "--relu-gradient", "through", "--out", tmp_path / "r")
    # a generator of another layer: the zoo DAE's codes are not its codes
    for suffix in (".safetensors", ".codestats.safetensors"):
        shutil.copy(WEIGHTS_DIR / f"fmnist-g-fc6{suffix}", tmp_path / f"g{suffix}")
    (tmp_path / "g.json").write_text(json.dumps({"inverts": {"encoder": "fmnist-cnn", "layer": "fc5"}}))
    refused("denoises fmnist-cnn fc6 codes", "sample", "--class", "1", "--dae", "fmnist-dae-fc6", "--generator",
            tmp_path / "g.safetensors", "--generator-arch", "fmnist-g-fc6", "--out", tmp_path / "g5")


def test_a_generator_file_says_which_layer_it_inverts(tmp_path):
    """The card `dgnam train generator` writes beside the weights names the encoder and layer, so PPGN's joint prior
    (and inpainting, facets) need no --encoder for it."""
    for suffix in (".safetensors", ".codestats.safetensors"):
        shutil.copy(WEIGHTS_DIR / f"fmnist-g-fc6{suffix}", tmp_path / f"g{suffix}")
    (tmp_path / "g.json").write_text(json.dumps({"inverts": {"encoder": "fmnist-cnn", "layer": "fc6"}}))
    r = run("sample", "--class", "1", "--n", "2", "--steps", "6", "--burn-in", "2", "--prior", "joint",
            "--generator", tmp_path / "g.safetensors", "--generator-arch", "fmnist-g-fc6", "--out", tmp_path / "s")
    assert r.exit_code == 0, (r.output, r.exception)
    from dgnam.cli.beyond import _inverts

    (tmp_path / "g.json").write_text(json.dumps({"inverts": {"encoder": "fmnist-cnn", "layer": "fc5"}}))
    assert _inverts(str(tmp_path / "g.safetensors"), "fmnist-g-fc6") == ("fmnist-cnn", "fc5", None)  # the card first
    (tmp_path / "g.json").unlink()
    assert _inverts(str(tmp_path / "g.safetensors"), "fmnist-g-fc6") == ("fmnist-cnn", "fc6", None)  # then the arch's
    assert _inverts(str(tmp_path / "g.safetensors"), None) is None


def test_a_generator_card_cannot_make_dgnam_import_code(tmp_path, monkeypatch):
    """A card travels with shared weights: an encoder it names as an import path was imported (a module in the
    working directory ran) and called by `inpaint`, `facets` and `sample --prior joint`. It is refused in one line
    naming --encoder; given there by the user, the same path is the user's choice."""
    from dgnam.cli.beyond import _encoder_for

    for suffix in (".safetensors", ".codestats.safetensors"):
        shutil.copy(WEIGHTS_DIR / f"fmnist-g-fc6{suffix}", tmp_path / f"g{suffix}")
    (tmp_path / "payload.py").write_text("open('ran', 'w').write('ran')\n")
    monkeypatch.chdir(tmp_path)
    for inverts in ({"encoder": "payload:build", "layer": "fc6"},
                    {"encoder": "x", "layer": "fc6", "source": {"spec": "payload:build", "arch": None}}):
        (tmp_path / "g.json").write_text(json.dumps({"inverts": inverts}))
        refused("names the import path payload:build as its model: dgnam imports no code that a file names; pass "
                "--encoder payload:build --encoder-layer LAYER", "inpaint", "test:0", "--class", "0", "--generator",
                tmp_path / "g.safetensors", "--generator-arch", "fmnist-g-fc6", "--out", tmp_path / "i.png")
        with pytest.raises(DgnamError, match="import path"):
            _encoder_for(str(tmp_path / "g.safetensors"), "fmnist-g-fc6", None, None, None)
    assert not (tmp_path / "ran").exists()
    (tmp_path / "g.json").write_text(json.dumps({"inverts": {"encoder": "x", "layer": "fc6",
                                                             "source": {"spec": ["a"], "arch": 3}}}))
    with pytest.raises(DgnamError, match="no model name"):
        _encoder_for(str(tmp_path / "g.safetensors"), "fmnist-g-fc6", None, None, None)


def test_ctrl_c_says_how_to_continue(tmp_path):
    """Ctrl-C used to end a command silently (exit 130): it now says what is kept and how each command continues."""
    import signal

    out = tmp_path / "run"
    p = signal_a_started_run(["visualize", "--model", "fmnist-cnn", "--generator", "fmnist-g-fc6", "--units",
                              "logits:0", "--restarts", "2", "--steps", "100000", "--out", out], out, signal.SIGINT)
    err = p.stderr
    assert p.returncode == 130 and "interrupted: what was finished is on disk" in err and "--resume" in err, err


def test_demo_replaces_an_earlier_demo_but_never_other_files(tmp_path):
    """`dgnam demo --out DIR` deleted DIR/pixel and DIR/dgn-am whatever they held, and overwrote a run's
    results.json; it now replaces only an earlier demo."""
    from dgnam.demo import _check_demo_folder
    from helpers import dgnam, fashion_mnist, one_line_error

    fashion_mnist("test")
    out = tmp_path / "demo"
    p = dgnam("demo", "--steps", "2", "--restarts", "1", "--out", out, fresh=True)  # (a new interpreter, as a user's)
    assert p.returncode == 0, p.stderr
    assert (out / "dgn-am" / "results.json").exists() and (out / "index.html").exists()
    _check_demo_folder(out)  # an earlier demo: replaced
    (out / "pixel" / "keep.txt").write_text("precious")
    one_line_error(dgnam("demo", "--out", out), "not an earlier demo's (pixel/)", "another --out")
    assert (out / "pixel" / "keep.txt").read_text() == "precious"
    r = run("visualize", "--model", "fmnist-cnn", "--units", "logits:0", "--steps", "1", "--out", tmp_path / "run")
    assert r.exit_code == 0, r.output
    with pytest.raises(DgnamError, match="results.json"):
        _check_demo_folder(tmp_path / "run")


def test_sample_overwrite_killed_while_writing_keeps_the_earlier_run(tmp_path, monkeypatch):
    """`sample --overwrite` deleted the earlier samples before writing the new ones: a kill in between left a folder
    whose results.json listed deleted images. The new run is written beside it and moved in when complete."""
    from pathlib import Path

    import dgnam.weights

    out = tmp_path / "s"
    quick = ["sample", "--class", "1", "--n", "2", "--steps", "6", "--burn-in", "2", "--out", out]
    assert run(*quick).exit_code == 0
    before = (out / "results.json").read_text()

    def killed(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(dgnam.weights, "save_safetensors", killed)  # the last file written before results.json
    run(*quick[:2], "5", *quick[3:], "--overwrite")
    assert (out / "results.json").read_text() == before
    recs = json.loads(before)["records"]
    assert all((out / r["image"]).exists() for r in recs)
    monkeypatch.undo()
    assert run(*quick[:2], "5", *quick[3:], "--overwrite").exit_code == 0
    doc = json.loads((out / "results.json").read_text())
    assert doc["config"]["conditions"] == ["Sandal"] and all((out / r["image"]).exists() for r in doc["records"])
    assert sorted(p.name for p in (out / "images").iterdir()) == sorted(Path(r["image"]).name for r in doc["records"])
    assert not (out / ".dgnam-partial").exists()


def test_sample_writes_into_no_folder_of_other_files(tmp_path):
    """`sample` into a folder holding someone's files (no run, no chain) merged its images/ and results.json into
    them, even with --overwrite; `visualize` and `facets` refuse such a folder, and so does `sample` now."""
    out = tmp_path / "mine"
    (out / "images").mkdir(parents=True)
    (out / "images" / "holiday.png").write_bytes(b"x")
    (out / "notes.txt").write_text("keep")
    quick = ["sample", "--class", "1", "--n", "2", "--steps", "6", "--burn-in", "2", "--out", out]
    refused("holds files that are no sample run's (images, notes.txt)", *quick)
    refused("no sample run's", *quick, "--overwrite")
    assert sorted(p.name for p in out.rglob("*")) == ["holiday.png", "images", "notes.txt"]
    empty = tmp_path / "empty"
    (empty / ".dgnam-partial").mkdir(parents=True)  # a killed run's staging folder is the run's own
    assert run(*quick[:-1], empty).exit_code == 0 and (empty / "results.json").exists()
    # a sample run whose images/ is a link out of it: --overwrite would delete the s*.png files over there
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "s000_keep.png").write_bytes(b"mine")
    shutil.rmtree(empty / "images")
    (empty / "images").symlink_to(elsewhere)
    refused("outside the run folder", *quick[:-1], empty, "--overwrite")
    assert (elsewhere / "s000_keep.png").read_bytes() == b"mine"


def test_sample_into_a_folder_on_another_filesystem(tmp_path):
    """The staging folder sat beside --out: a --out on another mount (here a symlink into /dev/shm) failed with
    'Invalid cross-device link' after deleting the earlier samples. It now lies inside --out."""
    import os
    import tempfile

    if not os.path.isdir("/dev/shm"):
        pytest.skip("no /dev/shm")
    with tempfile.TemporaryDirectory(dir="/dev/shm") as other:
        (tmp_path / "s").symlink_to(other)
        quick = ["sample", "--class", "1", "--n", "2", "--steps", "6", "--burn-in", "2", "--out", tmp_path / "s"]
        assert run(*quick).exit_code == 0
        r = run(*quick[:2], "5", *quick[3:], "--overwrite")
        assert r.exit_code == 0, (r.output, r.exception)
        doc = json.loads((tmp_path / "s" / "results.json").read_text())
        assert doc["config"]["conditions"] == ["Sandal"] and all((tmp_path / "s" / x["image"]).exists()
                                                                 for x in doc["records"])


def test_an_interrupted_demo_can_be_run_again(tmp_path):
    """A demo killed during its first method leaves DIR/pixel with images/ and codes/ but no results.json; the
    rerun the Ctrl-C message suggests must not be refused."""
    from dgnam.demo import _check_demo_folder

    (tmp_path / "d" / "pixel" / "images").mkdir(parents=True)
    (tmp_path / "d" / "pixel" / "codes").mkdir()
    _check_demo_folder(tmp_path / "d")


def test_start_codes_of_another_layer_are_refused(tmp_path):
    """fc5 codes are 256-d like fc6's: without the check they ran through the fc6 generator without a word."""
    r = run("encode", "test:0", "--layer", "fc5", "--out", tmp_path / "fc5.safetensors")
    assert r.exit_code == 0, r.output
    base = ["visualize", "--model", "fmnist-cnn", "--generator", "fmnist-g-fc6", "--units", "logits:0", "--steps", "2"]
    refused("holds fmnist-cnn fc5 codes, but fmnist-g-fc6 inverts fmnist-cnn fc6", *base, "--init",
            tmp_path / "fc5.safetensors", "--out", tmp_path / "a")
    r = run("encode", "test:0", "--out", tmp_path / "fc6.safetensors")
    assert r.exit_code == 0, r.output
    r = run(*base, "--init", tmp_path / "fc6.safetensors", "--out", tmp_path / "b")
    assert r.exit_code == 0, r.output
    # codes of a file of the generator's encoder architecture (a copy of its weights, say) are its codes too
    shutil.copy(WEIGHTS_DIR / "fmnist-cnn.safetensors", tmp_path / "cnn.safetensors")
    r = run("encode", "test:0", "--model", tmp_path / "cnn.safetensors", "--arch", "fmnist-cnn", "--out",
            tmp_path / "file6.safetensors")
    assert r.exit_code == 0, r.output
    r = run(*base, "--init", tmp_path / "file6.safetensors", "--out", tmp_path / "c")
    assert r.exit_code == 0, r.output
    # ... but codes of another network of that architecture (other weights) are not
    from dgnam.weights import save_safetensors
    from dgnam.zoo.fmnist import FashionCNN

    torch.manual_seed(5)
    save_safetensors(FashionCNN().state_dict(), tmp_path / "other" / "fmnist-cnn.safetensors")
    r = run("encode", "test:0", "--model", tmp_path / "other" / "fmnist-cnn.safetensors", "--arch", "fmnist-cnn",
            "--out", tmp_path / "other6.safetensors")
    assert r.exit_code == 0, r.output
    refused("holds codes of other fmnist-cnn weights than the encoder fmnist-g-fc6 inverts", *base, "--init",
            tmp_path / "other6.safetensors", "--out", tmp_path / "d")
    refused("does not exist (the weights file for --arch fmnist-cnn)", "layers", tmp_path / "cnn.safetenosrs",
            "--arch", "fmnist-cnn")
    # without --arch a missing file was "a weights file: say which architecture it holds", as if it were there
    for args in (["layers", tmp_path / "gone.safetensors"], ["visualize", "--model", "fmnist-cnn", "--generator",
                                                              tmp_path / "g.safetensors", "--units", "logits:0"]):
        refused("does not exist: give the path of a weights file, a zoo name", *args)
    from dgnam.cli.run import _init_codes  # a Caffe file's codes for a deepsim generator (caffenet ships no weights)

    from safetensors.torch import save_file
    save_file({"codes": torch.rand(1, 4096)}, str(tmp_path / "caffe.safetensors"),
              metadata={"model": "/data/caffenet.caffemodel", "arch": "caffenet", "layer": "relu6"})
    assert _init_codes(str(tmp_path / "caffe.safetensors"), "deepsim-fc6").shape == (1, 4096)
    save_file({"codes": torch.rand(1, 4096)}, str(tmp_path / "caffe7.safetensors"),
              metadata={"model": "/data/caffenet.caffemodel", "arch": "caffenet", "layer": "relu7"})
    with pytest.raises(DgnamError, match="--model FILE --arch caffenet --layer relu6"):
        _init_codes(str(tmp_path / "caffe7.safetensors"), "deepsim-fc6")


@pytest.mark.parametrize("command", [["visualize", "--units", "logits:0"], ["sample", "--class", "1"],
                                     ["train", "classifier"], ["train", "dae"], ["demo"]])
def test_a_seed_torch_cannot_take_is_refused_before_any_work(command, tmp_path):
    """--seed 2**64 ran until torch's 'Overflow when unpacking long long', after the models were loaded (and
    -1 was read modulo 2**64 by some commands, refused by others): every command takes 0..2**63 - 1."""
    for seed in (2**64, -1):
        r = run(*command, "--seed", seed, "--out", tmp_path / "o")
        assert r.exit_code == 2 and "--seed" in r.output and "Traceback" not in r.output, r.output
        assert not (tmp_path / "o").exists()


def test_the_api_refuses_such_seeds_in_one_line_and_training_seeds_near_the_top_run(tiny_model):
    from dgnam.train.common import batches
    with pytest.raises(DgnamError, match=r"^seed=18446744073709551616: give a seed in 0\.\.9223372036854775807$"):
        visualize(tiny_model, "logits:0", None, seed=2**64, steps=1, progress=False)
    from dgnam.errors import MAX_SEED
    assert len(list(batches(10, 5, MAX_SEED, 3))) == 2  # seed * 100003 + epoch is taken modulo 2**64


def test_cli_units_minimize_with_a_leading_minus_and_read_directions_from_files(tmp_path):
    """`--units -logits:3` (or `--units=-logits:3`) minimizes, `LAYER:dir=FILE` is a direction: the records say
    which, and the code files keep the vector."""
    import numpy as np
    from safetensors.torch import load_file

    from dgnam.units import Unit

    vec = tmp_path / "probe.npy"
    np.save(vec, np.eye(256, dtype=np.float32)[7])
    digest = Unit("fc6", direction=torch.eye(256)[7]).digest
    base = ["visualize", "--model", "fmnist-cnn", "--steps", "3"]
    for i, units in enumerate([["--units", f"-logits:3,fc6:dir={vec}"], [f"--units=-logits:3,fc6:dir={vec}"]]):
        r = run(*base, *units, "--out", tmp_path / f"r{i}")
        assert r.exit_code == 0, r.output
        recs = json.loads((tmp_path / f"r{i}" / "results.json").read_text())["records"]
        assert [(x["unit"], x["goal"], x["channel"], x.get("direction")) for x in recs] == [
            ("-logits:3", "minimize", 3, None), (f"fc6:dir=probe.npy#{digest}", "maximize", None, "probe.npy")]
        assert recs[1]["direction_digest"] == digest and recs[0]["class_name"] == "Dress"
        assert torch.equal(load_file(str(tmp_path / f"r{i}" / recs[1]["code"]))["direction"], torch.eye(256)[7])
        assert "-logits:3" in r.output
    np.save(vec, np.ones(255, dtype=np.float32))
    refused("the direction has 255 values, but layer 'fc6' has 256 channels: give a vector of 256 values", *base,
            "--units", f"fc6:dir={vec}", "--out", tmp_path / "short")


def test_a_seed_that_is_no_int_is_refused_in_one_line(tiny_model):
    """check_seed compared seed=None with 0 (TypeError: '<=' not supported between ... 'NoneType'): visualize lets
    None through its type check, and the training configs checked the seed with check_seed alone."""
    import numpy as np

    from dgnam.train.dae import DAEConfig

    with pytest.raises(DgnamError, match=r"^seed=None: give a seed in 0\.\.9223372036854775807$"):
        visualize(tiny_model, "logits:0", None, seed=None, steps=1, progress=False)
    for seed in (None, 1.5, True):
        with pytest.raises(DgnamError, match=rf"^seed={seed!r}: give a seed in 0\.\."):
            DAEConfig(seed=seed).validate()
    DAEConfig(seed=np.int64(3)).validate()  # numpy's ints are ints


GAN_FACTORY = '''
import torch
from torch import nn
import dgnam

def make():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(16, 8 * 8 * 8), nn.Unflatten(1, (8, 8, 8)), nn.Upsample(scale_factor=4),
                        nn.Conv2d(8, 3, 3, padding=1), nn.Tanh())
    z = dgnam.CodeStats(mean=torch.zeros(16), std=torch.ones(16))
    return dgnam.LearnedGenerator(net, code_shape=(16,), space=dgnam.ImageSpace(size=(32, 32), color="RGB", lo=-1,
                                  hi=1), code_stats=z, code_lower=-3.0, name="gan")
'''


def test_a_gan_factory_samples_from_the_command_line_without_a_prior(tmp_path, monkeypatch):
    """PPGN's prior needs codes of real images (a DAE) or an encoder (joint); a GAN has neither, and `sample` had no
    way to run without one (the Python API's dae=None): --prior none is eps1 = 0."""
    (tmp_path / "mygan.py").write_text(GAN_FACTORY)
    monkeypatch.chdir(tmp_path)
    r = run("sample", "--class", "1", "--generator", "mygan:make", "--prior", "none", "--n", "2", "--steps", "6",
            "--burn-in", "2", "--out", tmp_path / "s")
    assert r.exit_code == 0, (r.output, r.exception)
    cfg = json.loads((tmp_path / "s" / "results.json").read_text())["config"]
    assert cfg["prior"] == "none" and cfg["dae"] is None and cfg["generator"] == "mygan:make"
    refused("drop it with --prior none", "sample", "--class", "1", "--generator", "mygan:make", "--prior", "none",
            "--dae", "fmnist-dae-fc6", "--out", tmp_path / "t")
    refused("or none (no prior term", "sample", "--class", "1", "--prior", "nothing", "--out", tmp_path / "u")
