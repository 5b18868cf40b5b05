"""Bad input to moka's Python API: every case raises a clear exception
(checked by its message), never crashes the interpreter, hangs or returns a
wrong result. docs/robustness.md lists the whole bad-input matrix (tools, C
interface and Python); test_compile.py, test_torch_import.py and the op
tests have the first cases (not repeated here).

Cases that crash are run in a child interpreter, so that a crash fails one
test instead of killing the test run.
"""

import os
import pathlib
import re
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import moka
from moka import safetensors

HERE = os.path.dirname(os.path.abspath(__file__))
PYTHON_DIR = os.path.dirname(HERE)

MODEL = """
func.func @mm(%a: tensor<?x?xf32>, %b: tensor<?x?xf32>) -> tensor<?x?xf32> {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %m = tensor.dim %a, %c0 : tensor<?x?xf32>
  %n = tensor.dim %b, %c1 : tensor<?x?xf32>
  %e = tensor.empty(%m, %n) : tensor<?x?xf32>
  %z = arith.constant 0.0 : f32
  %f = linalg.fill ins(%z : f32) outs(%e : tensor<?x?xf32>) -> tensor<?x?xf32>
  %r = linalg.matmul ins(%a, %b : tensor<?x?xf32>, tensor<?x?xf32>)
                     outs(%f : tensor<?x?xf32>) -> tensor<?x?xf32>
  return %r : tensor<?x?xf32>
}

func.func @fixed(%x: tensor<4x16xf32>, %a: tensor<8x6xf32>, %b: tensor<8x4xf32>) -> tensor<4x16xf32> {
  %y = kan.rational %x, %a, %b : tensor<4x16xf32>, tensor<8x6xf32>, tensor<8x4xf32>
  return %y : tensor<4x16xf32>
}

func.func @bits(%x: tensor<?xbf16>) -> tensor<?xbf16> {
  return %x : tensor<?xbf16>
}
"""

WEIGHTED = """
func.func @forward(%x: tensor<?x3xf32>) -> tensor<3xf32> {
  %w = arith.constant dense_resource<bias> : tensor<3xf32>
  return %w : tensor<3xf32>
}
"""

# An n x n result from n elements.
OUTER = """
func.func @outer(%x: tensor<?xf32>) -> tensor<?x?xf32> {
  %c0 = arith.constant 0 : index
  %n = tensor.dim %x, %c0 : tensor<?xf32>
  %e = tensor.empty(%n, %n) : tensor<?x?xf32>
  %r = linalg.generic {
      indexing_maps = [affine_map<(i, j) -> (i)>, affine_map<(i, j) -> (j)>,
                       affine_map<(i, j) -> (i, j)>],
      iterator_types = ["parallel", "parallel"]}
      ins(%x, %x : tensor<?xf32>, tensor<?xf32>) outs(%e : tensor<?x?xf32>) {
  ^bb0(%a: f32, %b: f32, %o: f32):
    %m = arith.mulf %a, %b : f32
    linalg.yield %m : f32
  } -> tensor<?x?xf32>
  return %r : tensor<?x?xf32>
}
"""


@pytest.fixture(scope="module")
def lib():
    return moka.compile(MODEL)


def ones(*shape, dtype=np.float32):
    return np.ones(shape, dtype)


