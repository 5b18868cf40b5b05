"""A moka module: MLIR text whose weights live in a safetensors file.

Weights are not written into the IR. Each one is an SSA constant that names
a resource,

    %w = arith.constant dense_resource<fc1.weight> : tensor<1536x384xf32>

and the resource key (an MLIR bare identifier, ``[A-Za-z_][A-Za-z0-9_$.]*``)
is the tensor's name in the safetensors file. On disk a module is two files
side by side: ``model.mlir``, whose module op carries the attribute
``moka.weights = "model.safetensors"`` (a path relative to the ``.mlir``
file), and ``model.safetensors``. moka's tools (``mokac``, ``moka-run``) load
the weights from there.
"""

import os
import re

import numpy as np

from . import safetensors

__all__ = ["Module", "WEIGHTS_ATTRIBUTE", "is_resource_key"]

WEIGHTS_ATTRIBUTE = "moka.weights"

_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_$.]*\Z")
_RESOURCE = re.compile(r"dense_resource<([A-Za-z_][A-Za-z0-9_$.]*)>\s*:\s*"
                       r"(tensor<[^>]*>)")
_FUNCTION = re.compile(r"func\.func\s+(?:(?:public|private|nested)\s+)?"
                       r"@([A-Za-z_][A-Za-z0-9_$.]*)")
# The top-level module op with its optional attribute dictionary. Only the
# first `module` at the start of a line is considered: moka writes one.
_MODULE = re.compile(r"^module(?P<name>\s+@[A-Za-z_][A-Za-z0-9_$.]*)?"
                     r"(?:\s+attributes\s*\{(?P<attrs>[^{}]*)\})?\s*\{",
                     re.MULTILINE)
_WEIGHTS_ENTRY = re.compile(r'\s*' + re.escape(WEIGHTS_ATTRIBUTE) +
                            r'\s*=\s*"((?:[^"\\]|\\.)*)"\s*')


def is_resource_key(name):
    """True if `name` can be a ``dense_resource`` key."""
    return bool(_KEY.match(name))


def _mlir_string(text):
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _split_attributes(attrs):
    """Top-level entries of an attribute dictionary's body (no nesting of
    braces is expected in moka's module attributes)."""
    entries, depth, current, quoted, escaped = [], 0, "", False, False
    for ch in attrs:
        if quoted:
            current += ch
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                quoted = False
            continue
        if ch == '"':
            quoted = True
        elif ch in "[(<":
            depth += 1
        elif ch in "])>":
            depth -= 1
        elif ch == "," and depth == 0:
            entries.append(current.strip())
            current = ""
            continue
        current += ch
    if current.strip():
        entries.append(current.strip())
    return entries


def _with_weights_attribute(text, filename):
    """`text` with the module's ``moka.weights`` set to `filename` (or
    removed when `filename` is None); bare functions are wrapped in a
    module op."""
    match = _MODULE.search(text)
    if match is None:
        if filename is None:
            return text
        body = "\n".join("  " + line if line else line
                         for line in text.strip("\n").split("\n"))
        return (f"module attributes {{{WEIGHTS_ATTRIBUTE} = "
                f"{_mlir_string(filename)}}} {{\n{body}\n}}\n")
    entries = [e for e in _split_attributes(match.group("attrs") or "")
               if not _WEIGHTS_ENTRY.fullmatch(e)]
    if filename is not None:
        entries.insert(0, f"{WEIGHTS_ATTRIBUTE} = {_mlir_string(filename)}")
    name = match.group("name") or ""
    head = (f"module{name} attributes {{{', '.join(entries)}}} {{" if entries
            else f"module{name} {{")
    return text[:match.start()] + head + text[match.end():]


def _weights_attribute(text):
    match = _MODULE.search(text)
    if match is None or not match.group("attrs"):
        return None
    for entry in _split_attributes(match.group("attrs")):
        found = _WEIGHTS_ENTRY.fullmatch(entry)
        if found:
            return re.sub(r"\\(.)", r"\1", found.group(1))
    return None


def _hex_literal(array):
    """An MLIR dense hex literal of `array`'s raw little-endian bytes."""
    data = np.ascontiguousarray(array)
    if data.dtype.byteorder == ">":
        data = data.astype(data.dtype.newbyteorder("<"))
    return '"0x' + data.tobytes().hex().upper() + '"'


class Module:
    """MLIR text plus the weights its ``dense_resource`` constants name.

    Attributes:
        mlir: the MLIR text, without weight values and without the
            ``moka.weights`` attribute (which :meth:`save` adds);
        weights: {resource key: numpy array} (bf16 as
            :class:`moka.BF16Bits`);
        functions: names of the module's functions, in order.

    ``str(module)`` is the MLIR text.
    """

    def __init__(self, mlir, weights=None, functions=None):
        self.mlir = _with_weights_attribute(mlir, None)
        self.weights = dict(weights or {})
        for key in self.weights:
            if not is_resource_key(key):
                raise ValueError(f"weight name {key!r} is not a valid MLIR "
                                 "resource key ([A-Za-z_][A-Za-z0-9_$.]*)")
        self.functions = (list(functions) if functions is not None
                          else _FUNCTION.findall(self.mlir))

    def __str__(self):
        return self.mlir

    def __repr__(self):
        return (f"<moka.Module functions={self.functions} "
                f"weights={len(self.weights)}>")

    def resources(self):
        """{resource key: MLIR tensor type} of the ``dense_resource``
        constants in the text."""
        return dict(_RESOURCE.findall(self.mlir))

    def save(self, path):
        """Writes the module to `path` (``.mlir``) and its weights beside it
        as ``<stem>.safetensors``; returns the weights' path (None when the
        module has no weights, in which case no attribute is written)."""
        path = os.fspath(path)
        missing = set(self.resources()) - set(self.weights)
        if missing:
            raise ValueError("the IR names weights that the module does not "
                             f"have: {', '.join(sorted(missing))}")
        weights_path = None
        filename = None
        if self.weights:
            stem = os.path.splitext(os.path.basename(path))[0]
            filename = stem + ".safetensors"
            weights_path = os.path.join(os.path.dirname(path), filename)
            safetensors.save(weights_path, self.weights)
        with open(path, "w") as f:
            f.write(_with_weights_attribute(self.mlir, filename))
        return weights_path

    @classmethod
    def load(cls, path):
        """Reads a module written by :meth:`save` (or any MLIR file, with
        its ``moka.weights`` file if it names one)."""
        path = os.fspath(path)
        with open(path) as f:
            text = f.read()
        weights = {}
        filename = _weights_attribute(text)
        if filename is not None:
            weights_path = os.path.join(os.path.dirname(path), filename)
            if not os.path.isfile(weights_path):
                raise ValueError(f"{path}: its weights file {weights_path} "
                                 "does not exist")
            weights = safetensors.load(weights_path)
        return cls(text, weights)

    def inlined_mlir(self):
        """The MLIR text with every ``dense_resource`` replaced by a dense
        hex literal of its weight: a self-contained module that any MLIR
        tool can compile, at the cost of a text as large as the weights."""
        def literal(match):
            key, type_ = match.group(1), match.group(2)
            if key not in self.weights:
                raise ValueError(f"no weight named '{key}'")
            array = self.weights[key]
            if array.size == 0:
                return f"dense<> : {type_}"
            return f"dense<{_hex_literal(array)}> : {type_}"
        return _RESOURCE.sub(literal, self.mlir)

