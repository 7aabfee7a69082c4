"""A depth-sensor model for the synthetic frames: what a Kinect-style structured-light camera does to an ideal
depth map (`writer.generate_scene(sensor="kinect")`).

`SensorModel` holds the parameters; `SceneSensor` applies them to the frames of one scene, from its own random
stream (`sensor_rng(seed)`), never the room's geometry or appearance stream: the mesh, the ideal depth and the
true poses are the same whichever sensor is chosen. Per frame (ideal depth z [H,W] metres along the optical
axis, 0 = no hit; triangle ids; intrinsics K with focal length f px), in this order:

1. range: depth outside [z_min, z_max] is lost, and beyond far_start with probability
   far_max * (z - far_start) / (z_max - far_start) (the pattern fades); the right-most `border_px` columns
   are always invalid (a Kinect's depth image has such a band);
2. projector shadow: the pattern comes from a projector `baseline` metres to the right of the camera (+x); a
   pixel is lost when that projector cannot see its point. On an image row the point of pixel u lands at
   projector column u_p = u - f * baseline / z; it is occluded when a pixel further right lands at a column
   <= u_p (a reverse cumulative minimum), which leaves a band of f * baseline * (1/z_near - 1/z_far) pixels
   to the left of every foreground object;
3. depth edges: pixels within `edge_px` of a jump of > `edge_rel` between 4-neighbours of the ideal depth
   are lost with probability `edge_drop` (ragged edges), and with probability `flying` of the rest take a
   depth between the nearest and farthest of their 3 x 3 neighbours (flying pixels);
4. grazing angles: with the incidence angle t between the surface normal and the viewing ray, a pixel is
   lost with probability graze_max * clip((t - graze_start) / (90 deg - graze_start), 0, 1) ** 2;
5. dark and specular surfaces: a surface of luminance L (its unshaded colour, 0..1) is lost with probability
   base_loss + dark_max * clip((dark_below - L) / dark_below, 0, 1) plus `specular` times the probability of
   its category (`SPECULAR`: mirrors, windows, screens, sanitary ware, ...); these losses come in blobs (a smooth random
   field of `blob_px` cells thresholded), like the patches a Kinect loses on glossy and black surfaces;
6. noise: Gaussian, sigma(z) = noise_a + noise_b * z^2 metres;
7. disparity quantisation: 1/z is rounded to a multiple of `quant_q` (1/m), i.e. a depth step of
   quant_q * z^2 (a Kinect resolves 1/8 pixel of disparity: quant_q = 1 / (8 f_sensor baseline)).

Pixel sizes (`edge_px`, `border_px`, `blob_px`) are given at the sensor's own focal length `f_ref` and scaled
by f / f_ref, so a frame rendered at 160 x 120 loses the same share of its field of view as one at 640 x 480.

Recorded poses: `drift_poses` adds a slow tracking error (camera-to-world poses float [N,4,4] -> the same),
an AR(1) walk per frame of translation N(0, drift_t) metres and rotation N(0, drift_r) radians per axis with
correlation drift_rho (stationary std drift / sqrt(1 - rho^2)); frames are rendered from the true poses.

`KINECT` was fitted to the 100 frames of the 7-Scenes sample (Kinect v1, 640 x 480, f = 585) with
`python benchmarks/bm_sensor_gap.py --fit` (statistics defined there):

* quant_q = 0.00288 /m: the median step between distinct depths, least squares of step = q z^2 over 0.5 m
  bins (2 mm at 0.75 m ... 41 mm at 3.75 m); 1 / (8 * 585 * 0.075) = 0.00285 would be the nominal value;
* noise_a = 0.33 mm, noise_b = 0.58 mm/m^2: the residual std of 8 x 8 planar patches (1.1 mm at 0.9 m ...
  15.9 mm at 3.9 m) less the quantisation's step^2/12, least squares;
* z_max = 4.0 m (the largest depth in the sample is 3.975 m), far_start = 3.5 m, far_max = 0.2 (the sample
  loses 16 % at 3.5-4 m against 6 % at 3-3.5 m), border_px = 8 (its 8 right columns are always invalid);
* baseline = 0.065 m: in the sample 79 % of the invalid runs between a near and a far surface have the near
  surface on their right (the shadow side), with median width / (f (1/z_near - 1/z_far)) = 0.062 m; 0.065 m
  gives 0.0615 m on the synthetic rooms (the nominal Kinect v1 baseline, 0.075 m, gave 0.071 m);
* graze_start = 60 deg, graze_max = 0.45: the sample loses 7.5 / 19 / 28 / 45 % at 70-75 / 75-80 / 80-85 /
  85-90 deg against 3-4 % below 70 deg (synthetic with these values: 10 / 18 / 21 / 51 %);
* edge_drop = 0.03, base_loss = 0.015, dark_below = 0.12, dark_max = 0.6 and the specular table were tuned by
  hand towards the invalid share off depth edges (sample 5.6 %, synthetic 6.0 %) and at them (sample 15 %,
  synthetic 22 %: the shadows alone exceed it, the synthetic rooms have more large depth jumps); the
  per-category split is an assumption (the sample has no labels);
* drift_* are assumptions (1 mm / 0.02 deg per frame, ~5 mm / 0.1 deg stationary std), not measured: the
  sample's poses come from a tracker we cannot compare with ground truth.
  `benchmarks/bm_fusion_gap.py` finds that 8 times this drift reproduces how much two real fusions of the
  sample disagree; completion trained on such rooms did no better on the real scan (docs/data_tools.md).

The statistics before and after are in benchmarks/results/sensor_gap.json.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Dict, Sequence, Union

import numpy as np

_SENSOR_STREAM = 0x5E75  # second word of the sensor seed: a stream apart from geometry and appearance

# raw category -> probability that a pixel on it is lost (specular / transparent / IR-absorbing surfaces)
SPECULAR: Dict[str, float] = {
    "mirror": 0.85, "window": 0.6, "tv": 0.5, "monitor": 0.45, "whiteboard": 0.15, "sink": 0.3, "toilet": 0.2,
    "bathtub": 0.2, "refrigerator": 0.15, "mini fridge": 0.15, "picture": 0.1, "pictures": 0.1, "painting": 0.1,
    "poster": 0.05,
}


@dataclass(frozen=True)
class SensorModel:
    """Parameters of the depth sensor (module docstring): lengths in metres, angles in degrees, probabilities
    in [0, 1], pixel sizes at focal length f_ref."""

    z_min: float = 0.0
    z_max: float = float("inf")
    far_start: float = float("inf")
    far_max: float = 0.0
    border_px: float = 0.0
    baseline: float = 0.0
    edge_rel: float = 0.05
    edge_px: float = 1.0
    edge_drop: float = 0.0
    flying: float = 0.0
    graze_start: float = 90.0
    graze_max: float = 0.0
    dark_below: float = 0.1
    dark_max: float = 0.0
    base_loss: float = 0.0
    specular: float = 0.0  # scale of the SPECULAR table (0: no specular losses)
    blob_px: float = 12.0
    noise_a: float = 0.0
    noise_b: float = 0.0
    quant_q: float = 0.0
    drift_t: float = 0.0
    drift_r: float = 0.0
    drift_rho: float = 0.98
    f_ref: float = 585.0

    def __post_init__(self):
        for f in fields(self):
            v = getattr(self, f.name)
            if not isinstance(v, (int, float)) or isinstance(v, bool) or np.isnan(v):
                raise TypeError(f"SensorModel.{f.name}: expected a number, got {v!r}")
            if v < 0:
                raise ValueError(f"SensorModel.{f.name}: expected >= 0, got {v}")
        for name in ("far_max", "edge_drop", "flying", "graze_max", "dark_max", "base_loss", "drift_rho", "dark_below"):
            if getattr(self, name) > 1:
                raise ValueError(f"SensorModel.{name}: expected a probability in [0, 1], got {getattr(self, name)}")
        if self.drift_rho >= 1:
            raise ValueError(f"SensorModel.drift_rho: expected < 1 (a stationary drift), got {self.drift_rho}")
        if not self.z_min < self.z_max:
            raise ValueError(f"SensorModel.z_min/z_max: expected z_min < z_max, got {self.z_min} and {self.z_max}")
        if self.graze_start > 90:
            raise ValueError(f"SensorModel.graze_start: expected an angle in [0, 90] degrees, got {self.graze_start}")
        if self.f_ref == 0 or self.blob_px < 1 or self.edge_rel == 0:
            raise ValueError(f"SensorModel: f_ref and edge_rel must be > 0 and blob_px >= 1, got {self.f_ref}, "
                             f"{self.edge_rel}, {self.blob_px}")

    @property
    def is_ideal(self) -> bool:
        """True when the model changes nothing (the ideal sensor)."""
        return self == IDEAL

    def to_dict(self) -> Dict[str, float]:
        return asdict(self)


IDEAL = SensorModel()
KINECT = SensorModel(z_min=0.4, z_max=4.0, far_start=3.5, far_max=0.2, border_px=8.0, baseline=0.065, edge_rel=0.05, edge_px=1.0,
                     edge_drop=0.03, flying=0.0, graze_start=60.0, graze_max=0.45, dark_below=0.12, dark_max=0.6,
                     base_loss=0.015, specular=1.0, blob_px=12.0, noise_a=0.00033, noise_b=0.00058, quant_q=0.00288,
                     drift_t=0.001, drift_r=0.0003, drift_rho=0.98)
SENSORS: Dict[str, SensorModel] = {"ideal": IDEAL, "kinect": KINECT}


def sensor_model(sensor: Union[str, SensorModel]) -> SensorModel:
    """The SensorModel of a name in SENSORS ("ideal" | "kinect") or the model itself."""
    if isinstance(sensor, SensorModel):
        return sensor
    if isinstance(sensor, str) and sensor in SENSORS:
        return SENSORS[sensor]
    raise ValueError(f"sensor: expected one of {list(SENSORS)} or a SensorModel, got {sensor!r}")


def sensor_rng(seed: int) -> np.random.Generator:
    """The random stream of a scene's sensor, independent of its geometry and appearance streams."""
    return np.random.default_rng([int(seed), _SENSOR_STREAM])


