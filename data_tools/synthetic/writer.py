"""Write synthetic scenes in the exact ScanNet layout.

`generate_scenes(out_root, n_scenes, seed)` writes, per scene `sceneXXXX_00`::

    <out_root>/sceneXXXX_00/sceneXXXX_00.sens                        RGB-D frames (jpeg colour, zlib depth, mm)
    <out_root>/sceneXXXX_00/sceneXXXX_00_vh_clean_2.ply              mesh, vertex colours: like ScanNet's, the
                                                                     reconstruction of the scan (the triangles
                                                                     some frame saw), see `scanned_part`
    <out_root>/sceneXXXX_00/sceneXXXX_00_vh_clean_2.labels.ply       + ushort nyu40 `label`
    <out_root>/sceneXXXX_00/sceneXXXX_00_vh_clean_2.0.010000.segs.json
    <out_root>/sceneXXXX_00/sceneXXXX_00.aggregation.json
    <out_root>/sceneXXXX_00/sceneXXXX_00.txt                         ScanNet metadata (key = value)
    <out_root>/sceneXXXX_00/sceneXXXX_00_2d-label-filt.zip           per-frame label images (label-filt/<i>.png,
                                                                     16-bit ScanNet label ids, see
                                                                     data_tools.scannet.label_images)

appearance "plain": flat per-instance colours (`colors`) under a head light; "textured": the same colours
with per-instance solid textures finer than a voxel and per-frame lighting (`appearance`), the mesh's vertex
colours being the texture averages. Both draw geometry from the same stream: meshes, depth and poses are
bit-identical across appearances.

sensor "ideal" (default): the rendered depth, rounded to millimetres, and the true poses; "kinect" (or a
`sensor.SensorModel`): the depth as a Kinect-style camera records it (noise growing with distance, disparity
quantisation, projector shadows, missing depth at grazing angles, depth edges, dark and specular surfaces)
and poses with a slow tracking drift, from the scene's own sensor stream (`sensor`): the mesh, labels and
colour frames are the same for every sensor.

content "basic" (default): the rooms of `room`; "cluttered": the same rooms plus open shelves, thin
structures (floor lamps, coat racks), things on the floor and on table tops (`room` module docstring).

Scene k of a call uses seed `seed * 1000 + k` and room type `scene_room_type(first_index + k)`: the five
types in rotation by scene number (scene0000 bedroom, scene0001 living room, scene0002 office,
scene0003 kitchen, scene0004 bathroom, scene0005 bedroom, ...), so any 5 consecutive scenes cover every
type. A scene whose `.sens` exists is skipped (the `.sens` is written last, atomically), so an
interrupted run can be resumed.
"""
from __future__ import annotations

import os
from typing import List, Optional, Sequence, Union

import numpy as np

from sparse3d.utils.atomic_io import atomic_write_json, atomic_write_text

from ..scannet.label_images import label_zip_name, write_label_images
from ..scannet.labels import LabelMap
from ..scannet.ply import write_ply
from ..scannet.sens import write_sens
from .appearance import appearance_rng, draw_lights, draw_textures
from .label_frames import label_frame, object_label_ids
from .render import MeshRenderer, room_trajectory
from .room import CONTENTS, RAW_TO_NYU40, make_room
from .room_types import ROOM_TYPES, SCANNET_SCENE_TYPES
from .sensor import SceneSensor, SensorModel, sensor_model

PathLike = Union[str, os.PathLike]


APPEARANCES = ("plain", "textured")


def nyu40_palette() -> np.ndarray:
    """uint8 [41,3] fixed colours for nyu40 ids (0 = unannotated, black)."""
    rng = np.random.default_rng(40)
    pal = rng.integers(40, 256, (41, 3)).astype(np.uint8)
    pal[0] = 0
    return pal


def default_intrinsic(width: int, height: int) -> np.ndarray:
    """float64 [3,3] ScanNet-like depth intrinsics (fx = fy = 0.9 * width) for a width x height image."""
    f = 0.9 * width
    return np.array([[f, 0, (width - 1) / 2], [0, f, (height - 1) / 2], [0, 0, 1.0]])


def scene_room_type(index: int, room_types: Optional[Sequence[str]] = None) -> str:
    """The room type of scene number `index` (int >= 0): room_types (default ROOM_TYPES) in rotation."""
    types = tuple(room_types) if room_types is not None else ROOM_TYPES
    if not types:
        raise ValueError("room_types must hold at least one room type, got an empty sequence")
    bad = [t for t in types if t not in ROOM_TYPES]
    if bad:
        raise ValueError(f"room_types must be among {list(ROOM_TYPES)}, got {bad}")
    return types[int(index) % len(types)]


