import math

import numpy as np
import pytest

from posediffusion.cli import main
from posediffusion.config import DataConfig, TrainConfig
from posediffusion.data.augment import (
    H36M_PIXELS_PER_METRE,
    CameraAugmentedWindows,
    VirtualCamera,
    VirtualCameraSampler,
    _rotation_onto_z,
    look_at_rotation,
    render_window,
    world_pose,
)
from posediffusion.data.h36m import load_h36m
from posediffusion.data.mocap import DetectorNoise
from posediffusion.data.sequence import Sequence
from posediffusion.data.windows import window_starts
from posediffusion.skeleton import H36M_17, flip_pose
from posediffusion.train import train
from tests.helpers import TEMPLATE_MM, synthetic_motion

# Camera looking along world +Y from (0, -5, 1), Z up: right = +X, down = -Z, forward = +Y.
R_ALONG_Y = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]])


def _camera(R=R_ALONG_Y, T=(0.0, -5.0, 1.0), focal=1000.0, center=(960.0, 540.0), size=(1920, 1080)):
    return VirtualCamera(R=np.asarray(R, dtype=float), T=np.asarray(T, dtype=float), focal=focal,
                         center=np.asarray(center, dtype=float), width=size[0], height=size[1])


def _walk(frames: int, speed_mm: float = 1500.0) -> np.ndarray:
    """(T, 17, 3) metres, world Z up: the test template walking along x, centred on the origin."""
    world = synthetic_motion(frames, speed_mm, 1.0, 200.0).astype(np.float64) / 1000.0
    world[..., 0] -= world[:, 0, 0].mean()
    return world


def _bones(pose: np.ndarray) -> np.ndarray:
    parents = np.array(H36M_17.parents[1:])
    return np.linalg.norm(pose[..., 1:, :] - pose[..., parents, :], axis=-1)


def _pixels_by_hand(world: np.ndarray, camera: VirtualCamera) -> np.ndarray:
    """Pinhole projection written out: X_cam = R^T (X - T), u = f X/Z + cx, v = f Y/Z + cy."""
    cam = np.einsum("ji,...j->...i", camera.R, world - camera.T)
    return camera.focal * cam[..., :2] / cam[..., 2:] + camera.center


def _normalised(pixels: np.ndarray, w: int, h: int) -> np.ndarray:
    """Screen normalisation written out: u / w * 2 - 1, v / w * 2 - h / w."""
    return np.stack([pixels[..., 0] / w * 2 - 1, pixels[..., 1] / w * 2 - h / w], -1)


def _inside(pixels: np.ndarray, camera: VirtualCamera, margin: float) -> bool:
    m = margin * min(camera.width, camera.height) - 1e-6
    return bool((pixels[..., 0] >= m).all() and (pixels[..., 0] <= camera.width - m).all()
                and (pixels[..., 1] >= m).all() and (pixels[..., 1] <= camera.height - m).all())


# ------------------------------------------------------------------------------------------- geometry


def test_look_at_and_projection_of_a_hand_placed_point():
    np.testing.assert_allclose(look_at_rotation(np.array([0.0, 2.0, 0.0])), R_ALONG_Y, atol=1e-12)
    world = np.zeros((1, 17, 3))
    world[0, 0] = (0.0, 0.0, 1.0)  # root: straight ahead, 5 m -> the principal point
    world[0, 1] = (0.5, 0.0, 2.0)  # camera frame (0.5, -1, 5) -> (960 + 100, 540 - 200) px
    x2d, x3d = render_window(world, _camera())
    # normalised: u / w * 2 - 1, v / w * 2 - h / w
    np.testing.assert_allclose(x2d[0, 0], [0.0, 0.0], atol=1e-6)
    np.testing.assert_allclose(x2d[0, 1], [1060 / 1920 * 2 - 1, 340 / 1920 * 2 - 1080 / 1920], atol=1e-6)
    np.testing.assert_allclose(x3d[0, 1], [0.5, -1.0, 0.0], atol=1e-6)
    # roll +90 deg: the image x axis turns onto the old y axis (world -Z), y onto -x (world -X)
    rolled = look_at_rotation(np.array([0.0, 1.0, 0.0]), math.pi / 2)
    np.testing.assert_allclose(rolled, [[0, -1, 0], [0, 0, 1], [-1, 0, 0]], atol=1e-12)
    x2d, _ = render_window(world, _camera(R=rolled))
    np.testing.assert_allclose(x2d[0, 1], [760 / 1920 * 2 - 1, 440 / 1920 * 2 - 1080 / 1920], atol=1e-6)