def _luminance(rgb: np.ndarray) -> np.ndarray:
    return (np.asarray(rgb, np.float64) @ np.array([0.299, 0.587, 0.114])) / 255.0


def projector_shadow(depth: np.ndarray, fx: float, baseline: float) -> np.ndarray:
    """bool [H,W]: pixels of depth [H,W] (0 = none) whose point a projector `baseline` m to the right (+x) of
    the camera cannot see (module docstring, step 2)."""
    valid = depth > 0
    H, W = depth.shape
    with np.errstate(divide="ignore"):
        up = np.where(valid, np.arange(W, dtype=np.float64) - fx * baseline / np.where(valid, depth, 1.0), np.inf)
    right_min = np.minimum.accumulate(up[:, ::-1], axis=1)[:, ::-1]  # min over columns >= u
    nxt = np.full((H, W), np.inf)
    nxt[:, :-1] = right_min[:, 1:]  # min over columns > u
    return valid & (nxt < up - 1e-6)


def depth_edges(depth: np.ndarray, rel: float) -> np.ndarray:
    """bool [H,W]: valid pixels with a valid 4-neighbour whose depth differs by > rel * the nearer depth, or an
    invalid 4-neighbour (a silhouette against nothing)."""
    z = np.where(depth > 0, depth.astype(np.float64), np.inf)
    e = np.zeros(depth.shape, bool)
    for ax in (0, 1):
        a, b = (z[1:], z[:-1]) if ax == 0 else (z[:, 1:], z[:, :-1])
        with np.errstate(invalid="ignore"):
            j = np.abs(a - b) > rel * np.minimum(a, b)
        if ax == 0:
            e[1:] |= j
            e[:-1] |= j
        else:
            e[:, 1:] |= j
            e[:, :-1] |= j
    return e & (depth > 0)