def scanned_part(verts: np.ndarray, faces: np.ndarray, colors: np.ndarray, obj: np.ndarray, seg: np.ndarray,
                 seen: np.ndarray):
    """The part of a room mesh that a scan reconstructs: the triangles `seen` (bool [M]) by some frame, and
    the vertices they use, renumbered. ScanNet's `_vh_clean_2.ply` is such a reconstruction (no wall
    exteriors, no undersides, no backs against walls), and the benchmark scores its vertices.

    verts float [N,3], faces int [M,3], colors uint8 [N,3], obj / seg int [N] -> the same arrays, kept part."""
    kept = np.asarray(faces)[np.asarray(seen, bool)]
    used = np.unique(kept)
    if len(used) == 0:
        raise ValueError("the camera trajectory saw no triangle of the room: nothing to write")
    remap = np.full(len(verts), -1, np.int64)
    remap[used] = np.arange(len(used))
    return (verts[used], remap[kept].astype(np.asarray(faces).dtype), colors[used], obj[used], seg[used])


def generate_scene(out_root: PathLike, scene_id: str, seed: int, n_frames: int = 100, width: int = 320,
                   height: int = 240, depth_noise: float = 0.0, label_map: Optional[LabelMap] = None,
                   overwrite: bool = False, room_type: Optional[str] = None, appearance: str = "plain",
                   sensor: Union[str, SensorModel] = "ideal", content: str = "basic") -> str:
    """Generate one room and write it as a ScanNet scene folder; returns the folder.

    n_frames: RGB-D frames along the trajectory; width/height: image size (colour = depth size);
    depth_noise: std-dev (metres, at 1 m; scales with z^2) of Gaussian depth noise, 0 = exact;
    label_map: maps raw categories to nyu40 (default: the built-in table of the real tsv's ids);
    room_type: one of ROOM_TYPES, None = drawn from the seed (`make_room`);
    appearance: "plain" or "textured"; sensor: "ideal" | "kinect" | a sensor.SensorModel; content: "basic" |
    "cluttered" (module docstring).
    """
    if content not in CONTENTS:
        raise ValueError(f"content: expected one of {list(CONTENTS)}, got {content!r}")
    model = sensor_model(sensor)
    if not model.is_ideal and depth_noise > 0:
        raise ValueError(f"depth_noise: expected 0 with a sensor model ({sensor!r} has its own noise), "
                         f"got {depth_noise}")
    if appearance not in APPEARANCES:
        raise ValueError(f"appearance: expected one of {list(APPEARANCES)}, got {appearance!r}")
    if n_frames < 1:
        raise ValueError(f"n_frames: expected >= 1, got {n_frames}")
    if width < 8 or height < 8:
        raise ValueError(f"width/height: expected >= 8, got {width}x{height}")
    d = os.path.join(os.fspath(out_root), scene_id)
    sens_path = os.path.join(d, scene_id + ".sens")
    if os.path.isfile(sens_path) and not overwrite:
        return d
    os.makedirs(d, exist_ok=True)
    room = make_room(seed, room_type, content=content)
    verts, faces, colors, obj, seg = room.mesh()
    # render the trajectory; the triangles it sees are the scan's reconstruction (below)
    K = default_intrinsic(width, height)
    poses = room_trajectory(room.size, n_frames, seed + 7)
    face_obj = obj[faces[:, 0]].astype(np.int64)
    face_label = object_label_ids([o.raw_category for o in room.objects])[face_obj]
    lights = None
    if appearance == "textured":
        app = appearance_rng(seed)
        textures = draw_textures(app, [o.color_key or o.raw_category for o in room.objects])
        lights = draw_lights(app, n_frames)
        renderer = MeshRenderer(verts, faces, colors[faces[:, 0]], textures, face_obj)
        colors = textures.mean_colors(colors, obj)
    else:
        renderer = MeshRenderer(verts, faces, colors[faces[:, 0]])
    rng = np.random.default_rng(seed + 11)
    camera = SceneSensor(model, seed, verts, faces, colors, obj, [o.raw_category for o in room.objects])
    cols, deps, labels = [], [], {}
    seen = np.zeros(len(faces), bool)
    for i, pose in enumerate(poses):
        depth, color, tri = renderer.render(K, pose, width, height, light=None if lights is None else lights[i])
        seen[tri[tri >= 0]] = True
        labels[i] = label_frame(tri, face_label)
        depth = camera.depth(depth, tri, K, pose)
        if depth_noise > 0:
            valid = depth > 0
            depth = depth + valid * rng.normal(0, 1, depth.shape) * depth_noise * depth ** 2
        deps.append(np.clip(np.round(depth * 1000.0), 0, 65535).astype(np.uint16))
        cols.append(color)
    poses = camera.drift_poses(poses)
    verts, faces, colors, obj, seg = scanned_part(verts, faces, colors, obj, seg, seen)
    nyu_of = (lambda raw: label_map.nyu40(raw)) if label_map is not None else (lambda raw: RAW_TO_NYU40[raw])
    obj_nyu = np.array([nyu_of(o.raw_category) for o in room.objects], np.uint16)
    vlabel = obj_nyu[obj]
    p = lambda suf: os.path.join(d, scene_id + suf)  # noqa: E731
    write_ply(p("_vh_clean_2.ply"), verts, faces, colors)
    write_ply(p("_vh_clean_2.labels.ply"), verts, faces, nyu40_palette()[vlabel], vlabel)
    seg_name = scene_id + "_vh_clean_2.0.010000.segs.json"
    atomic_write_json(p("_vh_clean_2.0.010000.segs.json"), {
        "params": {"kThresh": "0.0001", "segMinVerts": "20", "minPoints": "750", "maxPoints": "5000",
                   "thinThresh": "0.05", "flatThresh": "0.001", "minLength": "0.02", "maxLength": "1"},
        "sceneId": scene_id, "segIndices": seg.tolist()})
    groups = []
    for k, o in enumerate(room.objects):
        segs = np.unique(seg[obj == k]).tolist()
        if segs:  # an object the scan never saw is not in the reconstruction, so nobody annotated it
            groups.append({"id": len(groups), "objectId": len(groups), "segments": segs, "label": o.raw_category})
    atomic_write_json(p(".aggregation.json"), {"sceneId": "scannet." + scene_id, "appId": "sparse3d.synthetic.v1",
                                               "segGroups": groups, "segmentsFile": "scannet." + seg_name})
    W, D, H = room.size
    meta = {"axisAlignment": " ".join(["1", "0", "0", "0", "0", "1", "0", "0", "0", "0", "1", "0", "0", "0", "0", "1"]),
            "colorHeight": height, "colorWidth": width, "depthHeight": height, "depthWidth": width,
            "fx_color": K[0, 0], "fx_depth": K[0, 0], "fy_color": K[1, 1], "fy_depth": K[1, 1],
            "mx_color": K[0, 2], "mx_depth": K[0, 2], "my_color": K[1, 2], "my_depth": K[1, 2],
            "numColorFrames": n_frames, "numDepthFrames": n_frames, "numIMUmeasurements": 0,
            "sceneType": SCANNET_SCENE_TYPES[room.room_type], "roomType": room.room_type,
            "roomSize": f"{W:.4f} {D:.4f} {H:.4f}", "seed": seed, "appearance": appearance}
    if not model.is_ideal:
        meta["sensor"] = sensor if isinstance(sensor, str) else "custom"
    if content != "basic":
        meta["content"] = content
    atomic_write_text(p(".txt"), "".join(f"{k} = {v}\n" for k, v in meta.items()))
    write_label_images(os.path.join(d, label_zip_name(scene_id)), labels)
    write_sens(sens_path, cols, deps, poses, K, K, depth_shift=1000.0, color_compression="jpeg",
               depth_compression="zlib_ushort")
    return d


