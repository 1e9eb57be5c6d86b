"""DGN-AM at paper scale against the machine's matmul roofline.

Measures in one run on one machine:
(a) fp32 matmul GFLOP/s (square matrices, the best of a few sizes): the roofline;
(b) one DGN-AM iteration at paper scale (deepsim-fc6 generator, 256 px, centre crop 227, CaffeNet up to fc8; random
    weights, same cost as the released ones) at batch 1, 8 and 32: seconds per iteration, FLOPs per iteration counted
    from the layer shapes (forward of G and of the target up to the unit's layer, plus the backward pass to the code:
    input gradients only, as weights need no gradient: about the forward's FLOPs again), achieved GFLOP/s and the
    fraction of (a);
(c) 8 units x 4 restarts as one batch of 32 against the same 32 optimizations run one at a time (per-iteration time);
(d) peak memory (process RSS on CPU; allocator peak on CUDA).

    OMP_NUM_THREADS=2 python benchmarks/speed.py [--device cuda] [--iters 3]

Writes benchmarks/results/speed.json (or speed_cuda.json): roofline_gflops, batches [{batch, seconds_per_iter,
gflops, roofline_fraction}], batched_speedup, peak_memory_mb, and the per-layer FLOP and time profile.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import time
from pathlib import Path

import torch
from torch import nn

from dgnam import AMConfig, create_model, parse_units
from dgnam.optimize import Pipeline, optimize
from dgnam.units import resolve_units

OUT = Path(__file__).parent / "results"
UNIT = "fc8:945"  # a class logit (bell pepper), the paper's most common target


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def roofline(device: torch.device, sizes=(1024, 2048, 4096), reps: int = 5) -> float:
    """Best fp32 matmul GFLOP/s over a few square sizes."""
    best = 0.0
    for n in sizes:
        a = torch.randn(n, n, device=device)
        b = torch.randn(n, n, device=device)
        a @ b
        sync(device)
        t = time.perf_counter()
        for _ in range(reps):
            a @ b
        sync(device)
        best = max(best, 2 * n**3 * reps / (time.perf_counter() - t) / 1e9)
    return best


def count_flops(pipeline: Pipeline, units, codes: torch.Tensor) -> tuple[float, dict]:
    """Forward FLOPs (2 x multiply-adds) of every conv / deconv / linear layer that runs, per batch item."""
    per_layer: dict[str, float] = {}
    hooks = []
    for prefix, mod in (("G.", pipeline.generator), ("T.", pipeline.reader.model)):
        for name, m in mod.named_modules():
            if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
                def hook(m, inp, out, name=prefix + name):
                    if isinstance(m, nn.Linear):
                        macs = m.in_features * m.out_features
                    elif isinstance(m, nn.Conv2d):
                        macs = out.shape[2] * out.shape[3] * m.out_channels * (m.in_channels // m.groups) * m.kernel_size[0] * m.kernel_size[1]
                    else:  # transposed conv: every input pixel scatters a kernel to out_channels/groups maps
                        macs = inp[0].shape[2] * inp[0].shape[3] * m.in_channels * (m.out_channels // m.groups) * m.kernel_size[0] * m.kernel_size[1]
                    per_layer[name] = per_layer.get(name, 0.0) + 2.0 * macs
                hooks.append(m.register_forward_hook(hook))
    with torch.no_grad():
        pipeline.activations(units[:1], pipeline.images(codes[:1]))
    for h in hooks:
        h.remove()
    return sum(per_layer.values()), per_layer


def time_iterations(pipeline, units, codes, config, iters: int, device) -> float:
    optimize(pipeline, units, codes, AMConfig(**{**config.to_dict(), "steps": 1}), [])  # warm-up
    sync(device)
    t = time.perf_counter()
    optimize(pipeline, units, codes, AMConfig(**{**config.to_dict(), "steps": iters}), [])
    sync(device)
    return (time.perf_counter() - t) / iters


def profile(pipeline, units, codes, device) -> list[dict]:
    """Self CPU/CUDA time per operator for one iteration (forward + backward) at this batch."""
    from torch.profiler import ProfilerActivity, profile as tprofile

    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with tprofile(activities=acts) as prof:
        c = codes.clone().requires_grad_(True)
        a = pipeline.activations(units, pipeline.images(c), 0)
        torch.autograd.grad(a.sum(), c)
    rows = []
    for e in sorted(prof.key_averages(), key=lambda e: -e.self_cpu_time_total)[:8]:
        rows.append({"op": e.key, "self_cpu_ms": round(e.self_cpu_time_total / 1000, 1), "calls": e.count})
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--iters", type=int, default=3)
    ap.add_argument("--batches", default="1,8,32")
    ap.add_argument("--no-channels-last", dest="channels_last", action="store_false",
                    help="keep NCHW (visualize's default is channels_last, as here)")
    args = ap.parse_args()
    device = torch.device(args.device)
    OUT.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    target = create_model("caffenet", pretrained=False).to(device)
    gen = create_model("deepsim-fc6", pretrained=False).to(device)
    for m in (target, gen):
        m.eval()
        for p in m.parameters():
            p.requires_grad_(False)
        if args.channels_last:
            m.to(memory_format=torch.channels_last)
    config = AMConfig()
    roof = roofline(device)
    print(f"roofline: {roof:.1f} GFLOP/s fp32 matmul on {device}", flush=True)

    example = target.input_space.encode(torch.full((1, *target.input_space.shape), 0.5, device=device))
    unit = resolve_units(target, parse_units(UNIT), example)[0]
    rows = []
    flops_fwd = per_layer = None
    for b in [int(x) for x in args.batches.split(",")]:
        units = [unit] * b
        pipe = Pipeline(gen, target, units, target.input_space).to(device)
        codes = gen.init_codes(list(range(b))).to(device)
        if flops_fwd is None:
            flops_fwd, per_layer = count_flops(pipe, units, codes)
        spi = time_iterations(pipe, units, codes, config, args.iters, device)
        flops_iter = 2 * flops_fwd * b  # forward + input-gradient backward
        gf = flops_iter / spi / 1e9
        rows.append({"batch": b, "seconds_per_iter": spi, "gflops": gf, "roofline_fraction": gf / roof,
                     "flops_per_iter": flops_iter})
        print(f"batch {b}: {spi:.3f} s/iter, {gf:.1f} GFLOP/s = {gf / roof:.2f} of roofline", flush=True)

    # (c) 8 units x 4 restarts: one batch of 32 vs 32 runs of batch 1 (same per-iteration cost model)
    by_b = {r["batch"]: r["seconds_per_iter"] for r in rows}
    if 1 not in by_b or 32 not in by_b:
        raise SystemExit("--batches must include 1 and 32 for the batched comparison")
    units32 = resolve_units(target, parse_units([f"fc8:{c}" for c in range(8)]), example)
    units32 = [u for u in units32 for _ in range(4)]
    pipe = Pipeline(gen, target, units32, target.input_space).to(device)
    codes = gen.init_codes([r for _ in range(8) for r in range(4)]).to(device)
    batched = time_iterations(pipe, units32, codes, config, args.iters, device)
    one_by_one = 32 * by_b[1]
    prof = profile(Pipeline(gen, target, [unit] * 8, target.input_space).to(device), [unit] * 8,
                   gen.init_codes(list(range(8))).to(device), device)
    if device.type == "cuda":
        peak = torch.cuda.max_memory_allocated() / 2**20
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    result = {
        "roofline_gflops": roof, "batches": rows,
        "batched_speedup": one_by_one / batched, "batched_seconds_per_iter": batched,
        "one_at_a_time_seconds_per_iter": one_by_one, "peak_memory_mb": peak,
        "forward_gflops_per_image": flops_fwd / 1e9,
        "flops_by_layer": {k: v / 1e9 for k, v in sorted(per_layer.items(), key=lambda kv: -kv[1])},
        "profile_batch8": prof, "unit": UNIT, "iters": args.iters,
        "device": str(device), "threads": torch.get_num_threads(), "channels_last": args.channels_last,
        "machine": f"{platform.machine()} {platform.processor() or ''}".strip(), "torch": torch.__version__,
        "command": f"python benchmarks/speed.py --device {args.device}",
    }
    if device.type == "cuda":
        result["gpu"] = torch.cuda.get_device_name()
    name = "speed.json" if device.type == "cpu" else f"speed_{device.type}.json"
    (OUT / name).write_text(json.dumps(result, indent=1))
    print(f"batched 8 units x 4 restarts: {batched:.3f} s/iter vs one at a time {one_by_one:.3f} s/iter "
          f"-> {one_by_one / batched:.2f}x; peak memory {peak:.0f} MB")
    print("| batch | s/iter | GFLOP/s | fraction of roofline |\n|---|---|---|---|")
    for r in rows:
        print(f"| {r['batch']} | {r['seconds_per_iter']:.3f} | {r['gflops']:.1f} | {r['roofline_fraction']:.2f} |")


if __name__ == "__main__":
    main()