def run_child(code, timeout=300):
    """Runs `code` in a fresh interpreter with moka importable; returns the
    CompletedProcess (a crash is a negative returncode, not a dead test
    run)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = PYTHON_DIR + os.pathsep + env.get("PYTHONPATH", "")
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)],
                          capture_output=True, text=True, timeout=timeout,
                          env=env)


# ---------------------------------------------------------------------------
# moka.compile: sources, targets, options, weights


@pytest.mark.parametrize("source, message", [
    ("", "no public function with a body to export"),
    ("   \n", "no public function with a body to export"),
    ("func.func @f(%x: tensor<4xf32>) -> tensor<4xf32> {\n  return %x : "
     "tensor<4xf32>\n", "expected operation name in quotes"),
    ("func.func @f(%x: tensor<4xf32>) -> tensor<4xf32> {\n  %y = kan.bogus %x"
     " : tensor<4xf32>\n  return %y : tensor<4xf32>\n}\n",
     "custom op 'kan.bogus' is unknown"),
    ("func.func @f(%x: tensor<4x30xf32>, %a: tensor<8x6xf32>, %b: "
     "tensor<8x4xf32>) -> tensor<4x30xf32> {\n  %y = kan.rational %x, %a, %b"
     " : tensor<4x30xf32>, tensor<8x6xf32>, tensor<8x4xf32>\n  return %y : "
     "tensor<4x30xf32>\n}\n",
     "channel count C = 30 is not divisible by the number of groups G = 8"),
    ("func.func @f(%x: f32) -> f32 {\n  return %x : f32\n}\n",
     "the C interface passes ranked tensors"),
])
def test_compile_bad_text(source, message):
    with pytest.raises(moka.MokaError, match=re.escape(message)):
        moka.compile(source)


@pytest.mark.parametrize("source", [None, b"func.func", 42, 3.5, ["x"]])
def test_compile_bad_source_type(source):
    with pytest.raises(moka.MokaError, match="takes a path, MLIR text or a "
                       "moka.Module"):
        moka.compile(source)


def test_compile_missing_paths(tmp_path):
    with pytest.raises(moka.MokaError, match="no such file"):
        moka.compile(tmp_path / "missing.mlir")  # a pathlib.Path
    (tmp_path / "dir.mlir").mkdir()
    with pytest.raises(moka.MokaError, match="no such file"):
        moka.compile(str(tmp_path / "dir.mlir"))


@pytest.mark.parametrize("target", ["riscv", "cuda", "nvptx", "", "HOST"])
def test_compile_unsupported_target(target):
    with pytest.raises(moka.MokaError,
                       match=f"unsupported target '{target}'"):
        moka.compile(MODEL, target=target)


@pytest.mark.parametrize("options, message", [
    ({"cpu": "pentium9"}, "unknown CPU 'pentium9'"),
    ({"target": "x86_64", "cpu": "cortex-a53"}, "unknown CPU 'cortex-a53'"),
    ({"opt_level": 9}, "optimization level -O9 is not one of -O0, -O1, -O2, "
     "-O3"),
    ({"opt_level": -1}, "'-1' value invalid for uint argument"),
    ({"name": "9lives"}, "model name '9lives' is not a C identifier"),
    ({"name": "a-b"}, "model name 'a-b' is not a C identifier"),
])
def test_compile_bad_options(options, message):
    with pytest.raises(moka.MokaError, match=re.escape(message)):
        moka.compile(MODEL, **options)


def test_compile_non_integer_opt_level():
    with pytest.raises((ValueError, TypeError), match="fast"):
        moka.compile(MODEL, opt_level="fast")


def test_compile_bad_weights_files(tmp_path):
    with pytest.raises(moka.MokaError, match="the data of weight 'bias' is "
                       "neither in the module nor in a weights file"):
        moka.compile(WEIGHTED)
    with pytest.raises(moka.MokaError, match="cannot read weights file "
                       ".*none.safetensors"):
        moka.compile(WEIGHTED, weights=tmp_path / "none.safetensors")
    (tmp_path / "junk.safetensors").write_bytes(b"\xff" * 16)
    with pytest.raises(moka.MokaError, match="junk.safetensors' is not a "
                       "valid safetensors file: header size"):
        moka.compile(WEIGHTED, weights=tmp_path / "junk.safetensors")
    safetensors.save(tmp_path / "ok.safetensors",
                     {"bias": np.arange(3, dtype=np.float32)})
    blob = (tmp_path / "ok.safetensors").read_bytes()
    (tmp_path / "cut.safetensors").write_bytes(blob[:-2])
    with pytest.raises(moka.MokaError, match="cut.safetensors' is not a "
                       r"valid safetensors file: .*\(truncated\?\)"):
        moka.compile(WEIGHTED, weights=tmp_path / "cut.safetensors")
    with pytest.raises(moka.MokaError, match="cannot read weights file"):
        moka.compile(WEIGHTED, weights=tmp_path)  # a directory
    # And the good file works.
    out = moka.compile(WEIGHTED, weights=tmp_path / "ok.safetensors").forward(
        ones(2, 3))
    assert out.tolist() == [0, 1, 2]


@pytest.mark.parametrize("weight, message", [
    (np.zeros(3), "weight 'bias' in '.*' is F64 \\[3\\] but the module uses "
     "it as 'tensor<3xf32>'"),
    (np.zeros(4, np.float32), "is F32 \\[4\\] but the module uses it as"),
    (np.zeros((3, 1), np.float32), "is F32 \\[3, 1\\] but the module uses"),
    (np.zeros(3, np.int32), "is I32 \\[3\\] but the module uses it as"),
])
def test_compile_module_with_wrong_weights(weight, message):
    with pytest.raises(moka.MokaError, match=message):
        moka.compile(moka.Module(WEIGHTED, {"bias": weight}))


def test_module_weight_errors():
    with pytest.raises(ValueError, match="the IR names weights that the "
                       "module does not have: bias"):
        moka.compile(moka.Module(WEIGHTED, {}))
    with pytest.raises(ValueError, match="is not a valid MLIR resource key"):
        moka.Module(WEIGHTED, {"1bias": np.zeros(3, np.float32)})


# ---------------------------------------------------------------------------
# Calling a compiled function


def test_call_argument_count(lib):
    with pytest.raises(moka.MokaError, match="mm takes 2 arguments, 3 given"):
        lib.mm(ones(4, 5), ones(5, 3), ones(5, 3))
    with pytest.raises(moka.MokaError, match="mm takes 2 arguments, 0 given"):
        lib.mm()
    with pytest.raises(TypeError, match="keyword argument"):
        lib.mm(a=ones(4, 5), b=ones(5, 3))


@pytest.mark.parametrize("dtype, shown", [
    (np.float64, "float64"), (np.float16, "float16"), (np.bool_, "bool"),
    (np.int32, "int32"), (np.int64, "int64"), (np.uint16, "uint16"),
    (np.dtype(">f4"), ">f4"), (np.complex64, "complex64"),
    (object, "object"),
])
def test_call_wrong_dtype(lib, dtype, shown):
    with pytest.raises(moka.MokaError, match=re.escape(
            f"mm: argument #0 has dtype {shown}, expected f32[?x?] "
            "(numpy float32)")):
        lib.mm(ones(4, 5).astype(dtype), ones(5, 3))


def test_call_bf16_takes_uint16_bits(lib):
    for dtype in (np.float32, np.float16):
        with pytest.raises(moka.MokaError, match=re.escape(
                "bits: argument #0 has dtype " + np.dtype(dtype).name +
                ", expected bf16[?] (numpy uint16)")):
            lib.bits(np.ones(3, dtype))
    bits = moka.to_bf16_bits(np.array([1.5, -2.0, 3.0], np.float32))
    assert np.array_equal(lib.bits(bits), bits)


@pytest.mark.parametrize("array, message", [
    (np.float32(1), "has rank 0"),
    (np.ones(5, np.float32), "has rank 1"),
    (np.ones((1, 4, 5), np.float32), "has rank 3"),
    (np.ones((1,) * 9, np.float32), "has rank 9"),
])
def test_call_wrong_rank(lib, array, message):
    with pytest.raises(moka.MokaError, match=re.escape(
            f"mm: argument #0 {message}, expected f32[?x?]")):
        lib.mm(array, ones(5, 3))


def test_call_python_values(lib):
    # None and scalars become 0-d arrays: a rank error, not a crash.
    with pytest.raises(moka.MokaError, match="argument #0 has rank 0"):
        lib.mm(None, ones(5, 3))
    with pytest.raises(moka.MokaError, match="argument #0 has rank 0"):
        lib.mm(3.0, ones(5, 3))
    with pytest.raises(ValueError, match="could not convert string to float"):
        lib.mm("abc", ones(5, 3))
    # Nested lists are converted to the function's dtype.
    y = lib.mm([[1.0] * 5] * 4, ones(5, 3))
    assert y.shape == (4, 3) and np.all(y == 5)


def test_call_wrong_static_shape(lib):
    a, b = ones(8, 6), ones(8, 4)
    with pytest.raises(moka.MokaError, match=re.escape(
            "fixed: argument #0 has shape [4x17], expected f32[4x16]")):
        lib.fixed(ones(4, 17), a, b)
    with pytest.raises(moka.MokaError, match=re.escape(
            "fixed: argument #1 has shape [8x5], expected f32[8x6]")):
        lib.fixed(ones(4, 16), ones(8, 5), b)
    with pytest.raises(moka.MokaError, match=re.escape(
            "fixed: argument #2 has shape [4x8], expected f32[8x4]")):
        lib.fixed(ones(4, 16), a, b.T.copy())


def test_call_dynamic_mismatch_then_recovers(lib):
    for _ in range(3):
        with pytest.raises(moka.MokaError, match="shape mismatch: dimension 1"
                           " of operand #0 and dimension 0 of operand #1 of "
                           "linalg.matmul must be equal"):
            lib.mm(ones(4, 5), ones(6, 3))
    assert np.all(lib.mm(ones(4, 5), ones(5, 3)) == 5)


def test_call_any_layout_gives_the_right_result(lib):
    rng = np.random.default_rng(7)
    a = rng.standard_normal((9, 6)).astype(np.float32)
    b = rng.standard_normal((6, 5)).astype(np.float32)
    ref = a.astype(np.float64) @ b
    views = [a[::-1][::-1], np.asfortranarray(a), a.T.copy().T,
             np.repeat(a, 2, axis=1)[:, ::2]]
    for view in views:
        y = lib.mm(view, b)
        assert np.abs(y - ref).max() < 1e-4
    # Reversed rows: the result's rows reversed.
    assert np.abs(lib.mm(a[::-1], b) - ref[::-1]).max() < 1e-4
    # A read-only argument is fine (arguments are never written).
    ro = a.copy()
    ro.flags.writeable = False
    assert np.abs(lib.mm(ro, b) - ref).max() < 1e-4


def test_library_errors(lib, tmp_path):
    with pytest.raises(AttributeError, match="the model has no function "
                       "'nope' \\(it has: bits, fixed, mm\\)"):
        lib.nope
    with pytest.raises(OSError, match="missing.so"):
        moka.Library(str(tmp_path / "missing.so"))


def test_library_of_a_library_that_is_not_a_model():
    """A shared library that is not a model (no exported manifest): a
    MokaError saying so, not ctypes' AttributeError on a missing symbol."""
    libm = next((p for p in ("/lib/x86_64-linux-gnu/libm.so.6",
                             "/usr/lib/x86_64-linux-gnu/libm.so.6",
                             "/lib64/libm.so.6") if os.path.exists(p)), None)
    if libm is None:
        pytest.skip("no libm.so.6 here")
    with pytest.raises(moka.MokaError, match="is not a moka model library"):
        moka.Library(libm)