def generate_scenes(out_root: PathLike, n_scenes: int, seed: int = 0, n_frames: int = 100, width: int = 320,
                    height: int = 240, depth_noise: float = 0.0, first_index: int = 0,
                    label_map: Optional[LabelMap] = None, room_types: Optional[Sequence[str]] = None,
                    appearance: str = "plain", sensor: Union[str, SensorModel] = "ideal",
                    content: str = "basic") -> List[str]:
    """Generate `n_scenes` rooms `scene{first_index+k:04d}_00` under `out_root`; returns their folders.

    Scene k: seed `seed * 1000 + k`, room type `scene_room_type(first_index + k, room_types)` (default: the
    five ROOM_TYPES in rotation by scene number). Deterministic in `seed`; existing scenes (with a `.sens`)
    are kept. appearance: "plain" | "textured"; sensor: "ideal" | "kinect" | a SensorModel; content: "basic" |
    "cluttered" (module docstring).
    """
    if not isinstance(n_scenes, int) or n_scenes < 1:
        raise ValueError(f"n_scenes: expected an int >= 1, got {n_scenes!r}")
    types = [scene_room_type(first_index + k, room_types) for k in range(n_scenes)]
    return [generate_scene(out_root, f"scene{first_index + k:04d}_00", seed * 1000 + k, n_frames, width, height,
                           depth_noise, label_map, room_type=types[k], appearance=appearance, sensor=sensor,
                           content=content)
            for k in range(n_scenes)]
