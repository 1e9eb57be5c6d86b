"""Writing results when the file system says no: every output whole or absent, failures as one line naming the fix,
and no run written into a folder that holds something else."""

import json
import os

import pytest
import torch
from typer.testing import CliRunner

from dgnam.atomic import write_atomic, write_json_atomic
from dgnam.cli import app
from dgnam.errors import DgnamError
from dgnam.weights import load_state_dict, save_safetensors

from helpers import dgnam, one_line_error


def test_a_failed_write_leaves_the_old_file_whole_and_no_temporary(tmp_path):
    target = tmp_path / "results.json"
    write_json_atomic(target, {"run": 1})

    def half_then_full_disk(tmp):
        tmp.write_text('{"run": 2, "recor')
        raise OSError(28, "No space left on device", str(tmp))

    with pytest.raises(OSError) as e:
        write_atomic(target, half_then_full_disk)
    assert e.value.filename == str(target)  # named by the file asked for, not the temporary one
    assert json.loads(target.read_text()) == {"run": 1} and os.listdir(tmp_path) == ["results.json"]

    def torch_on_a_full_disk(tmp):
        raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 3147712 vs 3147604")

    with pytest.raises(DgnamError, match="is the disk full"):
        write_atomic(target, torch_on_a_full_disk)
    assert os.listdir(tmp_path) == ["results.json"]


def test_a_long_file_name_is_written(tmp_path):
    """The temporary name was the target's plus 18 bytes: a valid 252-byte name could never be written."""
    path = tmp_path / ("c" * 240 + ".safetensors")
    save_safetensors({"codes": torch.ones(2, 3)}, path)
    assert torch.equal(load_state_dict(path)["codes"], torch.ones(2, 3))


def test_write_failures_on_the_command_line_are_one_line_errors(tmp_path):
    (tmp_path / "afile").write_text("x")
    one_line_error(dgnam("visualize", "--model", "fmnist-cnn", "--generator", "fmnist-g-fc6", "--units", "logits:0",
                         "--steps", "1", "--out", str(tmp_path / "afile" / "sub")), "a part of the path is a file")
    one_line_error(dgnam("encode", "test:0", "--out", str(tmp_path)), "that is a folder: give a file name")


def test_visualize_writes_no_run_into_a_folder_that_holds_something_else(tmp_path):
    base = ["visualize", "--model", "fmnist-cnn", "--units", "logits:0", "--steps", "1"]
    photos = tmp_path / "photos"
    photos.mkdir()
    (photos / "grid.png").write_bytes(b"the user's own file")
    for extra in ([], ["--resume"]):  # --resume was accepted, and replaced grid.png
        r = CliRunner().invoke(app, [*base, *extra, "--out", str(photos)])
        assert isinstance(r.exception, DgnamError) and "grid.png are no run's" in str(r.exception), r.output
    assert (photos / "grid.png").read_bytes() == b"the user's own file"
    killed = tmp_path / "killed"  # a run killed before its first batch: images/ and codes/ alone
    (killed / "images").mkdir(parents=True)
    (killed / "codes").mkdir()
    r = CliRunner().invoke(app, [*base, "--out", str(killed)])
    assert "pass --resume to continue it" in str(r.exception)
    r = CliRunner().invoke(app, [*base, "--resume", "--out", str(killed)])
    assert r.exit_code == 0 and (killed / "results.json").exists(), (r.output, r.exception)
    # samples are not written over a visualize run (--overwrite left its images and grid beside them)
    r = CliRunner().invoke(app, ["sample", "--class", "1", "--n", "2", "--steps", "4", "--burn-in", "2", "--overwrite",
                                 "--out", str(killed)])
    assert "not samples: choose another --out" in str(r.exception), r.output


def test_a_killed_demo_rerun_leaves_no_summary_of_the_earlier_demo(tmp_path, monkeypatch):
    import dgnam.demo as demo

    out = tmp_path / "demo"
    out.mkdir()
    (out / "results.json").write_text(json.dumps({"summary": {}, "records": []}))  # an earlier demo's
    (out / "index.html").write_text("earlier")

    class Kill(Exception):
        pass

    def killed(*a, **kw):
        raise Kill

    monkeypatch.setattr(demo, "visualize", killed)
    with pytest.raises(Kill):
        demo.run_demo(out, restarts=1, steps=1, progress=False)
    assert not (out / "results.json").exists() and not (out / "index.html").exists()


def test_a_damaged_card_is_an_error_not_read_as_none(tmp_path):
    from dgnam.zoo.files import card_beside

    (tmp_path / "pets.safetensors").write_bytes(b"")
    (tmp_path / "pets.json").write_text('{"classes": ["cat", "do')
    with pytest.raises(DgnamError, match="card .*pets.json.*cannot be read.*restore it"):
        card_beside(tmp_path / "pets.safetensors")
    (tmp_path / "pets.json").write_text(json.dumps([1, 2]))  # JSON, but no card
    assert card_beside(tmp_path / "pets.safetensors") == {}


def test_out_is_checked_before_the_work_and_nothing_is_made(tmp_path):
    from dgnam.cli.common import writable_folder

    (tmp_path / "afile").write_text("x")
    with pytest.raises(NotADirectoryError):
        writable_folder(tmp_path / "afile" / "sub")
    assert writable_folder(tmp_path / "new" / "deeper") == tmp_path / "new" / "deeper"
    assert not (tmp_path / "new").exists()  # a refused command leaves no folder behind
