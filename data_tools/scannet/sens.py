"""ScanNet `.sens` (version 4) reader and writer.

Layout (little endian), as written by ScanNet's `SensorData::saveToFile`::

    uint32   version (= 4)
    uint64   n ; char[n] sensor_name
    float32  intrinsic_color[4][4], extrinsic_color[4][4],
             intrinsic_depth[4][4], extrinsic_depth[4][4]      (row-major)
    int32    color_compression   (-1 unknown, 0 raw RGB8, 1 png, 2 jpeg)
    int32    depth_compression   (-1 unknown, 0 raw uint16, 1 zlib uint16, 2 occi)
    uint32   color_width, color_height, depth_width, depth_height
    float32  depth_shift         (depth value / depth_shift = metres; 1000 for ScanNet)
    uint64   n_frames
    n_frames x { float32 camera_to_world[4][4]; uint64 timestamp_color, timestamp_depth;
                 uint64 color_bytes, depth_bytes; uint8 color[color_bytes]; uint8 depth[depth_bytes] }
    uint64   n_imu
    n_imu x { float64 rotation_rate[3], acceleration[3], magnetic_field[3], attitude[3],
              gravity[3]; uint64 timestamp }                 (128 bytes each)

`SensReader` streams: opening the file reads the header and seeks over the frames
to index their offsets (a 1 GB file is never loaded whole); `frame(i)` reads one frame.
Frames whose camera-to-world pose is not finite (ScanNet marks lost tracking with
-inf) are listed in `invalid_pose_frames` and skipped by `iter_frames()` and
`export()`.
"""
from __future__ import annotations

import os
import struct
import zlib
from dataclasses import dataclass
from typing import BinaryIO, Iterator, List, Optional, Sequence, Union

import numpy as np

from sparse3d.utils.atomic_io import atomic_open, atomic_write_bytes, atomic_write_text

from ..io_utils import decode_image, encode_image

COLOR_COMPRESSION = {-1: "unknown", 0: "raw", 1: "png", 2: "jpeg"}
DEPTH_COMPRESSION = {-1: "unknown", 0: "raw_ushort", 1: "zlib_ushort", 2: "occi_ushort"}
_IMU_RECORD = struct.Struct("<15dQ")
_FRAME_HEADER = struct.Struct("<16fQQQQ")

PathLike = Union[str, os.PathLike]


class SensFormatError(ValueError):
    """A `.sens` file is corrupt, truncated or uses an unsupported feature; names the file and frame."""


@dataclass
class SensHeader:
    """The `.sens` header. Matrices are float32 [4, 4], row-major as stored."""

    version: int
    sensor_name: str
    intrinsic_color: np.ndarray
    extrinsic_color: np.ndarray
    intrinsic_depth: np.ndarray
    extrinsic_depth: np.ndarray
    color_compression: str
    depth_compression: str
    color_width: int
    color_height: int
    depth_width: int
    depth_height: int
    depth_shift: float
    n_frames: int


@dataclass
class SensFrame:
    """One RGB-D frame.

    camera_to_world: float32 [4, 4]; color: uint8 [Hc, Wc, 3] (decoded) or None;
    depth: uint16 [Hd, Wd] raw depth values (divide by `depth_shift` for metres).
    color_bytes / depth_bytes: the compressed payloads as stored.
    """

    index: int
    camera_to_world: np.ndarray
    timestamp_color: int
    timestamp_depth: int
    color_bytes: bytes
    depth_bytes: bytes
    color: Optional[np.ndarray] = None
    depth: Optional[np.ndarray] = None


@dataclass
class ImuRecord:
    """One IMU sample: five float64 [3] vectors and a uint64 timestamp."""

    rotation_rate: np.ndarray
    acceleration: np.ndarray
    magnetic_field: np.ndarray
    attitude: np.ndarray
    gravity: np.ndarray
    timestamp: int


def _read_exact(f: BinaryIO, n: int, path: str, what: str) -> bytes:
    b = f.read(n)
    if len(b) != n:
        raise SensFormatError(f"{path}: truncated while reading {what}: expected {n} bytes, got {len(b)}")
    return b