def test_rotation_onto_z_is_a_rotation_taking_v_to_z():
    rng = np.random.default_rng(0)
    for _ in range(20):
        v = rng.normal(size=3) * [0.3, 0.3, 0.0] + [0, 0, 1]
        v /= np.linalg.norm(v)
        Q = _rotation_onto_z(v)
        np.testing.assert_allclose(Q @ Q.T, np.eye(3), atol=1e-12)
        assert np.linalg.det(Q) == pytest.approx(1.0)
        np.testing.assert_allclose(Q @ v, [0, 0, 1], atol=1e-12)
        np.testing.assert_allclose(Q @ np.cross(v, [0, 0, 1]), np.cross(v, [0, 0, 1]), atol=1e-12)  # axis


def test_min_distance_is_the_tight_bound():
    """At the returned distance the body touches a margin; 2 % closer some joint leaves the image."""
    sampler = VirtualCameraSampler(distance_m=(0.01, 10.0))
    world = _walk(27)
    centre = world[:, 0].mean(0)
    offsets = np.ascontiguousarray((world.reshape(-1, 3) - centre).T)
    rng = np.random.default_rng(1)
    for _ in range(50):
        draw = sampler._draw(rng)
        rotation = draw.rotation()
        d = sampler.min_distance(offsets, draw, rotation)
        for scale, inside in ((1.0, True), (0.98, False)):
            camera = VirtualCamera(R=rotation, T=centre + scale * d * draw.towards_camera(), focal=draw.focal,
                                   center=draw.center, width=draw.width, height=draw.height)
            pixels = _pixels_by_hand(world, camera)
            assert _inside(pixels, camera, sampler.margin) == inside


# ------------------------------------------------------------------------------------------- sampler


@pytest.mark.parametrize("frames", [27, 243])
def test_sampled_cameras_cover_the_ranges_and_see_every_joint(frames):
    sampler = VirtualCameraSampler()
    world = _walk(frames)
    centre = world[:, 0].mean(0)
    cameras = [sampler.sample(world, np.random.default_rng(i)) for i in range(600 if frames == 27 else 200)]
    regular = [c for c in cameras if not c.fallback]
    assert len(regular) > 0.8 * len(cameras)
    for c in cameras:
        np.testing.assert_allclose(c.R.T @ c.R, np.eye(3), atol=1e-9)
        assert np.linalg.det(c.R) == pytest.approx(1.0)
        assert _inside(_pixels_by_hand(world, c), c, sampler.margin)
        # the placement is what the camera says: distance and direction from the centre
        away = c.T - centre
        assert np.linalg.norm(away) == pytest.approx(c.distance_m)
        assert math.degrees(math.asin(away[2] / np.linalg.norm(away))) == pytest.approx(c.elevation_deg)
        assert math.degrees(math.atan2(away[1], away[0])) % 360 == pytest.approx(c.azimuth_deg % 360)
        assert np.all(np.abs(c.center / [c.width, c.height] - 0.5) <= 0.05)
    if frames == 243:  # a 7 m walk: some draws need the fallback, which still sees everything
        assert any(c.fallback for c in cameras)
        assert all(c.focal == pytest.approx(0.6 * c.width) for c in cameras if c.fallback)
        return
    azimuth = np.array([c.azimuth_deg for c in regular])
    elevation = np.array([c.elevation_deg for c in regular])
    distance = np.array([c.distance_m for c in regular])
    focal = np.array([c.focal / c.width for c in regular])
    roll = np.array([c.roll_deg for c in regular])
    assert np.histogram(azimuth, bins=12, range=(0, 360))[0].min() > 0  # all around the subject
    assert -10 <= elevation.min() < -8 and 43 < elevation.max() <= 45
    assert 2 <= distance.min() < 3 and 9 < distance.max() <= 10
    assert 0.6 <= focal.min() < 0.7 and 2.3 < focal.max() <= 2.5
    assert -10 <= roll.min() < -9 and 9 < roll.max() <= 10
    shapes = {(c.width > c.height) - (c.width < c.height) for c in regular}
    assert shapes == {1, 0, -1}  # landscape, square, portrait


