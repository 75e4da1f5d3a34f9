"""Cost of temporal patches (RESULTS "A cheaper denoiser per frame"): one `small` training step (batch 8)
and sampling frames per CPU-second at p = 1, 3, 9; same process, one thread, 3 rounds after a warm-up.

    PYTHONPATH=src OMP_NUM_THREADS=1 python benchmarks/patch_cost.py
"""

import time

import torch

from posediffusion.model.pose_diffusion import PoseDiffusion


def main() -> None:
    torch.set_num_threads(1)
    torch.manual_seed(0)
    models = {p: PoseDiffusion.from_preset("small", temporal_patch=p, joint_mask=True) for p in (1, 3, 9)}
    optimisers = {p: torch.optim.AdamW(m.parameters(), 1e-4) for p, m in models.items()}
    x2d, x3d = 0.3 * torch.randn(8, 27, 17, 2), 0.3 * torch.randn(8, 27, 17, 3)
    windows = 0.3 * torch.randn(20, 27, 17, 2)
    train, sample = {}, {}
    for round_ in range(4):
        for p, model in models.items():
            model.train()
            start = time.process_time()
            for _ in range(10):
                optimisers[p].zero_grad()
                model.training_loss(x2d, x3d).backward()
                optimisers[p].step()
            if round_:
                train.setdefault(p, []).append((time.process_time() - start) / 10)
            model.eval()
            for setting in ((1, 1), (5, 2)):
                start = time.process_time()
                with torch.no_grad():
                    for _ in range(3):
                        model.sample(windows, num_hypotheses=setting[0], steps=setting[1], flip=False)
                if round_:
                    sample.setdefault((p, setting), []).append(20 * 27 * 3 / (time.process_time() - start))
    for p, model in models.items():
        print(f"p={p}: {1000 * sum(train[p]) / len(train[p]):.0f} ms/step, "
              f"{model.flops_per_frame() / 1e6:.2f} MFLOP/frame, frames/CPU-s H=1 K=1 "
              f"{sum(sample[p, (1, 1)]) / 3:,.0f}, H=5 K=2 {sum(sample[p, (5, 2)]) / 3:,.0f} (no flip)")


if __name__ == "__main__":
    main()
