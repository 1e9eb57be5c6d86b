"""dgnam from a notebook: what a cell's value shows, opening a finished run, interrupting a long cell.

Before: a ``Run`` as a cell's last value printed its dataclass repr (every record's dict, ~800 characters each, and
the image tensors), with no picture; a run folder could not be opened from Python; an interrupted ``visualize``
raised a bare ``KeyboardInterrupt`` that said nothing of what was kept.
"""

import base64
import io
import json
import re
import sys
import warnings

import numpy as np
import pytest
import torch
from PIL import Image

from dgnam import CodeStats, DgnamError, Run, visualize
from dgnam.priors import Prior

from conftest import SPACE
from helpers import drawn_texts

NOTES = pytest.mark.skipif(sys.version_info < (3, 11), reason="exception notes (add_note) are Python 3.11's")


def pixels(im: Image.Image) -> np.ndarray:
    return np.asarray(im.convert("RGB"))


def embedded_pngs(page: str) -> list[Image.Image]:
    return [Image.open(io.BytesIO(base64.b64decode(b))) for b in re.findall(r'src="data:image/png;base64,([^"]+)"', page)]


@pytest.mark.parametrize("learned", [True, False])
def test_a_runs_grid_is_its_grid_png_pixel_for_pixel(tmp_path, tiny_model, tiny_gen, learned):
    """One figure, however it is reached: in memory, from a folder opened with Run.load, or from a run that kept its
    images on disk only. The tiny generator's 14-px images are saved enlarged 6x (84 px), which the grid then scales
    to 96 px bilinearly; drawn straight from the 14-px tensor they would be scaled by nearest-neighbour instead."""
    gen = tiny_gen if learned else None
    kw = dict(restarts=2, steps=3, progress=False)
    run = visualize(tiny_model, "logits:0,2", gen, out=tmp_path / "a", **kw)
    on_disk = pixels(Image.open(tmp_path / "a" / "grid.png"))
    assert np.array_equal(pixels(run.grid()), on_disk)
    assert np.array_equal(pixels(Run.load(tmp_path / "a").grid()), on_disk)
    lean = visualize(tiny_model, "logits:0,2", gen, out=tmp_path / "b", return_images=False, **kw)
    assert lean.images is None and np.array_equal(pixels(lean.grid()), on_disk)
    for k, rec in enumerate(run.records):  # each picture is its PNG
        assert np.array_equal(np.asarray(run.image(k)), np.asarray(Image.open(tmp_path / "a" / rec["image"])))
    # a run without a folder draws the same figure from its tensors
    assert np.array_equal(pixels(visualize(tiny_model, "logits:0,2", gen, **kw).grid()), on_disk)


