"""ScanNet .sens v4: round trip, random access, invalid poses, IMU, export, corrupt files."""
import os
import struct

import numpy as np
import pytest

from data_tools.io_utils import read_image
from data_tools.scannet.sens import ImuRecord, SensFormatError, SensReader, write_sens


def _frames(n=5, h=12, w=16, seed=0):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    colors = [np.stack([xx * 9 + i, yy * 13, (xx + yy) * 5 + 3 * i], -1).astype(np.uint8) for i in range(n)]
    depths = [rng.integers(0, 5000, (h, w)).astype(np.uint16) for _ in range(n)]
    poses = []
    for i in range(n):
        p = np.eye(4)
        p[:3, 3] = [i * 0.1, 0.2, -0.3]
        poses.append(p)
    return colors, depths, poses


K = np.array([[20.0, 0, 7.5], [0, 21.0, 5.5], [0, 0, 1]])


@pytest.mark.parametrize("cc,dc", [("raw", "raw_ushort"), ("png", "zlib_ushort"), ("jpeg", "zlib_ushort")])
def test_round_trip(tmp_path, cc, dc):
    colors, depths, poses = _frames()
    poses[2] = np.full((4, 4), -np.inf)  # lost tracking, as ScanNet marks it
    imu = [ImuRecord(*(np.arange(3) + 3 * k for k in range(5)), timestamp=77), ImuRecord(*(np.ones(3),) * 5, 78)]
    p = tmp_path / "a.sens"
    write_sens(p, colors, depths, poses, K, K * 2, depth_shift=1000.0, color_compression=cc,
               depth_compression=dc, sensor_name="StructureSensor", timestamps=[10, 20, 30, 40, 50], imu=imu)
    with SensReader(p) as r:
        h = r.header
        assert (h.version, h.sensor_name, h.color_compression, h.depth_compression) == (4, "StructureSensor", cc, dc)
        assert (h.color_width, h.color_height, h.depth_width, h.depth_height, h.depth_shift) == (16, 12, 16, 12, 1000.0)
        np.testing.assert_array_equal(h.intrinsic_color[:3, :3], K.astype(np.float32))
        np.testing.assert_array_equal(h.intrinsic_depth[:3, :3], (K * 2).astype(np.float32))
        assert h.n_frames == 5 and len(r) == 5
        assert r.invalid_pose_frames == [2] and r.valid_frames == [0, 1, 3, 4]
        for i in (4, 0, 3):  # random access, any order
            f = r.frame(i)
            np.testing.assert_array_equal(f.depth, depths[i])
            np.testing.assert_array_equal(f.camera_to_world, poses[i].astype(np.float32))
            assert f.timestamp_color == 10 * (i + 1) and f.timestamp_depth == 10 * (i + 1)
            if cc != "jpeg":
                np.testing.assert_array_equal(f.color, colors[i])
            else:
                assert np.abs(f.color.astype(int) - colors[i]).mean() < 6  # lossy
        assert [f.index for f in r.iter_frames()] == [0, 1, 3, 4]
        assert len(r.imu) == 2 and r.imu[0].timestamp == 77
        np.testing.assert_array_equal(r.imu[0].gravity, [12, 13, 14])
        np.testing.assert_array_equal(r.imu[1].attitude, [1, 1, 1])


def test_export_layout(tmp_path):
    colors, depths, poses = _frames(n=3)
    poses[1] = np.full((4, 4), np.nan)
    p = tmp_path / "s.sens"
    write_sens(p, colors, depths, poses, K, K, depth_shift=1000.0, color_compression="png")
    out = tmp_path / "export"
    with SensReader(p) as r:
        assert r.export(out) == 2
    assert sorted(os.listdir(out / "depth")) == ["0.png", "2.png"]
    np.testing.assert_array_equal(read_image(out / "depth" / "2.png"), depths[2])
    assert read_image(out / "color" / "0.jpg").shape == (12, 16, 3)
    np.testing.assert_allclose(np.loadtxt(out / "pose" / "2.txt"), poses[2], atol=1e-6)
    np.testing.assert_allclose(np.loadtxt(out / "intrinsic" / "intrinsic_depth.txt")[:3, :3], K, atol=1e-5)
    assert sorted(os.listdir(out / "intrinsic")) == ["extrinsic_color.txt", "extrinsic_depth.txt",
                                                      "intrinsic_color.txt", "intrinsic_depth.txt"]


