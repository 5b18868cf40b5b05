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
    arrays `inputs`. A path-like, or a one-line string that ends in ``.mlir``
    or names an existing file, is a path (MokaError if it is not a file);
    any other string is IR text.

    Returns the list of results; with ``benchmark=N`` returns
    ``(results, median_ms)`` for N further timed runs.
    """
    tool = find_tool("moka-run")
    if not isinstance(module, (str, os.PathLike)):
        raise MokaError("moka.run takes a path or MLIR text, not "
                        f"{type(module).__name__}")
    # A path-like, or a one-line string that ends in .mlir or names an
    # existing file, is a path (which must be a file); any other string is
    # IR text.
    is_path = isinstance(module, os.PathLike) or (
        "\n" not in module and (module.endswith(".mlir") or
                                os.path.exists(module)))
    if is_path:
        module = os.fspath(module)
        if not os.path.isfile(module):
            raise MokaError(f"no such file: '{module}'")
    with tempfile.TemporaryDirectory(prefix="moka-") as tmp:
        if not is_path:
            path = os.path.join(tmp, "module.mlir")
            with open(path, "w") as f:
                f.write(module)
            module = path
        args = [tool, str(module), f"--function={function}"]
        for i, array in enumerate(inputs):
            p = os.path.join(tmp, f"in{i}.npy")
            # (np.ascontiguousarray would turn a 0-d array into a 1-d one.)
            np.save(p, np.asarray(array, order="C"))
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
    """Number of results of `function`, read from its signature; a result
    of `!kv.cache<...>` type counts as the tensors that stand for it
    (docs/kv.md: 9 for a quantized cache, 3 for a float one, 2 for a latent
    one)."""
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
        types = _split_types(_balanced(rest, "(", ")")[1:-1])
    else:
        types = [_one_type(rest)]
    aliases = dict(re.findall(r"^\s*!([\w.$-]+)\s*=\s*(\S.*?)\s*$", text,
                              re.M))
    return sum(_storage_count(t, aliases) for t in types if t)


def _balanced(text, open_, close):
    """The prefix of `text` up to the bracket that closes its first one."""
    depth = 0
    for i, ch in enumerate(text):
        if ch == open_:
            depth += 1
        elif ch == close:
            depth -= 1
            if depth == 0:
                return text[:i + 1]
    return text


def _one_type(text):
    """The type at the start of `text` (angle brackets balanced)."""
    depth = 0
    for i, ch in enumerate(text):
        if ch == "<":
            depth += 1
        elif ch == ">" and depth:
            depth -= 1
        elif depth == 0 and (ch.isspace() or ch in "{,"):
            return text[:i]
    return text


def _split_types(text):
    """A comma-separated type list, split at top-level commas; result
    attributes ({...}) dropped."""
    types, depth, start = [], 0, 0
    for i, ch in enumerate(text + ","):
        if ch in "<([{":
            depth += 1
        elif ch in ">)]}":
            depth -= 1
        elif ch == "," and depth == 0:
            types.append(_one_type(text[start:i].strip()))
            start = i + 1
    return types


def _storage_count(type_text, aliases):
    """How many tensors a result of this type is at moka-run's boundary."""
    for _ in range(8):
        if type_text.startswith("!") and not type_text.startswith(
                "!kv.cache") and type_text[1:] in aliases:
            type_text = aliases[type_text[1:]]
    m = re.match(r"!kv\.cache<([^>]*)>", type_text)
    if not m:
        return 1
    params = [p.strip() for p in m.group(1).split(",")]
    if any(re.match(r"rank\s*=", p) for p in params):
        return 2
    if len(params) > 1 and params[1] in ("i8", "i4", "i2"):
        return 9
    return 3


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
