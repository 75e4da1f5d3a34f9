"""Diffusion process, training loss and DDIM sampler for an x0-predicting pose denoiser.

The network is passed in and never sees the schedule beyond the timestep:
``net(x_t (N, T, J, 3), t (N,) long, cond) -> x0 (N, T, J, 3)``, poses in metres, where ``cond`` is the
dict from ``net.encode_condition(x2d)`` with leading dim = number of windows (repeated here with
``repeat_interleave`` to N = windows x hypotheses). See ``docs/diffusion.md`` for the equations.

Shapes: B windows, H hypotheses, K sampler steps, T frames, J joints.

Scale convention (D3DP): the diffusion runs on ``z = scale * x`` (x in metres); noisy samples are clamped
to ``+-clamp * scale`` and handed to the network divided by ``scale`` (so the network always sees metres);
the network's x0 (metres) is multiplied back by ``scale``. ``scale`` is the signal-to-noise knob;
with ``scale = 1`` (the default, as D3DP) ``z = x``.

Root joint: every x0 prediction gets joint 0 set to 0 (other joints untouched, ``skeleton.zero_root``)
before it is used, in training and in sampling, so the network's root output is ignored; training targets
are made root-relative by subtracting joint 0 (``skeleton.root_relative``).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import Tensor, nn

from posediffusion.config import TIMESTEP_SAMPLINGS
from posediffusion.skeleton import flip_pose, root_relative, zero_root

logger = logging.getLogger(__name__)

#: ``net(x_t (N, T, J, 3), t (N,) long, cond) -> x0 (N, T, J, 3)``.
Denoiser = Callable[[Tensor, Tensor, dict[str, Tensor]], Tensor]


def cosine_alphas_cumprod(num_steps: int, s: float = 0.008, max_beta: float = 0.999) -> np.ndarray:
    """Cumulative alphas of the cosine schedule (Nichol & Dhariwal 2021, eq. 17), float64.

    ``f(t) = cos^2(((t / T) + s) / (1 + s) * pi / 2)``, ``beta_t = 1 - f(t + 1) / f(t)`` clipped at
    ``max_beta``, ``alpha_bar_t = prod_{i <= t} (1 - beta_i)`` (recomputed from the clipped betas).

    Returns:
        (num_steps,) float64 array, strictly decreasing, index t = 0 .. num_steps - 1.
    """
    if num_steps < 1:
        raise ValueError(f"num_steps must be >= 1, got {num_steps}")
    grid = np.linspace(0.0, num_steps, num_steps + 1, dtype=np.float64)
    f = np.cos(((grid / num_steps) + s) / (1.0 + s) * math.pi * 0.5) ** 2
    betas = np.clip(1.0 - f[1:] / f[:-1], 0.0, max_beta)
    return np.cumprod(1.0 - betas)


class CosineSchedule(nn.Module):
    """Forward-process tables of the cosine schedule, computed in float64 and stored as float32 buffers.

    Buffers (all (num_steps,) float32, non-persistent: they follow from ``num_steps`` and ``s``):
    ``betas``, ``alphas_cumprod``, ``alphas_cumprod_prev``, ``sqrt_alphas_cumprod``,
    ``sqrt_one_minus_alphas_cumprod``. ``alphas_cumprod_f64`` keeps the float64 values (numpy) for the
    sampler's scalar bookkeeping.

    Args:
        num_steps: number of diffusion steps (timesteps 0 .. num_steps - 1).
        s: small offset that keeps beta_0 away from 0.
    """

    def __init__(self, num_steps: int = 1000, s: float = 0.008) -> None:
        super().__init__()
        self.num_steps = int(num_steps)
        self.s = float(s)
        ac = cosine_alphas_cumprod(self.num_steps, self.s)
        ac_prev = np.concatenate([[1.0], ac[:-1]])
        self.alphas_cumprod_f64 = ac
        tables = {
            "betas": 1.0 - ac / ac_prev,
            "alphas_cumprod": ac,
            "alphas_cumprod_prev": ac_prev,
            "sqrt_alphas_cumprod": np.sqrt(ac),
            "sqrt_one_minus_alphas_cumprod": np.sqrt(1.0 - ac),
        }
        for name, values in tables.items():
            self.register_buffer(name, torch.from_numpy(values).float(), persistent=False)

    def q_sample(self, x0: Tensor, t: Tensor, noise: Tensor) -> Tensor:
        """Sample q(x_t | x_0) = N(sqrt(alpha_bar_t) x0, (1 - alpha_bar_t) I)  (DDPM eq. 4).

        Args:
            x0: (N, ...) clean samples.
            t: (N,) long timesteps in [0, num_steps).
            noise: standard normal noise, same shape as ``x0``.

        Returns:
            (N, ...) noisy samples in ``x0``'s dtype and device.
        """
        if noise.shape != x0.shape:
            raise ValueError(f"noise shape {tuple(noise.shape)} != x0 shape {tuple(x0.shape)}")
        view = (-1,) + (1,) * (x0.ndim - 1)
        index = t.to(self.sqrt_alphas_cumprod.device)
        a = self.sqrt_alphas_cumprod[index].to(x0).view(view)
        b = self.sqrt_one_minus_alphas_cumprod[index].to(x0).view(view)
        return a * x0 + b * noise

    def extra_repr(self) -> str:
        return f"num_steps={self.num_steps}, s={self.s}"


# ---------------------------------------------------------------------------------------------------------
# training


def training_loss(
    net: Denoiser,
    x0: Tensor,
    cond: dict[str, Tensor],
    schedule: CosineSchedule,
    *,
    scale: float = 1.0,
    clamp: float = 1.1,
    velocity_weight: float = 0.0,
    smoothing: float = 0.0,
    frame_gain: Tensor | None = None,
    timestep_sampling: str = "uniform",
    generator: torch.Generator | None = None,
) -> Tensor:
    """x0-prediction loss: MPJPE (metres) of the denoised pose at one random timestep per sample.

    Draws, in this order from ``generator``: t of shape (N,) (:func:`sample_timesteps`), then noise of shape
    (N, T, J, 3) (float32 on the generator's device, then moved). ``z_t = q_sample(scale * x0, t, noise)``
    is clamped to ``+-clamp * scale`` and the network gets ``z_t / scale``.

    Args:
        net: the denoiser (see module docstring).
        x0: (N, T, J, 3) ground-truth poses, metres; made root-relative (joint 0 subtracted) here.
        cond: condition dict, every value with leading dim N.
        schedule: the noise schedule.
        scale: signal scale of the diffusion space (D3DP convention, default 1).
        clamp: noisy samples are clamped to ``+-clamp * scale``.
        velocity_weight: weight of the MPJPE of first temporal differences (MPJVE) added to the loss.
        smoothing: in [0, 1]; > 0 applies the sampler's per-frame smoothing (:func:`smooth_x0`) to the
            network's x0 before the loss, so what the sampler uses is what is trained.
        frame_gain: (N, T) per-frame gain in [0, 1] of that smoothing, or ``None`` (constant smoothing).
            Not detached: the loss trains whatever produces it (the energy regulator's map).
        timestep_sampling: distribution of t (:data:`TIMESTEP_SAMPLINGS`, :func:`sample_timesteps`).
        generator: makes t and noise deterministic.

    Returns:
        Scalar loss = MPJPE(x0_hat, x0) + velocity_weight * MPJVE(x0_hat, x0), metres.
    """
    _check_poses(x0, "x0")
    _check_cond(cond, x0.shape[0])
    _check_smoothing(smoothing, frame_gain, x0.shape[0], x0.shape[1])
    if velocity_weight > 0 and x0.shape[1] < 2:
        raise ValueError(f"velocity_weight > 0 needs at least 2 frames, got T = {x0.shape[1]}")
    n = x0.shape[0]
    x0 = root_relative(x0)
    gen_device = generator.device if generator is not None else x0.device
    t = sample_timesteps(n, schedule.num_steps, timestep_sampling, generator, gen_device).to(x0.device)
    noise = _randn(x0.shape, generator, x0.device, x0.dtype)
    z_t = schedule.q_sample(x0 * scale, t, noise).clamp(-clamp * scale, clamp * scale)
    x0_hat = zero_root(net(z_t / scale, t, cond))
    if smoothing > 0:
        gain = None if frame_gain is None else frame_gain.to(x0_hat.dtype)[:, :, None, None]  # (N, T, 1, 1)
        x0_hat = smooth_x0(x0_hat, smoothing, gain)
    loss = _mpjpe(x0_hat, x0)
    if velocity_weight > 0:
        loss = loss + velocity_weight * _mpjpe(x0_hat.diff(dim=1), x0.diff(dim=1))
    return loss


def sample_timesteps(n: int, num_steps: int, kind: str = "uniform", generator: torch.Generator | None = None,
                     device: torch.device | str | None = None) -> Tensor:
    """(n,) int64 training timesteps in [0, num_steps).

    ``"uniform"``: t ~ U{0 .. num_steps - 1} (D3DP; one ``torch.randint`` draw). ``"linear"``: density
    proportional to t + 1/2, i.e. ``t = floor(num_steps * sqrt(u))`` with u ~ U[0, 1) (one ``torch.rand``
    draw): twice the uniform density at t = num_steps and none at t = 0, so training concentrates where the
    DDIM sampler starts (its first step, at t = num_steps - 1, gives most of the estimate) and spends little
    on the nearly clean timesteps that a K <= 10 sampler never queries (below num_steps / K).
    """
    if kind == "uniform":
        return torch.randint(0, num_steps, (n,), generator=generator, device=device)
    if kind == "linear":
        u = torch.rand((n,), generator=generator, device=device, dtype=torch.float64)
        return (num_steps * u.sqrt()).long().clamp_(0, num_steps - 1)
    raise ValueError(f"timestep_sampling must be in {TIMESTEP_SAMPLINGS}, got {kind!r}")


# ---------------------------------------------------------------------------------------------------------
# sampling


def ddim_timesteps(num_steps: int, steps: int) -> list[tuple[int, int]]:
    """(t, t_next) pairs of a K-step DDIM run over ``linspace(-1, num_steps - 1, K + 1)`` (D3DP).

    Values are truncated to integers and reversed; ``t_next = -1`` marks the final step.
    E.g. ``num_steps=1000, steps=2`` -> ``[(999, 499), (499, -1)]``.
    """
    if not 1 <= steps <= num_steps:
        raise ValueError(f"steps must be in [1, {num_steps}], got {steps}")
    grid = np.linspace(-1.0, num_steps - 1.0, steps + 1, dtype=np.float64)
    times = [int(v) for v in np.floor(grid + 1e-6)][::-1]
    return list(zip(times[:-1], times[1:], strict=True))


@torch.no_grad()
def ddim_sample(
    net: Denoiser,
    cond: dict[str, Tensor],
    shape: Sequence[int],
    schedule: CosineSchedule,
    *,
    num_hypotheses: int,
    steps: int,
    eta: float = 1.0,
    scale: float = 1.0,
    clamp: float = 1.1,
    flip_permutation: Sequence[int] | np.ndarray | Tensor | None = None,
    smoothing: float = 0.0,
    frame_gain: Tensor | None = None,
    gain_in_eta: bool = True,
    generator: torch.Generator | None = None,
    return_all_steps: bool = False,
    antithetic: bool = False,
) -> Tensor:
    """DDIM sampling (Song et al. 2021) of H hypotheses per window, folded into the batch.

    Every step makes ONE network call on N = B*H rows (2*B*H with flip TTA); row ``b * H + h`` is
    hypothesis h of window b, and cond values are ``repeat_interleave(H, 0)``-ed once.

    Noise draws from ``generator`` (float32 on its device, then moved): the initial (B*H, T, J, 3)
    sample, then one (B*H, T, J, 3) draw per non-final step when eta > 0. With ``antithetic``, each draw
    is (B*ceil(H/2), T, J, 3) instead: hypotheses 2i and 2i+1 of a window get the noise n and -n (the
    initial sample and every re-injection), an odd H's last hypothesis its own draw. Every hypothesis is
    still a draw of the same sampler (n and -n are equally likely); the pair's deviations from their mean
    cancel to first order, so averaging hypotheses (P-Agg) keeps less of the spread.

    Per-frame energy regulation: with a ``frame_gain`` g (B, T) in [0, 1] (the model's per-frame gain of
    the B original windows), frame t of window b uses noise re-injection ``eta * g`` and, if smoothing > 0,
    the x0 estimate ``x0 + smoothing * (1 - g) * (smooth_T(x0) - x0)`` with ``smooth_T`` the [1, 2, 1] / 4
    filter along frames (edges replicated) (:func:`smooth_x0`). Without a gain, smoothing > 0 smooths
    every frame with the constant weight ``smoothing``; without gain and smoothing: plain DDIM. With
    ``gain_in_eta`` false the gain sets only the smoothing weight (every frame re-injects noise with ``eta``).

    Args:
        net: the denoiser (see module docstring).
        cond: condition dict, every value with leading dim B (2B with flip: B windows, then the B
            flipped windows in the same order).
        shape: (B, T, J, 3) of one sample.
        schedule: the noise schedule.
        num_hypotheses: H.
        steps: K sampler steps, 1 .. num_steps.
        eta: DDIM stochasticity >= 0 (0 = deterministic DDIM, 1 = DDPM-like; above 1 the
            direction term's coefficient is clamped at 0).
        scale: signal scale of the diffusion space (as in ``training_loss``).
        clamp: the noisy sample fed to the network is clamped to ``+-clamp * scale``.
        flip_permutation: (J,) left/right joint swap; enables flip test-time augmentation.
        smoothing: in [0, 1], strength of the temporal smoothing (of slow frames, with ``frame_gain``).
        frame_gain: (B, T) per-frame gain in [0, 1], or ``None`` for plain DDIM.
        gain_in_eta: the gain also scales the noise re-injection (``eta * g`` per frame).
        generator: makes the samples deterministic.
        return_all_steps: return the x0 estimate of every step instead of the last one.
        antithetic: draw the hypotheses' noise in antithetic pairs (n, -n) (see above).

    Returns:
        (B, H, T, J, 3) root-relative poses in metres, or (K, B, H, T, J, 3) with ``return_all_steps``:
        entry k is the x0 estimate step k's update used (after flip averaging, root zeroing and
        smoothing); the last entry is the output.
    """
    batch, frames, joints, dims = _check_shape(shape)
    if num_hypotheses < 1:
        raise ValueError(f"num_hypotheses must be >= 1, got {num_hypotheses}")
    if eta < 0:
        raise ValueError(f"eta must be >= 0, got {eta}")
    _check_smoothing(smoothing, None, batch, frames)
    flip = flip_permutation is not None
    _check_cond(cond, 2 * batch if flip else batch)
    device, dtype = _device_dtype(cond, net)
    n = batch * num_hypotheses
    perm = _as_permutation(flip_permutation, joints, device) if flip else None
    cond_n = {k: v.repeat_interleave(num_hypotheses, 0) for k, v in cond.items()}  # (B*H | 2B*H, ...)
    frame_gain = _frame_gain(frame_gain, batch, num_hypotheses, frames, device, dtype)  # (B*H, T, 1, 1)|None

    def noise() -> Tensor:  # (B*H, T, J, 3) standard normal, in antithetic pairs if asked
        if not antithetic or num_hypotheses == 1:
            return _randn((n, frames, joints, dims), generator, device, dtype)
        pairs = (num_hypotheses + 1) // 2
        draw = _randn((batch, pairs, frames, joints, dims), generator, device, dtype)
        both = torch.stack([draw, -draw], 2).flatten(1, 2)[:, :num_hypotheses]  # (B, H, T, J, 3)
        return both.flatten(0, 1)

    z = noise()  # x_T ~ N(0, I), diffusion space
    ac = schedule.alphas_cumprod_f64
    estimates = []
    for t, t_next in ddim_timesteps(schedule.num_steps, steps):
        x0 = _predict_x0(net, z, t, cond_n, scale, clamp, perm)  # (B*H, T, J, 3) metres
        if smoothing > 0:
            x0 = smooth_x0(x0, smoothing, frame_gain)
        estimates.append(x0)
        if t_next < 0:
            break
        z = _ddim_step(z, x0 * scale, ac[t], ac[t_next], eta, frame_gain if gain_in_eta else None, noise)

    out = torch.stack(estimates) if return_all_steps else estimates[-1][None]
    out = out.reshape(out.shape[0], batch, num_hypotheses, frames, joints, dims)  # (K|1, B, H, T, J, 3)
    return out if return_all_steps else out[0]


def smooth_x0(x0: Tensor, smoothing: float, frame_gain: Tensor | None = None) -> Tensor:
    """Per-frame temporal smoothing of an x0 estimate, the same in training and sampling.

    ``x0 + w * (smooth_T(x0) - x0)`` with ``smooth_T`` the [1, 2, 1] / 4 filter along frames (edges
    replicated) and ``w = smoothing * (1 - g)`` per frame (slow frames smoothed, fast ones kept sharp), or
    ``w = smoothing`` on every frame without a gain.

    Args:
        x0: (N, T, J, 3).
        smoothing: strength in [0, 1].
        frame_gain: (N, T, 1, 1) gain in [0, 1] broadcast over joints, or ``None``.
    """
    weight = smoothing if frame_gain is None else smoothing * (1.0 - frame_gain)
    return x0 + weight * (_smooth_frames(x0) - x0)


def _predict_x0(
    net: Denoiser,
    z: Tensor,
    t: int,
    cond_n: dict[str, Tensor],
    scale: float,
    clamp: float,
    perm: Tensor | None,
) -> Tensor:
    """Network x0 estimate (metres, root-relative) at timestep t, flip-averaged when ``perm`` is given."""
    x_in = z.clamp(-clamp * scale, clamp * scale) / scale  # (N, T, J, 3)
    if perm is not None:
        x_in = torch.cat([x_in, flip_pose(x_in, perm)])  # (2N, T, J, 3)
    t_batch = torch.full((x_in.shape[0],), t, dtype=torch.long, device=z.device)
    x0 = zero_root(net(x_in, t_batch, cond_n))
    if perm is not None:
        plain, flipped = x0.chunk(2)
        x0 = 0.5 * (plain + flip_pose(flipped, perm))  # (N, T, J, 3)
    return x0


def _ddim_step(
    z: Tensor,
    z0: Tensor,
    alpha: float,
    alpha_next: float,
    eta: float,
    frame_gain: Tensor | None,
    noise: Callable[[], Tensor],
) -> Tensor:
    """One DDIM update z_t -> z_{t_next} given the x0 estimate ``z0`` (diffusion space, (N, T, J, 3)).

    ``alpha`` / ``alpha_next`` are the cumulative alphas (the DDIM paper's alpha_t, alpha_{t-1}), float64;
    ``noise()`` draws the (N, T, J, 3) standard normal re-injection (called only when eta > 0).
    """
    # eq. (9) inverted: the noise implied by x_t and the x0 estimate
    eps = (z - math.sqrt(alpha) * z0) / math.sqrt(1.0 - alpha)
    # eq. (16): sigma_t(eta) = eta * sqrt((1 - a_{t-1}) / (1 - a_t)) * sqrt(1 - a_t / a_{t-1})
    sigma_unit = math.sqrt((1.0 - alpha_next) / (1.0 - alpha) * (1.0 - alpha / alpha_next))
    if frame_gain is None:
        sigma = torch.tensor(eta * sigma_unit, dtype=torch.float64)
    else:
        sigma = eta * sigma_unit * frame_gain.double()  # (N, T, 1, 1): per-frame eta_t = eta * g
    # eq. (12): direction pointing to x_t, sqrt(1 - a_{t-1} - sigma_t^2) * eps
    dir_coef = (1.0 - alpha_next - sigma**2).clamp_min(0.0).sqrt()
    z_next = math.sqrt(alpha_next) * z0 + dir_coef.to(z) * eps
    if eta > 0:
        # eq. (12): random noise sigma_t * eps_t
        z_next = z_next + sigma.to(z) * noise()
    return z_next


# ---------------------------------------------------------------------------------------------------------
# helpers


def _randn(shape: Sequence[int], generator: torch.Generator | None, device: torch.device, dtype) -> Tensor:
    """Standard normal noise drawn in float32 on the generator's device, then moved to device/dtype."""
    gen_device = generator.device if generator is not None else device
    noise = torch.randn(tuple(shape), generator=generator, device=gen_device, dtype=torch.float32)
    return noise.to(device=device, dtype=dtype)


def _mpjpe(pred: Tensor, target: Tensor) -> Tensor:
    """Mean Euclidean distance over the last axis, averaged over everything else."""
    return (pred - target).norm(dim=-1).mean()


def _smooth_frames(x: Tensor) -> Tensor:
    """[1, 2, 1] / 4 filter along frames (dim 1) with replicated edges; (N, T, ...) -> same shape."""
    if x.shape[1] < 2:
        return x
    prev = torch.cat([x[:, :1], x[:, :-1]], dim=1)
    nxt = torch.cat([x[:, 1:], x[:, -1:]], dim=1)
    return 0.25 * prev + 0.5 * x + 0.25 * nxt


def _frame_gain(
    gain: Tensor | None,
    batch: int,
    hypotheses: int,
    frames: int,
    device: torch.device,
    dtype: torch.dtype,
) -> Tensor | None:
    """Validate the (B, T) frame gain and return it as (B*H, T, 1, 1) in the sample's dtype, or None."""
    if gain is None:
        return None
    gain = gain.detach()
    if gain.shape != (batch, frames):
        raise ValueError(f"frame_gain must be ({batch}, {frames}), got {tuple(gain.shape)}")
    if not bool(((gain >= 0) & (gain <= 1)).all()):
        raise ValueError("frame_gain values must lie in [0, 1]")
    return gain.to(device=device, dtype=dtype).repeat_interleave(hypotheses, 0)[:, :, None, None]


def _check_smoothing(smoothing: float, gain: Tensor | None, rows: int, frames: int) -> None:
    """Smoothing strength in [0, 1]; a (rows, T) gain with values in [0, 1] (checked without gradient)."""
    if not 0.0 <= smoothing <= 1.0:
        raise ValueError(f"smoothing must be in [0, 1], got {smoothing}")
    if gain is None:
        return
    if gain.shape != (rows, frames):
        raise ValueError(f"frame_gain must be ({rows}, {frames}), got {tuple(gain.shape)}")
    detached = gain.detach()
    if not bool(((detached >= 0) & (detached <= 1)).all()):
        raise ValueError("frame_gain values must lie in [0, 1]")


def _as_permutation(perm: Sequence[int] | np.ndarray | Tensor, joints: int, device: torch.device) -> Tensor:
    """Validate a (J,) joint permutation and return it as a long tensor on ``device``."""
    perm = torch.as_tensor(np.asarray(perm, dtype=np.int64) if not isinstance(perm, Tensor) else perm)
    if perm.shape != (joints,) or sorted(perm.tolist()) != list(range(joints)):
        raise ValueError(f"flip_permutation must be a permutation of {joints} joints, got {perm.tolist()}")
    return perm.to(device=device, dtype=torch.long)


def _check_shape(shape: Sequence[int]) -> tuple[int, int, int, int]:
    if len(shape) != 4 or shape[-1] != 3 or min(shape) < 1:
        raise ValueError(f"shape must be (B, T, J, 3) with positive sizes, got {tuple(shape)}")
    return tuple(int(s) for s in shape)  # type: ignore[return-value]


def _check_poses(x: Tensor, name: str) -> None:
    if x.ndim != 4 or x.shape[-1] != 3:
        raise ValueError(f"{name} must be (N, T, J, 3), got {tuple(x.shape)}")


def _check_cond(cond: dict[str, Tensor], rows: int) -> None:
    for key, value in cond.items():
        if value.shape[0] != rows:
            raise ValueError(f"cond['{key}'] has leading dim {value.shape[0]}, expected {rows}")


def _device_dtype(cond: dict[str, Tensor], net: Denoiser) -> tuple[torch.device, torch.dtype]:
    """Device and floating dtype of the first floating cond value, else of the net's parameters."""
    for value in cond.values():
        if value.is_floating_point():
            return value.device, value.dtype
    if isinstance(net, nn.Module):
        for param in net.parameters():
            return param.device, param.dtype
    return torch.device("cpu"), torch.float32