@pytest.mark.skipif(bool(os.environ.get("MOKA_SANITIZE")),
                    reason="AddressSanitizer reserves terabytes of address "
                    "space for its shadow: no address-space limit fits")
def test_out_of_memory_is_an_error_not_a_crash():
    """A result larger than the memory there is (an n x n result from n
    elements, under a 4 GiB address-space limit): MokaError, since a failed
    allocation in compiled code is a failed run-time check."""
    proc = run_child(f"""
        import resource
        import numpy as np
        import moka
        lib = moka.compile({OUTER!r})
        assert lib.outer(np.ones(2, np.float32)).shape == (2, 2)
        resource.setrlimit(resource.RLIMIT_AS, (4 << 30, 4 << 30))
        try:
            lib.outer(np.ones(100000, np.float32))
        except moka.MokaError as e:
            print("MokaError:", e)
        assert lib.outer(np.ones(3, np.float32)).shape == (3, 3)
        print("DONE")
    """)
    assert proc.returncode == 0, (
        f"the interpreter died (status {proc.returncode}): "
        f"{proc.stderr[-2000:]}")
    assert re.search(r"MokaError: .*memory", proc.stdout), proc.stdout
    assert "DONE" in proc.stdout


FUSED = """
func.func @f(%x: tensor<?x?xf32>, %w: tensor<?x?xf32>, %a: tensor<8x6xf32>,
             %b: tensor<8x4xf32>) -> tensor<?x?xf32> {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %m = tensor.dim %x, %c0 : tensor<?x?xf32>
  %n = tensor.dim %w, %c1 : tensor<?x?xf32>
  %e = tensor.empty(%m, %n) : tensor<?x?xf32>
  %z = arith.constant 0.0 : f32
  %fi = linalg.fill ins(%z : f32) outs(%e : tensor<?x?xf32>) -> tensor<?x?xf32>
  %h = linalg.matmul ins(%x, %w : tensor<?x?xf32>, tensor<?x?xf32>)
                     outs(%fi : tensor<?x?xf32>) -> tensor<?x?xf32>
  %y = kan.rational %h, %a, %b
      : tensor<?x?xf32>, tensor<8x6xf32>, tensor<8x4xf32>
  return %y : tensor<?x?xf32>
}
"""


