"""The command line: user mistakes get one line that names the fix, never a traceback."""

import json

from helpers import dgnam, one_line_error, signal_a_started_run


def test_visualize_user_model_and_resume_errors(tmp_path):
    out = tmp_path / "run"
    args = ["visualize", "--model", "conftest:seeded_tiny_net", "--input-shape", "1x12x12", "--units", "logits:0,1",
            "--steps", "5", "--out", str(out)]
    p = dgnam(*args)
    assert p.returncode == 0, p.stderr
    recs = json.loads((out / "results.json").read_text())["records"]
    assert [r["unit"] for r in recs] == ["logits:0", "logits:1"]
    one_line_error(dgnam(*args), "--resume")
    assert dgnam(*args, "--resume").returncode == 0
    # a model whose weights differ from the run's (a fresh random init each process) is not mixed into it
    other = ["conftest:TinyNet" if a == "conftest:seeded_tiny_net" else a for a in args]
    one_line_error(dgnam(*other, "--resume"), "weights")
    slow = tmp_path / "slow"
    p = dgnam(*args[:-1], str(slow), "--lr", "0.5")
    assert p.returncode == 0, p.stderr
    assert json.loads((slow / "results.json").read_text())["config"]["config"]["lr_start"] == 0.5


def test_bad_units_and_models(tmp_path):
    base = ["visualize", "--model", "conftest:TinyNet", "--input-shape", "1x12x12", "--steps", "2", "--out", str(tmp_path / "r")]
    one_line_error(dgnam(*base, "--units", "featurs.4:0"), "unknown layer", "features.4")
    one_line_error(dgnam(*base, "--units", "logits:7"), "0..4")
    one_line_error(dgnam(*base, "--units", "logits:0", "--lr", "0"), "--lr")
    one_line_error(dgnam(*base, "--units", "logits:0", "--restarts", "0"), "restarts=0")
    one_line_error(dgnam("layers", "no-such-model"), "unknown model")
    one_line_error(dgnam("layers", "conftest:TinyNet"), "input")
    evil = tmp_path / "evil.pt"
    evil.write_bytes(b"\x80\x04\x95\x1d\x00\x00\x00\x00\x00\x00\x00\x8c\x02os\x94\x8c\x06system\x94\x93\x94\x8c\x02id\x94\x85\x94R\x94.")
    one_line_error(dgnam("layers", str(evil), "--arch", "fmnist-cnn"), "refusing")


def test_cli_warnings_are_one_line(tmp_path):
    p = dgnam("visualize", "--model", "conftest:TwiceNet", "--input-shape", "1x12x12", "--units", "relu:0",
              "--steps", "0", "--out", tmp_path / "r")
    assert p.returncode == 0, p.stderr
    warned = [ln for ln in p.stderr.splitlines() if "runs 2 times" in ln]
    assert len(warned) == 1 and warned[0].startswith("warning: layer 'relu' runs 2 times"), p.stderr
    assert "UserWarning" not in p.stderr and "warn(" not in p.stderr


def test_usage_errors_are_one_line():
    """Typer wrote a mistyped option or a missing value as a usage line, a hint and a five-line box; now it is one
    line, as every other error is, naming the help to read. Help, the version and a bare command still work."""
    one_line_error(dgnam("visualize", "--model", "fmnist-cnn", "--bogus", "2"), "No such option: --bogus",
                   "visualize --help'")
    one_line_error(dgnam("visualize"), "Missing option '--model'")
    one_line_error(dgnam("sample", "--n", "abc"), "'--n'", "sample --help'")
    one_line_error(dgnam("visualise"), "Did you mean 'visualize'?", "dgnam --help'")
    one_line_error(dgnam("train", "dae", "-q"), "-q is an option of dgnam itself: put it before the command",
                   "dgnam -q train dae ...)")
    bare = dgnam("train")  # no_args_is_help: the group's help, exit 2 as click gives it, no error line
    assert bare.returncode == 2 and "generator" in bare.stdout and "error" not in bare.stderr, bare.stderr
    version = dgnam("--version")
    assert version.returncode == 0 and version.stdout.startswith("dgnam "), version.stderr
    helped = dgnam("visualize", "--help")
    assert helped.returncode == 0 and "--units" in helped.stdout and helped.stderr == "", helped.stderr


def test_the_interrupt_note_says_what_the_stopped_command_kept():
    """Ctrl-C after any command said "visualize and sample continue with ... --resume, train commands ...": after
    `dgnam evaluate` or `dgnam encode` that sent its reader looking for a --resume they do not have."""
    from dgnam.cli import kept_note

    assert kept_note(["-q", "visualize", "--out", "r"], "interrupted") == (
        "interrupted: what was finished is on disk: the same command plus --resume continues it")
    assert "--fresh starts over" in kept_note(["train", "generator"], "interrupted")
    assert "--resume" not in kept_note(["evaluate", "runs/x"], "terminated (SIGTERM)")
    assert kept_note(["encode", "a.png"], "interrupted") == (
        "interrupted: no file is left half-written: the same command starts again")


