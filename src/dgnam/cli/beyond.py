"""Beyond one image per unit: ``dgnam facets``, ``dgnam sample`` (PPGN-h), ``dgnam inpaint`` and ``dgnam train dae``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable, Optional

import typer

from ..atomic import write_json_atomic
from ..display import counted
from ..defaults import CHECKPOINT_EVERY, MAX_FACET_SEED
from ..errors import DgnamError
from ..images import save_image
from . import SYNTHESIZE, app, train_app
from .codes import read_image
from .common import (DATA_HELP, LIMIT_HELP, MODEL_HELP, arch_help, dataset_arg, declared_space, device_arg,
                     device_option, generator_arg, hold_lock, image_file_arg, model_arg, out_folder_arg, print_table,
                     seed_option, writable_folder)


def _encoder_for(generator_spec: str, generator_arch: Optional[str], net, encoder: Optional[str],
                 layer: Optional[str], encoder_arch: Optional[str] = None):
    """The model and layer whose codes the generator inverts: given, else what the generator's card says (a file
    that `dgnam train generator` wrote has ``NAME.json`` beside it), else its zoo entry's, or its architecture's (the
    target itself when it is that encoder)."""
    from ..zoo.registry import check_recorded_spec, is_zoo_model, model_weights_sha256

    recorded = None  # the SHA-256 of the encoder weights the card says the generator inverts
    if encoder is None or layer is None:
        known = _inverts(generator_spec, generator_arch)
        if known is None:
            raise DgnamError(f"which layer does {generator_spec} invert? pass --encoder MODEL --encoder-layer LAYER")
        if encoder is None:
            encoder, encoder_arch = known[0], encoder_arch or known[2]
            # a generator's card is a shared file: a factory it names is not imported (zoo entries name zoo models)
            check_recorded_spec(encoder, encoder_arch, f"the card beside {generator_spec} names",
                                "--encoder {spec} --encoder-layer LAYER")
            recorded = inverts_sha256(generator_spec)
        layer = layer or known[1]
    if encoder_arch is None and is_zoo_model(net, encoder):  # the target is that zoo model (not a file of its name)
        return net, layer
    enc = model_arg(encoder, encoder_arch, flag="--encoder")
    if recorded is not None and model_weights_sha256(enc) not in (None, recorded):
        raise DgnamError(f"{encoder}, the encoder the card beside {generator_spec} names, has other weights now than "
                         f"the ones {generator_spec} was trained to invert (retrained or replaced): pass --encoder "
                         f"with those weights, or train the generator again")
    return enc, layer


def inverts_sha256(generator_spec: str) -> str | None:
    """The SHA-256 of the encoder weights a generator was trained to invert, as `dgnam train generator` records it in
    the card beside the file (``inverts.weights_sha256``); ``None`` when it is not recorded."""
    from ..zoo.files import card_encoder_sha256

    return card_encoder_sha256(Path(generator_spec)) if Path(generator_spec).is_file() else None


def _inverts(generator_spec: str, generator_arch: Optional[str]) -> tuple[str, str, Optional[str]] | None:
    """(encoder, layer, encoder's architecture) a generator inverts, from its card beside a weights file, else a zoo
    entry. An encoder loaded from a file or factory is named by its ``source`` in the card (the file with its
    architecture), a zoo encoder by its name."""
    from ..zoo import get_entry
    from ..zoo.files import card_beside

    if Path(generator_spec).is_file():
        inv = card_beside(Path(generator_spec)).get("inverts")
        if isinstance(inv, dict) and inv.get("encoder") and inv.get("layer"):
            src = inv.get("source")
            if isinstance(src, dict) and src.get("spec"):
                return str(src["spec"]), inv["layer"], src.get("arch")
            return inv["encoder"], inv["layer"], None
    for name in (generator_spec, generator_arch):
        try:
            entry = get_entry(name) if name else None
        except DgnamError:
            entry = None
        if entry is not None and entry.encoder is not None:
            return entry.encoder, entry.encoder_layer, None
    return None


#: Where `dgnam sample` keeps its chain's state while it runs (``--resume`` continues from it).
CHAIN_CHECKPOINT = "chain-checkpoint.pt"

#: ``--dae`` of `dgnam sample` and `dgnam inpaint`.
DAE_HELP = ("code DAE: a zoo DAE (`dgnam models --kind dae`) or a .safetensors file from `dgnam train dae`; default: "
            "fmnist-dae-fc6")


def _dae_source(dae: Optional[str]) -> str:
    """How results.json names the DAE: a file by its absolute path, a zoo DAE by its name."""
    from ..ppgn import ZOO_DAE

    if dae is None:
        return ZOO_DAE
    return str(Path(dae).resolve()) if Path(dae).is_file() else dae


#: Below this facet fidelity, `dgnam facets` says why most facet images left their facet and what to try.
FIDELITY_HINT_BELOW = 0.5


def _code_prior(kind: str, dae: Optional[str], gen, encoder_for: Callable[[], tuple], generator_spec: str,
                generator_arch: Optional[str]):
    """PPGN's prior on codes: the trained DAE (``dae``: a zoo DAE or a file, the issue's PPGN-h) or the released
    code's ``E(G(h))`` (``joint``: the generator and the encoder it inverts, which ``encoder_for()`` returns with its
    layer). A zoo DAE denoises the codes of its entry's encoder layer (the default, fmnist-cnn's fc6): another
    generator's codes need their own (a DAE of another encoder's fc6 has the same size, so nothing else would
    notice)."""
    from ..ppgn import ZOO_DAE, JointPrior, load_dae
    from ..zoo import get_entry, list_models

    if kind == "dae":
        name = dae or ZOO_DAE
        if not Path(name).is_file() and name in list_models(kind="dae"):
            e = get_entry(name)
            if _inverts(generator_spec, generator_arch) != (e.encoder, e.encoder_layer, None):
                what = f"the embedded code DAE ({name})" if dae is None else f"the code DAE {name}"
                raise DgnamError(f"{what} denoises {e.encoder} {e.encoder_layer} codes, not those of "
                                 f"{generator_spec}: pass --dae FILE (`dgnam train dae --encoder ENCODER --layer "
                                 f"LAYER`) or --prior joint")
        if Path(name).is_file():
            _check_dae_encoder(Path(name), generator_spec, generator_arch)
        return load_dae(name)
    if kind == "none":  # eps1 = 0: a generator without an encoder (a GAN's) has no codes of real images to learn from
        if dae is not None:
            raise DgnamError("--dae sets the trained prior: drop it with --prior none")
        return None
    if kind != "joint":
        raise DgnamError(f"--prior {kind!r}: use dae (a trained code DAE), joint (the released E(G(h))) or none (no "
                         f"prior term, for a generator without an encoder such as a GAN)")
    if dae is not None:
        raise DgnamError("--dae sets the trained prior: drop it with --prior joint")
    return JointPrior(gen, *encoder_for())


def _dae_encoder(card: dict) -> tuple[str, Optional[str], Optional[str]] | None:
    """(encoder, its architecture, its weights' SHA-256) whose codes a `dgnam train dae` file denoises, from its card:
    the file or factory it was loaded from (``codes.source``), else a zoo name; ``None`` when the card does not say
    (an older card naming a file by the path it was given, relative to a folder unknown here)."""
    from ..zoo import list_models
    from ..zoo.registry import is_weights_file

    codes = card.get("codes")
    if not isinstance(codes, dict):
        return None
    sha = codes.get("weights_sha256") if isinstance(codes.get("weights_sha256"), str) else None
    src = codes.get("source")
    if isinstance(src, dict) and isinstance(src.get("spec"), str) and src["spec"]:
        return src["spec"], src.get("arch"), sha
    enc = codes.get("encoder")
    if isinstance(enc, str) and enc in list_models() and not is_weights_file(enc):
        return enc, None, sha
    return None


def _check_dae_encoder(dae: Path, generator_spec: str, generator_arch: Optional[str]) -> None:
    """A code DAE file must denoise the codes of the encoder the generator inverts. Its card names that encoder, but
    only the layer was compared: a DAE of fmnist-cnn's fc6 ran as the prior of a generator of another network's fc6
    (the same size) without a word, while the embedded DAE is refused there."""
    from ..zoo.files import card_beside

    have, want = _dae_encoder(card_beside(dae)), _inverts(generator_spec, generator_arch)
    if have is None or want is None:
        return
    same = have[0] == want[0] and (have[1] or None) == (want[2] or None)
    recorded = inverts_sha256(generator_spec)
    if same and not (have[2] and recorded and have[2] != recorded):
        return
    other = "" if not same else "other weights of "
    raise DgnamError(f"the code DAE {dae} denoises codes of {other}{have[0]}, not of the encoder {generator_spec} "
                     f"inverts ({want[0]} {want[1]}): pass the DAE of that encoder (`dgnam train dae --encoder "
                     f"{want[0]}{f' --encoder-arch {want[2]}' if want[2] else ''} --layer {want[1]}`) or --prior joint")


@app.command(rich_help_panel=SYNTHESIZE)
def facets(
    ctx: typer.Context,
    model: str = typer.Option(..., help=MODEL_HELP),
    unit: str = typer.Option(..., help="one unit, e.g. 'logits:Sandal', 'fc6:12'"),
    data: Optional[str] = typer.Option(None, help=DATA_HELP),
    split: str = typer.Option("train", help="train or test: Fashion-MNIST's, or a folder's train/ or test/ (a "
                                            "plain image folder has no test images of its own)"),
    limit: Optional[int] = typer.Option(None, help=LIMIT_HELP),
    k: int = typer.Option(10, help="number of facets"),
    top_fraction: float = typer.Option(0.02, help="fraction of the images that excite the unit most to cluster"),
    generator: Optional[str] = typer.Option(None, help="generator for DGN-AM from each facet's mean code; none = "
                                                       "the paper's pixel method (mean image, centre bias)"),
    embed_layer: Optional[str] = typer.Option(None, help="layer whose features are clustered (default: the deepest "
                                                         "1-D layer before the output, fc6 for fmnist-cnn, a global "
                                                         "pool such as a ResNet's avgpool counting as 1-D)"),
    reduce: str = typer.Option("tsne", help="tsne (PCA 50 then t-SNE 2-D, the paper), umap (PCA 50 then UMAP 2-D; "
                                            "needs umap-learn, the extra umap of dgnam) or pca"),  # no [...]: rich markup drops it
    center_images: int = typer.Option(15, help="real images nearest each centroid averaged into its start"),
    steps: Optional[int] = typer.Option(None, help="iterations (default: the method's; DGN-AM 200)"),
    lr_start: Optional[float] = typer.Option(None, "--lr", "--lr-start",
                                             help="starting step size, as visualize's --lr (default: the method's; "
                                                  "DGN-AM 8, which moves far from the facet's start in a few steps)"),
    facet_weight: float = typer.Option(0.0, help="weight of the facet term (faceted feature visualization, Goh et "
                                                 "al. 2021): also pull each image towards its facet's centre; 0 = "
                                                 "the paper's method, tied to the facet only by its start"),
    relu_gradient: str = typer.Option("pre", help="a unit at a ReLU's output follows the gradient of the ReLU's "
                                                  "input (pre, as released) or goes through the ReLU (exact)"),
    seed: int = seed_option(MAX_FACET_SEED),
    device: str = device_option("the model and the generator run"),
    out: Path = typer.Option(Path("runs/facets"), help="run directory"),
    encoder: Optional[str] = typer.Option(None, help="model whose layer the generator inverts (default: its card's or "
                                                     "zoo entry's)"),
    encoder_layer: Optional[str] = typer.Option(None),
    encoder_arch: Optional[str] = typer.Option(None, help=arch_help("--encoder")),
    arch: Optional[str] = typer.Option(None, help=arch_help("--model")),
    generator_arch: Optional[str] = typer.Option(None, help=arch_help("--generator")),
    code_stats: Optional[Path] = typer.Option(None, help="the generator's code bounds (CodeStats .safetensors or "
                                                         "act_range .txt)"),
) -> None:
    """Multifaceted visualization: cluster the images that excite UNIT most and synthesize one image per facet.

    Writes OUT/facets.png (each facet's synthetic image beside its top real images), embedding.png, the images,
    codes and results.json (records as in `dgnam visualize`, with each facet's fields).
    """
    from ..facets import FacetConfig, facets as run_facets
    from ..run import check_fresh_dir
    from ..units import check_relu_gradient

    dev = device_arg(device)
    net = model_arg(model, arch)
    space = declared_space(net, model, "facets")
    gen = generator_arg(generator, generator_arch, code_stats)
    if lr_start is not None and not lr_start > 0:
        raise DgnamError(f"--lr/--lr-start must be positive, got {lr_start}")
    check_relu_gradient(relu_gradient, "--relu-gradient")
    check_fresh_dir(hold_lock(ctx, writable_folder(out), "facets"))  # before the data are read and clustered
    enc = (_encoder_for(generator, generator_arch, net, encoder, encoder_layer, encoder_arch)
           if gen is not None else None)
    ds = dataset_arg(data, split, space)  # a plain folder's --split test: refused, as by code-stats
    x, _ = ds.tensors(limit)
    cfg = FacetConfig(k=k, top_fraction=top_fraction, embed_layer=embed_layer, reduce=reduce,
                      center_images=center_images, seed=seed)
    am = None
    if lr_start is not None or relu_gradient != "pre":
        from ..generators import PixelGenerator
        from ..optimize import AMConfig

        base = gen.default_config() if gen is not None else PixelGenerator(space).default_config()
        am = AMConfig(**{**base.to_dict(), **({} if lr_start is None else {"lr_start": lr_start}),
                         "relu_gradient": relu_gradient})
    f = run_facets(net, unit, x, gen, cfg, encoder=enc, steps=steps, am_config=am, facet_weight=facet_weight,
                   device=dev, out=out)
    # which real images: an image folder's records name them by file (relative to --data), not only by row
    files = ([str((ds.root / f).relative_to(Path(data))) for f in ds.files(limit)] if hasattr(ds, "files") else None)
    _record_real_images(out, {"data": data or "fashion-mnist", "split": split, "limit": limit}, files)
    print_table(f.run.records, ["facet", "facet_size", "top_activation", "activation", "nearest_facet", "image"],
                title=f"{f.unit.address}: {len(f.indices)} images, {k} facets in {f.embed_layer}")
    typer.echo(f"facet fidelity {f.fidelity:.2f} (synthetic image nearest its own facet's centre); "
               f"wrote {out}/facets.png and {out}/results.json")
    if f.fidelity < FIDELITY_HINT_BELOW and facet_weight == 0:
        typer.echo(f"note: the {k} images lie nearest to only {len(set(f.nearest))} of the {k} facet centres. "
                   f"Activation maximization tends to climb to the same optimum from every facet's start (README, "
                   f"Multifaceted visualization); --facet-weight 10 also pulls each image towards its own facet",
                   err=True)


def _record_real_images(out: Path, source: dict, files: Optional[list[str]]) -> None:
    """Say in a facets run's results.json which real images it clustered (``config.real_images``: --data, --split,
    --limit) and, for an image folder, add ``top_files`` and ``init_files`` (paths under --data) beside the row
    indices of its records: with ``--limit`` the rows are a per-class sample of the folder, which indices alone do
    not identify."""
    doc = json.loads((out / "results.json").read_text())
    doc["config"]["real_images"] = source
    for rec in doc["records"] if files is not None else []:
        rec["top_files"] = [files[i] for i in rec.get("top_images", [])]
        rec["init_files"] = [files[i] for i in rec.get("init_images", [])]
    write_json_atomic(out / "results.json", doc)


@app.command(rich_help_panel=SYNTHESIZE)
def sample(
    ctx: typer.Context,
    cls: Optional[list[str]] = typer.Option(None, "--class", help="class (index or name); repeat to move the chain "
                                                                  "from one class to the next"),
    unit: Optional[str] = typer.Option(None, help="a hidden unit to condition on instead of a class "
                                                  "(published: 1000 iterations, reset every 100)"),
    n: int = typer.Option(50, help="samples to keep per class (evenly spaced along the chain after burn-in)"),
    model: str = typer.Option("fmnist-cnn", help="the condition network"),
    generator: str = typer.Option("fmnist-g-fc6"),
    generator_arch: Optional[str] = typer.Option(None, help=arch_help("--generator")),
    code_stats: Optional[Path] = typer.Option(None, help="the generator's code bounds (CodeStats .safetensors or "
                                                         "act_range .txt)"),
    dae: Optional[str] = typer.Option(None, help=DAE_HELP),
    prior: str = typer.Option("dae", help="prior on the code: dae (the trained DAE, R(h) - h), joint (the released "
                                          "code's E(G(h)) - h) or none (eps1 = 0: a generator without an encoder)"),
    encoder: Optional[str] = typer.Option(None, help="with --prior joint: the model whose layer the generator inverts "
                                                     "(default: its zoo entry's)"),
    encoder_layer: Optional[str] = typer.Option(None),
    encoder_arch: Optional[str] = typer.Option(None, help=arch_help("--encoder")),
    arch: Optional[str] = typer.Option(None, help=arch_help("--model")),
    steps: Optional[int] = typer.Option(None, help="iterations per class (default 200; 1000 for --unit)"),
    burn_in: Optional[int] = typer.Option(None, help="iterations before the first kept sample (default steps // 4)"),
    eps1: float = typer.Option(1e-5, help="weight of the DAE prior R(h) - h (published 1e-5)"),
    eps2: float = typer.Option(1.0, help="weight of the condition gradient (published 1)"),
    eps3: float = typer.Option(1e-17, help="noise std (published 1e-17)"),
    lr: float = typer.Option(1.0, help="step size of the normalized update (published 1)"),
    lr_end: Optional[float] = typer.Option(None, help="let the step size fall linearly to this (default: constant)"),
    class_score: str = typer.Option("log_prob", help="class gradient: log_prob (the paper's), logit, or released "
                                                     "((1 - p) d logit, what the released code back-propagates)"),
    reset_every: Optional[int] = typer.Option(None, help="restart from N(0, 1) every so many iterations "
                                                         "(default: 0 for a class, 100 for --unit)"),
    relu_gradient: str = typer.Option("pre", help="a --unit at a ReLU's output follows the gradient of the ReLU's "
                                                  "input (pre, as released) or goes through the ReLU (exact)"),
    seed: int = seed_option(),
    device: str = device_option("the sampler runs"),
    out: Path = typer.Option(Path("runs/sample"), help="output folder"),
    overwrite: bool = typer.Option(False, help="replace the samples of an earlier run in --out"),
    resume: bool = typer.Option(False, help=f"continue a chain that was killed: it writes its state to "
                                            f"OUT/{CHAIN_CHECKPOINT} every {CHECKPOINT_EVERY} iterations"),
) -> None:
    """PPGN-h: sample many images of a class (or a unit) from one Markov chain on the generator's code."""
    from ..ppgn import (PPGN_CLASS_STEPS, PPGN_UNIT_RESET_EVERY, PPGN_UNIT_STEPS, ClassCondition,
                        PPGNConfig, UnitCondition, class_indices, sample as run_sample, save_samples)
    from ..run import foreign_entries, listed, run_file
    from ..units import check_relu_gradient, parse_units

    if bool(cls) == bool(unit):
        raise DgnamError("give --class C (repeatable) or --unit LAYER:CH, not both and not neither")
    ckpt = hold_lock(ctx, out_folder_arg(out), "sample") / CHAIN_CHECKPOINT  # OUT is this command's until it ends
    if resume and not ckpt.exists():
        done = " (its run is complete)" if (out / "results.json").exists() else ""
        raise DgnamError(f"{out} holds no interrupted chain to resume{done}: drop --resume")
    if ckpt.exists() and not resume and not overwrite:
        raise DgnamError(f"{out} holds a chain that was interrupted: pass --resume to continue it (with the same "
                         f"settings), or --overwrite to start over")
    if (out / "results.json").exists():
        try:
            method = (json.loads((out / "results.json").read_text()).get("config") or {}).get("method")
        except (OSError, ValueError, AttributeError):
            method = None
        if method != "ppgn-h":  # --overwrite would leave the other run's images and grid beside the samples
            raise DgnamError(f"{out} holds {f'a {method} run' if method else 'another command'}'s results, not "
                             f"samples: choose another --out")
        if not overwrite and not resume:
            raise DgnamError(f"{out} already holds samples: choose another --out, or pass --overwrite to replace "
                             f"them")
    elif not ckpt.exists() and out.is_dir():
        # no run and no chain: whatever is there is someone else's, and the samples would be merged into it
        others = foreign_entries(out)
        if others:
            raise DgnamError(f"{out} holds files that are no sample run's ({listed(others)}): choose another --out")
    if (out / "images").exists():  # --overwrite deletes the earlier samples there: not in a folder linked elsewhere
        run_file(out, "images", named_by=f"{out} has", folder=True)
    if unit is not None and len(parse_units(unit)) != 1:
        raise DgnamError(f"--unit {unit!r}: one unit per chain (run once per unit)")
    dev = device_arg(device)
    net = model_arg(model, arch).to(dev)
    declared_space(net, model, "sample")  # (refused in one line without it: the conditions read images in it)
    gen = generator_arg(generator, generator_arch, code_stats)
    if gen is None:
        raise DgnamError("PPGN samples a learned generator's code: pass --generator (e.g. fmnist-g-fc6)")
    gen = gen.to(dev)
    R = _code_prior(prior, dae, gen, lambda: _encoder_for(generator, generator_arch, net, encoder, encoder_layer,
                                                          encoder_arch), generator, generator_arch)
    R = None if R is None else R.to(dev)
    for m in (net, gen) if R is None else (net, gen, R):
        for p in m.parameters():
            p.requires_grad_(False)
    check_relu_gradient(relu_gradient, "--relu-gradient")
    if cls and relu_gradient != "pre":  # a class's logit is no ReLU's output: the option would do nothing
        raise DgnamError("--relu-gradient is how a --unit at a ReLU's output is differentiated: drop it with --class")
    if cls:
        idx = class_indices(net, cls)
        conds = [ClassCondition(net, [c], score=class_score) for c in idx]
        default_steps, default_reset = PPGN_CLASS_STEPS, 0
    else:
        conds = [UnitCondition(net, unit, relu_gradient=relu_gradient)]  # it parses and checks the unit
        default_steps, default_reset = PPGN_UNIT_STEPS, PPGN_UNIT_RESET_EVERY
    cfg = PPGNConfig.for_samples(n, steps=default_steps if steps is None else steps, burn_in=burn_in, eps1=eps1, eps2=eps2, eps3=eps3,
                                 lr=lr, lr_end=lr_end,
                                 reset_every=default_reset if reset_every is None else reset_every, seed=seed)
    writable_folder(out)  # before the chain runs
    if not resume:
        ckpt.unlink(missing_ok=True)  # --overwrite: an interrupted chain of the run being replaced
    chain = run_sample(gen, R, conds, 1, cfg, progress=True, checkpoint=ckpt)
    # the run as the library writes it (staged, moved in complete); an earlier run's samples and its evaluation must
    # not linger beside the new ones (only with --overwrite is there an earlier run)
    records = save_samples(chain, out, conds, gen, R, model_name=getattr(net, "zoo_name", model),
                           generator_name=generator, dae_source=_dae_source(dae), replace=overwrite or resume)
    ckpt.unlink(missing_ok=True)  # the samples are saved
    print_table(records[:: max(1, len(records) // 10)], ["sample", "step", "condition", "probability" if cls else "score"])
    typer.echo(f"wrote {counted(len(records), 'sample')} to {out}/samples.png (captions: iteration:{'p(class)' if cls else 'score'})")


@app.command(rich_help_panel=SYNTHESIZE)
def inpaint(
    image: str = typer.Argument(..., help="an image file, or test:INDEX / train:INDEX for a Fashion-MNIST image"),
    mask: Optional[str] = typer.Option(None, help="the hole x,y,w,h in pixels of IMAGE (scaled with it to the "
                                                  "model's input; default: the released 100/227 of the side, "
                                                  "centred)"),
    cls: str = typer.Option(..., "--class", help="class the filled-in content should have (index or name)"),
    model: str = typer.Option("fmnist-cnn", help="the condition network (its input space is the image's)"),
    generator: str = typer.Option("fmnist-g-fc6"),
    generator_arch: Optional[str] = typer.Option(None, help=arch_help("--generator")),
    code_stats: Optional[Path] = typer.Option(None, help="the generator's code bounds (CodeStats .safetensors or "
                                                         "act_range .txt)"),
    dae: Optional[str] = typer.Option(None, help=DAE_HELP),
    prior: str = typer.Option("dae", help="prior on the code: dae (trained), joint (the released E(G(h)) - h) or none"),
    encoder: Optional[str] = typer.Option(None, help="model whose layer the generator inverts (default: its zoo entry's)"),
    encoder_layer: Optional[str] = typer.Option(None),
    encoder_arch: Optional[str] = typer.Option(None, help=arch_help("--encoder")),
    arch: Optional[str] = typer.Option(None, help=arch_help("--model")),
    steps: int = typer.Option(21, help="iterations (released inpainting: 21, i.e. n_iters = 20)"),
    eps1: float = typer.Option(1e-5),
    eps2: float = typer.Option(1.0),
    eps3: float = typer.Option(0.0, help="noise std (released inpainting: 0)"),
    eps4: float = typer.Option(1e-9, help="weight of the context term (released 1e-9)"),
    lr: float = typer.Option(1.0),
    lr_end: Optional[float] = typer.Option(1e-32, help="the step size falls linearly from --lr to this (released "
                                                       "1e-32); give --lr-end equal to --lr for a constant step"),
    class_score: str = typer.Option("log_prob", help="class gradient: log_prob, logit or released"),
    seed: int = seed_option(),
    device: str = device_option("the inpainting runs"),
    out: Path = typer.Option(Path("inpaint.png"), help="PNG of three panels: masked, result, original"),
    filled: Optional[Path] = typer.Option(None, help="IMAGE at its own size with only the hole replaced (default: "
                                                     "OUT's name + '-filled', e.g. inpaint-filled.png)"),
) -> None:
    """PPGN inpainting: fill a hole in IMAGE with generated content of class C that fits the pixels around it.

    Writes OUT (masked | result | original at the model's size) and FILLED: IMAGE at its own size, every pixel outside
    the hole as it was, the hole filled with the result resized to IMAGE's size."""
    import torch

    from ..imagespace import to_uint8
    from ..images import grid, paste_inside, save_png
    from ..ppgn import (ClassCondition, PPGNConfig, class_indices, hole_mask, inpaint as run_inpaint, parse_box,
                        scale_box)

    out = image_file_arg(out, "--out", "inpaint.png")
    filled = image_file_arg(filled or out.with_name(f"{out.stem}-filled{out.suffix}"), "--filled", "filled.png")
    if filled.resolve() == out.resolve():
        raise DgnamError(f"--filled {filled} is --out too: give them different names")
    dev = device_arg(device)
    net = model_arg(model, arch).to(dev)
    space = declared_space(net, model, "inpaint")
    gen = generator_arg(generator, generator_arch, code_stats)
    if gen is None:
        raise DgnamError("inpainting needs a learned generator: pass --generator (e.g. fmnist-g-fc6)")
    gen = gen.to(dev)
    enc, layer = _encoder_for(generator, generator_arch, net, encoder, encoder_layer, encoder_arch)
    x, original = read_image(image, space)
    size = original.shape[:2]
    box = scale_box(parse_box(mask), size, space.size, f"image {image}") if mask else None
    m = hole_mask(space.size, box)
    # the hole at IMAGE's own size: the given box, or the default hole (model pixels) scaled up with the image
    inside = (hole_mask(size, parse_box(mask)) if mask
              else torch.nn.functional.interpolate(m, size=size, mode="nearest"))[0, 0].bool().numpy()
    (c,) = class_indices(net, [cls])
    cond = ClassCondition(net, [c], score=class_score)
    cfg = PPGNConfig(steps=steps, eps1=eps1, eps2=eps2, eps3=eps3, eps4=eps4, lr=lr, lr_end=lr_end, seed=seed)
    R = _code_prior(prior, dae, gen, lambda: (enc, layer), generator, generator_arch)
    R = None if R is None else R.to(dev)
    res = run_inpaint(gen, R, cond, x, m, enc.to(dev), layer, space, cfg)
    p_masked = float(cond.probs(res.masked.to(dev), space))
    p_result = float(cond.probs(res.result.to(dev), space))
    row = [to_uint8(t, space)[0] for t in (res.masked, res.result, x)]
    name = net.classes[c] if getattr(net, "classes", None) else str(c)
    out.parent.mkdir(parents=True, exist_ok=True)
    save_image(grid([row], col_labels=["masked", f"result ({name})", "original"],
                    cell_labels=[[f"p={p_masked:.2f}", f"p={p_result:.2f}", ""]], cell=112), out)
    filled.parent.mkdir(parents=True, exist_ok=True)
    save_png(paste_inside(original, to_uint8(res.generated, space)[0], inside), filled)
    typer.echo(f"p({name}): masked {p_masked:.3f} -> inpainted {p_result:.3f}; wrote {out} and {filled} "
               f"({size[1]}x{size[0]})")


@train_app.command("dae")
def train_dae_cmd(
    encoder: str = typer.Option("fmnist-cnn", help="the model whose layer the generator inverts"),
    layer: str = typer.Option("fc6", help="the code layer"),
    name: Optional[str] = typer.Option(None, help="name of the trained model (default: fmnist-dae-fc6 for "
                                       "fmnist-cnn's fc6 codes, as the zoo's; else dae-LAYER)"),
    data: Optional[str] = typer.Option(None, help=DATA_HELP),
    epochs: int = typer.Option(30),
    batch_size: int = typer.Option(256),
    lr: float = typer.Option(1e-3),
    noise: float = typer.Option(1.0, help="std of the Gaussian noise added to codes"),
    hidden: int = typer.Option(512),
    layers: int = typer.Option(2, help="hidden layers"),
    limit: Optional[int] = typer.Option(None, help=LIMIT_HELP),
    seed: int = seed_option(),
    out: Path = typer.Option(Path("checkpoints"), help="folder for weights, card and the resumable checkpoint"),
    device: str = device_option("the encoder and the training run"),
    fresh: bool = typer.Option(False, help="ignore an existing checkpoint instead of resuming from it"),
    encoder_arch: Optional[str] = typer.Option(None, help=arch_help("--encoder")),
) -> None:
    """Train PPGN-h's code prior: a denoising autoencoder on LAYER codes of real images; resumable."""
    import torch

    from ..ppgn import ZOO_DAE
    from ..train.dae import DAEConfig, train_dae
    from ..units import encode
    from ..zoo.registry import model_weights_sha256
    from .train import default_name, train_test

    name = name or default_name(ZOO_DAE, encoder, encoder_arch, layer, "dae")

    cfg = DAEConfig(epochs=epochs, batch_size=batch_size, lr=lr, noise_std=noise, hidden=hidden, layers=layers,
                    seed=seed, device=str(device_arg(device)))
    cfg.validate()  # before the images are encoded
    enc = model_arg(encoder, encoder_arch, flag="--encoder")
    space = declared_space(enc, encoder, "train dae")
    (x_tr, _), (x_te, _), _, test_name = train_test(data, space.size, space.channels, seed, limit, 2000)
    cfg.check_count(len(x_tr))  # before the images are encoded, and before the note: a refusal is one line
    writable = writable_folder(out)
    typer.echo(f"encoding {len(x_tr)} + {len(x_te)} images with {encoder} {layer} ...", err=True)
    c_tr, c_te = encode(enc, layer, space.encode(x_tr)), encode(enc, layer, space.encode(x_te))
    torch.manual_seed(seed)
    # the encoder as a generator's card names it (its file and architecture, or its factory; the weights' SHA-256),
    # so that `sample` and `inpaint` check the DAE against the encoder their generator inverts
    sha = model_weights_sha256(enc)
    who = {**({"source": enc.dgnam_source} if getattr(enc, "dgnam_source", None) else {}),
           **({"weights_sha256": sha} if sha else {})}
    card = train_dae(c_tr, c_te, writable, name, cfg, resume=not fresh,
                     source={"encoder": encoder, **who, "layer": layer, "data": data or "fashion-mnist",
                             "images": len(x_tr), "test": test_name})
    mtr = card["metrics"]
    typer.echo(f"{name}: denoising MSE {mtr['denoise_mse']:.4f} (noisy input {mtr['noisy_input_mse']:.4f}) in "
               f"{card['training_seconds']:.0f} s -> {out}/{name}.safetensors")