class SensReader:
    """Streaming, random-access reader of a ScanNet `.sens` v4 file.

    Usage::

        with SensReader("scene0000_00.sens") as r:
            print(r.header.n_frames, r.invalid_pose_frames)
            f = r.frame(10)              # SensFrame with decoded color and depth
            for f in r.iter_frames():    # valid-pose frames only
                ...
    """

    def __init__(self, path: PathLike):
        self.path = os.fspath(path)
        if not os.path.isfile(self.path):
            raise FileNotFoundError(f"sens file not found: {self.path}")
        self._f: BinaryIO = open(self.path, "rb")
        try:
            self.header = self._read_header()
            room = os.path.getsize(self.path) - self._f.tell()
            if self.header.n_frames > room // _FRAME_HEADER.size:  # checked before allocating per-frame arrays
                raise SensFormatError(f"{self.path}: header says {self.header.n_frames} frames, but the "
                                      f"{room} bytes after the header hold at most {room // _FRAME_HEADER.size}")
            self._offsets: List[int] = []
            self._poses = np.zeros((self.header.n_frames, 4, 4), np.float32)
            self._index_frames()
            self.imu = self._read_imu()
        except Exception:
            self._f.close()
            raise
        self.invalid_pose_frames: List[int] = [
            i for i in range(self.header.n_frames) if not np.all(np.isfinite(self._poses[i]))
        ]
        bad = set(self.invalid_pose_frames)
        self.valid_frames: List[int] = [i for i in range(self.header.n_frames) if i not in bad]

    # ------------------------------------------------------------------ parsing
    def _read_header(self) -> SensHeader:
        f, p = self._f, self.path
        (version,) = struct.unpack("<I", _read_exact(f, 4, p, "version"))
        if version != 4:
            raise SensFormatError(f"{p}: unsupported .sens version: expected 4, got {version}")
        (n,) = struct.unpack("<Q", _read_exact(f, 8, p, "sensor name length"))
        if n > 1 << 16:
            raise SensFormatError(f"{p}: corrupt header: sensor name length {n} is implausible")
        name = _read_exact(f, n, p, "sensor name").decode("utf-8", errors="replace")
        mats = np.frombuffer(_read_exact(f, 256, p, "calibration matrices"), "<f4").reshape(4, 4, 4).copy()
        cc, dc = struct.unpack("<ii", _read_exact(f, 8, p, "compression types"))
        if cc not in COLOR_COMPRESSION or dc not in DEPTH_COMPRESSION:
            raise SensFormatError(f"{p}: corrupt header: compression types color={cc} depth={dc}")
        cw, ch, dw, dh = struct.unpack("<IIII", _read_exact(f, 16, p, "image sizes"))
        (shift,) = struct.unpack("<f", _read_exact(f, 4, p, "depth shift"))
        (nf,) = struct.unpack("<Q", _read_exact(f, 8, p, "frame count"))
        if max(cw, ch, dw, dh) > 1 << 15 or nf > 1 << 32:
            raise SensFormatError(f"{p}: corrupt header: sizes {cw}x{ch}, {dw}x{dh}, {nf} frames")
        if not (np.isfinite(shift) and shift > 0):
            raise SensFormatError(f"{p}: corrupt header: depth shift {shift} (expected a finite value > 0)")
        return SensHeader(version, name, mats[0], mats[1], mats[2], mats[3], COLOR_COMPRESSION[cc],
                          DEPTH_COMPRESSION[dc], cw, ch, dw, dh, float(shift), int(nf))

    def _index_frames(self) -> None:
        f, p = self._f, self.path
        size = os.fstat(f.fileno()).st_size
        for i in range(self.header.n_frames):
            off = f.tell()
            b = f.read(_FRAME_HEADER.size)
            if len(b) != _FRAME_HEADER.size:
                raise SensFormatError(f"{p}: frame {i}: truncated frame header at byte {off} "
                                      f"(file has {size} bytes, header says {self.header.n_frames} frames)")
            vals = _FRAME_HEADER.unpack(b)
            cbytes, dbytes = vals[18], vals[19]
            end = off + _FRAME_HEADER.size + cbytes + dbytes
            if end > size:
                raise SensFormatError(f"{p}: frame {i}: truncated: frame data ends at byte {end} "
                                      f"but the file has {size} bytes")
            self._poses[i] = np.asarray(vals[:16], np.float32).reshape(4, 4)
            self._offsets.append(off)
            f.seek(end)

    def _read_imu(self) -> List[ImuRecord]:
        f, p = self._f, self.path
        b = f.read(8)
        if len(b) == 0:  # some writers omit the IMU section entirely
            return []
        if len(b) != 8:
            raise SensFormatError(f"{p}: truncated IMU count after the last frame")
        (n,) = struct.unpack("<Q", b)
        room = os.fstat(f.fileno()).st_size - f.tell()
        if n > room // _IMU_RECORD.size:  # checked before reading (a corrupt count would allocate n * 128 bytes)
            raise SensFormatError(f"{p}: truncated IMU records: the count says {n} records "
                                  f"({n * _IMU_RECORD.size} bytes), the file has {room} bytes left")
        raw = f.read(n * _IMU_RECORD.size)
        if len(raw) != n * _IMU_RECORD.size:
            raise SensFormatError(f"{p}: truncated IMU records: expected {n} records "
                                  f"({n * _IMU_RECORD.size} bytes), got {len(raw)} bytes")
        out = []
        for k in range(n):
            v = _IMU_RECORD.unpack_from(raw, k * _IMU_RECORD.size)
            a = np.asarray(v[:15], np.float64).reshape(5, 3)
            out.append(ImuRecord(a[0], a[1], a[2], a[3], a[4], int(v[15])))
        return out

    # ------------------------------------------------------------------ access
    def __len__(self) -> int:
        return self.header.n_frames

    @property
    def poses(self) -> np.ndarray:
        """float32 [n_frames, 4, 4] camera-to-world (non-finite for invalid frames)."""
        return self._poses

    def frame(self, i: int, decode: bool = True) -> SensFrame:
        """Read frame `i` (0 <= i < n_frames); decode color (uint8 [H,W,3]) and depth (uint16 [H,W])."""
        if not isinstance(i, (int, np.integer)):
            raise TypeError(f"frame index: expected int, got {type(i).__name__}")
        if not 0 <= i < self.header.n_frames:
            raise IndexError(f"{self.path}: frame index {i} out of range [0, {self.header.n_frames})")
        f = self._f
        f.seek(self._offsets[i])
        vals = _FRAME_HEADER.unpack(f.read(_FRAME_HEADER.size))
        cbytes = f.read(vals[18])
        dbytes = f.read(vals[19])
        fr = SensFrame(int(i), self._poses[i].copy(), int(vals[16]), int(vals[17]), cbytes, dbytes)
        if decode:
            fr.color = self.decode_color(cbytes, i)
            fr.depth = self.decode_depth(dbytes, i)
        return fr

    def decode_color(self, data: bytes, i: int = -1) -> np.ndarray:
        """Decode a color payload to uint8 [Hc, Wc, 3]."""
        h = self.header
        comp = h.color_compression
        try:
            if comp == "raw":
                if len(data) != h.color_width * h.color_height * 3:
                    raise ValueError(f"raw color has {len(data)} bytes, expected {h.color_width * h.color_height * 3}")
                img = np.frombuffer(data, np.uint8).reshape(h.color_height, h.color_width, 3).copy()
            elif comp in ("png", "jpeg"):
                _check_image_size(data, h.color_width, h.color_height)  # before decoding: no bomb
                img = decode_image(data)
                if img.ndim == 2:
                    img = np.repeat(img[..., None], 3, axis=2)
                img = img[..., :3]
            else:
                raise ValueError(f"unsupported color compression {comp!r}")
        except Exception as e:
            raise SensFormatError(f"{self.path}: frame {i}: cannot decode color ({comp}): {e}") from e
        if img.shape[:2] != (h.color_height, h.color_width):
            raise SensFormatError(f"{self.path}: frame {i}: color is {img.shape[1]}x{img.shape[0]}, "
                                  f"header says {h.color_width}x{h.color_height}")
        return img

    def decode_depth(self, data: bytes, i: int = -1) -> np.ndarray:
        """Decode a depth payload to uint16 [Hd, Wd] (raw units; / depth_shift = metres)."""
        h = self.header
        n = h.depth_width * h.depth_height * 2
        comp = h.depth_compression
        try:
            if comp == "zlib_ushort":
                # at most one byte more than the header's size is inflated: a corrupt (or hostile)
                # payload cannot expand to gigabytes
                z = zlib.decompressobj()
                raw = z.decompress(data, n + 1)
                if len(raw) == n and not z.eof:
                    raw += z.decompress(z.unconsumed_tail, 1)
                if len(raw) == n and not z.eof:
                    raise ValueError(f"zlib stream is incomplete or longer than {n} bytes")
            elif comp == "raw_ushort":
                raw = data
            else:
                raise ValueError(f"unsupported depth compression {comp!r}")
            if len(raw) != n:
                raise ValueError(f"decoded depth has {len(raw)} bytes, expected {n}")
        except Exception as e:
            raise SensFormatError(f"{self.path}: frame {i}: cannot decode depth ({comp}): {e}") from e
        return np.frombuffer(raw, "<u2").reshape(h.depth_height, h.depth_width).copy()

    def iter_frames(self, indices: Optional[Sequence[int]] = None, decode: bool = True) -> Iterator[SensFrame]:
        """Yield frames (default: every valid-pose frame, in order)."""
        for i in (self.valid_frames if indices is None else indices):
            yield self.frame(int(i), decode=decode)

    def depth_metres(self, frame: SensFrame) -> np.ndarray:
        """float32 [Hd, Wd] depth in metres (0 = invalid)."""
        return frame.depth.astype(np.float32) / np.float32(self.header.depth_shift)

    # ------------------------------------------------------------------ export
    def export(self, out_dir: PathLike, frame_skip: int = 1) -> int:
        """Write the standard ScanNet export layout; returns the number of frames written.

        out_dir/color/<i>.jpg, depth/<i>.png (uint16 millimetres), pose/<i>.txt (4x4
        camera-to-world), intrinsic/{intrinsic,extrinsic}_{color,depth}.txt.
        Frames with a non-finite pose are skipped.
        """
        if not isinstance(frame_skip, int) or frame_skip < 1:
            raise ValueError(f"frame_skip: expected an int >= 1, got {frame_skip!r}")
        out = os.fspath(out_dir)
        for d in ("color", "depth", "pose", "intrinsic"):
            os.makedirs(os.path.join(out, d), exist_ok=True)
        h = self.header
        for name, m in (("intrinsic_color", h.intrinsic_color), ("extrinsic_color", h.extrinsic_color),
                        ("intrinsic_depth", h.intrinsic_depth), ("extrinsic_depth", h.extrinsic_depth)):
            atomic_write_text(os.path.join(out, "intrinsic", name + ".txt"), matrix_to_text(m))
        n = 0
        for i in self.valid_frames[::frame_skip]:
            fr = self.frame(i, decode=False)
            if h.color_compression == "jpeg":
                jpg = fr.color_bytes
            else:
                jpg = encode_image(self.decode_color(fr.color_bytes, i), "jpeg")
            atomic_write_bytes(os.path.join(out, "color", f"{i}.jpg"), jpg)
            depth = self.decode_depth(fr.depth_bytes, i)
            if h.depth_shift != 1000.0:
                depth = np.clip(np.round(depth.astype(np.float64) * (1000.0 / h.depth_shift)), 0, 65535).astype(np.uint16)
            atomic_write_bytes(os.path.join(out, "depth", f"{i}.png"), encode_image(depth, "png"))
            atomic_write_text(os.path.join(out, "pose", f"{i}.txt"), matrix_to_text(fr.camera_to_world))
            n += 1
        return n

    def close(self) -> None:
        self._f.close()

    def __enter__(self) -> "SensReader":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _check_image_size(data: bytes, width: int, height: int) -> None:
    """Raise ValueError unless the png/jpeg ``data`` declares ``width`` x ``height`` (read from its header,
    before any pixel is decoded)."""
    import io

    from PIL import Image

    with Image.open(io.BytesIO(data)) as im:
        if im.size != (width, height):
            raise ValueError(f"the image is {im.size[0]}x{im.size[1]}, the header says {width}x{height}")


