"""Speed and memory on CPU: training and lifting frames/s per preset against a NAIVE reference, GFLOP/s
against the measured matmul peak, and peak RSS while lifting a 10-minute 50 fps clip.

Every measurement runs in its own subprocess (``--measure``), pinned to ``--threads`` threads, so that its
peak RSS is its own; the parent collects one JSON line per measurement and adds the machine's 1-minute load
average before and after it (other processes on the 2 cores slow every figure down; the load says how much).

- ``peak``: fp32 (and bf16) matmul GFLOP/s, best of several 2048^3 products.
- ``train``: optimisation steps (loss + backward + AdamW) at the default batch (~972 frames); frames/s =
  windows x T per second.
- ``lift``: sampling H=20 hypotheses, K=10 DDIM steps, flip TTA, eta from the config (1), on ``--windows``
  non-overlapping windows: the folded sampler (``PoseDiffusion.sample``: conditioning once, hypotheses and
  the flipped copy folded into the batch, the preset's attention kernel) against the naive reference of
  the research code's pattern (``naive_sample``: conditioning recomputed every step and hypothesis,
  hypotheses looped in Python, the flip as a separate call, unfused "math" attention), with the same
  weights and the same noise (pre-drawn in the folded sampler's order); outputs compared.
- ``interactive``: ``PoseDiffusion.sample`` at ``lift``'s defaults (H=5, K=5, flip) on ``--windows``
  windows: lifted frames/s and network frames/s (= lifted x H x K x 2), the one set of speed figures the
  docs quote.
- ``rss``: ``posediffusion.lift.lift_keypoints`` on a 30,000-frame clip (the bundled sample tiled) with the
  small preset, H=20, flip, at ``--rss-steps`` DDIM steps (memory does not depend on K).

    python benchmarks/speed.py                       # everything, writes benchmarks/results/speed.*
    python benchmarks/speed.py --parts lift --presets small
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

PRESETS = ("tiny", "small", "base")
PARTS = ("peak", "train", "lift", "interactive", "rss")
#: ``posediffusion lift``'s defaults: the setting whose speed users meet.
INTERACTIVE = {"hypotheses": 5, "steps": 5, "flip": True}
#: Windows lifted per timing (sized so one folded call takes a few seconds on one thread).
DEFAULT_WINDOWS = {"tiny": 8, "small": 2, "base": 1}
TRAIN_STEPS = {"tiny": 20, "small": 15, "base": 6}
CLIP_FRAMES = 30_000
HEAD_STD = 0.05


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--parts", default=",".join(PARTS), help=f"subset of {','.join(PARTS)}")
    p.add_argument("--presets", default=",".join(PRESETS))
    p.add_argument("--threads", type=int, default=1, help="torch threads per measurement process")
    p.add_argument("--hypotheses", type=int, default=20)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--repeats", type=int, default=2, help="timed repeats of each lifting call (best kept)")
    p.add_argument("--rss-steps", type=int, default=1, help="DDIM steps of the 30,000-frame RSS run")
    p.add_argument("--rss-frames", type=int, default=CLIP_FRAMES)
    p.add_argument("--rss-preset", default="small")
    p.add_argument("--rss-stride", type=int, default=None,
                   help="window stride of the RSS run (default: lift's T // 2)")
    p.add_argument("--out-dir", default=str(common.RESULTS_DIR))
    p.add_argument("--report-only", action="store_true", help="only rebuild speed.md from speed_*.json")
    p.add_argument("--measure", default=None, help=argparse.SUPPRESS)
    p.add_argument("--preset", default="small", help=argparse.SUPPRESS)
    return p.parse_args(argv)


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far, MB (Linux ru_maxrss is in KB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def build_model(preset: str, **overrides):
    """Preset model (with config ``overrides``) with seed-0 weights; the near-zero output head is re-drawn
    (std 0.05) so outputs are pose-sized and the naive/folded comparison is not trivially small."""
    import torch

    from posediffusion import PoseDiffusion

    torch.manual_seed(0)
    model = PoseDiffusion.from_preset(preset, **overrides).eval()
    torch.nn.init.normal_(model.denoiser.head.weight, std=HEAD_STD)
    return model


def random_windows(model, windows: int, seed: int = 0):
    """(windows, T, 17, 2) plausible normalised 2D: the bundled sample's keypoints cut into windows."""
    import numpy as np
    import torch

    from posediffusion.camera import normalize_screen
    from posediffusion.lift import bundled_sample

    sample = np.load(bundled_sample())
    w, h = (int(v) for v in sample["image_size"])
    track = normalize_screen(sample["keypoints"], w, h).astype(np.float32)  # (F, 17, 2)
    frames = model.config.model.frames
    reps = math.ceil(windows * frames / len(track))
    track = np.concatenate([track] * reps)[: windows * frames]
    return torch.from_numpy(track.reshape(windows, frames, 17, 2))