def test_export_rescales_depth_shift(tmp_path):
    colors, depths, poses = _frames(n=1)
    p = tmp_path / "s.sens"
    write_sens(p, colors, [np.full((12, 16), 500, np.uint16)], poses, K, K, depth_shift=500.0)
    with SensReader(p) as r:
        r.export(tmp_path / "e")
    assert (read_image(tmp_path / "e" / "depth" / "0.png") == 1000).all()  # 1 m in millimetres


def test_truncated_file_names_file_and_frame(tmp_path):
    colors, depths, poses = _frames(n=4)
    p = tmp_path / "t.sens"
    write_sens(p, colors, depths, poses, K, K, color_compression="raw", depth_compression="raw_ushort")
    data = p.read_bytes()
    frame_bytes = 64 + 32 + 16 * 12 * 3 + 16 * 12 * 2
    (tmp_path / "cut.sens").write_bytes(data[:len(data) - 8 - frame_bytes // 2])  # cut in frame 3
    with pytest.raises(SensFormatError, match=r"cut\.sens: frame 3: truncated"):
        SensReader(tmp_path / "cut.sens")


def test_absurd_frame_count_is_refused_before_allocating(tmp_path):
    import struct
    colors, depths, poses = _frames(n=2)
    p = tmp_path / "n.sens"
    write_sens(p, colors, depths, poses, K, K)
    data = bytearray(p.read_bytes())
    name_len = struct.unpack_from("<Q", data, 4)[0]
    at = 4 + 8 + name_len + 64 * 4 + 4 * 2 + 4 * 4 + 4  # the uint64 n_frames
    assert struct.unpack_from("<Q", data, at)[0] == 2
    struct.pack_into("<Q", data, at, 2**31)  # plausible-looking, but 128 GiB of poses
    (tmp_path / "huge.sens").write_bytes(bytes(data))
    with pytest.raises(SensFormatError, match=r"huge\.sens: header says 2147483648 frames"):
        SensReader(tmp_path / "huge.sens")


def test_bad_version_and_corrupt_depth(tmp_path):
    colors, depths, poses = _frames(n=2)
    p = tmp_path / "v.sens"
    write_sens(p, colors, depths, poses, K, K)
    data = bytearray(p.read_bytes())
    bad = tmp_path / "bad.sens"
    bad.write_bytes(struct.pack("<I", 3) + bytes(data[4:]))
    with pytest.raises(SensFormatError, match=r"bad\.sens: unsupported \.sens version: expected 4, got 3"):
        SensReader(bad)
    with SensReader(p) as r:
        off = r._offsets[1] + 96 + len(r.frame(1, decode=False).color_bytes)
    data[off:off + 8] = b"\x00" * 8  # break the zlib stream of frame 1's depth
    (tmp_path / "z.sens").write_bytes(bytes(data))
    with SensReader(tmp_path / "z.sens") as r:
        r.frame(0)
        with pytest.raises(SensFormatError, match=r"z\.sens: frame 1: cannot decode depth"):
            r.frame(1)


def test_bad_arguments(tmp_path):
    colors, depths, poses = _frames(n=2)
    with pytest.raises(ValueError, match="same length"):
        write_sens(tmp_path / "x.sens", colors, depths[:1], poses, K, K)
    with pytest.raises(ValueError, match=r"depths\[1\]: expected uint16"):
        write_sens(tmp_path / "x.sens", colors, [depths[0], depths[1].astype(np.float32)], poses, K, K)
    assert not (tmp_path / "x.sens").exists()  # atomic: nothing half-written
    with pytest.raises(FileNotFoundError, match="nope.sens"):
        SensReader(tmp_path / "nope.sens")