def matrix_to_text(m: np.ndarray) -> str:
    """Format a [4, 4] matrix as ScanNet does: one row per line, space separated."""
    return "\n".join(" ".join(f"{float(v):.9g}" for v in row) for row in np.asarray(m)) + "\n"


def write_sens(
    path: PathLike,
    colors: Sequence[np.ndarray],
    depths: Sequence[np.ndarray],
    poses: Sequence[np.ndarray],
    intrinsic_color: np.ndarray,
    intrinsic_depth: np.ndarray,
    depth_shift: float = 1000.0,
    sensor_name: str = "sparse3d-synthetic",
    color_compression: str = "jpeg",
    depth_compression: str = "zlib_ushort",
    extrinsic_color: Optional[np.ndarray] = None,
    extrinsic_depth: Optional[np.ndarray] = None,
    timestamps: Optional[Sequence[int]] = None,
    imu: Sequence[ImuRecord] = (),
    jpeg_quality: int = 90,
) -> None:
    """Write a `.sens` v4 file atomically.

    colors: N x uint8 [Hc, Wc, 3]; depths: N x uint16 [Hd, Wd] (raw units, metres x depth_shift);
    poses: N x float [4, 4] camera-to-world; intrinsics [3,3] or [4,4].
    """
    n = len(poses)
    if len(colors) != n or len(depths) != n:
        raise ValueError(f"write_sens: colors, depths and poses must have the same length, got "
                         f"{len(colors)}, {len(depths)}, {n}")
    if color_compression not in ("raw", "png", "jpeg"):
        raise ValueError(f"color_compression: expected 'raw', 'png' or 'jpeg', got {color_compression!r}")
    if depth_compression not in ("raw_ushort", "zlib_ushort"):
        raise ValueError(f"depth_compression: expected 'raw_ushort' or 'zlib_ushort', got {depth_compression!r}")
    if n == 0:
        raise ValueError("write_sens: expected at least one frame, got 0")
    ch, cw = colors[0].shape[:2]
    dh, dw = depths[0].shape[:2]

    def mat4(m, name):
        m = np.eye(4, dtype=np.float32) if m is None else np.asarray(m, np.float32)
        if m.shape == (3, 3):
            k = np.eye(4, dtype=np.float32)
            k[:3, :3] = m
            m = k
        if m.shape != (4, 4):
            raise ValueError(f"{name}: expected shape [3,3] or [4,4], got {list(m.shape)}")
        return m

    with atomic_open(path) as buf:
        _write_sens_body(buf, colors, depths, poses, n, ch, cw, dh, dw, mat4, intrinsic_color, extrinsic_color,
                         intrinsic_depth, extrinsic_depth, color_compression, depth_compression, depth_shift,
                         sensor_name, timestamps, imu, jpeg_quality)