def test_sampler_rejects_bad_settings():
    with pytest.raises(ValueError, match="elevation_deg"):
        VirtualCameraSampler(elevation_deg=(-10.0, 90.0))
    with pytest.raises(ValueError, match="< 0.5"):
        VirtualCameraSampler(aim_jitter=0.45)
    with pytest.raises(ValueError, match="low <= high"):
        VirtualCameraSampler(distance_m=(10.0, 2.0))
    with pytest.raises(ValueError, match="image_sizes"):
        VirtualCameraSampler(image_sizes=())


# ------------------------------------------------------------------------------------------- rendering


def test_x3d_is_the_world_pose_rotated_and_reprojects_to_the_noise_free_x2d():
    world = _walk(27)
    camera = VirtualCameraSampler().sample(world, np.random.default_rng(3))
    x2d, x3d = render_window(world, camera)
    np.testing.assert_allclose(_bones(x3d), _bones(world), atol=1e-5)  # rigid: bone lengths kept
    np.testing.assert_allclose(x3d, np.einsum("ji,...j->...i", camera.R, world - world[:, :1]), atol=1e-5)
    np.testing.assert_allclose(x3d[:, 0], 0.0)
    root_cam = np.einsum("ji,...j->...i", camera.R, world[:, :1] - camera.T)  # (T, 1, 3)
    u = camera.focal * (x3d + root_cam)[..., :2] / (x3d + root_cam)[..., 2:] + camera.center
    np.testing.assert_allclose(x2d, _normalised(u, camera.width, camera.height), atol=1e-5)


def test_noise_is_relative_to_the_subject_size():
    """White noise only: the pixel residual's std is sigma x (f / root depth) / H36M_PIXELS_PER_METRE."""
    noise = DetectorNoise(jitter_ratio=0.0, outlier_rate=0.0)
    world = np.repeat(TEMPLATE_MM[None] / 1000.0, 4000, axis=0) + [0.0, 0.0, 0.0]
    sigma = noise.sigma_per_joint()
    for distance, focal in ((3.0, 1500.0), (8.0, 900.0)):
        camera = _camera(T=(0.0, -distance, 0.9), focal=focal, size=(1920, 1920), center=(960.0, 960.0))
        clean, _ = render_window(world, camera)
        noisy, _ = render_window(world, camera, noise, np.random.default_rng(0))
        residual_px = (noisy - clean) * 1920 / 2  # normalised -> pixels
        scale = focal / distance / H36M_PIXELS_PER_METRE
        np.testing.assert_allclose(residual_px.std(axis=0).mean(-1), scale * sigma, rtol=0.06)
    with pytest.raises(ValueError, match="rng"):
        render_window(world, camera, noise)


# ------------------------------------------------------------------------------------------- dataset


@pytest.fixture(scope="module")
def syn_sequences(synthetic_dataset):
    data_dir, name = synthetic_dataset
    return load_h36m(data_dir, name=name, subjects=["S1", "S5", "S6", "S7", "S8"])


def test_world_pose_is_the_same_from_every_camera_and_takes_are_used_once(syn_sequences, synthetic_dataset):
    positions = np.load(synthetic_dataset[0] / "data_3d_syn.npz", allow_pickle=True)["positions_3d"].item()
    takes = {(s.subject, s.action) for s in syn_sequences}
    for seq in syn_sequences:  # every camera's view rebuilds the stored world pose
        np.testing.assert_allclose(world_pose(seq), positions[seq.subject][seq.action], atol=2e-5)
    dataset = CameraAugmentedWindows(syn_sequences, 9)
    assert len(syn_sequences) == 4 * len(takes)  # 4 cameras per take in the files ...
    first_views = [s for i, s in enumerate(syn_sequences)
                   if (s.subject, s.action) not in {(t.subject, t.action) for t in syn_sequences[:i]}]
    assert dataset.sequences == first_views  # ... one view per take in the dataset
    assert len(dataset) == sum(len(window_starts(s.num_frames, 9)) for s in first_views)


