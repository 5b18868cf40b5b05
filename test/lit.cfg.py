# -*- Python -*-
# lit configuration of moka's regression tests.

import ctypes
import os
import shutil

import lit.formats
from lit.llvm import llvm_config
from lit.llvm.subst import ToolSubst

config.name = "MOKA"
config.test_format = lit.formats.ShTest(not llvm_config.use_lit_shell)
config.suffixes = [".mlir", ".test"]
config.excludes = ["CMakeLists.txt", "lit.cfg.py", "lit.site.cfg.py", "Inputs"]
config.test_source_root = os.path.dirname(__file__)
config.test_exec_root = os.path.join(config.moka_obj_root, "test")

config.substitutions.append(("%PATH%", config.environment["PATH"]))
# In the sanitizer build, generated code is instrumented with ASan and the
# model libraries Python loads need its runtime first in the process.
# %native runs a program built by the tests (a C program linking a model
# library) the same way.
python_command = config.python_executable
native_prefix = ""
if config.moka_sanitize:
    config.available_features.add("asan")
    native_prefix = "env LD_PRELOAD={} ASAN_OPTIONS=detect_leaks=0 ".format(
        config.asan_runtime)
    python_command = native_prefix + config.python_executable
config.substitutions.append(("%python", python_command))
config.substitutions.append(("%native ", native_prefix))
config.substitutions.append(
    ("%moka_src", config.moka_src_root))

llvm_config.use_default_substitutions()
llvm_config.with_environment("PATH", config.llvm_tools_dir, append_path=True)
# Execution tests import the moka Python package.
llvm_config.with_environment(
    "PYTHONPATH", os.path.join(config.moka_src_root, "python"), append_path=True)
llvm_config.with_environment("MOKA_BUILD_DIR", config.moka_obj_root)

# Every moka-opt run also checks that the printed IR parses back to the same
# module when MOKA_VERIFY_ROUNDTRIP is set.
opt_args = []
if os.environ.get("MOKA_VERIFY_ROUNDTRIP"):
    opt_args.append("--verify-roundtrip")

tool_dirs = [config.moka_tools_dir, config.llvm_tools_dir]
tools = [
    ToolSubst("moka-opt", extra_args=opt_args, unresolved="fatal"),
    ToolSubst("moka-run", unresolved="fatal"),
    ToolSubst("mokac", unresolved="fatal"),
]
llvm_config.add_tool_substitutions(tools, tool_dirs)

# GPU tests: `ptxas` when the CUDA toolkit's assembler is present (the
# kernels must assemble), `cuda-gpu` when a CUDA driver reports a device
# (execution tests; reported as UNSUPPORTED elsewhere).
cuda_home = os.environ.get("CUDA_HOME", "/usr/local/cuda")
ptxas = shutil.which("ptxas") or os.path.join(cuda_home, "bin", "ptxas")
if os.path.isfile(ptxas) and os.access(ptxas, os.X_OK):
    config.available_features.add("ptxas")
    config.substitutions.append(("%ptxas", ptxas))


def _cuda_devices():
    try:
        cuda = ctypes.CDLL("libcuda.so.1")
        count = ctypes.c_int(0)
        if cuda.cuInit(0) != 0 or cuda.cuDeviceGetCount(ctypes.byref(count)) != 0:
            return 0
        return count.value
    except OSError:
        return 0


if _cuda_devices() > 0:
    config.available_features.add("cuda-gpu")