def _write_sens_body(buf, colors, depths, poses, n, ch, cw, dh, dw, mat4, intrinsic_color, extrinsic_color,
                     intrinsic_depth, extrinsic_depth, color_compression, depth_compression, depth_shift,
                     sensor_name, timestamps, imu, jpeg_quality) -> None:
    buf.write(struct.pack("<I", 4))
    nb = sensor_name.encode()
    buf.write(struct.pack("<Q", len(nb)) + nb)
    for m, name in ((intrinsic_color, "intrinsic_color"), (extrinsic_color, "extrinsic_color"),
                    (intrinsic_depth, "intrinsic_depth"), (extrinsic_depth, "extrinsic_depth")):
        buf.write(mat4(m, name).astype("<f4").tobytes())
    cc = {v: k for k, v in COLOR_COMPRESSION.items()}[color_compression]
    dc = {v: k for k, v in DEPTH_COMPRESSION.items()}[depth_compression]
    buf.write(struct.pack("<iiIIIIfQ", cc, dc, cw, ch, dw, dh, float(depth_shift), n))
    for i in range(n):
        c = np.asarray(colors[i])
        d = np.asarray(depths[i])
        if c.shape != (ch, cw, 3) or c.dtype != np.uint8:
            raise ValueError(f"colors[{i}]: expected uint8 [{ch},{cw},3], got {c.dtype} {list(c.shape)}")
        if d.shape != (dh, dw) or d.dtype != np.uint16:
            raise ValueError(f"depths[{i}]: expected uint16 [{dh},{dw}], got {d.dtype} {list(d.shape)}")
        if color_compression == "raw":
            cb = np.ascontiguousarray(c).tobytes()
        else:
            cb = encode_image(c, color_compression, quality=jpeg_quality)
        db = d.astype("<u2").tobytes()
        if depth_compression == "zlib_ushort":
            db = zlib.compress(db, 1)
        pose = np.asarray(poses[i], "<f4").reshape(4, 4)
        ts = int(timestamps[i]) if timestamps is not None else i * 33333
        buf.write(pose.tobytes())
        buf.write(struct.pack("<QQQQ", ts, ts, len(cb), len(db)))
        buf.write(cb)
        buf.write(db)
    buf.write(struct.pack("<Q", len(imu)))
    for r in imu:
        vals = np.concatenate([r.rotation_rate, r.acceleration, r.magnetic_field, r.attitude, r.gravity]).astype(float)
        buf.write(_IMU_RECORD.pack(*vals.tolist(), int(r.timestamp)))
