"""Synthetic rooms written in the exact ScanNet layout (the built-in data of demos and tests)."""
from .render import MeshRenderer, look_at_pose, room_trajectory
from .room import MAX_EDGE, RAW_TO_NYU40, Room, make_room
from .room_types import ROOM_TYPES
from .writer import default_intrinsic, generate_scene, generate_scenes, scene_room_type