def test_check_in_a_parallel_tile_is_an_error_not_an_abort():
    """A run-time check that fails inside a parallel tile (here the channel
    count of a rational fused into the matrix product before it: 30 channels,
    8 groups) raises MokaError like any other failed check: the check does
    not depend on the iteration and runs before the parallel loop."""
    proc = run_child(f"""
        import numpy as np
        import moka
        lib = moka.compile({FUSED!r})
        a, b = np.ones((8, 6), np.float32), np.ones((8, 4), np.float32)
        x = np.ones((300, 5), np.float32)
        assert lib.f(x, np.ones((5, 16), np.float32), a, b).shape == (300, 16)
        try:
            lib.f(x, np.ones((5, 30), np.float32), a, b)
        except moka.MokaError as e:
            print("MokaError:", e)
        assert lib.f(x, np.ones((5, 16), np.float32), a, b).shape == (300, 16)
        print("DONE")
    """)
    assert proc.returncode == 0, (
        f"the interpreter died (status {proc.returncode}): "
        f"{proc.stderr[-2000:]}")
    assert re.search(r"MokaError: .*channel count is not divisible by the "
                     r"number of groups", proc.stdout), proc.stdout
    assert "DONE" in proc.stdout


# ---------------------------------------------------------------------------
# moka.run (through moka-run)