def _dilate(mask: np.ndarray, r: int) -> np.ndarray:
    """bool [H,W]: mask grown by r pixels (square), by shifted ORs."""
    out = mask.copy()
    for ax in (0, 1):
        src = out.copy()
        for s in range(1, r + 1):
            if ax == 0:
                out[s:] |= src[:-s]
                out[:-s] |= src[s:]
            else:
                out[:, s:] |= src[:, :-s]
                out[:, :-s] |= src[:, s:]
    return out


def _neighbour_minmax(depth: np.ndarray):
    """(min, max) of the valid depths in each 3 x 3 window (inf / -inf where none)."""
    lo = np.pad(np.where(depth > 0, depth, np.inf), 1, constant_values=np.inf)
    hi = np.pad(np.where(depth > 0, depth, -np.inf), 1, constant_values=-np.inf)
    H, W = depth.shape
    mn = np.full((H, W), np.inf)
    mx = np.full((H, W), -np.inf)
    for dy in range(3):
        for dx in range(3):
            mn = np.minimum(mn, lo[dy:dy + H, dx:dx + W])
            mx = np.maximum(mx, hi[dy:dy + H, dx:dx + W])
    return mn, mx


def blob_field(rng: np.random.Generator, shape, cell: float) -> np.ndarray:
    """float64 [H,W] in (0, 1), roughly uniform and smooth over `cell` px: a coarse Gaussian grid, bilinearly
    upsampled, normalised by its exact per-pixel std and mapped through the normal CDF."""
    from scipy.special import ndtr
    H, W = shape
    gh, gw = int(np.ceil(H / cell)) + 2, int(np.ceil(W / cell)) + 2
    g = rng.standard_normal((gh, gw))
    y = np.arange(H) / cell
    x = np.arange(W) / cell
    y0, x0 = np.floor(y).astype(int), np.floor(x).astype(int)
    fy, fx = (y - y0)[:, None], (x - x0)[None, :]
    f = (g[y0][:, x0] * (1 - fy) * (1 - fx) + g[y0 + 1][:, x0] * fy * (1 - fx)
         + g[y0][:, x0 + 1] * (1 - fy) * fx + g[y0 + 1][:, x0 + 1] * fy * fx)
    std = np.sqrt(((1 - fy) ** 2 + fy ** 2) * ((1 - fx) ** 2 + fx ** 2))
    return ndtr(f / std)


