"""``dgnam visualize``, ``layers``, ``models``, ``priors``."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Optional

import typer

from ..errors import DgnamError
from . import SYNTHESIZE, MODELS, app
from .common import (MODEL_HELP, arch_help, device_arg, device_option, generator_arg, model_arg, out_folder_arg,
                     print_table, seed_option, space_arg)


@app.command(rich_help_panel=SYNTHESIZE)
def visualize(
    model: str = typer.Option(..., help=MODEL_HELP),
    units: str = typer.Option(..., help="e.g. 'logits:0,1,2', 'logits:0-99', 'fc6:all', 'features.10:3@4,4', "
                                        "'conv5:7:mean'; a leading minus minimizes ('-logits:3'); 'fc6:dir=FILE' "
                                        "maximizes the dot product with the vector in FILE (.npy or .safetensors); "
                                        "'fc6:3+7' or 'logits:Sandal+0.5*Sneaker' a weighted sum of one layer's "
                                        "channels"),
    generator: Optional[str] = typer.Option(None, help="generator (zoo name, import path or file); none = pixels"),
    prior: Optional[str] = typer.Option(None, "--prior", "--method",
                                        help="method preset (`dgnam priors`; Python: method=); default dgn-am with a "
                                             "generator, else pixel (no --generator: pixel-space AM)"),
    restarts: int = typer.Option(1, help="restarts per unit (seeds SEED, SEED+1, ...)"),
    steps: Optional[int] = typer.Option(None, help="iterations (default: the method's; DGN-AM 200)"),
    lr: Optional[float] = typer.Option(None, help="starting learning rate (default: the method's; DGN-AM 8.0, "
                                                  "falling linearly to 1e-10)"),
    seed: int = seed_option(),
    init: str = typer.Option("randn", help="randn (as released), zeros, or a .safetensors of codes from `dgnam encode`"),
    relu_gradient: str = typer.Option("pre", help="a unit read at a ReLU's output rises by the gradient of the ReLU's "
                                                  "input (pre, as released: a unit at 0 still moves) or through the "
                                                  "ReLU (exact)"),
    batch_size: int = typer.Option(32, help="optimizations run together (units x restarts)"),
    device: str = device_option("the model and the generator run"),
    out: Path = typer.Option(Path("runs/visualize"), help="run directory"),
    resume: bool = typer.Option(False, help="continue an interrupted run in OUT"),
    arch: Optional[str] = typer.Option(None, help=arch_help("--model")),
    generator_arch: Optional[str] = typer.Option(None, help=arch_help("--generator")),
    code_stats: Optional[Path] = typer.Option(None, help="the generator's code bounds: a CodeStats .safetensors or a "
                                                         "released act_range .txt (DGN-AM clips the code to them)"),
    input_shape: Optional[str] = typer.Option(None, help="CxHxW in [0, 1] for a model without input_space"),
) -> None:
    """Synthesize the preferred inputs of UNITS of MODEL; writes PNGs, codes, grid.png and results.json to OUT."""
    from ..methods import build_method, get_method
    from ..run import target_space, visualize as run_visualize
    from ..units import check_relu_gradient

    dev = device_arg(device)
    net = model_arg(model, arch)
    gen = generator_arg(generator, generator_arch, code_stats)
    space = target_space(net, space_arg(net, input_shape), gen)
    name = prior or ("dgn-am" if gen is not None else "pixel")
    if gen is not None and not get_method(name).needs_generator:
        raise DgnamError(f"--prior {name} optimizes pixels and would ignore --generator {generator}: drop one of them")
    spec = build_method(name, space, gen, seed=seed)
    config = spec.config
    if lr is not None:
        if not lr > 0:
            raise DgnamError(f"--lr must be positive, got {lr}")
        config = dataclasses.replace(config, lr_start=lr)
    config = dataclasses.replace(config, relu_gradient=check_relu_gradient(relu_gradient, "--relu-gradient"))
    out_folder_arg(out)
    codes = _init_codes(init, generator, generator_arch)
    if (not isinstance(codes, str) or codes == "zeros") and restarts > 1:
        raise DgnamError(f"--init {init} starts every restart from the same code, so --restarts {restarts} would give "
                         f"{restarts} identical images: use --restarts 1 (or --init randn)")
    run = run_visualize(net, units, spec.generator, restarts=restarts, seed=seed, steps=steps, config=config,
                        priors=spec.priors, transforms=spec.transforms, init=codes, device=dev,
                        batch_size=batch_size, out=out, resume=resume, method=prior, input_space=space,
                        return_images=False)  # they are on disk: a thousand units need not stay in memory
    named = any("class_name" in r for r in run.records)
    print_table(run.records, ["unit", *(["class_name"] if named else []), "restart", "activation", "best_activation",
                              "image"], all_in=f"{out}/results.json")
    typer.echo(f"wrote {out}/grid.png and {out}/results.json")


def _init_codes(init: str, generator: Optional[str] = None, generator_arch: Optional[str] = None):
    """The start codes of ``--init``. Codes from `dgnam encode` name the model and layer they come from: another
    layer or encoder than the one the generator inverts is refused (codes of the same size would run, meaninglessly)."""
    if init in ("randn", "zeros"):
        return init
    from ..weights import load_state_dict
    from ..zoo.registry import weights_sha256

    if not Path(init).is_file():
        raise DgnamError(f"--init {init}: give randn, zeros, or a codes file from `dgnam encode` (or a run's "
                         f"codes/*.safetensors)")
    if generator is not None:
        from safetensors import safe_open
        from .beyond import _inverts, inverts_sha256

        try:
            with safe_open(init, "pt") as f:
                meta = f.metadata() or {}
        except Exception:  # not safetensors, or damaged: load_state_dict below says which
            meta = {}
        known = _inverts(generator, generator_arch)
        if known is not None and meta.get("model") and meta.get("layer"):
            got, want = _encoder_kind(meta["model"], meta.get("arch")), _encoder_kind(known[0], known[2])
            # the weights it was trained to invert, as its card records them (the file may have been retrained since)
            sha_got = meta.get("weights_sha256")
            sha_want = inverts_sha256(generator) or weights_sha256(known[0], known[2])
            if sha_got and sha_want and sha_got != sha_want and got == want:  # same architecture, other weights
                raise DgnamError(f"--init {init} holds codes of other {want} weights than the encoder {generator} "
                                 f"inverts ({known[0]}): encode with that encoder")
            if meta["layer"] != known[1] or (got and want and got != want):
                how = known[0] if not known[2] and _has_weights(known[0]) else f"FILE --arch {want or known[0]}"
                raise DgnamError(f"--init {init} holds {got or meta['model']} {meta['layer']} codes, but {generator} "
                                 f"inverts {want or known[0]} {known[1]}: encode with `dgnam encode --model {how} "
                                 f"--layer {known[1]}`")
    t = load_state_dict(init)
    if "codes" in t:
        return t["codes"]
    if "final" in t:  # a code file of a visualize run: continue from where that image ended
        return t["final"][None]
    raise DgnamError(f"{init} has no 'codes' tensor; make it with `dgnam encode`")


def _encoder_kind(model: str, arch: Optional[str]) -> Optional[str]:
    """Which network codes come from, as far as their file or a generator's card says: a weights file's architecture
    (copies and moves of a file are the same encoder), else a zoo name or import path. ``None`` for a file named
    without its architecture (codes of an older `dgnam encode`): unknown, not compared."""
    from ..zoo.registry import is_weights_file

    if arch:
        return arch
    return None if is_weights_file(model) or "/" in model or "\\" in model else model


def _has_weights(name: str) -> bool:
    from ..zoo import get_entry

    try:
        return get_entry(name).weights is not None
    except DgnamError:
        return True  # an import path: it loads as given


@app.command(rich_help_panel=MODELS)
def layers(
    model: str = typer.Argument(..., help=MODEL_HELP),
    arch: Optional[str] = typer.Option(None, help=arch_help("--model")),
    input_shape: Optional[str] = typer.Option(None, help="CxHxW for a model without input_space"),
) -> None:
    """Print every addressable layer of MODEL with its output shape."""
    import torch

    from ..run import target_space
    from ..units import layer_shapes

    net = model_arg(model, arch, pretrained=False, flag="MODEL")  # shapes only: a zoo architecture needs no weights here
    space = target_space(net, space_arg(net, input_shape), None)
    rows = layer_shapes(net, space.encode(torch.full((1, *space.shape), 0.5)))
    print_table([{"layer": n, "type": t, "output shape": "x".join(map(str, s))} for n, t, s in rows],
                ["layer", "type", "output shape"], title=f"{model} (input {space.channels}x{space.size[0]}x{space.size[1]})")


@app.command(rich_help_panel=MODELS)
def models(pattern: str = typer.Argument("*", help="glob on the name, e.g. 'fmnist-*'"),
           kind: Optional[str] = typer.Option(None, help="only this kind: classifier, generator or dae")) -> None:
    """List the zoo."""
    from ..zoo import get_entry, list_models

    rows = []
    kinds = sorted({get_entry(n).kind for n in list_models()})
    if kind is not None and kind not in kinds:
        raise DgnamError(f"--kind {kind!r}: the zoo's kinds are {', '.join(kinds)}")
    names = list_models(pattern, kind=kind)
    if not names:
        what = f"no zoo {kind}" if kind else "no zoo model"
        raise DgnamError(f"{what} matches {pattern!r}; `dgnam models` lists them all")
    for name in names:
        e = get_entry(name)
        acc = e.card().get("metrics", {}).get("test_accuracy")
        rows.append({"name": name, "kind": e.kind, "test accuracy": "" if acc is None else f"{acc:.4f}",
                     "description": e.description})
    print_table(rows, ["name", "kind", "test accuracy", "description"])


@app.command(rich_help_panel=MODELS)
def priors() -> None:
    """List the methods/priors usable with `visualize --prior`."""
    from ..methods import list_methods

    print_table([{"name": m.name, "needs generator": "yes" if m.needs_generator else "", "description": m.description,
                  "source": m.source} for m in list_methods()], ["name", "needs generator", "description", "source"])
