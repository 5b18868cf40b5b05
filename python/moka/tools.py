"""Locating and calling moka's command-line tools."""

import os
import re
import shutil
import subprocess
import tempfile

import numpy as np


class MokaError(RuntimeError):
    """A moka tool rejected its input or failed; the message is the tool's."""


def find_tool(name):
    """Path of the moka tool `name`: $MOKA_BUILD_DIR/bin, the source tree's
    build/bin, the bin directory of the prefix this package is installed in
    (PREFIX/lib/python3/dist-packages/moka), or PATH."""
    candidates = []
    if os.environ.get("MOKA_BUILD_DIR"):
        candidates.append(os.path.join(os.environ["MOKA_BUILD_DIR"], "bin", name))
    here = os.path.dirname(os.path.abspath(__file__))
    candidates.append(os.path.join(here, "..", "..", "build", "bin", name))
    candidates.append(os.path.join(here, "..", "..", "..", "..", "bin", name))
    for path in candidates:
        if os.path.isfile(path) and os.access(path, os.X_OK):
            return os.path.normpath(path)
    found = shutil.which(name)
    if found:
        return found
    raise MokaError(f"cannot find the moka tool '{name}'; build moka or set "
                    "MOKA_BUILD_DIR")


def to_bf16_bits(array):
    """Rounds a float array to bfloat16 (nearest even) and returns its bits as
    uint16."""
    bits = np.ascontiguousarray(array, dtype=np.float32).view(np.uint32)
    rounding = ((bits >> 16) & 1) + np.uint32(0x7FFF)
    nan = np.isnan(array)
    out = ((bits + rounding) >> 16).astype(np.uint16)
    out[nan] = 0x7FC0
    return out


def from_bf16_bits(bits):
    """The float32 values of bfloat16 bits stored as uint16."""
    return (np.asarray(bits, dtype=np.uint16).astype(np.uint32) << 16).view(
        np.float32)


_BENCH = re.compile(r"benchmark: @\S+ median ([0-9.]+) ms, min ([0-9.]+) ms")


def run(module, function, *inputs, benchmark=0, serial=False, device="cpu",
        timeout=600):
    """Compiles `module` (a path or IR text) for the host CPU (or, with
    ``device="cuda"``, for the NVIDIA GPU) and calls `function` on the numpy
    arrays `inputs`.

    Returns the list of results; with ``benchmark=N`` returns
    ``(results, median_ms)`` for N further timed runs.
    """
    tool = find_tool("moka-run")
    with tempfile.TemporaryDirectory(prefix="moka-") as tmp:
        if isinstance(module, str) and not os.path.exists(module):
            path = os.path.join(tmp, "module.mlir")
            with open(path, "w") as f:
                f.write(module)
            module = path
        args = [tool, str(module), f"--function={function}"]
        for i, array in enumerate(inputs):
            p = os.path.join(tmp, f"in{i}.npy")
            np.save(p, np.ascontiguousarray(array))
            args.append(f"--input=@{p}")
        n_out = _count_results(module, function)
        outs = [os.path.join(tmp, f"out{i}.npy") for i in range(n_out)]
        args += [f"--output=@{p}" for p in outs]
        if benchmark:
            args.append(f"--benchmark={benchmark}")
        if serial:
            args.append("--serial")
        if device != "cpu":
            args.append(f"--device={device}")
        proc = subprocess.run(args, capture_output=True, text=True,
                              timeout=timeout)
        if proc.returncode != 0:
            # A failed run-time check prints its message on stdout (the C
            # library's puts) before moka-run reports it on stderr.
            message = "\n".join(
                part.strip() for part in (proc.stdout, proc.stderr)
                if part.strip())
            raise MokaError(message or
                            f"moka-run exited with {proc.returncode}")
        results = [np.load(p) for p in outs]
        if benchmark:
            m = _BENCH.search(proc.stdout)
            if not m:
                raise MokaError("moka-run printed no benchmark line")
            return results, float(m.group(1))
        return results


def _count_results(module, function):
    """Number of results of `function`, read from its signature."""
    with open(module) as f:
        text = f.read()
    m = re.search(r"func\.func\s+(?:public\s+)?@" + re.escape(function) +
                  r"\s*\(", text)
    if not m:
        raise MokaError(f"no function @{function} in {module}")
    # Skip the argument list (balanced parentheses), then read '-> ...'.
    depth, i = 0, m.end() - 1
    while i < len(text):
        if text[i] == "(":
            depth += 1
        elif text[i] == ")":
            depth -= 1
            if depth == 0:
                break
        i += 1
    rest = text[i + 1:].lstrip()
    if not rest.startswith("->"):
        return 0
    rest = rest[2:].lstrip()
    if rest.startswith("("):
        body = rest[1:rest.index(")")]
        return body.count("tensor<") + body.count("memref<")
    return 1


def cuda_devices():
    """The number of CUDA devices the driver reports (0 without a driver)."""
    import ctypes
    try:
        cuda = ctypes.CDLL("libcuda.so.1")
    except OSError:
        return 0
    count = ctypes.c_int(0)
    if cuda.cuInit(0) != 0 or cuda.cuDeviceGetCount(ctypes.byref(count)) != 0:
        return 0
    return count.value