def test_a_figure_of_chosen_units_at_their_own_size_or_their_best_images(tmp_path, tiny_model, tiny_gen):
    """`dgnam grid` / Run.grid(units=, cell=, best=): grid.png shows every unit at 96 px and final images only; a
    paper figure wants some units in its own order, the images unshrunk, or the best step's. Each cell of such a
    figure is the record's own PNG (final or _best), and what cannot be drawn is one line."""
    from helpers import dgnam, one_line_error

    out = tmp_path / "r"
    run = visualize(tiny_model, "logits:0,2,4", tiny_gen, restarts=2, steps=8, progress=False, out=out)
    png = {k: (np.asarray(Image.open(out / r["image"]).convert("RGB")),
               np.asarray(Image.open(out / r["best_image"]).convert("RGB"))) for k, r in enumerate(run.records)}
    side = png[0][0].shape[0]  # 84: the 14-px images enlarged 6x

    def cell(figure, row, col, size):  # the image in a figure's cell, found below its label rows
        arr, top = pixels(figure), 4 + 14 * 1
        y, x = top + 4 + row * (size + 14 + 4), 150 + 4 + col * (size + 4)
        return arr[y : y + size, x : x + size]

    native = Run.load(out).grid(units=["logits:4", 0], cell=0, best=True)
    assert native.size == (150 + 2 * (side + 4) + 4, 18 + 2 * (side + 14 + 4) + 4)
    # record 4 (logits:4, restart 0) was best at step 7 of 8: its best image is not its final one
    assert run.records[4]["best_step"] < 8 and not np.array_equal(png[4][0], png[4][1])
    assert np.array_equal(cell(native, 0, 0, side), png[4][1]) and np.array_equal(cell(native, 1, 0, side), png[0][1])
    final = run.grid(units=["logits:4"], cell=0)  # in memory too, and final images from the tensors
    assert np.array_equal(cell(final, 0, 0, side), png[4][0])
    # the captions say what the images are: the best activations and "best activation" above the row labels
    texts = drawn_texts(lambda: run.grid(units=["logits:4"], best=True))
    assert texts[0] == "best activation" and texts[-2:] == [f"{r['best_activation']:.2f}" for r in run.records[4:6]]
    texts = drawn_texts(lambda: run.grid(units=[2, 0], labels=["two", "zero"]))  # a figure's own row labels
    assert "two" in texts and texts.index("two") < texts.index("zero") and "logits:2" not in texts
    # grid.png's figure is still the default
    assert np.array_equal(pixels(run.grid()), pixels(Image.open(out / "grid.png")))
    for bad, needle in [(lambda: run.grid(units=["logits:9"]), "no unit 'logits:9'"),
                        (lambda: run.grid(units=[]), "names no unit to draw"),
                        (lambda: run.grid(cell=4000), "3 x 2 images at 4000 px would be over 97 Mpx"),
                        (lambda: visualize(tiny_model, "logits:0", tiny_gen, steps=1, progress=False).grid(best=True),
                         "best images are saved in a run's folder only")]:
        with pytest.raises(DgnamError, match=re.escape(needle)):
            bad()
    # the command: rows by address, class name or index, in that order; 'figure.png' in the run by default
    p = dgnam("grid", str(out), "--units", "logits:2,a", "--restarts", "1", "--cell", "0")
    assert p.returncode == 0 and "figure.png" in p.stdout, p.stderr
    fig = Image.open(out / "figure.png")
    assert fig.size == (150 + side + 8, 18 + 2 * (side + 18) + 4)
    assert np.array_equal(cell(fig, 0, 0, side), png[2][0]) and np.array_equal(cell(fig, 1, 0, side), png[0][0])
    one_line_error(dgnam("grid", str(out), "--units", "zz"), "no unit 'zz'", "logits:0")
    one_line_error(dgnam("grid", str(out), "--units", "a", "--labels", "A,B"), "2 row label(s) for 1 row(s)")


