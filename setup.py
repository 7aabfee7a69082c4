"""Build sparse3d and its extension sparse3d._C from csrc/.

C++ (with OpenMP) is always built. CUDA sources (csrc/**/*_cuda.cu) are added when
FORCE_CUDA=1, or when torch is a CUDA build and CUDA_HOME is found; the macro
WITH_CUDA then enables the CUDA dispatch in the C++ headers.

CUDA_HOME, when not set, is the toolkit of the `nvcc` on PATH (its TOP, which nvcc reports): torch
would guess the parent of nvcc's folder, which is wrong where nvcc is a wrapper script such as
/usr/local/bin/nvcc, and the link then fails on -lcudart after the whole compile.
"""
import glob
import os
import shutil
import subprocess

from setuptools import find_packages, setup


def _version():
    """``__version__`` of sparse3d/__init__.py (the one place the version is written)."""
    import re
    with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "sparse3d", "__init__.py")) as f:
        m = re.search(r'^__version__ = "([^"]+)"', f.read(), re.M)
    if m is None:
        raise RuntimeError("sparse3d/__init__.py: no line __version__ = \"X.Y.Z\"")
    return m.group(1)


def _nvcc_toolkit_root():
    """The CUDA toolkit root that the nvcc on PATH compiles with, or None without nvcc."""
    nvcc = shutil.which("nvcc")
    if nvcc is None:
        return None
    cmd = [nvcc, "-v", "--dryrun", "-x", "cu", "-c", os.devnull, "-o", os.devnull]
    run = subprocess.run(cmd, capture_output=True, text=True, check=False)
    for line in (run.stdout + run.stderr).splitlines():
        if line.startswith("#$ TOP="):
            return os.path.realpath(line.split("=", 1)[1].strip())
    return None


if os.environ.get("FORCE_CPU", "0") != "1" and not (os.environ.get("CUDA_HOME") or os.environ.get("CUDA_PATH")):
    _root = _nvcc_toolkit_root()
    if _root is not None:
        os.environ["CUDA_HOME"] = _root  # read by torch.utils.cpp_extension when it is imported
        print(f"sparse3d setup: CUDA_HOME={_root} (the toolkit of {shutil.which('nvcc')})")

from torch.utils.cpp_extension import CUDA_HOME, BuildExtension, CppExtension, CUDAExtension
import torch

ROOT = os.path.dirname(os.path.abspath(__file__))


def _want_cuda() -> bool:
    if os.environ.get("FORCE_CUDA", "0") == "1":
        return True
    return torch.version.cuda is not None and CUDA_HOME is not None and os.environ.get("FORCE_CPU", "0") != "1"


def _check_cudart():
    """Fail before compiling when CUDA_HOME has no libcudart to link against."""
    libs = [os.path.join(CUDA_HOME or "", d, "libcudart.so") for d in ("lib64", "lib")]
    if CUDA_HOME is None or not any(os.path.exists(p) for p in libs):
        raise RuntimeError(
            f"FORCE_CUDA=1 / CUDA build: CUDA_HOME={CUDA_HOME!r} has no lib64/libcudart.so or lib/libcudart.so; "
            "set CUDA_HOME to the CUDA toolkit root (the folder holding bin/nvcc and lib64/)"
        )


def extensions():
    cpp = sorted(glob.glob(os.path.join("csrc", "**", "*.cpp"), recursive=True))
    # the C++ standard is torch's own choice (cpp_extension adds it: C++20 for torch 2.13, whose headers
    # use C++20 features); forcing an older one only trades errors for warnings
    # S3D_CXX_OPT: the C++ optimisation level (default -O3); scripts/asan_check.sh builds with -O1, as
    # sanitizer builds usually are (an -O3 instrumented build takes hours on a small machine)
    opt = os.environ.get("S3D_CXX_OPT", "-O3")
    if opt not in ("-O0", "-O1", "-O2", "-O3", "-Og", "-Os"):
        raise ValueError(f"S3D_CXX_OPT must be one of -O0, -O1, -O2, -O3, -Og, -Os, got {opt!r}")
    cxx_flags = [opt, "-fopenmp"]
    define_macros = []
    if _want_cuda():
        _check_cudart()
        cu = sorted(glob.glob(os.path.join("csrc", "**", "*.cu"), recursive=True))
        define_macros.append(("WITH_CUDA", None))
        return [
            CUDAExtension(
                "sparse3d._C",
                cpp + cu,
                include_dirs=[os.path.join(ROOT, "csrc")],
                define_macros=define_macros,
                extra_compile_args={"cxx": cxx_flags, "nvcc": ["-O3", "--expt-relaxed-constexpr"]},
                extra_link_args=["-fopenmp"],
            )
        ]
    return [
        CppExtension(
            "sparse3d._C",
            cpp,
            include_dirs=[os.path.join(ROOT, "csrc")],
            define_macros=define_macros,
            extra_compile_args={"cxx": cxx_flags},
            extra_link_args=["-fopenmp"],
        )
    ]


setup(
    name="sparse3d",
    version=_version(),
    description="Deep learning on sparse 3D data of real scenes",
    packages=find_packages(include=["sparse3d", "sparse3d.*", "data_tools", "data_tools.*"]),
    python_requires=">=3.10",
    ext_modules=extensions(),
    cmdclass={"build_ext": BuildExtension.with_options(use_ninja=True)},
    entry_points={"console_scripts": ["sparse3d=sparse3d.cli:main"]},
)
