"""The CMake package: install moka into a temporary prefix, build
examples/cmake-consumer against it from a clean build directory (its model
compiled by moka_add_model at build time), run it and compare its output
with a float64 reference."""

import os
import shutil
import subprocess

import numpy as np
import pytest

from moka import reference, safetensors

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BUILD = os.environ.get("MOKA_BUILD_DIR", os.path.join(ROOT, "build"))
CONSUMER = os.path.join(ROOT, "examples", "cmake-consumer")


def run(args, **kw):
    proc = subprocess.run(args, capture_output=True, text=True, **kw)
    assert proc.returncode == 0, (
        f"{' '.join(map(str, args))} failed:\n{proc.stdout}\n{proc.stderr}")
    return proc


@pytest.fixture(scope="module")
def consumer(tmp_path_factory):
    if not os.path.isfile(os.path.join(BUILD, "CMakeCache.txt")):
        pytest.fail(f"no moka build in {BUILD}")
    tmp = tmp_path_factory.mktemp("consumer")
    prefix, build = tmp / "prefix", tmp / "build"
    run(["cmake", "--install", BUILD, "--prefix", str(prefix)])
    generator = ["-G", "Ninja"] if shutil.which("ninja") else []
    run(["cmake", "-S", CONSUMER, "-B", str(build), *generator,
         f"-DCMAKE_PREFIX_PATH={prefix}"])
    run(["cmake", "--build", str(build)])
    return build / "consumer"


def test_installed_python_package(consumer):
    """The installed package finds the installed mokac and compiles."""
    prefix = consumer.parent.parent / "prefix"
    site = prefix / "lib" / "python3" / "dist-packages"
    env = {k: v for k, v in os.environ.items() if k != "MOKA_BUILD_DIR"}
    env["PYTHONPATH"] = str(site)
    env["PATH"] = "/usr/bin:/bin"
    script = (
        "import numpy as np, moka, os\n"
        f"assert moka.__file__.startswith({str(site)!r}), moka.__file__\n"
        f"assert moka.find_tool('mokac') == {str(prefix / 'bin' / 'mokac')!r}\n"
        f"lib = moka.compile({os.path.join(CONSUMER, 'kat_block.mlir')!r})\n"
        "print(lib.forward(np.ones((3, 64), np.float32)).shape)\n")
    proc = run(["/usr/bin/python3", "-c", script], env=env, cwd="/")
    assert proc.stdout.strip() == "(3, 64)"


@pytest.mark.parametrize("tokens,seed", [(1, 0), (37, 1), (300, 2)])
def test_consumer_output_matches_reference(consumer, tmp_path, tokens, seed):
    w = safetensors.load(os.path.join(CONSUMER, "kat_block.safetensors"))
    x = np.random.default_rng(seed).standard_normal((tokens, 64)).astype(
        np.float32)
    x.tofile(tmp_path / "in.f32")
    proc = run([str(consumer), str(tmp_path / "in.f32"),
                str(tmp_path / "out.f32"), str(tokens)])
    # The program also checked that bad arguments come back as errors.
    assert proc.stdout.count("rejected") == 4
    y = np.fromfile(tmp_path / "out.f32", np.float32).reshape(tokens, 64)
    h = reference.kan_layer("rational", x, w["fc1_weight"], w["fc1_bias"],
                            numerator=w["act1_numerator"],
                            denominator=w["act1_denominator"])
    ref = reference.kan_layer("rational", h, w["fc2_weight"], w["fc2_bias"],
                              numerator=w["act2_numerator"],
                              denominator=w["act2_denominator"])
    err = np.abs(y - ref).max() / np.abs(ref).max()
    assert err < 1e-5