def test_run_errors():
    a, b = ones(4, 5), ones(5, 3)
    with pytest.raises(moka.MokaError, match="no function @nope"):
        moka.run(MODEL, "nope", a, b)
    with pytest.raises(moka.MokaError, match="@mm takes 2 arguments, 1 "
                       "--input given"):
        moka.run(MODEL, "mm", a)
    with pytest.raises(moka.MokaError, match="has dtype '<f8' but @mm "
                       "expects tensor<\\?x\\?xf32> \\(dtype '<f4'\\)"):
        moka.run(MODEL, "mm", a.astype(np.float64), b)
    with pytest.raises(moka.MokaError, match="has shape \\(4, 17\\) but "
                       "@fixed expects tensor<4x16xf32>"):
        moka.run(MODEL, "fixed", ones(4, 17), ones(8, 6), ones(8, 4))
    with pytest.raises(moka.MokaError, match="unknown device 'tpu' \\(cpu or "
                       "cuda\\)"):
        moka.run(MODEL, "mm", a, b, device="tpu")
    with pytest.raises(moka.MokaError, match="'-1' value invalid for uint "
                       "argument"):
        moka.run(MODEL, "mm", a, b, benchmark=-1)
    with pytest.raises(moka.MokaError, match="shape mismatch: dimension 1 of "
                       "operand #0 and dimension 0 of operand #1"):
        moka.run(MODEL, "mm", a, ones(6, 3))


@pytest.mark.parametrize("dtype, descr", [
    (np.dtype(">f4"), ">f4"), (object, "|O"), (np.complex64, "<c8"),
    (np.uint32, "<u4"),
])
def test_run_unsupported_npy_dtype(dtype, descr):
    with pytest.raises(moka.MokaError, match=re.escape(
            f"unsupported .npy dtype '{descr}' (expected little-endian f8, "
            "f4, f2, u2, i1, u1, b1, i4 or i8)")):
        moka.run(MODEL, "mm", ones(4, 5).astype(dtype), ones(5, 3))


def test_run_missing_module_file(tmp_path):
    """A path that does not exist is reported as such, not read as IR
    text."""
    missing = str(tmp_path / "missing.mlir")
    with pytest.raises(moka.MokaError, match=re.escape(missing)):
        moka.run(missing, "f", ones(2, 2))


# ---------------------------------------------------------------------------
# moka.torch.import_module

try:
    import torch
    from torch import nn
except ImportError:  # the rest of this file runs without torch
    torch = nn = None

needs_torch = pytest.mark.skipif(torch is None, reason="needs torch")


