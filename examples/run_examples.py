"""Compiles each examples/*.mlir to native code with moka, runs it on
generated inputs, checks it against the float64 reference of its companion
.py file and prints the time. Exits non-zero if any check fails."""

import importlib.util
import os
import sys

import numpy as np

import moka
from moka.reference import relative_error

HERE = os.path.dirname(os.path.abspath(__file__))


def load(path):
    spec = importlib.util.spec_from_file_location(
        os.path.basename(path)[:-3], path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main():
    rng = np.random.default_rng()
    failures = 0
    examples = sorted(f for f in os.listdir(HERE) if f.endswith(".mlir"))
    for name in examples:
        spec = load(os.path.join(HERE, name[:-5] + ".py"))
        args = spec.inputs(rng)
        outs, ms = moka.run(os.path.join(HERE, name), spec.FUNCTION, *args,
                            benchmark=10)
        refs = spec.reference(*args)
        errs = [relative_error(o, r) for o, r in zip(outs, refs)]
        ok = len(outs) == len(refs) and all(e <= spec.TOLERANCE for e in errs)
        failures += not ok
        print(f"{name}: @{spec.FUNCTION} {'PASS' if ok else 'FAIL'}  "
              f"rel_err={max(errs):.2e} (tolerance {spec.TOLERANCE:.0e})  "
              f"time={ms:.2f} ms (median of 10)")
    print(f"examples: {len(examples) - failures} passed, {failures} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
