"""benchmarks/bm_conv.py runs end to end on a tiny room (CPU) and writes the JSON it promises; ``--device cuda``
without CUDA stops with one clear line. Not a timing test: times are only checked for consistency."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "benchmarks" / "bm_conv.py"


def _run(*args: str, env=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, cwd=REPO,
                          env=dict(os.environ, **(env or {})), timeout=300)


def test_bm_conv_cpu_tiny_room_writes_rows(tmp_path):
    pytest.importorskip("spconv.pytorch")
    res = _run("--sizes", "3000", "--repeats", "1", "--warmup", "0", "--channels", "32", "--unet", "--no-memory",
               "--out", str(tmp_path))
    assert res.returncode == 0, res.stderr[-3000:]
    data = json.loads((tmp_path / "bm_conv_cpu.json").read_text())
    assert data["complete"] is True and data["errors"] == []
    assert data["device"] == "cpu" and data["spconv_algo"] == "Native"
    assert data["float32_matmul_precision"] == "highest"
    assert data["gemm_flops"] == data["gemm_flops_by_dtype"]["float32"] > 0
    rows = data["rows"]
    cases = [r["case"] for r in rows]
    assert cases == ["kernel map subm k3",
                     "subm k3 C=32->32 fwd", "subm k3 C=32->32 fwd+bwd",
                     "strided k2s2 C=32->64 fwd", "strided k2s2 C=32->64 fwd+bwd",
                     "strided k3s2 C=32->64 fwd", "strided k3s2 C=32->64 fwd+bwd",
                     "unet fwd", "unet fwd+bwd", "unet fwd+bwd cold"]
    for r in rows:
        assert r["size"] == 3000
        assert r["ours_s"] > 0 and r["spconv_s"] > 0
        assert r["speedup"] == pytest.approx(r["spconv_s"] / r["ours_s"])
        assert r["max_abs_diff"] < 1e-4  # same weights, same inputs: the libraries agree (float32)
        if "fwd+bwd" in r["case"]:
            assert r["max_rel_diff_grads"] < 1e-4
        if r["case"].startswith(("subm", "strided")):
            assert r["dtype"] == "float32" and r["pairs"] > 0
            c_in, c_out = (int(c) for c in r["case"].split("C=")[1].split()[0].split("->"))
            assert r["flops"] == r["pairs"] * c_in * c_out * 2 * (3 if r["case"].endswith("fwd+bwd") else 1)
            assert r["gemm_frac_ours"] == pytest.approx(r["flops"] / r["ours_s"] / data["gemm_flops"])
            assert r["spconv_includes_pair_build"] == r["case"].startswith("strided")
        else:
            assert r["gemm_frac_ours"] is None and r["gemm_frac_spconv"] is None
    assert "wrote" in res.stdout and "speedup" in res.stdout
    assert not (tmp_path / "bm_conv_cuda.json").exists()


def test_bm_conv_device_cuda_without_cuda_is_one_clear_line(tmp_path):
    res = _run("--device", "cuda", "--out", str(tmp_path), env={"CUDA_VISIBLE_DEVICES": ""})
    assert res.returncode == 2
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1, res.stderr
    assert "--device cuda" in lines[0] and "torch.cuda.is_available() is False" in lines[0]
    assert "Traceback" not in res.stderr and res.stdout == ""
    assert list(tmp_path.iterdir()) == []
