"""GPU checks (needs CUDA; run when a GPU machine is lent): CUDA correctness against the CPU and the
paper-size preset's speed in fp32, TF32, bf16 autocast and bf16 + ``torch.compile``.

- ``correctness``: the same weights and the same noise (drawn from a CPU generator, then moved) on CPU and
  CUDA, TF32 off: DDIM samples (H=2, K=2, flip) and the training loss and its gradient, for the bundled
  model and for the ``paper`` and ``small`` presets (random weights, output head re-drawn as in
  ``speed.py``). Also the bundled model's samples under bf16 autocast against fp32 (what ``--amp auto``
  changes). Differences are in millimetres (samples) or relative (loss, gradient norm).
- ``train``: optimisation steps (loss, backward, clip, AdamW) of the ``paper`` preset at its default batch
  (4 windows x 243 frames): ms per step, training frames/s, peak CUDA memory, and the hours one pass over
  Human3.6M's 1,559,752 training frames (S1, S5, S6, S7, S8, 4 cameras) takes at that speed; the same for
  ``small`` at batch 8 (the CPU runs' recipe: launch-bound on a GPU).
- ``sample``: lifted frames/s of the ``paper`` preset at ``lift``'s default (H=5, K=5, flip) and at the
  paper's evaluation setting (H=20, K=10, flip), fp32 / TF32 / bf16, on 2 windows of 243 frames.

    python benchmarks/gpu_check.py --out benchmarks/results/gpu/gpu_check.json
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import time
import traceback
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402
from speed import build_model, random_windows  # noqa: E402

#: Human3.6M's training frames (S1, S5, S6, S7, S8; 4 cameras; VideoPose3D's count).
H36M_TRAIN_FRAMES = 1_559_752


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--parts", default="correctness,train,sample")
    p.add_argument("--train-steps", type=int, default=20, help="timed training steps per mode")
    p.add_argument("--compile", action=argparse.BooleanOptionalAction, default=True,
                   help="also time torch.compile (bf16); its compile time is reported separately")
    p.add_argument("--designs", default="default",
                   help="comma list: 'default' (the package's defaults) and/or 'paper' (config.PAPER_DESIGN)")
    p.add_argument("--out", default=str(common.RESULTS_DIR / "gpu" / "gpu_check.json"))
    return p.parse_args(argv)


def set_tf32(on: bool) -> None:
    import torch

    torch.backends.cuda.matmul.allow_tf32 = on
    torch.backends.cudnn.allow_tf32 = on


def cuda_generator(seed: int):
    import torch

    return torch.Generator(device="cuda").manual_seed(seed)


def sync() -> None:
    import torch

    torch.cuda.synchronize()


# ------------------------------------------------------------------------------------------ correctness


def compare(model_cpu, label: str, windows: int = 2) -> dict[str, Any]:
    """CPU vs CUDA (TF32 off) on the same weights and noise: samples, loss, gradient."""
    import torch

    set_tf32(False)
    model_cpu = model_cpu.float()
    model_gpu = copy.deepcopy(model_cpu).cuda()
    x2d = random_windows(model_cpu, windows)
    out: dict[str, Any] = {"model": label, "windows": int(x2d.shape[0]), "frames": int(x2d.shape[1])}
    samples = {}
    for name, model in (("cpu", model_cpu), ("cuda", model_gpu)):
        model.eval()
        device = next(model.parameters()).device
        samples[name] = model.sample(x2d.to(device), num_hypotheses=2, steps=2, flip=True,
                                     generator=torch.Generator().manual_seed(3)).float().cpu()
    diff = 1000 * (samples["cpu"] - samples["cuda"]).norm(dim=-1)  # per joint, mm
    out["sample_max_joint_diff_mm"] = float(diff.max())
    out["sample_mean_joint_diff_mm"] = float(diff.mean())
    out["sample_pose_scale_mm"] = float(1000 * samples["cpu"].norm(dim=-1).mean())
    x3d = 0.3 * torch.randn(*x2d.shape[:-1], 3, generator=torch.Generator().manual_seed(1))
    losses, grads = {}, {}
    for name, model in (("cpu", model_cpu), ("cuda", model_gpu)):
        model.train()
        model.zero_grad(set_to_none=True)
        device = next(model.parameters()).device
        loss = model.training_loss(x2d.to(device), x3d.to(device), generator=torch.Generator().manual_seed(2))
        loss.backward()
        losses[name] = float(loss.detach())
        grads[name] = torch.cat([p.grad.detach().flatten().cpu() for p in model.parameters()
                                 if p.grad is not None])
    out["loss_cpu"], out["loss_cuda"] = losses["cpu"], losses["cuda"]
    out["loss_rel_diff"] = abs(losses["cpu"] - losses["cuda"]) / abs(losses["cpu"])
    out["grad_rel_diff"] = float((grads["cpu"] - grads["cuda"]).norm() / grads["cpu"].norm())
    return out


def bf16_effect(model_cpu) -> dict[str, Any]:
    """Samples under bf16 autocast on CUDA against fp32 on CUDA (same noise), mm."""
    import torch

    set_tf32(False)
    model = copy.deepcopy(model_cpu).float().cuda().eval()
    x2d = random_windows(model, 2).cuda()

    def run():
        return model.sample(x2d, num_hypotheses=2, steps=2, flip=True,
                            generator=torch.Generator().manual_seed(3)).float()
    fp32 = run()
    with torch.autocast("cuda", dtype=torch.bfloat16):
        bf16 = run()
    diff = 1000 * (fp32 - bf16).norm(dim=-1)
    return {"bf16_vs_fp32_max_joint_diff_mm": float(diff.max()),
            "bf16_vs_fp32_mean_joint_diff_mm": float(diff.mean())}


def design_overrides(design: str) -> dict[str, Any]:
    """Config overrides of a ``--designs`` entry: ``train --design``'s (``config.DEFAULT_DESIGN`` or
    ``config.PAPER_DESIGN``)."""
    from posediffusion.commands.train import DESIGNS

    if design not in DESIGNS:
        raise ValueError(f"--designs: one of {sorted(DESIGNS)}, got {design!r}")
    return dict(DESIGNS[design])


def correctness(designs: list[str]) -> dict[str, Any]:
    from posediffusion.lift import bundled_checkpoint, load_lifter

    bundled, _ = load_lifter(bundled_checkpoint(), device="cpu")
    results = [compare(bundled, "bundled (cmu_small)")]
    results[0].update(bf16_effect(bundled))
    for design in designs:
        for preset, windows in (("small", 2), ("paper", 1)):
            results.append(compare(build_model(preset, **design_overrides(design)),
                                   f"preset {preset}, {design} design (random weights)", windows))
    return {"comparisons": results}


# ---------------------------------------------------------------------------------------------- speed


def train_speed(preset: str, batch: int | None, steps: int, modes: list[str],
                design: str = "default") -> list[dict[str, Any]]:
    """ms/step and frames/s of training steps in each mode (fp32, tf32, bf16, bf16+compile)."""
    import torch

    rows = []
    for mode in modes:
        row: dict[str, Any] = {"preset": preset, "design": design, "mode": mode}
        try:
            row.update(time_training(preset, batch, steps, mode, design))
        except Exception as error:  # noqa: BLE001 - recorded, the other modes still run
            row["error"] = f"{type(error).__name__}: {error}"[:500]
            traceback.print_exc()
        print(json.dumps(row), flush=True)
        rows.append(row)
        torch.cuda.empty_cache()
    return rows


def time_training(preset: str, batch: int | None, steps: int, mode: str,
                  design: str = "default") -> dict[str, Any]:
    """One mode of :func:`train_speed` on a fresh model."""
    import torch

    set_tf32(mode != "fp32")
    torch.manual_seed(0)
    model = build_model(preset, **design_overrides(design)).cuda().train()
    params = sum(p.numel() for p in model.parameters())
    frames = model.config.model.frames
    windows = batch or max(1, round(972 / frames))
    x2d = random_windows(model, windows).cuda()
    x3d = 0.3 * torch.randn(windows, frames, 17, 3, generator=torch.Generator().manual_seed(1)).cuda()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=True)
    if mode == "bf16+compile":
        model.denoiser = torch.compile(model.denoiser)
    autocast = mode.startswith("bf16")

    def step() -> None:
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=autocast):
            loss = model.training_loss(x2d, x3d)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()

    torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    for _ in range(3):
        step()
    sync()
    warmup = time.perf_counter() - start
    start = time.perf_counter()
    for _ in range(steps):
        step()
    sync()
    seconds = (time.perf_counter() - start) / steps
    fps = windows * frames / seconds
    return {"parameters": params, "batch_windows": windows, "frames": frames,
            "warmup_seconds": round(warmup, 2),
            "ms_per_step": round(1000 * seconds, 2), "train_frames_per_s": round(fps, 1),
            "h36m_epoch_hours": round(H36M_TRAIN_FRAMES / fps / 3600, 3),
            "peak_memory_gb": round(torch.cuda.max_memory_allocated() / 2**30, 2), "timed_steps": steps}


def sample_speed(preset: str, windows: int, design: str = "default") -> list[dict[str, Any]]:
    """Lifted frames/s at (H, K, flip) = (5, 5, on) and (20, 10, on) in fp32 / tf32 / bf16."""
    import torch

    rows = []
    model = build_model(preset, **design_overrides(design)).cuda().eval()
    x2d = random_windows(model, windows).cuda()
    frames = windows * model.config.model.frames
    for h, k in ((5, 5), (20, 10)):
        for mode in ("fp32", "tf32", "bf16"):
            set_tf32(mode != "fp32")

            def run(h=h, k=k, mode=mode):
                with torch.autocast("cuda", dtype=torch.bfloat16, enabled=mode == "bf16"):
                    return model.sample(x2d, num_hypotheses=h, steps=k, flip=True,
                                        generator=cuda_generator(0))
            run()
            sync()
            best = float("inf")
            for _ in range(2 if h * k <= 25 else 1):
                start = time.perf_counter()
                run()
                sync()
                best = min(best, time.perf_counter() - start)
            row = {"preset": preset, "design": design, "mode": mode, "hypotheses": h, "steps": k,
                   "flip": True, "windows": windows,
                   "lifted_frames_per_s": round(frames / best, 1),
                   "network_frames_per_s": round(frames * h * k * 2 / best, 1), "seconds": round(best, 4)}
            print(json.dumps(row), flush=True)
            rows.append(row)
    return rows


def main(argv: list[str] | None = None) -> int:
    import torch

    args = parse_args(argv)
    if not torch.cuda.is_available():
        print("gpu_check.py needs CUDA", file=sys.stderr)
        return 2
    parts = [p for p in args.parts.split(",") if p]
    out: dict[str, Any] = {"machine": {**common.machine_info(), "gpu": torch.cuda.get_device_name(),
                                       "cuda": torch.version.cuda}}
    path = Path(args.out)
    path.parent.mkdir(parents=True, exist_ok=True)

    def save() -> None:  # after every part, so a time limit keeps what finished
        path.write_text(json.dumps(out, indent=1) + "\n")

    designs = [d for d in args.designs.split(",") if d]
    for design in designs:
        design_overrides(design)  # fail on a bad name before any work
    out["designs"] = designs
    if "correctness" in parts:
        out["correctness"] = correctness(designs)
        print(json.dumps(out["correctness"], indent=1), flush=True)
        save()
    if "train" in parts:
        modes = ["fp32", "tf32", "bf16"] + (["bf16+compile"] if args.compile else [])
        out["train"] = []
        for design in designs:  # designs interleaved per preset, so a time-out keeps comparable pairs
            out["train"] += train_speed("paper", None, args.train_steps, modes, design)
            save()
        for design in designs:
            out["train"] += train_speed("small", 8, 4 * args.train_steps, ["fp32", "bf16"], design)
            save()
    if "sample" in parts:
        out["sample"] = []
        for design in designs:
            out["sample"] += sample_speed("paper", 2, design)
            save()
    save()
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
