"""Build sparse3d and its extension sparse3d._C from csrc/.

C++ (with OpenMP) is always built. CUDA sources (csrc/**/*_cuda.cu) are added when
FORCE_CUDA=1, or when torch is a CUDA build and CUDA_HOME is found; the macro
WITH_CUDA then enables the CUDA dispatch in the C++ headers.
"""
import glob
import os

from setuptools import find_packages, setup
from torch.utils.cpp_extension import CUDA_HOME, BuildExtension, CppExtension, CUDAExtension
import torch

ROOT = os.path.dirname(os.path.abspath(__file__))


def _want_cuda() -> bool:
    if os.environ.get("FORCE_CUDA", "0") == "1":
        return True
    return torch.version.cuda is not None and CUDA_HOME is not None and os.environ.get("FORCE_CPU", "0") != "1"


def extensions():
    cpp = sorted(glob.glob(os.path.join("csrc", "**", "*.cpp"), recursive=True))
    # the C++ standard is torch's own choice (cpp_extension adds it: C++20 for torch 2.13, whose headers
    # use C++20 features); forcing an older one only trades errors for warnings
    cxx_flags = ["-O3", "-fopenmp"]
    define_macros = []
    if _want_cuda():
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
    version="0.1.0",
    description="Deep learning on sparse 3D data of real scenes",
    packages=find_packages(include=["sparse3d", "sparse3d.*", "data_tools", "data_tools.*"]),
    python_requires=">=3.10",
    ext_modules=extensions(),
    cmdclass={"build_ext": BuildExtension.with_options(use_ninja=True)},
    entry_points={"console_scripts": ["sparse3d=sparse3d.cli:main"]},
)