def test_a_run_shows_a_table_and_its_grid_as_a_cells_value(tiny_model, tiny_gen, monkeypatch):
    import dgnam.run

    run = visualize(tiny_model, "logits:0,1,2", tiny_gen, restarts=2, steps=3, progress=False)
    page = run._repr_html_()
    assert page.count("<tr>") == 1 + len(run.records) and "<th>activation</th>" in page
    assert "<td>logits:2</td>" in page and "<td>c</td>" in page  # the unit and its class name
    (figure,) = embedded_pngs(page)
    assert np.array_equal(pixels(figure), pixels(run.grid()))
    # a large run: the first records and units inline, said so, and no warning (run.grid() warns when it cuts)
    monkeypatch.setattr(dgnam.run, "DISPLAY_RECORDS", 2)
    monkeypatch.setattr(dgnam.run, "DISPLAY_UNITS", 1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        page = run._repr_html_()
    assert page.count("<tr>") == 1 + 2 and "and 4 more records" in page and "the first 1 of 3 units" in page
    (figure,) = embedded_pngs(page)
    with warnings.catch_warnings():  # a size asked for cuts without a warning
        warnings.simplefilter("error")
        assert np.array_equal(pixels(figure), pixels(run.grid(max_units=1)))
    import dgnam.images

    monkeypatch.setattr(dgnam.images, "GRID_MAX_ROWS", 1)  # the default cutting is said
    with pytest.warns(UserWarning, match=r"run.grid\(\) shows the first 1 of 3 units .* every image is in run.images"):
        assert np.array_equal(pixels(figure), pixels(run.grid()))
    # a run with nothing to draw still shows its table, and says why there is no figure
    assert "<table>" in Run(records=run.records)._repr_html_()


def test_reprs_stay_one_short_line_however_much_they_hold():
    """A Run of 500 records printed about 400 KB; a CodeStats of a 4096-d code and a Chain pages of numbers."""
    from dgnam.facets import Clustering
    from dgnam.ppgn import Chain, Inpainting

    rec = {"unit": "logits:1", "unit_index": 0, "restart": 0, "activation": 1.0, "image": "images/x.png",
           "method": "dgn-am"}
    run = Run(records=[dict(rec, restart=r) for r in range(500)], images=torch.zeros(500, 3, 64, 64),
              codes=torch.zeros(500, 4096))
    assert repr(run) == ("Run(500 records of 1 units, method='dgn-am', images=<tensor 500x3x64x64>, "
                         "codes=<tensor 500x4096>)")
    stats = CodeStats(mean=torch.zeros(4096), std=torch.ones(4096), percentiles={99.0: torch.ones(4096)}, count=7)
    assert repr(stats) == "CodeStats(mean=<tensor 4096>, std=<tensor 4096>, percentiles=<dict of 1 Tensor>, count=7, " \
                          "bounds=None)"
    t = torch.zeros
    chain = Chain(codes=t(2, 50, 4096), images=t(2, 50, 3, 227, 227), steps=torch.arange(50), scores=t(2, 50),
                  segment=torch.zeros(50, dtype=torch.long), score_history=t(2, 200), prior_history=t(2, 200),
                  final_codes=t(2, 4096))
    inp = Inpainting(*(t(4, 3, 227, 227),) * 4, codes=t(4, 4096), score_history=t(4, 21))
    cl = Clustering(*(np.zeros((5000, 50)),) * 6)
    for obj in (chain, inp, cl):
        text = repr(obj)
        assert "\n" not in text and len(text) < 600 and "0., 0." not in text, text
    assert "images=<tensor 2x50x3x227x227>" in repr(chain) and "steps=<int64 tensor 50>" in repr(chain)


def test_run_load_opens_a_run_folder_and_refuses_what_is_not_one(tmp_path, tiny_model, tiny_gen):
    run = visualize(tiny_model, "logits:0,1", tiny_gen, restarts=2, steps=2, out=tmp_path / "r", progress=False)
    loaded = Run.load(tmp_path / "r")
    assert loaded.records == run.records and loaded.images is None and loaded.codes is None
    assert loaded.config == json.loads((tmp_path / "r" / "results.json").read_text())["config"] == run.config
    with_codes = Run.load(tmp_path / "r", codes=True)
    assert torch.equal(with_codes.codes, run.codes) and torch.equal(with_codes.best_codes, run.best_codes)
    # its docstring's start of another run from them (it said init=run.codes, which a run of 2 restarts refuses)
    again = visualize(tiny_model, "logits:0,1", tiny_gen, restarts=2, steps=2, progress=False,
                      init=with_codes.codes[with_codes.best_restarts()])
    assert len(again.records) == 4
    # an unfinished run says so
    doc = json.loads((tmp_path / "r" / "results.json").read_text())
    doc["records"] = doc["records"][:3]
    (tmp_path / "r" / "results.json").write_text(json.dumps(doc))
    assert repr(Run.load(tmp_path / "r")).endswith("; unfinished: 3 of 4)")
    with pytest.raises(DgnamError, match="cannot read .*results.json .*give the folder of a run"):
        Run.load(tmp_path / "nothing")
    # the checks of a resume: a record naming a file outside the folder is refused before anything is read
    doc["records"][0]["image"] = "../../secret.png"
    (tmp_path / "r" / "results.json").write_text(json.dumps(doc))
    with pytest.raises(DgnamError, match="outside the run folder"):
        Run.load(tmp_path / "r")
    (tmp_path / "r" / "results.json").write_text(json.dumps({"config": {}, "records": [{"unit": "logits:0"}]}))
    with pytest.raises(DgnamError, match="records without unit_index, restart, image"):
        Run.load(tmp_path / "r")


class Interrupt(Prior):
    """Ctrl-C (a notebook's stop button) after the ``armed``-th step of the run; no settings of its own, so a resume
    with it disarmed is the same run."""

    armed = 0

    def after_step(self, code, state):
        Interrupt.armed -= 1
        if Interrupt.armed == 0:
            raise KeyboardInterrupt


def test_an_interrupted_visualize_keeps_its_batches_says_how_to_go_on_and_resumes(tmp_path, tiny_model, tiny_gen):
    priors = [*tiny_gen.default_priors(), Interrupt()]
    kw = dict(restarts=2, steps=3, batch_size=2, priors=priors, progress=False)
    whole = visualize(tiny_model, "logits:0,1,2", tiny_gen, **kw)
    tiny_model.train()
    Interrupt.armed = 7  # the first step of the third batch of two
    with pytest.raises(KeyboardInterrupt) as e:
        visualize(tiny_model, "logits:0,1,2", tiny_gen, out=tmp_path / "r", **kw)
    # the model came back as given, and the folder holds the finished batches, unlocked
    assert tiny_model.training and all(p.requires_grad for p in tiny_model.parameters())
    assert repr(Run.load(tmp_path / "r")).endswith("unfinished: 4 of 6)")
    if sys.version_info >= (3, 11):
        (note,) = e.value.__notes__
        assert f"4 of 6 images are saved in {tmp_path / 'r'}" in note and "resume=True continues" in note
    resumed = visualize(tiny_model, "logits:0,1,2", tiny_gen, out=tmp_path / "r", resume=True, **kw)
    assert [r["activation"] for r in resumed.records] == [r["activation"] for r in whole.records]


@NOTES
def test_an_interrupted_call_without_a_folder_says_nothing_was_kept(tiny_model, tiny_gen):
    Interrupt.armed = 4
    with pytest.raises(KeyboardInterrupt) as e:
        visualize(tiny_model, "logits:0,1", tiny_gen, restarts=2, steps=3, batch_size=2,
                  priors=[*tiny_gen.default_priors(), Interrupt()], progress=False)
    (note,) = e.value.__notes__
    assert "after 2 of 4 images, which are not kept without out=" in note


@NOTES
def test_an_interrupted_chain_names_where_its_checkpoint_holds_it(tmp_path, tiny_model, tiny_gen):
    from dgnam.ppgn import ClassCondition, PPGNConfig, sample

    cfg = PPGNConfig(steps=9, burn_in=1)

    def stop(t):
        if t == 7:
            raise KeyboardInterrupt

    for checkpoint, said in ((None, "nothing is kept without checkpoint=FILE"),
                             (tmp_path / "c.ckpt", f"{tmp_path / 'c.ckpt'} holds the chain at iteration 6: the same "
                                                   f"call continues")):
        with pytest.raises(KeyboardInterrupt) as e:
            sample(tiny_gen, None, ClassCondition(tiny_model, [1]), 1, cfg, on_step=stop, checkpoint=checkpoint,
                   checkpoint_every=3)
        (note,) = e.value.__notes__
        assert "interrupted at iteration 7 of 9" in note and said in note


def test_chains_and_inpaintings_show_their_images(tiny_model, tiny_gen):
    from dgnam.imagespace import to_uint8
    from dgnam.images import wrapped_grid
    from dgnam.ppgn import ClassCondition, PPGNConfig, hole_mask, inpaint, sample

    from test_facets import TinyEncoder

    chain = sample(tiny_gen, None, ClassCondition(tiny_model, [1]), 2, PPGNConfig(steps=13, burn_in=1))
    assert chain.space == tiny_gen.space
    figure = Image.open(io.BytesIO(chain._repr_png_()))
    # the figure `dgnam sample` writes as samples.png: twelve samples in rows of ten, each the image decoded
    want = wrapped_grid(to_uint8(chain.images[0], tiny_gen.space),
                        [f"{int(t)}:{float(s):.2f}" for t, s in zip(chain.steps, chain.scores[0])])
    assert figure.size == want.size == (10 * 100 + 4, 2 * (96 + 14 + 4) + 4)
    assert np.array_equal(pixels(figure), pixels(want))
    assert not np.array_equal(pixels(chain.grid(1)), pixels(figure))  # the other chain
    images = SPACE.encode(torch.rand(2, 1, 12, 12, generator=torch.Generator().manual_seed(0)))
    res = inpaint(tiny_gen, None, ClassCondition(tiny_model, [0, 1]), images, hole_mask((12, 12), (3, 4, 5, 4)),
                  TinyEncoder(), "code", SPACE, PPGNConfig(steps=2))
    assert res.space == SPACE and Image.open(io.BytesIO(res._repr_png_())).size == (4 + 4 * 100, 18 + 2 * 100 + 4)
    res.space = None
    with pytest.raises(DgnamError, match="does not say its images' space"):
        res.grid()


def test_facets_show_their_run_under_the_fidelity(tiny_model, tiny_gen):
    from dgnam.facets import FacetConfig, facets

    from test_facets import TinyEncoder, pattern_images

    cfg = FacetConfig(k=2, top_fraction=0.5, reduce="pca", center_images=3, top_real=2)
    f = facets(tiny_model, "logits:0", pattern_images(), tiny_gen, cfg, encoder=(TinyEncoder().eval(), "code"),
               steps=2, progress=False)
    page = f._repr_html_()
    assert f"fidelity {f.fidelity:.2f}" in page and "<th>facet</th><th>nearest_facet</th>" in page
    assert len(embedded_pngs(page)) == 1 and len(repr(f)) < 1500 and "\n" not in repr(f)


@NOTES
@pytest.mark.parametrize("folder", [False, True])
def test_an_interrupted_facets_call_says_only_what_facets_does(tmp_path, tiny_model, tiny_gen, folder):
    """facets runs visualize inside, but cannot resume: without out= the note of visualize ("pass out=FOLDER ...
    resume=True then continues the run") came first, advice that facets does not take."""
    from dgnam.facets import FacetConfig, facets

    from test_facets import TinyEncoder, pattern_images

    Interrupt.armed = 1
    cfg = FacetConfig(k=2, top_fraction=0.5, reduce="pca", center_images=3, top_real=2)
    with pytest.raises(KeyboardInterrupt) as e:
        facets(tiny_model, "logits:0", pattern_images(), tiny_gen, cfg, encoder=(TinyEncoder().eval(), "code"),
               steps=2, priors=[*tiny_gen.default_priors(), Interrupt()], out=tmp_path / "f" if folder else None,
               progress=False)
    (note,) = e.value.__notes__
    assert note.startswith("facets was interrupted") and "resume" not in note


@NOTES
def test_an_interrupted_demo_says_it_starts_over(tmp_path, monkeypatch):
    """run_demo has no resume (it replaces its runs when run again): visualize's note ("the same call with
    resume=True continues the run") was wrong for it."""
    import dgnam.demo as demo
    from dgnam.run import visualize as run_visualize

    def interrupted_visualize(*args, priors=(), **kw):
        Interrupt.armed = 1
        return run_visualize(*args, priors=[*priors, Interrupt()], **kw)

    monkeypatch.setattr(demo, "visualize", interrupted_visualize)
    with pytest.raises(KeyboardInterrupt) as e:
        demo.run_demo(tmp_path / "demo", restarts=1, steps=1, progress=False)
    (note,) = e.value.__notes__
    assert note.startswith("the demo was interrupted") and "resume" not in note