# ----------------------------------------------------------------------------------- naive reference


def naive_sample(model, x2d, hypotheses: int, steps: int, generator) -> Any:
    """The research code's sampling pattern, same maths as ``PoseDiffusion.sample`` with flip.

    Per hypothesis (Python loop) and per DDIM step, the conditioning is recomputed from the 2D input, and
    the original and the mirrored input are two separate network calls; attention must already be set to
    "math". Noise is pre-drawn from ``generator`` in the folded sampler's order (initial (B*H, T, J, 3),
    then one such draw per non-final step), row ``b * H + h`` belonging to hypothesis h of window b.

    Returns (B, H, T, J, 3) metres, root-relative.
    """
    import torch

    from posediffusion.diffusion import ddim_timesteps

    d, net = model.config.diffusion, model.denoiser
    b, t_len, j, _ = x2d.shape
    perm = model.flip_permutation
    sign = torch.tensor([-1.0, 1.0, 1.0])
    schedule = ddim_timesteps(model.schedule.num_steps, steps)
    noise = [torch.randn((b * hypotheses, t_len, j, 3), generator=generator)
             for _ in range(len(schedule) if d.eta > 0 else 1)]  # initial + one per non-final step
    ac = model.schedule.alphas_cumprod_f64
    x2d_flip = x2d[:, :, perm] * torch.tensor([-1.0, 1.0])
    smoothing = model.smoothing()  # the model's rule (constant without the regulator in new configs)
    outputs = []
    for h in range(hypotheses):
        rows = torch.arange(b) * hypotheses + h
        z = noise[0][rows]  # (B, T, J, 3), diffusion space
        for k, (t, t_next) in enumerate(schedule):
            cond = net.encode_condition(x2d)  # recomputed every step and hypothesis
            cond_flip = net.encode_condition(x2d_flip)
            x_in = z.clamp(-d.clamp * d.scale, d.clamp * d.scale) / d.scale
            t_batch = torch.full((b,), t, dtype=torch.long)
            plain = net(x_in, t_batch, cond)
            mirrored = net(x_in[:, :, perm] * sign, t_batch, cond_flip)
            x0 = 0.5 * (plain + mirrored[:, :, perm] * sign)
            x0 = x0 * (torch.arange(j) != 0).float()[:, None]  # root joint exactly 0
            gain = net.sampler_gain(cond)  # (B, T) or None
            if smoothing > 0:
                prev = torch.cat([x0[:, :1], x0[:, :-1]], dim=1)
                nxt = torch.cat([x0[:, 1:], x0[:, -1:]], dim=1)
                smooth = 0.25 * prev + 0.5 * x0 + 0.25 * nxt
                weight = smoothing if gain is None else smoothing * (1.0 - gain[:, :, None, None])
                x0 = x0 + weight * (smooth - x0)
            if t_next < 0:
                break
            z = naive_ddim_step(z, x0 * d.scale, ac[t], ac[t_next], d.eta, gain,
                                noise[k + 1][rows] if d.eta > 0 else None)
        outputs.append(x0)
    out = torch.stack(outputs, dim=1)  # (B, H, T, J, 3)
    return out - out[..., :1, :]


def naive_ddim_step(z, z0, alpha: float, alpha_next: float, eta: float, gain, noise):
    """DDIM (Song et al. 2021, eqs. 12 and 16) with per-frame eta * gain, written out per call."""
    import torch

    eps = (z - math.sqrt(alpha) * z0) / math.sqrt(1.0 - alpha)
    sigma_unit = math.sqrt((1.0 - alpha_next) / (1.0 - alpha) * (1.0 - alpha / alpha_next))
    if gain is None:
        sigma = torch.tensor(eta * sigma_unit, dtype=torch.float64)
    else:
        sigma = eta * sigma_unit * gain.double()[:, :, None, None]  # (B, T, 1, 1)
    direction = (1.0 - alpha_next - sigma**2).clamp_min(0.0).sqrt()
    z_next = math.sqrt(alpha_next) * z0 + direction.to(z) * eps
    if noise is not None:
        z_next = z_next + sigma.to(z) * noise
    return z_next