def test_sigterm_ends_like_ctrl_c(tmp_path):
    """SIGTERM (Slurm's time limit, `kill`, a cancelled CI job) ended a run silently with Python's default: now it
    exits 143 saying what was kept and how to continue, with no traceback."""
    import signal

    out = tmp_path / "run"
    p = signal_a_started_run(["visualize", "--model", "conftest:seeded_tiny_net", "--input-shape", "1x12x12",
                              "--units", "logits:0", "--steps", "100000", "--out", out], out, signal.SIGTERM)
    assert p.returncode == 143, p.stderr
    assert "terminated (SIGTERM): what was finished is on disk" in p.stderr and "--resume" in p.stderr, p.stderr
    assert "Traceback" not in p.stderr, p.stderr


TINY_RUN = ["visualize", "--model", "conftest:seeded_tiny_net", "--input-shape", "1x12x12", "--units", "logits:0",
            "--steps", "5"]


def test_tqdm_disable_hides_the_bars(tmp_path):
    """TQDM_DISABLE=1 (tqdm's own switch, which a batch job sets for every tool) was overridden by the bars'
    ``disable=False``: the bar was still written. Now it hides them; without it the bar is there."""
    p = dgnam(*TINY_RUN, "--out", tmp_path / "quiet", env={"TQDM_DISABLE": "1"})
    assert p.returncode == 0 and p.stderr == "", p.stderr
    p = dgnam(*TINY_RUN, "--out", tmp_path / "shown")
    assert p.returncode == 0 and "5/5" in p.stderr, p.stderr


def test_progress_bar_in_a_log_is_not_flooded(monkeypatch):
    """Written to a file or a pipe (a batch job's log), a bar was updated every 0.1 s: a 17 s visualize put 159
    updates, 15 kB, into the log. Now it is updated every LOG_INTERVAL s there (its start and end for a short run);
    TQDM_MININTERVAL still says otherwise."""
    import io
    import time

    from dgnam.display import progress_bar

    def updates() -> int:
        log = io.StringIO()  # no terminal
        for _ in progress_bar(range(40), file=log):
            time.sleep(0.01)
        return log.getvalue().count("40 [")

    monkeypatch.delenv("TQDM_MININTERVAL", raising=False)
    assert updates() <= 2
    monkeypatch.setenv("TQDM_MININTERVAL", "0.05")  # (read by tqdm when it is imported: here its default, 0.1 s)
    assert updates() > 2


def test_quiet_hides_the_bars_only(tmp_path):
    """There was no option to silence the progress bars of a batch job's log: `dgnam --quiet` (-q) hides them, and
    the results (the table, the 'wrote' line) are still written."""
    p = dgnam("-q", *TINY_RUN, "--out", tmp_path / "run")
    assert p.returncode == 0 and p.stderr == "", p.stderr
    assert "logits:0" in p.stdout and f"wrote {tmp_path / 'run'}/grid.png" in p.stdout, p.stdout


def test_evaluate_help_names_its_json_for_scripts():
    """A script that wants evaluate's metrics had only the table to parse, as far as the help said: it now names
    evaluation.json's "summary" and "units", where every metric is."""
    from typer.testing import CliRunner

    from dgnam.cli import app

    text = " ".join(CliRunner().invoke(app, ["evaluate", "--help"], terminal_width=200).stdout.split())
    assert 'For scripts, read evaluation.json: "summary"' in text and '"units"' in text, text


def test_help_groups_the_commands_by_what_they_are_for():
    """`dgnam --help` listed encode and code-stats first and demo and visualize in the middle, in the order the
    modules happened to load: the commands are in panels now, the images first, every command in one of them."""
    from typer.testing import CliRunner

    from dgnam.cli import app

    text = CliRunner().invoke(app, ["--help"], terminal_width=120).stdout
    panels = ["Synthesize images", "Evaluate", "Models", "Codes"]
    at = [text.index(p) for p in panels]
    assert at == sorted(at), text
    listed = text[at[0]:]
    for cmds, start, end in [(["demo", "visualize", "facets", "sample", "inpaint"], at[0], at[1]),
                             (["evaluate", "grid"], at[1], at[2]),
                             (["layers", "models", "priors", "convert", "train"], at[2], at[3]),
                             (["encode", "code-stats"], at[3], len(text))]:
        for c in cmds:
            assert f"│ {c} " in text[start:end], (c, text)
    assert "Commands" not in listed  # (no command left in the default panel)


def test_help_keeps_bracketed_words():
    """Rich markup took `[umap]` in facets --reduce's help for a style tag and dropped it, so the help told users to
    `pip install 'dgnam'`: no option's help may lose a bracketed word (write it without brackets)."""
    import inspect
    import re

    from typer.testing import CliRunner

    from dgnam.cli import app, train_app

    groups = [(app, []), (train_app, ["train"])]
    for typer_app, prefix in groups:
        for cmd in typer_app.registered_commands:
            name = cmd.name or cmd.callback.__name__.replace("_", "-")
            helps = [p.default.help for p in inspect.signature(cmd.callback).parameters.values()
                     if getattr(p.default, "help", None)]
            tags = [t for h in helps for t in re.findall(r"\[[A-Za-z_][^\]\s]*\]", h)]
            if not tags:
                continue
            text = CliRunner().invoke(app, [*prefix, name, "--help"], terminal_width=400).stdout
            for t in tags:
                assert t in text, f"`dgnam {' '.join([*prefix, name])} --help` drops {t}"
