"""How fast is this machine per CPU-second, against the one the learning curves were measured on?

CPU-minute budgets (``accuracy.py --budget-min``, ``tcn_reference.py --points``) buy different amounts of
optimisation on different machines: on 2026-12-01 the same host type ran a `small` p = 9 training step in
47 ms in one session and 100-106 ms in the next. Run this (one thread, nothing else on the cores) before and
after a CPU-budgeted run and record its output beside the run's: it times the two training steps the
learning curves depend on, on random data, and divides by the reference machine's times.

- diffusion: one `small` training step, default design (9 frames per temporal token, missing-joint input),
  batch 8 windows of 27 frames, AdamW (as ``accuracy.py --batch-size 8``);
- TCN: one step of the reference lifter (receptive field 27, 256 channels, batch 1024; ``tcn_reference.py``).

Reference times: 47 ms (``patch_cost.py``, 2026-12-01 00:14 UTC) and 275 ms (RESULTS "Why the diffusion
lifter learns slowly per CPU-minute"), both measured on the machine of the learning-curve table.

    OMP_NUM_THREADS=1 python benchmarks/machine_speed.py --out benchmarks/results/machine_speed_<date>.json
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

REFERENCE_SECONDS = {"diffusion_p9_step": 0.047, "tcn_rf27_c256_step": 0.275}


def time_steps(step, seconds: float) -> float:
    """CPU seconds per call of ``step`` after one warm-up call, over at least ``seconds`` of CPU time."""
    step()
    calls, start = 0, time.process_time()
    while time.process_time() - start < seconds or calls < 3:
        step()
        calls += 1
    return (time.process_time() - start) / calls


def measure(seconds: float) -> dict[str, Any]:
    import torch

    from posediffusion.model.pose_diffusion import PoseDiffusion
    from tcn_reference import FILTER_WIDTHS, TemporalLifter

    torch.manual_seed(0)
    model = PoseDiffusion.from_preset("small", temporal_patch=9, joint_mask=True)
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), 1e-4)
    x2d, x3d = 0.3 * torch.randn(8, 27, 17, 2), 0.3 * torch.randn(8, 27, 17, 3)

    def diffusion_step() -> None:
        optimizer.zero_grad()
        model.training_loss(x2d, x3d).backward()
        optimizer.step()

    tcn = TemporalLifter(filter_widths=FILTER_WIDTHS[27], channels=256)
    tcn.train()
    tcn_optimizer = torch.optim.Adam(tcn.parameters(), lr=1e-3, amsgrad=True)
    t2d, t3d = torch.randn(1024, 27, 17, 2), torch.randn(1024, 17, 3)

    def tcn_step() -> None:
        loss = torch.linalg.vector_norm(tcn(t2d, strided=True)[:, 0] - t3d, dim=-1).mean()
        tcn_optimizer.zero_grad()
        loss.backward()
        tcn_optimizer.step()

    times = {"diffusion_p9_step": time_steps(diffusion_step, seconds),
             "tcn_rf27_c256_step": time_steps(tcn_step, seconds)}
    return {name: {"seconds": round(value, 4), "reference_seconds": REFERENCE_SECONDS[name],
                   "slowdown_vs_reference": round(value / REFERENCE_SECONDS[name], 2)}
            for name, value in times.items()}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seconds", type=float, default=10.0, help="CPU seconds per measured step kind")
    p.add_argument("--out", default=None, help="also write the result as JSON here")
    args = p.parse_args(argv)
    common.pin_threads(1)
    payload = {"steps": measure(args.seconds), "machine": common.machine_info(),
               "command": common.command_line(), "note": "one thread; CPU time (time.process_time)"}
    for name, row in payload["steps"].items():
        print(f"{name}: {1000 * row['seconds']:.0f} ms per step, {row['slowdown_vs_reference']:.2f}x the "
              f"reference machine's {1000 * row['reference_seconds']:.0f} ms")
    if args.out:
        common.write_json(args.out, payload)


if __name__ == "__main__":
    main()