def set_math_attention(model) -> None:
    """Switch every attention module to the unfused matmul-softmax-matmul kernel."""
    from posediffusion.model.denoiser import Attention

    for module in model.modules():
        if isinstance(module, Attention):
            module.kind = "math"


# ------------------------------------------------------------------------------------- measurements


def best_time(fn, repeats: int) -> tuple[float, Any]:
    """(fastest wall time of ``repeats`` calls, last result)."""
    best, result = float("inf"), None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    return best, result


def measure_peak(args: argparse.Namespace) -> dict[str, Any]:
    """Matmul GFLOP/s (fp32, bf16) at this process's thread count."""
    import torch

    n, out = 2048, {}
    for name, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
        a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
        torch.mm(a, b)
        seconds, _ = best_time(lambda a=a, b=b: torch.mm(a, b), 5)
        out[f"matmul_gflops_{name}"] = round(2 * n**3 / seconds / 1e9, 1)
    return {"matrix": n, **out}


def measure_train(args: argparse.Namespace) -> dict[str, Any]:
    """Training frames/s of ``args.preset`` at the default batch (round(972 / T) windows)."""
    import torch

    model = build_model(args.preset).train()
    frames = model.config.model.frames
    batch = max(1, round(972 / frames))
    x2d = random_windows(model, batch)
    x3d = 0.3 * torch.randn(batch, frames, 17, 3, generator=torch.Generator().manual_seed(1))
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)

    def step() -> None:
        loss = model.training_loss(x2d, x3d)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()

    for _ in range(3):
        step()
    n = TRAIN_STEPS[args.preset]
    start = time.perf_counter()
    for _ in range(n):
        step()
    seconds = (time.perf_counter() - start) / n
    fps = batch * frames / seconds
    flops = model.flops_per_frame()
    return {"batch_windows": batch, "frames_per_window": frames, "seconds_per_step": round(seconds, 4),
            "train_frames_per_s": round(fps, 1), "gflop_per_frame_forward": flops / 1e9,
            "achieved_gflops_(3x_forward)": round(3 * flops * fps / 1e9, 2), "timed_steps": n,
            "parameters": model.count_parameters(), "peak_rss_mb": round(peak_rss_mb(), 1)}


def measure_lift(args: argparse.Namespace) -> dict[str, Any]:
    """Folded vs naive sampling frames/s at H, K, flip on the same weights and noise; max |difference|."""
    import torch

    model = build_model(args.preset)
    windows = DEFAULT_WINDOWS[args.preset]
    x2d = random_windows(model, windows)
    frames = windows * model.config.model.frames
    h, k = args.hypotheses, args.steps

    def folded():
        return model.sample(x2d, num_hypotheses=h, steps=k, flip=True,
                            generator=torch.Generator().manual_seed(7))

    folded_s, folded_out = best_time(folded, args.repeats)
    kernel = model.config.model.attention
    set_math_attention(model)
    with torch.no_grad():  # as the research code's evaluation
        naive_s, naive_out = best_time(
            lambda: naive_sample(model, x2d, h, k, torch.Generator().manual_seed(7)),
            max(1, args.repeats - 1))
    evals = h * k * 2
    flops = model.flops_per_frame()
    diff = float((folded_out - naive_out).abs().max())
    return {"windows": windows, "frames": frames, "hypotheses": h, "steps": k, "flip": True,
            "eta": model.config.diffusion.eta, "folded_attention": kernel,
            "folded_seconds": round(folded_s, 3), "naive_seconds": round(naive_s, 3),
            "folded_frames_per_s": round(frames / folded_s, 3),
            "naive_frames_per_s": round(frames / naive_s, 3),
            "speedup": round(naive_s / folded_s, 2), "max_abs_diff_m": diff,
            "max_abs_output_m": float(folded_out.abs().max()), "equal_within_1e-5": diff <= 1e-5,
            "network_evals_per_frame": evals, "gflop_per_frame_eval": flops / 1e9,
            "folded_achieved_gflops": round(flops * evals * frames / folded_s / 1e9, 2),
            "naive_achieved_gflops": round(flops * evals * frames / naive_s / 1e9, 2),
            "peak_rss_mb": round(peak_rss_mb(), 1)}


