"""Joint dropout: random missing-joint masks for training a model with a missing-joint input.

A model with ``ModelConfig.joint_mask`` learns to infer joints its input lacks when training hides some
joints from it (its 2D embedding gets the mask; the loss still scores every joint against the ground
truth). The scheme mimics how real 2D keypoints go missing: a clip framed on the upper body never shows
the legs or a hand, and detectors lose a joint for a few frames. Per training window, independently, with
one rate p (``TrainConfig.joint_dropout``):

* never seen: with probability p the window gets k ~ Uniform{1, 2, 3} distinct joints, drawn uniformly from
  the limb ends ``NEVER_SEEN_JOINTS`` (knees, ankles, elbows, wrists, head), missing in ALL its frames;
* short gap: with probability p, for L consecutive frames, L ~ Uniform{1, ..., max(1, floor(GAP_FRACTION *
  T))}, starting uniformly where it fits, either every joint is missing (probability
  ``WHOLE_FRAME_GAP``: frames where the detector missed the person) or one joint drawn uniformly from all J.

So a fraction p of windows has never-seen joints, each limb end is never seen in p * 2 / 9 of the windows
(for T >= 2 a gap is shorter than the window), and a fraction p has a gap. Every draw is made for every
window in a fixed order, so the masks are a function of the generator's state alone (deterministic per
seed, for resume).
"""

from __future__ import annotations

import torch
from torch import Tensor

from posediffusion.skeleton import H36M_17

#: Limb-end joints that a clip may never show (Human3.6M-17 indices): knees, ankles, elbows, wrists, head.
NEVER_SEEN_JOINTS = tuple(H36M_17.joints.index(name) for name in (
    "RKnee", "RAnkle", "LKnee", "LAnkle", "LElbow", "LWrist", "RElbow", "RWrist", "Head"))
#: Number of never-seen joints of a window that has them: uniform over these.
NEVER_SEEN_COUNTS = (1, 2, 3)
#: Longest short gap as a fraction of the window (at least one frame): 2 frames of a 27-frame window,
#: 24 (about 0.5 s at 50 fps) of a 243-frame one.
GAP_FRACTION = 0.1
#: Probability that a gap hides every joint of its frames rather than one joint.
WHOLE_FRAME_GAP = 0.25


def joint_dropout_mask(batch: int, frames: int, joints: int, rate: float,
                       generator: torch.Generator | None = None,
                       device: torch.device | str | None = None) -> Tensor:
    """Draw the visibility of every joint in ``batch`` training windows (module docstring).

    Args:
        batch: B windows.
        frames: T frames per window.
        joints: J joints (17, Human3.6M order: ``NEVER_SEEN_JOINTS`` index it).
        rate: p in [0, 1], per window the probability of never-seen joints and (independently) of a gap.
        generator: the random stream (its device is used); ``None``: torch's default.
        device: where the mask goes (default: the generator's device, else the CPU).

    Returns:
        (B, T, J) bool, True where the joint is seen. ``rate == 0`` draws nothing and returns all True.
    """
    if not 0.0 <= rate <= 1.0:
        raise ValueError(f"joint dropout rate must be in [0, 1], got {rate}")
    if min(batch, frames) < 1 or joints <= max(NEVER_SEEN_JOINTS):
        raise ValueError(f"need B, T >= 1 and J > {max(NEVER_SEEN_JOINTS)} joints (Human3.6M-17 order), "
                         f"got {(batch, frames, joints)}")
    draw_on = generator.device if generator is not None else torch.device("cpu")
    out_device = torch.device(device) if device is not None else draw_on
    visible = torch.ones(batch, frames, joints, dtype=torch.bool, device=draw_on)
    if rate == 0:
        return visible.to(out_device)

    def uniform(*shape: int) -> Tensor:
        return torch.rand(shape, generator=generator, device=draw_on)

    # never seen: the k lowest of uniform scores pick k distinct limb ends uniformly
    has_never_seen = uniform(batch) < rate  # (B,)
    count = torch.randint(NEVER_SEEN_COUNTS[0], NEVER_SEEN_COUNTS[-1] + 1, (batch,), generator=generator,
                          device=draw_on)  # (B,)
    rank = uniform(batch, len(NEVER_SEEN_JOINTS)).argsort(dim=1).argsort(dim=1)  # (B, 9) ranks of the scores
    hidden = has_never_seen[:, None] & (rank < count[:, None])  # (B, 9)
    limb_ends = torch.tensor(NEVER_SEEN_JOINTS, device=draw_on)
    visible[:, :, limb_ends] &= ~hidden[:, None, :]
    # short gap: L consecutive frames of one joint or of every joint
    has_gap = uniform(batch) < rate  # (B,)
    gap_joint = torch.randint(0, joints, (batch,), generator=generator, device=draw_on)  # (B,)
    whole_frame = uniform(batch) < WHOLE_FRAME_GAP  # (B,)
    longest = max(1, int(GAP_FRACTION * frames))
    length = torch.randint(1, longest + 1, (batch,), generator=generator, device=draw_on)  # (B,)
    start = torch.minimum((uniform(batch) * (frames - length + 1)).long(), frames - length)  # (B,) 0..T-L
    t = torch.arange(frames, device=draw_on)
    in_gap = has_gap[:, None] & (t >= start[:, None]) & (t < (start + length)[:, None])  # (B, T)
    at_joint = (torch.arange(joints, device=draw_on) == gap_joint[:, None]) | whole_frame[:, None]  # (B, J)
    visible &= ~(in_gap[:, :, None] & at_joint[:, None, :])
    return visible.to(out_device)
