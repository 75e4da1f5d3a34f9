import json

import numpy as np
import pytest
import torch

from posediffusion import camera
from tests.helpers import SHARED_CAMERAS as CAMERAS_JSON

CAM = {"focal_length": [1000.0, 1100.0], "center": [500.0, 400.0],
       "radial_distortion": [0.1, 0.01, 0.001], "tangential_distortion": [0.002, 0.003]}
POINT = [0.1, -0.2, 2.0]
# By hand with the JSON "convention": x = 0.05, y = -0.1, r2 = 0.0125,
# radial = 1 + 0.1 r2 + 0.01 r2^2 + 0.001 r2^3 = 1.001251564453125, tan = p1 y + p2 x = -0.00005,
# radial + tan = 1.001201564453125, u = 1000 (0.05 (radial + tan) + p2 r2) + 500,
# v = 1100 (-0.1 (radial + tan) + p1 r2) + 400
EXPECTED_UV = [550.09757822265625, 289.89532791015625]


def _rotation(rng):
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    q = q * np.sign(np.diag(r))
    return q if np.linalg.det(q) > 0 else -q


def test_world_to_camera_hand_value():
    rz90 = np.array([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])  # camera x axis = world y axis
    t = np.array([1.0, 2.0, 3.0])
    # R^T (X - T) with X - T = (1, 0, 0): R^T e_x = first row of R = (0, -1, 0)
    np.testing.assert_allclose(camera.world_to_camera(np.array([2.0, 2.0, 3.0]), rz90, t), [0.0, -1.0, 0.0])


@pytest.mark.parametrize("kind", ["numpy", "torch"])
def test_world_camera_round_trip(kind):
    rng = np.random.default_rng(0)
    rot, t = _rotation(rng), rng.normal(size=3)
    pts = rng.normal(size=(4, 17, 3))
    if kind == "torch":
        pts = torch.from_numpy(pts)
    cam_pts = camera.world_to_camera(pts, rot, t)
    assert type(cam_pts) is type(pts)
    back = camera.camera_to_world(cam_pts, rot, t)
    np.testing.assert_allclose(np.asarray(back), np.asarray(pts), atol=1e-12)
    # distances are preserved (rigid transform)
    np.testing.assert_allclose(np.linalg.norm(np.asarray(cam_pts)[:, 1] - np.asarray(cam_pts)[:, 0], axis=-1),
                               np.linalg.norm(np.asarray(pts)[:, 1] - np.asarray(pts)[:, 0], axis=-1))


def test_projection_hand_value_numpy_and_torch():
    uv = camera.project_to_pixels(np.array(POINT), CAM)
    np.testing.assert_allclose(uv, EXPECTED_UV, rtol=1e-12)
    uv_t = camera.project_to_pixels(torch.tensor([POINT, POINT], dtype=torch.float64), CAM)
    assert isinstance(uv_t, torch.Tensor) and uv_t.shape == (2, 2) and uv_t.dtype == torch.float64
    np.testing.assert_allclose(uv_t.numpy(), [EXPECTED_UV, EXPECTED_UV], rtol=1e-12)
    uv_f = camera.project_to_pixels(torch.tensor(POINT, dtype=torch.float32), CAM)
    assert uv_f.dtype == torch.float32
    np.testing.assert_allclose(uv_f.numpy(), EXPECTED_UV, rtol=1e-6)


def test_pinhole_matches_zero_distortion():
    rng = np.random.default_rng(1)
    pts = rng.normal(size=(5, 3)) + [0.0, 0.0, 5.0]
    no_dist = {"focal_length": CAM["focal_length"], "center": CAM["center"]}
    np.testing.assert_allclose(camera.project_pinhole(pts, CAM["focal_length"], CAM["center"]),
                               camera.project_to_pixels(pts, no_dist), rtol=1e-12)
    # hand: (1, 2, 4) -> (1000 * 0.25 + 500, 1100 * 0.5 + 400)
    np.testing.assert_allclose(camera.project_pinhole(np.array([1.0, 2.0, 4.0]), CAM["focal_length"],
                                                      CAM["center"]), [750.0, 950.0])


def test_normalize_screen_hand_values_and_inverse():
    w, h = 1000.0, 1002.0
    px = np.array([[500.0, 501.0], [0.0, 0.0], [1000.0, 1002.0]])
    expected = np.array([[0.0, 0.0], [-1.0, -1.002], [1.0, 1.002]])  # u/w*2-1, v/w*2-h/w
    np.testing.assert_allclose(camera.normalize_screen(px, w, h), expected, atol=1e-12)
    np.testing.assert_allclose(camera.image_coordinates(expected, w, h), px, atol=1e-9)
    t = torch.tensor(px, dtype=torch.float32)
    back = camera.image_coordinates(camera.normalize_screen(t, w, h), w, h)
    assert isinstance(back, torch.Tensor) and back.dtype == torch.float32
    torch.testing.assert_close(back, t)


@pytest.mark.skipif(not CAMERAS_JSON.exists(), reason="shared data (../shared/data) not available")
def test_load_shared_cameras():
    cams = camera.load_cameras(CAMERAS_JSON)
    assert set(cams) == {f"S{i}" for i in range(1, 12)}
    cam = cams["S1"]["54138969"]
    assert cam["R"].shape == (3, 3) and cam["res_w"] == 1000 and cam["res_h"] == 1002
    np.testing.assert_allclose(cam["R"] @ cam["R"].T, np.eye(3), atol=1e-6)
    assert np.linalg.det(cam["R"]) == pytest.approx(1.0, abs=1e-6)
    # a point 1 m above the world origin (where subjects stand) is in front of every camera and on screen
    for subject in cams.values():
        for c in subject.values():
            p = camera.world_to_camera(np.array([0.0, 0.0, 1.0]), c["R"], c["T"])
            uv = camera.project_to_pixels(p, c)
            assert p[2] > 2.0 and 0 < uv[0] < c["res_w"] and 0 < uv[1] < c["res_h"]


def test_load_cameras_malformed(tmp_path):
    bad_json = tmp_path / "broken.json"
    bad_json.write_text("{not json")
    with pytest.raises(ValueError, match="broken.json"):
        camera.load_cameras(bad_json)
    no_subjects = tmp_path / "nosubj.json"
    no_subjects.write_text(json.dumps({"cameras": {}}))
    with pytest.raises(ValueError, match="subjects"):
        camera.load_cameras(no_subjects)
    bad_shape = tmp_path / "shape.json"
    entry = {"R": [[1, 0], [0, 1]], "T": [0, 0, 0], "focal_length": [1, 1], "center": [0, 0],
             "radial_distortion": [0, 0, 0], "tangential_distortion": [0, 0], "res_w": 10, "res_h": 10}
    bad_shape.write_text(json.dumps({"subjects": {"S1": {"c0": entry}}}))
    with pytest.raises(ValueError, match=r"shape.json.*S1/c0.*'R'"):
        camera.load_cameras(bad_shape)
    with pytest.raises(ValueError, match="missing.json"):
        camera.load_cameras(tmp_path / "missing.json")