def measure_rss(args: argparse.Namespace) -> dict[str, Any]:
    """Peak RSS of lifting an ``--rss-frames`` clip with ``posediffusion.lift.lift_keypoints``."""
    import numpy as np

    from posediffusion.lift import bundled_sample, lift_keypoints

    model = build_model(args.rss_preset)
    sample = np.load(bundled_sample())
    reps = math.ceil(args.rss_frames / len(sample["keypoints"]))
    clip = np.concatenate([sample["keypoints"]] * reps)[: args.rss_frames]
    before = peak_rss_mb()
    start = time.perf_counter()
    result = lift_keypoints(clip, tuple(int(v) for v in sample["image_size"]), model,
                            hypotheses=args.hypotheses, steps=args.rss_steps, flip=True,
                            stride=args.rss_stride, progress=True)
    seconds = time.perf_counter() - start
    return {"preset": args.rss_preset, "clip_frames": len(clip), "hypotheses": args.hypotheses,
            "steps": args.rss_steps, "flip": True, "windows": result.settings["windows"],
            "stride": result.settings["stride"], "seconds": round(seconds, 1),
            "lift_frames_per_s": round(len(clip) / seconds, 2),
            "peak_rss_mb_before_lifting": round(before, 1),
            "peak_rss_mb": round(peak_rss_mb(), 1), "output_finite": bool(np.isfinite(result.pose_3d).all())}


def measure_interactive(args: argparse.Namespace) -> dict[str, Any]:
    """Sampling frames/s at lift's defaults; network frames/s counts every network evaluation."""
    import torch

    model = build_model(args.preset)
    windows = DEFAULT_WINDOWS[args.preset] * 2
    x2d = random_windows(model, windows)
    frames = windows * model.config.model.frames
    h, k, flip = INTERACTIVE["hypotheses"], INTERACTIVE["steps"], INTERACTIVE["flip"]
    seconds, _ = best_time(lambda: model.sample(x2d, num_hypotheses=h, steps=k, flip=flip,
                                                generator=torch.Generator().manual_seed(7)), args.repeats)
    evals = h * k * (2 if flip else 1)
    return {"windows": windows, "frames": frames, "hypotheses": h, "steps": k, "flip": flip,
            "attention": model.config.model.attention, "seconds": round(seconds, 3),
            "lifted_frames_per_s": round(frames / seconds, 2),
            "network_frames_per_s": round(frames * evals / seconds, 1), "network_evals_per_frame": evals,
            "parameters": model.count_parameters(), "peak_rss_mb": round(peak_rss_mb(), 1)}


MEASURES = {"peak": measure_peak, "train": measure_train, "lift": measure_lift,
            "interactive": measure_interactive, "rss": measure_rss}


def run_measure(args: argparse.Namespace) -> None:
    """Child process: run one measurement, print one JSON line."""
    common.pin_threads(args.threads)
    result = MEASURES[args.measure](args)
    print("RESULT " + json.dumps(result), flush=True)


def spawn(args: argparse.Namespace, part: str, preset: str) -> dict[str, Any]:
    """Run one measurement in a fresh process and return its JSON."""
    command = [sys.executable, __file__, "--measure", part, "--preset", preset,
               "--threads", str(args.threads), "--hypotheses", str(args.hypotheses),
               "--steps", str(args.steps), "--repeats", str(args.repeats),
               "--rss-steps", str(args.rss_steps), "--rss-frames", str(args.rss_frames),
               "--rss-preset", args.rss_preset]
    if args.rss_stride is not None:
        command += ["--rss-stride", str(args.rss_stride)]
    env = {**common.single_thread_env(), "OMP_NUM_THREADS": str(args.threads),
           "MKL_NUM_THREADS": str(args.threads)}
    start, load_before = time.monotonic(), os.getloadavg()[0]
    proc = subprocess.run(command, capture_output=True, text=True, env=env)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"measurement {part}/{preset} failed ({proc.returncode}): {proc.stderr[-2000:]}")
    result = json.loads(lines[-1][len("RESULT "):])
    result["wall_seconds"] = round(time.monotonic() - start, 1)
    result["threads"] = args.threads
    result["load_1min_before_after"] = [round(load_before, 2), round(os.getloadavg()[0], 2)]
    return result


# ------------------------------------------------------------------------------------------ reporting