class SceneSensor:
    """The sensor applied to the frames of one scene.

    model: SensorModel or a name in SENSORS; seed: the scene's seed (its own stream, `sensor_rng`);
    vertices float [N,3], faces int [M,3], colors uint8 [N,3] (the face colour is that of its first vertex, as
    the renderer uses), obj int [N] (object of each vertex), categories: raw category of each object.
    """

    def __init__(self, model: Union[str, SensorModel], seed: int, vertices: np.ndarray, faces: np.ndarray,
                 colors: np.ndarray, obj: np.ndarray, categories: Sequence[str]):
        self.model = sensor_model(model)
        self.rng = sensor_rng(seed)
        if self.model.is_ideal:
            return
        v = np.asarray(vertices, np.float64)
        f = np.asarray(faces, np.int64)
        n = np.cross(v[f[:, 1]] - v[f[:, 0]], v[f[:, 2]] - v[f[:, 0]])
        self.face_normal = n / np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-12)
        lum = _luminance(np.asarray(colors)[f[:, 0]])
        m = self.model
        p_dark = m.dark_max * np.clip((m.dark_below - lum) / max(m.dark_below, 1e-12), 0, 1)
        spec = np.array([SPECULAR.get(c, 0.0) for c in categories] + [0.0]) * m.specular
        face_obj = np.asarray(obj, np.int64)[f[:, 0]]
        self.face_loss = np.clip(m.base_loss + p_dark + spec[face_obj], 0, 1)

    def depth(self, depth: np.ndarray, tri: np.ndarray, intrinsic: np.ndarray, camera_to_world: np.ndarray
              ) -> np.ndarray:
        """float32 [H,W] metres (0 = invalid): the ideal depth [H,W] (0 = no hit) as the sensor records it;
        tri int [H,W] the triangle of each pixel (-1 = none), intrinsic [3,3], camera_to_world [4,4] (the true
        pose). The ideal sensor returns `depth` itself."""
        m = self.model
        if m.is_ideal:
            return depth
        depth = np.asarray(depth, np.float32)
        if tri.shape != depth.shape:
            raise ValueError(f"tri: expected the depth's shape {list(depth.shape)}, got {list(tri.shape)}")
        H, W = depth.shape
        K = np.asarray(intrinsic, np.float64)[:3, :3]
        fx = float(K[0, 0])
        scale = fx / m.f_ref
        rng = self.rng
        z = depth.astype(np.float64)
        hit = (z > 0) & (tri >= 0)
        keep = hit & (z >= m.z_min) & (z <= m.z_max)
        if m.far_max > 0 and m.far_start < m.z_max:
            p = m.far_max * np.clip((z - m.far_start) / (m.z_max - m.far_start), 0, 1)
            keep &= rng.random((H, W)) >= p
        nb = int(round(m.border_px * scale))
        if nb > 0:
            keep[:, W - nb:] = False
        if m.baseline > 0:
            keep &= ~projector_shadow(np.where(hit, z, 0.0), fx, m.baseline)
        u01 = rng.random((H, W))
        fly = np.zeros((H, W), bool)
        if m.edge_drop > 0 or m.flying > 0:
            w = m.edge_px * scale
            r = max(1, int(round(w)))
            band = _dilate(depth_edges(np.where(hit, z, 0.0), m.edge_rel), r - 1) & hit
            p = min(1.0, w / r)
            keep &= ~(band & (u01 < m.edge_drop * p))
            fly = band & keep & (u01 >= m.edge_drop * p) & (u01 < (m.edge_drop + m.flying) * p)
        if m.graze_max > 0:
            t = np.where(tri >= 0, tri, 0).ravel()
            d = np.stack(np.meshgrid((np.arange(W) - K[0, 2]) / fx, (np.arange(H) - K[1, 2]) / K[1, 1]), -1)
            ray = np.concatenate([d, np.ones((H, W, 1))], -1).reshape(-1, 3) @ np.asarray(camera_to_world)[:3, :3].T
            cos = np.abs(np.einsum("ij,ij->i", ray, self.face_normal[t])) / np.linalg.norm(ray, axis=1)
            ang = np.degrees(np.arccos(np.clip(cos, 0, 1))).reshape(H, W)
            span = max(90.0 - m.graze_start, 1e-9)
            p = m.graze_max * np.clip((ang - m.graze_start) / span, 0, 1) ** 2
            keep &= rng.random((H, W)) >= p
        if self.face_loss.any():
            p = np.where(tri >= 0, self.face_loss[np.where(tri >= 0, tri, 0)], 0.0)
            keep &= blob_field(rng, (H, W), max(1.0, m.blob_px * scale)) >= p
        if fly.any():
            mn, mx = _neighbour_minmax(np.where(hit, z, 0.0))
            a = rng.random((H, W))
            z = np.where(fly, mn + a * (mx - mn), z)
        if m.noise_a > 0 or m.noise_b > 0:
            z = z + rng.standard_normal((H, W)) * (m.noise_a + m.noise_b * z * z)
        if m.quant_q > 0:
            with np.errstate(divide="ignore"):
                iz = np.round(1.0 / np.where(keep, z, 1.0) / m.quant_q)
            z = np.where(iz > 0, 1.0 / (np.maximum(iz, 1) * m.quant_q), 0.0)
        return np.where(keep & (z > 0), z, 0.0).astype(np.float32)

    def drift_poses(self, poses: np.ndarray) -> np.ndarray:
        """float64 [N,4,4]: camera-to-world poses [N,4,4] with the tracking drift of the module docstring
        (the poses themselves for a model without drift). Draws from the scene's sensor stream: call it
        after the frames."""
        poses = np.asarray(poses, np.float64)
        m = self.model
        if m.drift_t == 0 and m.drift_r == 0:
            return poses
        n = len(poses)
        steps = self.rng.standard_normal((n, 6)) * np.array([m.drift_t] * 3 + [m.drift_r] * 3)
        walk = np.zeros((n, 6))
        acc = np.zeros(6)
        for i in range(n):
            acc = m.drift_rho * acc + steps[i]
            walk[i] = acc
        out = poses.copy()
        for i in range(n):
            out[i, :3, :3] = _rotvec(walk[i, 3:]) @ poses[i, :3, :3]
            out[i, :3, 3] = poses[i, :3, 3] + walk[i, :3]
        return out


def _rotvec(w: np.ndarray) -> np.ndarray:
    """float64 [3,3] rotation of the rotation vector w [3] (Rodrigues)."""
    th = float(np.linalg.norm(w))
    if th < 1e-15:
        return np.eye(3)
    k = w / th
    Kx = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    return np.eye(3) + np.sin(th) * Kx + (1 - np.cos(th)) * Kx @ Kx

