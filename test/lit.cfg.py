# -*- Python -*-
# lit configuration of moka's regression tests.

import os

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
config.substitutions.append(("%python", config.python_executable))
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