def test_items_are_deterministic_per_seed_epoch_index(syn_sequences):
    noise = DetectorNoise()
    a = CameraAugmentedWindows(syn_sequences, 9, flip=True, seed=5, noise=noise)
    b = CameraAugmentedWindows(syn_sequences, 9, flip=True, seed=5, noise=noise)
    for i in (0, 3, len(a) - 1):
        np.testing.assert_array_equal(a[i]["x2d"], b[i]["x2d"])
        np.testing.assert_array_equal(a[i]["x3d"], b[i]["x3d"])
        np.testing.assert_array_equal(a[i]["x2d"], a[i]["x2d"])  # no hidden state
    first = a[2]["x2d"]
    a.set_epoch(1)
    assert not np.allclose(first, a[2]["x2d"])  # a new camera every epoch
    a.set_epoch(0)
    np.testing.assert_array_equal(first, a[2]["x2d"])
    other_seed = CameraAugmentedWindows(syn_sequences, 9, flip=True, seed=6, noise=noise)
    assert not np.allclose(first, other_seed[2]["x2d"])


def test_noise_switch_keeps_the_camera_and_flip_still_applies(syn_sequences):
    noisy = CameraAugmentedWindows(syn_sequences, 9, seed=1, noise=DetectorNoise())
    clean = CameraAugmentedWindows(syn_sequences, 9, seed=1)
    flipped = CameraAugmentedWindows(syn_sequences, 9, seed=1, flip=True)
    for i in range(len(clean)):
        camera = clean.camera(i)
        np.testing.assert_array_equal(camera.T, noisy.camera(i).T)
        item, noisy_item = clean[i], noisy[i]
        np.testing.assert_array_equal(item["x3d"], noisy_item["x3d"])
        # the same world window, re-projected by hand, is the noise-free x2d
        seq_index, start = clean.windows[i]
        world = clean.world[seq_index][start:start + 9].astype(np.float64)
        w, h = camera.width, camera.height
        u = _pixels_by_hand(world, camera)
        np.testing.assert_allclose(item["x2d"], _normalised(u, w, h), atol=1e-5)
        # the noise: a few px at the Human3.6M scale (sigmas 1.5-4 px), scaled by the subject's size
        residual_px = (noisy_item["x2d"] - item["x2d"]).numpy() * w / 2
        scale = camera.focal / ((world[:, 0] - camera.T) @ camera.R)[:, 2].mean() / H36M_PIXELS_PER_METRE
        assert 0 < np.median(np.abs(residual_px)) < 12 * scale
        expected = flip_pose(item["x2d"]) if flipped.is_flipped(i) else item["x2d"]
        np.testing.assert_array_equal(flipped[i]["x2d"], expected)
    assert any(flipped.is_flipped(i) for i in range(len(flipped)))


def test_sequences_without_world_3d_are_refused():
    kp = np.zeros((20, 17, 2), np.float32)
    with pytest.raises(ValueError, match="pose_3d and trajectory"):
        CameraAugmentedWindows([Sequence(keypoints_2d=kp)], 9)
    pose = np.repeat(TEMPLATE_MM[None] / 1000.0, 20, axis=0)
    y_down = pose[..., [0, 2, 1]] * [1, -1, 1]  # a camera-frame pose (3DHP: R = I, T = 0): Y is down
    camera = {"R": np.eye(3), "T": np.zeros(3)}
    seq = Sequence(keypoints_2d=kp, pose_3d=(y_down - y_down[:, :1]).astype(np.float32),
                   trajectory=y_down[:, 0].astype(np.float32), camera=camera)
    with pytest.raises(ValueError, match="Z up"):
        CameraAugmentedWindows([seq], 9)
    with pytest.raises(ValueError, match="camera_augmentation"):
        DataConfig(dataset="3dhp", camera_augmentation=True)


# ------------------------------------------------------------------------------------------- training


def test_train_help_lists_the_flags(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    text = capsys.readouterr().out
    assert "--camera-augmentation" in text and "--no-augment-noise" in text


def test_training_runs_with_camera_augmentation(tmp_path, synthetic_dataset):
    data_dir, name = synthetic_dataset
    config = TrainConfig.from_dict(dict(
        preset="tiny", checkpoint=str(tmp_path / "run"), epochs=1, max_steps=2, batch_size=4,
        val_max_windows=2, progress_bar=False, tensorboard=False, log_every_steps=1,
        data={"dataset": name, "data_dir": str(data_dir), "max_frames_per_sequence": 18,
              "val_fraction": 0.1, "camera_augmentation": True}))
    result = train(config)
    assert len(result.losses) == 2 and all(np.isfinite(result.losses))
