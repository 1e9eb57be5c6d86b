"""Two dgnam processes on one folder. Before the folder lock, a `visualize --resume` of a run still running did the
remaining units again beside it, an `evaluate --partial` of a running run rewrote results.json without the records
written after it read them (9 of 10 left, both commands exiting 0), two `sample` runs into one folder deleted each
other's staging folder (a crash naming a .tmp file, or the later one silently replacing the first), and two
`train generator` of one name overwrote each other's checkpoint and ended with the last one's weights and card. Now a
writer holds OUT/.dgnam-lock for as long as it runs, and a second one is refused in one line."""

import json
import os
import signal
import subprocess
import sys
import threading
import time
from contextlib import contextmanager

import pytest
import torch
from typer.testing import CliRunner

from dgnam.atomic import LOCK, folder_lock
from dgnam.cli import app
from dgnam.errors import DgnamError

from helpers import TESTS, dgnam, one_line_error

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals and flock")

HOLD = """
import sys, time
from dgnam.atomic import folder_lock
with folder_lock(sys.argv[1], sys.argv[2], lock=sys.argv[3]):
    print("held", flush=True)
    time.sleep(120)
"""


@contextmanager
def held_by_another_process(folder, what, lock=LOCK):
    """A second process holding ``folder``'s lock as dgnam's command ``what`` does, until the block ends."""
    p = subprocess.Popen([sys.executable, "-c", HOLD, str(folder), what, lock], stdout=subprocess.PIPE, text=True)
    try:
        assert p.stdout.readline().strip() == "held"
        yield p
    finally:
        p.kill()
        p.wait()
        p.stdout.close()


VISUALIZE = ["visualize", "--model", "fmnist-cnn", "--generator", "fmnist-g-fc6", "--units", "logits:0,1,2",
             "--batch-size", "1"]