def _load(record: dict[str, Any]) -> str:
    """``threads | load before / after |`` table cells (``?`` for records older than these fields)."""
    load = record.get("load_1min_before_after", ["?", "?"])
    return f"{record.get('threads', '?')} | {load[0]} / {load[1]} |"


def markdown(results: dict[str, Any]) -> str:
    """Tables of every part present."""
    out = []
    peak = results.get("peak", {}).get("machine")
    threads = results.get("threads", 1)
    if peak:
        out.append(f"Matmul peak ({threads} thread(s), 2048^3): fp32 {peak['matmul_gflops_fp32']} GFLOP/s, "
                   f"bf16 {peak['matmul_gflops_bf16']} GFLOP/s.\n")
    fp32 = peak["matmul_gflops_fp32"] if peak else None
    if results.get("train"):
        out += ["| preset | params | batch x T | train frames/s | GFLOP/s (3x fwd) | % of fp32 peak "
                "| threads | load before / after |", "|---|---|---|---|---|---|---|---|"]
        for preset, r in results["train"].items():
            gf = r["achieved_gflops_(3x_forward)"]
            pct = f"{100 * gf / fp32:.0f} %" if fp32 else "-"
            out.append(f"| {preset} | {r['parameters']:,} | {r['batch_windows']} x {r['frames_per_window']} "
                       f"| {r['train_frames_per_s']:.0f} | {gf:.1f} | {pct} | {_load(r)}")
        out.append("")
    if results.get("lift"):
        out += ["| preset | frames timed | folded frames/s | naive frames/s | speed-up | max abs diff (m) "
                "| max abs output (m) | folded GFLOP/s | % of fp32 peak | threads | load before / after |",
                "|---|---|---|---|---|---|---|---|---|---|---|"]
        for preset, r in results["lift"].items():
            pct = f"{100 * r['folded_achieved_gflops'] / fp32:.0f} %" if fp32 else "-"
            out.append(f"| {preset} | {r['frames']} | {r['folded_frames_per_s']:.2f} "
                       f"| {r['naive_frames_per_s']:.2f} "
                       f"| {r['speedup']:.2f}x | {r['max_abs_diff_m']:.1e} | {r['max_abs_output_m']:.2f} "
                       f"| {r['folded_achieved_gflops']:.1f} | {pct} | {_load(r)}")
        out.append("")
    if results.get("interactive"):
        out += ["| preset | params | lifted frames/s (H=5, K=5, flip) | network frames/s | threads "
                "| load before / after |", "|---|---|---|---|---|---|"]
        for preset, r in results["interactive"].items():
            out.append(f"| {preset} | {r['parameters']:,} | {r['lifted_frames_per_s']:.1f} "
                       f"| {r['network_frames_per_s']:,.0f} | {_load(r)}")
        out.append("")
    for r in results.get("rss", {}).values():
        out.append(f"Lifting a {r['clip_frames']:,}-frame clip ({r['preset']}, H={r['hypotheses']}, "
                   f"K={r['steps']}, flip, stride {r['stride']}, {r['windows']} windows): peak RSS "
                   f"{r['peak_rss_mb']:.0f} MB ({r['peak_rss_mb_before_lifting']:.0f} MB before lifting), "
                   f"{r['seconds']:.0f} s ({r['lift_frames_per_s']:.1f} frames/s at K={r['steps']}).\n")
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.measure:
        run_measure(args)
        return 0
    out_dir = Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "speed.json"
    results = common.read_json(path) if path.is_file() else {}
    if not args.report_only:
        common.pin_threads(args.threads)  # so that machine_info reports the measurement thread count
        results["machine"] = common.machine_info()
        results["threads"] = args.threads
        for part in [p for p in args.parts.split(",") if p]:
            if part not in MEASURES:
                raise ValueError(f"unknown part {part!r}; choose from {PARTS}")
            rss_key = f"{args.rss_frames}_frames_stride_{args.rss_stride or 'half'}"
            special = {"peak": ["machine"], "rss": [rss_key]}
            presets = special.get(part, args.presets.split(","))
            for preset in presets:
                print(f"measuring {part} {preset} ...", flush=True)
                result = spawn(args, part, preset if preset in PRESETS else "small")
                print(json.dumps(result), flush=True)
                results.setdefault(part, {})[preset] = result
                common.write_json(path, results)
    from posediffusion.io_utils import write_text_atomic

    text = markdown(results)
    write_text_atomic(out_dir / "speed.md", text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