@needs_torch
@pytest.mark.parametrize("module, example, message", [
    (lambda: nn.Conv2d(3, 4, 3), lambda: torch.randn(1, 3, 8, 8),
     "Conv2d at '<root>': no converter for this module class"),
    (lambda: nn.LSTM(4, 4), lambda: torch.randn(2, 4),
     "LSTM at '<root>': no converter"),
    (lambda: nn.Softmax(-1), lambda: torch.randn(2, 4),
     "Softmax at '<root>': no converter"),
    (lambda: nn.Sequential(nn.Linear(4, 4), nn.Tanh()),
     lambda: torch.randn(2, 4), "Tanh at '1': no converter"),
    (lambda: nn.Sequential(nn.Linear(4, 4), nn.Sequential(nn.GELU(),
                                                          nn.Embedding(4, 4))),
     lambda: torch.randn(2, 4), "Embedding at '1.1': no converter"),
])
def test_import_unsupported_modules(module, example, message):
    with pytest.raises(moka.torch.UnsupportedModuleError,
                       match=re.escape(message)):
        moka.torch.import_module(module().eval(), (example(),))


@needs_torch
@pytest.mark.parametrize("make, kwargs, message", [
    (lambda: (torch.zeros(2, 4, dtype=torch.int64),), {},
     "example input 0 is torch.int64; moka imports float32 or float64 inputs"),
    (lambda: (3,), {}, "example input 0 is int64"),
    (lambda: (torch.randn(2, 4).half(),), {},
     "example input 0 is torch.float16; moka imports float32 or float64"),
    (lambda: (torch.randn(2, 4).bfloat16(),), {},
     "example input 0 is torch.bfloat16"),
    (lambda: (torch.randn(2, 4),), {"function": "1bad"},
     "invalid function name '1bad'"),
    (lambda: (torch.randn(2, 4),), {"dynamic_dims": [(5,)]},
     "dynamic_dims[0] = [5] is out of range for rank 2"),
    (lambda: (torch.randn(2, 4),), {"dynamic_dims": [(0,), (1,)]},
     "dynamic_dims has 2 entries for 1 example inputs"),
    (lambda: (torch.randn(2, 4),), {"dynamic_dims": [(1,)]},
     "does not have in_features = 4 channels"),
    (lambda: (np.ones((2, 4)),), {},
     "the input is f64, the weights f32"),
])
def test_import_bad_inputs(make, kwargs, message):
    with pytest.raises(moka.torch.ConversionError, match=re.escape(message)):
        moka.torch.import_module(nn.Linear(4, 3).eval(), make(), **kwargs)


@needs_torch
def test_import_mixed_precision_weights():
    with pytest.raises(moka.torch.ConversionError, match=re.escape(
            "Linear at '<root>': the input is f32, the weights f16")):
        moka.torch.import_module(nn.Linear(4, 3).half().eval(),
                                 (torch.randn(2, 4),))


@needs_torch
def test_import_weights_without_data():
    with pytest.raises(Exception, match="meta"):
        moka.torch.import_module(nn.Linear(4, 3, device="meta").eval(),
                                 (torch.randn(2, 4),))


@needs_torch
@pytest.mark.parametrize("module", [None, lambda y: y, 42])
def test_import_something_that_is_not_a_module(module):
    """Something that is not a torch.nn.Module: an error saying a Module is
    expected, not an error from inside the importer."""
    with pytest.raises((TypeError, moka.torch.ConversionError),
                       match="Module"):
        moka.torch.import_module(module, (torch.randn(2, 4),))


@needs_torch
@pytest.mark.parametrize("inputs", [lambda: (),
                                    lambda: (torch.randn(2, 4),) * 2],
                         ids=["none", "two"])
def test_import_wrong_number_of_example_inputs(inputs):
    """The wrong number of example inputs: a ConversionError naming the
    module and the number of inputs it takes."""
    with pytest.raises(moka.torch.ConversionError, match="input"):
        moka.torch.import_module(nn.Linear(4, 3).eval(), inputs())


@needs_torch
def test_import_zero_rank_example_input():
    """A 0-d example input for Linear: a ConversionError naming the
    module."""
    with pytest.raises(moka.torch.ConversionError, match="Linear"):
        moka.torch.import_module(nn.Linear(4, 3).eval(),
                                 (torch.tensor(1.0),))