def test_a_second_writer_of_a_run_folder_is_refused_in_one_line(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    with held_by_another_process(run, "visualize") as holder:
        by = f"{run} is being written by another dgnam process (pid {holder.pid}: dgnam visualize); "
        elsewhere, later = "wait for it to finish or choose another --out", "wait for it to finish, then evaluate the run"
        for args, fix in (
            ([*VISUALIZE, "--steps", "2", "--out", run], elsewhere),
            ([*VISUALIZE, "--steps", "2", "--resume", "--out", run], elsewhere),
            (["evaluate", run, "--partial"], later),
            (["sample", "--class", "1", "--n", "2", "--steps", "4", "--resume", "--out", run], elsewhere),
            (["facets", "--model", "fmnist-cnn", "--unit", "logits:0", "--out", run], elsewhere),
        ):
            r = CliRunner().invoke(app, list(map(str, args)))
            assert isinstance(r.exception, DgnamError) and str(r.exception) == by + fix, (args, r.output, r.exception)
        # on the command line: one line, exit 2, no traceback
        one_line_error(dgnam(*VISUALIZE, "--steps", "2", "--resume", "--out", run), f"pid {holder.pid}",
                       "being written by another dgnam process")
        assert [p.name for p in run.iterdir()] == [LOCK]  # nothing was written beside the holder's lock


def test_one_name_trains_at_a_time_and_other_names_beside_it(tmp_path):
    from dgnam.train.dae import DAEConfig, train_dae

    codes = torch.rand(64, 8)
    config = DAEConfig(epochs=1, batch_size=32, hidden=16)
    with held_by_another_process(tmp_path, "train dae", lock=f"{LOCK}-d") as holder:
        with pytest.raises(DgnamError, match=rf"{tmp_path / 'd'}.safetensors is being written by another dgnam "
                                             rf"process \(pid {holder.pid}: dgnam train dae\); wait for it"):
            train_dae(codes, codes, tmp_path, "d", config, progress=False)
        assert not (tmp_path / "d-ckpt").exists()
        train_dae(codes, codes, tmp_path, "e", config, progress=False)  # another name: its own lock
    assert (tmp_path / "e.safetensors").exists() and not (tmp_path / f"{LOCK}-e").exists()


def test_a_killed_run_leaves_no_lock_that_blocks_its_resume(tmp_path):
    out = tmp_path / "run"
    args = [*VISUALIZE, "--steps", "150", "--out", str(out)]
    p = subprocess.Popen([sys.executable, "-m", "dgnam", *args], cwd=TESTS, stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while not (out / "results.json").exists() and p.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        os.kill(p.pid, signal.SIGKILL)
    finally:
        p.wait()
    assert p.returncode == -signal.SIGKILL
    done = len(json.loads((out / "results.json").read_text())["records"])
    assert done < 3 and (out / LOCK).exists()  # killed mid-run: its lock file stays, its lock went with it
    r = CliRunner().invoke(app, [*args, "--resume"])
    assert r.exit_code == 0, (r.output, r.exception)
    assert len(json.loads((out / "results.json").read_text())["records"]) == 3 and not (out / LOCK).exists()


def test_the_lock_is_the_holder_s_alone_and_leaves_nothing_behind(tmp_path):
    made = tmp_path / "new" / "run"
    with folder_lock(made, "visualize"):
        assert json.loads((made / LOCK).read_text())["pid"] == os.getpid()
        with folder_lock(made, "evaluate"):  # the same thread again: a command and the function it calls
            pass
        refused = []

        def other_thread():
            try:
                with folder_lock(made, "sample"):
                    pass
            except DgnamError as e:
                refused.append(str(e))

        t = threading.Thread(target=other_thread)
        t.start()
        t.join()
        assert refused and "another dgnam call in this process (dgnam visualize)" in refused[0], refused
        assert (made / LOCK).exists()
    assert not (tmp_path / "new").exists()  # made for the lock and left empty: removed again
    # a killed holder's file (any content) is taken over; a link by that name is not followed
    run = tmp_path / "run"
    run.mkdir()
    (run / LOCK).write_text('{"pid": 999999999, "command": "a\\nb"}')
    with folder_lock(run, "visualize"):
        (run / "results.json").write_text("{}")
    assert [p.name for p in run.iterdir()] == ["results.json"]
    precious = tmp_path / "precious.txt"
    precious.write_text("keep")
    (run / LOCK).symlink_to(precious)
    with folder_lock(run, "visualize"):
        pass
    assert precious.read_text() == "keep"
    with folder_lock(None, "visualize"):  # no folder: nothing to lock
        pass


def test_the_demo_is_refused_while_one_of_its_runs_is_evaluated(tmp_path, monkeypatch):
    """`dgnam evaluate runs/demo/dgn-am` (as its --help suggests) locks that run only; the demo locked runs/demo, so a
    demo started meanwhile deleted the run under the evaluation (shutil.rmtree) and wrote a new one there, which the
    evaluation then rewrote. Now the demo takes its runs' locks too, before it deletes anything."""
    import dgnam.demo as demo

    out = tmp_path / "demo"
    for method in demo.DEMO_METHODS:  # an earlier demo
        (out / method).mkdir(parents=True)
        (out / method / "results.json").write_text("{}")
    (out / "results.json").write_text(json.dumps({"summary": {}, "records": []}))

    def started(*a, **kw):
        raise AssertionError("the demo ran beside the evaluation")

    monkeypatch.setattr(demo, "visualize", started)
    with held_by_another_process(out / "dgn-am", "evaluate") as holder:
        with pytest.raises(DgnamError, match=rf"^{out / 'dgn-am'} is being written by another dgnam process "
                                             rf"\(pid {holder.pid}: dgnam evaluate\)"):
            demo.run_demo(out, restarts=1, steps=1, progress=False)
    assert all((out / m / "results.json").exists() for m in demo.DEMO_METHODS) and (out / "results.json").exists()
    assert not (out / LOCK).exists() and not (out / "pixel" / LOCK).exists()
