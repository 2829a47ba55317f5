"""Build gensample and its optional C++/CUDA extension ``gensample._C``.

The C++ CPU kernels are always built. The CUDA kernels are built when a CUDA toolkit
and a CUDA-enabled torch are present; ``GENSAMPLE_CUDA=1`` forces them, ``GENSAMPLE_CUDA=0``
skips them. ``GENSAMPLE_NO_EXT=1`` builds no extension at all (pure Python install).
Build with the installed torch: ``pip install --no-build-isolation -e .``.
"""
import glob
import os

from setuptools import setup

ROOT = os.path.dirname(os.path.abspath(__file__))


def _extensions():
    if os.environ.get("GENSAMPLE_NO_EXT", "0") == "1":
        return [], {}
    import torch
    from torch.utils.cpp_extension import CUDA_HOME, BuildExtension, CppExtension, CUDAExtension

    mode = os.environ.get("GENSAMPLE_CUDA", "auto").lower()
    if mode in ("1", "true", "yes"):
        use_cuda = True
    elif mode in ("0", "false", "no"):
        use_cuda = False
    else:
        use_cuda = torch.version.cuda is not None and CUDA_HOME is not None
    debug = os.environ.get("DEBUG", "0") == "1"

    sources = sorted(glob.glob(os.path.join("csrc", "*.cpp")) + glob.glob(os.path.join("csrc", "cpu", "*.cpp")))
    opt = ["-O0", "-g"] if debug else ["-O3"]
    # -ffp-contract=off: the random-number transforms must not be fused into FMAs,
    # so that every backend rounds identically (see csrc/include/gensample/common.h).
    # -fno-math-errno -fno-trapping-math: value-preserving (no reassociation, same
    # IEEE results); they let GCC vectorize sqrt and if-convert the selects of the
    # Box-Muller / reparam loops in csrc/cpu/*.cpp (torch itself is built with them).
    cxx = opt + ["-std=c++17", "-ffp-contract=off", "-fno-math-errno", "-fno-trapping-math", "-fopenmp",
                 "-fvisibility=hidden"]
    kwargs = dict(
        include_dirs=[os.path.join(ROOT, "csrc", "include")],
        extra_compile_args={"cxx": cxx},
        extra_link_args=["-fopenmp"],
    )
    if use_cuda:
        sources += sorted(glob.glob(os.path.join("csrc", "cuda", "*.cu")))
        kwargs["extra_compile_args"]["cxx"] = cxx + ["-DGENSAMPLE_WITH_CUDA"]
        kwargs["extra_compile_args"]["nvcc"] = opt + ["-std=c++17", "-DGENSAMPLE_WITH_CUDA", "--expt-relaxed-constexpr", "-lineinfo"]
        ext = CUDAExtension("gensample._C", sources, **kwargs)
    else:
        ext = CppExtension("gensample._C", sources, **kwargs)
    return [ext], {"build_ext": BuildExtension.with_options(no_python_abi_suffix=False)}


ext_modules, cmdclass = _extensions()
setup(ext_modules=ext_modules, cmdclass=cmdclass)
