"""Importing PyTorch modules into moka IR.

:func:`import_module` walks a module's structure (it does not trace): each
module is converted by the converter registered for its class, which writes
moka IR (``func``, ``arith``, ``tensor``, ``linalg``, ``math``, ``kan``,
``moe``) for it and converts its children through the emitter. The result is
a :class:`moka.Module` whose weights are ``dense_resource`` constants backed
by a safetensors file.

Recognised out of the box:

- ``torch.nn``: ``Linear``, ``GELU`` (exact and tanh), ``SiLU``, ``ReLU``,
  ``Identity``, ``Dropout`` (the identity at inference), ``Sequential``;
  ``ModuleList`` only inside the structures below (alone it has no
  ``forward``);
- HF transformers' ``MixtralSparseMoeBlock`` (one ``moe.layer swiglu``;
  results: the block's output and the router logits, as HF returns them)
  and ``DeepseekV3MoE`` (one ``moe.layer`` with sigmoid scoring, the
  selection bias, group-limited top-k and the shared expert);
- KAT's ``KAT_Group`` (``kan.rational``) and KAT's feed-forward block, a
  module with ``act1``, ``fc1``, ``act2``, ``fc2`` (two ``kan.layer
  rational`` ops); timm's ``Mlp`` layout (``fc1``, ``act``, ``fc2``).

Anything else raises :class:`UnsupportedModuleError`, unless a converter is
registered for it with :func:`register_converter`.
"""

import inspect
import math
import re

import numpy as np
import torch
from torch import nn

from .module import Module, is_resource_key
from .safetensors import BF16Bits
from .tools import MokaError

__all__ = ["import_module", "register_converter", "ConversionError",
           "UnsupportedModuleError", "Emitter", "Value"]


class ConversionError(MokaError, ValueError):
    """A module cannot be imported as it is (its message says which module,
    where, and why)."""


class UnsupportedModuleError(ConversionError):
    """No converter is registered for a module's class."""


# ---------------------------------------------------------------------------
# Types and values

_NUMPY_ELEMENT = {np.dtype("f4"): "f32", np.dtype("f8"): "f64",
                  np.dtype("f2"): "f16", np.dtype("i8"): "i64",
                  np.dtype("i4"): "i32", np.dtype("i2"): "i16",
                  np.dtype("i1"): "i8", np.dtype("?"): "i1"}
_FLOAT_TYPES = ("f16", "bf16", "f32", "f64")


def tensor_type(shape, dtype):
    """MLIR ranked tensor type; None in `shape` is a dynamic dimension."""
    dims = "".join(("?" if d is None else str(d)) + "x" for d in shape)
    return f"tensor<{dims}{dtype}>"


def _element_type(array):
    if isinstance(array, BF16Bits):
        return "bf16"
    dtype = array.dtype.newbyteorder("=")
    if dtype not in _NUMPY_ELEMENT:
        raise ValueError(f"no MLIR element type for dtype {array.dtype}")
    return _NUMPY_ELEMENT[dtype]


def _float_literal(value):
    """An MLIR float literal for `value` (which the parser rounds to the
    destination type)."""
    value = float(value)
    if math.isnan(value) or math.isinf(value):
        bits = np.array([value]).view(np.uint64)[0]
        return f"0x{int(bits):016X}"
    text = repr(value)
    if "e" in text and "." not in text.split("e")[0]:
        mantissa, exponent = text.split("e")
        text = f"{mantissa}.0e{exponent}"
    elif "." not in text and "e" not in text:
        text += ".0"
    return text


class Value:
    """An SSA value of tensor type in the IR being written.

    Attributes: ``name`` (``%...``), ``shape`` (a tuple of ints, None for a
    dynamic dimension), ``dtype`` (an MLIR element type: ``f32``, ``f64``,
    ...), ``type`` (the MLIR type), ``rank``.
    """

    __slots__ = ("name", "shape", "dtype")

    def __init__(self, name, shape, dtype):
        self.name = name
        self.shape = tuple(None if d is None else int(d) for d in shape)
        self.dtype = dtype

    @property
    def type(self):
        return tensor_type(self.shape, self.dtype)

    @property
    def rank(self):
        return len(self.shape)

    def __str__(self):
        return self.name

    def __repr__(self):
        return f"Value({self.name}: {self.type})"


class ScalarBuilder:
    """Writes the scalar body of an element-wise ``linalg.generic`` (see
    :meth:`Emitter.elementwise`). Operands and results are SSA names."""

    def __init__(self, emitter, dtype):
        self._emitter = emitter
        self.dtype = dtype
        self.lines = []

    def raw(self, rhs):
        """Writes ``%r = <rhs>`` and returns ``%r``."""
        name = self._emitter.fresh("s")
        self.lines.append(f"{name} = {rhs}")
        return name

    def constant(self, value, dtype=None):
        """A float constant of the body's type (or `dtype`)."""
        return self.raw(f"arith.constant {_float_literal(value)} : "
                        f"{dtype or self.dtype}")

    def op(self, name, *operands):
        """``%r = <name> <operands> : <dtype>``, for the ``arith`` and
        ``math`` ops whose operands and result share the body's type
        (``arith.addf``, ``math.exp``, ...)."""
        return self.raw(f"{name} {', '.join(operands)} : {self.dtype}")

    def add(self, a, b):
        return self.op("arith.addf", a, b)

    def sub(self, a, b):
        return self.op("arith.subf", a, b)

    def mul(self, a, b):
        return self.op("arith.mulf", a, b)

    def div(self, a, b):
        return self.op("arith.divf", a, b)

    def neg(self, a):
        return self.op("arith.negf", a)


# ---------------------------------------------------------------------------
# The emitter


class Emitter:
    """Writes the body of the function being imported and collects its
    weights. Converters receive it as their first argument.

    Its methods write ops and return :class:`Value` objects: :meth:`weight`
    (a parameter or buffer as a ``dense_resource`` constant), :meth:`call`
    (convert a child module), :meth:`linear`, :meth:`elementwise`,
    :meth:`flatten`, :meth:`empty`, :meth:`size`, and :meth:`op` for any op.
    """

    def __init__(self):
        self.lines = []
        self.weights = {}
        self._weight_values = {}
        self._tensor_keys = {}
        self._counter = 0
        self._index_names = {}
        self._sizes = {}
        self._stack = []

    # -- bookkeeping -------------------------------------------------------

    @property
    def path(self):
        """Dotted path of the module being converted ("" for the root)."""
        return self._stack[-1][0] if self._stack else ""

    def error(self, message, cls=ConversionError):
        """A :class:`ConversionError` naming the module being converted."""
        if not self._stack:
            return cls(message)
        path, module = self._stack[-1]
        return cls(f"{type(module).__name__} at "
                   f"'{path or '<root>'}': {message}")

    def fresh(self, hint="v"):
        """A new SSA name."""
        self._counter += 1
        return f"%{hint}{self._counter}"

    def emit(self, text):
        """Appends IR text (one op, possibly several lines)."""
        self.lines.extend(text.split("\n"))

    def op(self, rhs, *result_types):
        """Writes ``%r0, %r1 = <rhs>`` for results of the given
        ``(shape, dtype)`` types; returns one :class:`Value` or a tuple."""
        results = [Value(self.fresh(), shape, dtype)
                   for shape, dtype in result_types]
        names = ", ".join(v.name for v in results)
        self.emit(f"{names} = {rhs}" if results else rhs)
        return results[0] if len(results) == 1 else tuple(results)

    def index(self, n):
        """An SSA ``index`` constant."""
        if n not in self._index_names:
            name = self.fresh("c")
            self.emit(f"{name} = arith.constant {int(n)} : index")
            self._index_names[n] = name
        return self._index_names[n]

    def size(self, value, dim):
        """An SSA ``index`` holding dimension `dim` of `value`."""
        dim %= value.rank
        if value.shape[dim] is not None:
            return self.index(value.shape[dim])
        key = (value.name, dim)
        found = self._sizes.get(key)
        if isinstance(found, tuple):  # the size of another value's dimension
            found = self.size(*found)
        if found is None:
            found = self.fresh("d")
            self.emit(f"{found} = tensor.dim {value.name}, "
                      f"{self.index(dim)} : {value.type}")
        self._sizes[key] = found
        return found

    def same_sizes(self, dst, src, dims):
        """Records that dimension ``j`` of `dst` has the size of dimension
        ``dims[j]`` of `src` (a dict or a sequence of pairs), so that
        :meth:`size` reuses it instead of writing ``tensor.dim``."""
        pairs = dims.items() if isinstance(dims, dict) else dims
        for j, i in pairs:
            if dst.shape[j] is None and src.shape[i] is None:
                self._sizes.setdefault((dst.name, j), (src, i))

    def empty(self, shape, dtype, sizes=None):
        """``tensor.empty`` of `shape`; `sizes` gives the SSA index of each
        dynamic dimension (a list aligned with `shape`, entries for static
        dimensions ignored)."""
        dynamic = [sizes[i] for i, d in enumerate(shape) if d is None]
        t = tensor_type(shape, dtype)
        return self.op(f"tensor.empty({', '.join(dynamic)}) : {t}",
                       (shape, dtype))

    def empty_like(self, value, dtype=None):
        """``tensor.empty`` of `value`'s shape and sizes."""
        sizes = [self.size(value, i) if d is None else None
                 for i, d in enumerate(value.shape)]
        result = self.empty(value.shape, dtype or value.dtype, sizes)
        self.same_sizes(result, value, [(i, i) for i in range(value.rank)])
        return result

    # -- weights -----------------------------------------------------------

    def _key(self, name):
        full = f"{self.path}.{name}" if self.path else name
        key = re.sub(r"[^A-Za-z0-9_$.]", "_", full)
        if not re.match(r"[A-Za-z_]", key):
            key = "_" + key
        base, n = key, 1
        while key in self.weights:
            key = f"{base}_{n}"
            n += 1
        return key

    def weight(self, tensor, name):
        """The constant holding `tensor` (a torch tensor or numpy array),
        stored in the weights under `name` relative to the module's path
        (made a valid resource key, and unique). The same parameter given
        twice (tied weights) is stored once."""
        if isinstance(tensor, torch.Tensor):
            found = self._tensor_keys.get(id(tensor))
            if found is not None and found[0] is tensor:
                return self._weight_values[found[1]]
            array = _to_numpy(tensor)
        else:
            array = tensor if isinstance(tensor, BF16Bits) else np.array(
                tensor)
        key = self._key(name)
        assert is_resource_key(key)
        self.weights[key] = array
        value = self.op(f"arith.constant dense_resource<{key}> : "
                        f"{tensor_type(array.shape, _element_type(array))}",
                        (array.shape, _element_type(array)))
        self._weight_values[key] = value
        if isinstance(tensor, torch.Tensor):
            # Keeping the tensor referenced keeps its id from being reused.
            self._tensor_keys[id(tensor)] = (tensor, key)
        return value

    # -- modules -----------------------------------------------------------

    def call(self, module, *inputs, name=None):
        """Converts `module` (a child of the module being converted, `name`
        its attribute name) applied to `inputs`; returns its result
        Value(s)."""
        path = self.path
        if name is not None:
            path = f"{path}.{name}" if path else str(name)
        converter = _find_converter(module)
        self._stack.append((path, module))
        try:
            if converter is None:
                raise self.error(
                    "no converter for this module class (register one with "
                    "moka.torch.register_converter)", UnsupportedModuleError)
            arity = _arity_error(converter, len(inputs))
            if arity is not None:
                raise self.error(arity)
            result = converter(self, module, *inputs)
            values = result if isinstance(result, tuple) else (result,)
            for v in values:
                if not isinstance(v, Value):
                    raise self.error(f"its converter returned {v!r}, not "
                                     "moka.torch.Value objects")
            return result
        finally:
            self._stack.pop()

    # -- building blocks ---------------------------------------------------

    def elementwise(self, inputs, body, dtype=None):
        """An all-parallel ``linalg.generic`` over the shape of the first
        input; other inputs may have fewer dimensions, matching its trailing
        ones (a bias [C] against x[..., C]). ``body(b, *scalars)`` writes the
        scalar computation with the :class:`ScalarBuilder` `b` and returns
        the result's SSA name. The result has element type `dtype` (default:
        the first input's)."""
        inputs = list(inputs)
        x = inputs[0]
        rank = x.rank
        for other in inputs[1:]:
            tail = x.shape[rank - other.rank:]
            if other.rank > rank or any(
                    a is not None and b is not None and a != b
                    for a, b in zip(tail, other.shape)):
                raise self.error(f"element-wise operands {x.type} and "
                                 f"{other.type} do not match")
        dtype = dtype or x.dtype
        init = self.empty_like(x, dtype)
        dims = [f"d{i}" for i in range(rank)]
        maps = [f"affine_map<({', '.join(dims)}) -> "
                f"({', '.join(dims[rank - v.rank:])})>" for v in inputs]
        maps.append(f"affine_map<({', '.join(dims)}) -> ({', '.join(dims)})>")
        builder = ScalarBuilder(self, dtype)
        scalars = [self.fresh("a") for _ in inputs]
        out_scalar = self.fresh("a")
        result = body(builder, *scalars)
        block_args = ", ".join(f"{s}: {v.dtype}"
                               for s, v in zip(scalars, inputs))
        iterators = ", ".join('"parallel"' for _ in range(rank))
        text = [f"linalg.generic {{indexing_maps = [{', '.join(maps)}], "
                f"iterator_types = [{iterators}]}} "
                f"ins({', '.join(v.name for v in inputs)} : "
                f"{', '.join(v.type for v in inputs)}) "
                f"outs({init.name} : {init.type}) {{",
                f"^bb0({block_args}, {out_scalar}: {dtype}):"]
        text += ["  " + line for line in builder.lines]
        text += [f"  linalg.yield {result} : {dtype}", f"}} -> {init.type}"]
        out = self.op("\n".join(text), (x.shape, dtype))
        self.same_sizes(out, x, [(i, i) for i in range(rank)])
        return out

    def collapse(self, x, groups):
        """``tensor.collapse_shape`` with reassociation `groups`."""
        shape = []
        for group in groups:
            dims = [x.shape[i] for i in group]
            shape.append(None if None in dims else math.prod(dims))
        out = self.op(f"tensor.collapse_shape {x.name} {_groups(groups)} : "
                      f"{x.type} into {tensor_type(shape, x.dtype)}",
                      (shape, x.dtype))
        self.same_sizes(out, x, [(j, g[0]) for j, g in enumerate(groups)
                                 if len(g) == 1])
        return out

    def expand(self, x, groups, shape, sizes):
        """``tensor.expand_shape`` into `shape`; `sizes` gives the SSA index
        of each dynamic dimension (aligned with `shape`)."""
        if sum(d is None for d in shape) > 1:
            # expand_shape into several dynamic dimensions crashes upstream
            # expand-strided-metadata (LLVM 22); tensor.reshape, which
            # takes the sizes as a tensor, lowers without it.
            dims = [sizes[i] if d is None else self.index(d)
                    for i, d in enumerate(shape)]
            target = self.op(f"tensor.from_elements {', '.join(dims)} : "
                             f"tensor<{len(shape)}xindex>",
                             ((len(shape),), "index"))
            return self.op(f"tensor.reshape {x.name}({target.name}) : "
                           f"({x.type}, {target.type}) -> "
                           f"{tensor_type(shape, x.dtype)}", (shape, x.dtype))
        output = ", ".join(str(d) if d is not None else sizes[i]
                           for i, d in enumerate(shape))
        return self.op(f"tensor.expand_shape {x.name} {_groups(groups)} "
                       f"output_shape [{output}] : {x.type} into "
                       f"{tensor_type(shape, x.dtype)}", (shape, x.dtype))

    def flatten(self, x):
        """`x[..., C]` as a matrix `[N, C]`; returns ``(matrix, restore)``
        where ``restore(y)`` reshapes a `[N, C']` result back to
        `[..., C']`."""
        if x.rank == 0:
            raise self.error("expected a tensor of rank >= 1, got a scalar")
        if x.rank == 2:
            return x, lambda y: y
        if x.rank == 1:
            matrix = self.expand(x, [[0, 1]], (1, x.shape[0]),
                                 [None, self.size(x, 0)])

            def restore_vector(y):
                return self.collapse(y, [[0, 1]])
            return matrix, restore_vector
        lead = list(range(x.rank - 1))
        matrix = self.collapse(x, [lead, [x.rank - 1]])

        def restore(y):
            shape = list(x.shape[:-1]) + [y.shape[-1]]
            sizes = [self.size(x, i) if x.shape[i] is None else None
                     for i in lead]
            sizes.append(self.size(y, 1) if y.shape[-1] is None else None)
            out = self.expand(y, [lead, [x.rank - 1]], shape, sizes)
            self.same_sizes(out, x, [(i, i) for i in lead])
            return out
        return matrix, restore

    def transpose(self, x, permutation):
        """``linalg.transpose``."""
        shape = [x.shape[p] for p in permutation]
        sizes = [self.size(x, p) if x.shape[p] is None else None
                 for p in permutation]
        init = self.empty(shape, x.dtype, sizes)
        perm = ", ".join(str(p) for p in permutation)
        return self.op(f"linalg.transpose ins({x.name} : {x.type}) "
                       f"outs({init.name} : {init.type}) "
                       f"permutation = [{perm}]", (shape, x.dtype))

    def fill(self, value, shape, dtype, sizes):
        """A tensor of `shape` filled with the float `value`."""
        init = self.empty(shape, dtype, sizes)
        scalar = self.fresh("cst")
        self.emit(f"{scalar} = arith.constant {_float_literal(value)} : "
                  f"{dtype}")
        return self.op(f"linalg.fill ins({scalar} : {dtype}) "
                       f"outs({init.name} : {init.type}) -> {init.type}",
                       (shape, dtype))

    def matmul(self, a, b, accumulator):
        """``linalg.matmul``: `accumulator` + `a` @ `b`."""
        return self.op(f"linalg.matmul ins({a.name}, {b.name} : {a.type}, "
                       f"{b.type}) outs({accumulator.name} : "
                       f"{accumulator.type}) -> {accumulator.type}",
                       (accumulator.shape, accumulator.dtype))

    def linear(self, x, weight, bias=None):
        """``x @ weight^T + bias`` for `x[..., in]`, `weight[out, in]` (the
        layout of ``torch.nn.Linear``), `bias[out]`."""
        if weight.rank != 2 or x.shape[-1] != weight.shape[1]:
            raise self.error(f"input {x.type} does not match the weight "
                             f"{weight.type} ([out, in])")
        if x.dtype != weight.dtype:
            raise self.error(f"the input is {x.dtype}, the weights "
                             f"{weight.dtype}: convert the model or the "
                             "inputs so that they agree")
        matrix, restore = self.flatten(x)
        transposed = self.transpose(weight, [1, 0])
        shape = (matrix.shape[0], weight.shape[0])
        sizes = [self.size(matrix, 0) if shape[0] is None else None, None]
        if bias is None:
            accumulator = self.fill(0.0, shape, x.dtype, sizes)
        else:
            # The product accumulates into the broadcast bias, so no
            # separate pass over the result adds it.
            init = self.empty(shape, x.dtype, sizes)
            accumulator = self.op(
                f"linalg.broadcast ins({bias.name} : {bias.type}) "
                f"outs({init.name} : {init.type}) dimensions = [0]",
                (shape, x.dtype))
        y = self.matmul(matrix, transposed, accumulator)
        self.same_sizes(y, matrix, [(0, 0)])
        return restore(y)


def _groups(groups):
    return "[" + ", ".join("[" + ", ".join(str(i) for i in g) + "]"
                           for g in groups) + "]"


def _to_numpy(tensor):
    t = tensor.detach().cpu()
    if t.dtype == torch.bfloat16:
        return BF16Bits(t.contiguous().view(torch.int16).numpy().copy())
    return t.contiguous().numpy().copy()


# ---------------------------------------------------------------------------
# Converter registry

_BY_CLASS = {}
_BY_NAME = {}
_STRUCTURAL = []  # (predicate, converter), tried when no class matches


def register_converter(class_or_name, fn=None):
    """Registers `fn` as the converter of a module class (a class, or a
    class name matched against the module's class and its bases). Usable as
    a decorator: ``@register_converter(MyBlock)``.

    A converter is called as ``fn(emitter, module, *inputs)``:

    - `emitter` is the :class:`Emitter` writing the function;
    - `module` is the module instance to convert;
    - `inputs` are :class:`Value` objects, the module's forward arguments
      (their ``shape`` has None for dynamic dimensions).

    It writes the module's computation with the emitter (``emitter.weight``
    for parameters, ``emitter.call(child, x, name="child")`` to convert a
    submodule, ``emitter.linear``, ``emitter.elementwise``, ``emitter.op``
    for any other op) and returns the output Value, or a tuple of Values
    for a module that returns a tuple. It raises ``emitter.error(message)``
    when the module cannot be converted. A registration replaces any earlier
    one for the same class or name, moka's own included.
    """
    if fn is None:
        return lambda f: register_converter(class_or_name, f)
    if not callable(fn):
        raise TypeError("a converter must be callable")
    if isinstance(class_or_name, str):
        _BY_NAME[class_or_name] = fn
    elif isinstance(class_or_name, type):
        _BY_CLASS[class_or_name] = fn
    else:
        raise TypeError("register_converter takes a class or a class name")
    return fn


def _arity_error(converter, n):
    """Why `converter` (``fn(emitter, module, *inputs)``) cannot take `n`
    inputs, or None when it can (or its signature cannot be read)."""
    try:
        signature = inspect.signature(converter)
    except (TypeError, ValueError):
        return None
    try:
        signature.bind(None, None, *([None] * n))
        return None
    except TypeError:
        pass
    params = list(signature.parameters.values())[2:]
    positional = [p for p in params
                  if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    required = sum(p.default is p.empty for p in positional)
    if any(p.kind == p.VAR_POSITIONAL for p in params):
        expected = f"at least {required}"
    elif required == len(positional):
        expected = str(required)
    else:
        expected = f"{required} to {len(positional)}"
    plural = "" if expected == "1" else "s"
    return f"takes {expected} input{plural}, got {n}"


def _find_converter(module):
    cls = type(module)
    forward = getattr(cls, "forward", None)
    for base in cls.__mro__:
        # A subclass that overrides forward need not compute what its base
        # computes: the base's converter does not apply to it.
        if base is not cls and getattr(base, "forward", None) is not forward:
            break
        fn = _BY_CLASS.get(base) or _BY_NAME.get(base.__name__)
        if fn is not None:
            return fn
    if not isinstance(module, nn.Module):
        return None  # the structural predicates read a module's children
    for predicate, fn in _STRUCTURAL:
        if predicate(module):
            return fn
    return None


# ---------------------------------------------------------------------------
# torch.nn converters


def _unary(x, emitter, body):
    if x.dtype not in _FLOAT_TYPES:
        raise emitter.error(f"expects a float tensor, got {x.type}")
    return emitter.elementwise([x], body)


def _convert_gelu(e, m, x):
    if m.approximate == "none":
        def body(b, v):
            # torch: x * 0.5 * (1 + erf(x / sqrt(2)))
            t = b.op("math.erf", b.mul(v, b.constant(math.sqrt(0.5))))
            return b.mul(b.mul(v, b.constant(0.5)),
                         b.add(b.constant(1.0), t))
    elif m.approximate == "tanh":
        def body(b, v):
            # 0.5 * x * (1 + tanh(sqrt(2/pi) * (x + 0.044715 * x^3)))
            cube = b.mul(b.mul(v, v), v)
            inner = b.add(v, b.mul(b.constant(0.044715), cube))
            t = b.op("math.tanh",
                     b.mul(b.constant(math.sqrt(2.0 / math.pi)), inner))
            return b.mul(b.mul(b.constant(0.5), v),
                         b.add(b.constant(1.0), t))
    else:
        raise e.error(f"unknown GELU approximation {m.approximate!r}")
    return _unary(x, e, body)


def _silu_body(b, v):
    # x / (1 + exp(-x)): exp overflows to inf for very negative x, giving
    # the correct limit -0.
    return b.div(v, b.add(b.constant(1.0), b.op("math.exp", b.neg(v))))


def _convert_silu(e, m, x):
    return _unary(x, e, _silu_body)


def _convert_relu(e, m, x):
    return _unary(x, e, lambda b, v: b.op("arith.maximumf", v,
                                          b.constant(0.0)))


def _convert_identity(e, m, *inputs):
    if len(inputs) != 1:
        raise e.error(f"takes one input, got {len(inputs)}")
    return inputs[0]


def _convert_dropout(e, m, x):
    if m.training and m.p > 0:
        raise e.error(f"dropout with p = {m.p} in training mode is random; "
                      "import the model in eval() mode")
    return x


def _convert_sequential(e, m, *inputs):
    values = inputs
    children = list(m.named_children())
    for i, (name, child) in enumerate(children):
        result = e.call(child, *values, name=name)
        values = result if isinstance(result, tuple) else (result,)
        if len(values) != 1 and i + 1 < len(children):
            raise e.error(f"child '{name}' returns {len(values)} values; "
                          "nn.Sequential passes one value to the next child")
    return values if len(values) != 1 else values[0]


def _convert_module_list(e, m, *inputs):
    raise e.error("nn.ModuleList has no forward: how its modules are applied "
                  "is up to the module that holds it. It is imported only "
                  "inside the structures moka recognises (the experts of an "
                  "MoE block); register a converter for the module that "
                  "holds it", UnsupportedModuleError)


def _convert_linear(e, m, x):
    if x.rank == 0:
        raise e.error(f"expects an input of rank >= 1 with in_features = "
                      f"{m.in_features} channels, got the scalar {x.type}")
    if x.shape[-1] != m.in_features:
        raise e.error(f"input {x.type} does not have in_features = "
                      f"{m.in_features} channels")
    weight = e.weight(m.weight, "weight")
    bias = e.weight(m.bias, "bias") if m.bias is not None else None
    return e.linear(x, weight, bias)


register_converter(nn.Linear, _convert_linear)
register_converter(nn.GELU, _convert_gelu)
register_converter(nn.SiLU, _convert_silu)
register_converter(nn.ReLU, _convert_relu)
register_converter(nn.Identity, _convert_identity)
register_converter(nn.Dropout, _convert_dropout)
register_converter(nn.Sequential, _convert_sequential)
register_converter(nn.ModuleList, _convert_module_list)


# ---------------------------------------------------------------------------
# Mixture-of-experts blocks (HF transformers)


def _is_silu(module):
    return isinstance(module, nn.SiLU) or type(module).__name__ in (
        "SiLU", "SiLUActivation")


class _Mismatch(Exception):
    """A part of a structure is not what its converter expects."""


def _plain_linear(module, what, in_features=None, out_features=None):
    """Checks that `module` is an nn.Linear without bias of the given size
    (raises _Mismatch)."""
    if not isinstance(module, nn.Linear):
        raise _Mismatch(f"{what} is {type(module).__name__}, expected "
                        "nn.Linear")
    if module.bias is not None:
        raise _Mismatch(f"{what} has a bias, which moe.layer does not take")
    if in_features is not None and module.in_features != in_features:
        raise _Mismatch(f"{what} has in_features = {module.in_features}, "
                        f"expected {in_features}")
    if out_features is not None and module.out_features != out_features:
        raise _Mismatch(f"{what} has out_features = {module.out_features}, "
                        f"expected {out_features}")
    return module


def _swiglu_stack(e, experts, names, hidden, what):
    """Stacks the gate, up and down projections ([E, f, d], [E, f, d],
    [E, d, f]) of uniform SwiGLU experts; `names` = (gate, up, down)
    attribute names."""
    if not isinstance(experts, nn.ModuleList) or len(experts) == 0:
        raise e.error(f"{what} must be a non-empty nn.ModuleList")
    first = experts[0]
    ffn = getattr(getattr(first, names[0], None), "out_features", None)
    gate, up, down = [], [], []
    for i, expert in enumerate(experts):
        label = f"{what}[{i}]"
        if type(expert) is not type(first):
            raise e.error(f"the experts are not uniform: {label} is "
                          f"{type(expert).__name__}, {what}[0] is "
                          f"{type(first).__name__}")
        act = getattr(expert, "act_fn", None)
        if not _is_silu(act):
            raise e.error(f"{label}.act_fn is {type(act).__name__}; moka "
                          "imports SwiGLU experts (SiLU)")
        try:
            g, u, d = (_plain_linear(getattr(expert, name, None),
                                     f"{label}.{name}", *sizes)
                       for name, sizes in zip(names, [(hidden, ffn),
                                                      (hidden, ffn),
                                                      (ffn, hidden)]))
        except _Mismatch as err:
            raise e.error(f"the experts are not uniform: {err}") from None
        gate.append(_to_numpy(g.weight))
        up.append(_to_numpy(u.weight))
        down.append(_to_numpy(d.weight))
    return np.stack(gate), np.stack(up), np.stack(down)


def _moe_input(e, x, hidden):
    if x.rank < 2 or x.shape[-1] != hidden:
        raise e.error(f"expects hidden states [..., {hidden}], got {x.type}")
    if x.dtype not in ("f32", "f16", "bf16"):
        raise e.error(f"moe.layer takes f32, f16 or bf16 tensors, got "
                      f"{x.dtype}")
    return e.flatten(x)


def _weight_dtype(e, x, *values):
    for v in values:
        if v.dtype != x.dtype:
            raise e.error(f"the weights are {v.dtype} and the input "
                          f"{x.dtype}: convert the model or the inputs so "
                          "that they agree")


def _convert_mixtral_moe(e, m, x):
    """HF's MixtralSparseMoeBlock: softmax over all experts (in f32), top-k,
    renormalized, SwiGLU experts. Returns (output [..., d], router logits
    [T, E]) as HF does."""
    if m.training and getattr(m, "jitter_noise", 0) > 0:
        raise e.error(f"router jitter noise ({m.jitter_noise}) is random in "
                      "training mode; import the model in eval() mode")
    gate = m.gate
    hidden = gate.in_features
    experts = len(m.experts)
    try:
        _plain_linear(gate, "gate", hidden, experts)
    except _Mismatch as err:
        raise e.error(str(err)) from None
    if getattr(m, "num_experts", experts) != experts:
        raise e.error(f"num_experts = {m.num_experts} but there are "
                      f"{experts} experts")
    k = int(m.top_k)
    w1, w3, w2 = _swiglu_stack(e, m.experts, ("w1", "w3", "w2"), hidden,
                               "experts")
    tokens, restore = _moe_input(e, x, hidden)
    g = e.weight(gate.weight, "gate.weight")
    w1 = e.weight(w1, "experts.w1.weight")
    w2 = e.weight(w2, "experts.w2.weight")
    w3 = e.weight(w3, "experts.w3.weight")
    _weight_dtype(e, x, g, w1, w2, w3)
    out = e.op(f"moe.layer swiglu {tokens}, {g}, {w1}, {w2} "
               f"up({w3} : {w3.type}) {{k = {k} : i64, normalize = true}} : "
               f"{tokens.type}, {g.type}, {w1.type}, {w2.type} -> "
               f"{tensor_type(tokens.shape, 'f32')}", (tokens.shape, "f32"))
    e.same_sizes(out, tokens, [(0, 0)])
    logits = e.linear(tokens, g)
    return restore(out), logits


def _router_setting(e, m, name, config_name=None):
    """A DeepSeek-V3 routing setting, read from the gate, else the MoE
    module, else their config."""
    for holder in (m.gate, m, getattr(m, "config", None),
                   getattr(m.gate, "config", None)):
        if holder is None:
            continue
        for attr in (name, config_name):
            if attr and hasattr(holder, attr):
                return getattr(holder, attr)
    raise e.error(f"cannot find the routing setting '{name}' on the gate, "
                  "the module or its config")


def _convert_deepseek_v3_moe(e, m, x):
    """HF's DeepseekV3MoE: sigmoid scores, e_score_correction_bias for the
    selection only, top-2-sum group scores, top-k within the best
    `topk_group` groups, optional renormalization, routed scaling, plus the
    shared expert. Experts outside the kept groups are never chosen (HF
    masks their keys with 0, which only differs when keys are negative, a
    case DeepSeek-V3's own inference code excludes by masking with -inf)."""
    gate = m.gate
    weight = getattr(gate, "weight", None)
    if not isinstance(weight, torch.Tensor) or weight.dim() != 2:
        raise e.error("the gate has no [E, d] weight")
    experts, hidden = weight.shape
    n_experts = int(_router_setting(e, m, "n_routed_experts"))
    if n_experts != experts or len(m.experts) != experts:
        raise e.error(f"n_routed_experts = {n_experts}, the gate has "
                      f"{experts} rows and there are {len(m.experts)} "
                      "experts")
    k = int(_router_setting(e, m, "top_k", "num_experts_per_tok"))
    n_group = int(_router_setting(e, m, "n_group"))
    topk_group = int(_router_setting(e, m, "topk_group"))
    normalize = bool(_router_setting(e, m, "norm_topk_prob"))
    scale = float(_router_setting(e, m, "routed_scaling_factor"))
    names = ("gate_proj", "up_proj", "down_proj")
    w1, w3, w2 = _swiglu_stack(e, m.experts, names, hidden, "experts")
    shared = getattr(m, "shared_experts", None)
    tokens, restore = _moe_input(e, x, hidden)
    g = e.weight(weight, "gate.weight")
    w1 = e.weight(w1, "experts.gate_proj.weight")
    w2 = e.weight(w2, "experts.down_proj.weight")
    w3 = e.weight(w3, "experts.up_proj.weight")
    operands = [g, w1, w2, w3]
    text = (f"moe.layer swiglu {tokens}, {g}, {w1}, {w2} "
            f"up({w3} : {w3.type})")
    bias = getattr(gate, "e_score_correction_bias", None)
    if bias is not None:
        b = e.weight(bias, "gate.e_score_correction_bias")
        text += f" bias({b} : {b.type})"
    if shared is not None:
        s1, s3, s2 = (stack[0] for stack in _swiglu_stack(
            e, nn.ModuleList([shared]), names, hidden, "shared_experts"))
        s1 = e.weight(s1, "shared_experts.gate_proj.weight")
        s2 = e.weight(s2, "shared_experts.down_proj.weight")
        s3 = e.weight(s3, "shared_experts.up_proj.weight")
        operands += [s1, s2, s3]
        text += (f" shared({s1}, {s2} : {s1.type}, {s2.type})"
                 f" shared_up({s3} : {s3.type})")
    _weight_dtype(e, x, *operands)
    attrs = [f"k = {k} : i64", "scoring = #moe<scoring sigmoid>"]
    if n_group > 1:
        attrs += [f"n_group = {n_group} : i64",
                  f"topk_group = {topk_group} : i64",
                  "group_score = #moe<group_score top2_sum>"]
    if normalize:
        attrs.append("normalize = true")
    if scale != 1.0:
        attrs.append(f"routed_scaling_factor = {_float_literal(scale)} : f64")
    out_type = tensor_type(tokens.shape, "f32")
    out = e.op(f"{text} {{{', '.join(attrs)}}} : {tokens.type}, {g.type}, "
               f"{w1.type}, {w2.type} -> {out_type}", (tokens.shape, "f32"))
    e.same_sizes(out, tokens, [(0, 0)])
    return restore(out)


register_converter("MixtralSparseMoeBlock", _convert_mixtral_moe)
register_converter("DeepseekV3MoE", _convert_deepseek_v3_moe)


# ---------------------------------------------------------------------------
# KAN (KAT)


def _is_kat_group(module):
    return (isinstance(getattr(module, "weight_numerator", None),
                       torch.Tensor) and
            isinstance(getattr(module, "weight_denominator", None),
                       torch.Tensor))


def _rational_coefficients(e, act, channels, what):
    """The numerator [G or 1, m+1] and denominator [G, n] of a KAT_Group,
    checked; returns (numerator, denominator, m, n)."""
    a, b = act.weight_numerator, act.weight_denominator
    if a.dim() != 2 or b.dim() != 2:
        raise e.error(f"{what}: weight_numerator and weight_denominator "
                      "must be 2-D")
    groups = b.shape[0]
    if getattr(act, "num_groups", groups) != groups:
        raise e.error(f"{what}: num_groups = {act.num_groups} but "
                      f"weight_denominator has {groups} rows")
    if a.shape[0] not in (1, groups):
        raise e.error(f"{what}: weight_numerator has {a.shape[0]} rows, "
                      f"expected 1 (shared) or num_groups = {groups}")
    m, n = a.shape[1] - 1, b.shape[1]
    order = getattr(act, "order", None)
    if order is not None and tuple(order) != (m, n):
        raise e.error(f"{what}: order = {tuple(order)} does not match the "
                      f"coefficient shapes (degrees {m}, {n})")
    if not (0 <= m <= 16 and 0 <= n <= 16):
        raise e.error(f"{what}: degrees ({m}, {n}) exceed kan.rational's "
                      "limit of 16")
    if channels is not None and channels % groups:
        raise e.error(f"{what}: {channels} channels are not divisible by "
                      f"num_groups = {groups}")
    return a, b, m, n


def _kan_input(e, x):
    if x.dtype not in ("f32", "f16", "bf16"):
        raise e.error(f"kan ops take f32, f16 or bf16 tensors, got "
                      f"{x.dtype}")
    if x.rank < 1:
        raise e.error("expects a tensor of rank >= 1")


def _convert_kat_group(e, m, x):
    """KAT's group-rational activation as kan.rational: channel c of
    x[..., C] uses group c // (C / G); the numerator may be shared."""
    _kan_input(e, x)
    a, b, deg_m, deg_n = _rational_coefficients(e, m, x.shape[-1], "")
    a = e.weight(a, "weight_numerator")
    b = e.weight(b, "weight_denominator")
    for v in (a, b):
        if v.dtype not in ("f32", x.dtype):
            raise e.error(f"coefficients must be f32 or {x.dtype}, got "
                          f"{v.dtype}")
    out = e.op(f"kan.rational {x}, {a}, {b} {{m = {deg_m} : i64, "
               f"n = {deg_n} : i64}} : {x.type}, {a.type}, {b.type}",
               (x.shape, x.dtype))
    e.same_sizes(out, x, [(i, i) for i in range(x.rank)])
    return out


def _is_inference_identity(module):
    if isinstance(module, nn.Identity):
        return True
    if isinstance(module, nn.Dropout):
        return not (module.training and module.p > 0)
    return False


_KAN_BLOCK_CHILDREN = {"act1", "drop1", "fc1", "norm", "act2", "drop2", "fc2"}
_MLP_CHILDREN = {"fc1", "act", "drop1", "norm", "fc2", "drop2"}


def _is_kan_block(module):
    names = {name for name, _ in module.named_children()}
    return ({"act1", "fc1", "act2", "fc2"} <= names <= _KAN_BLOCK_CHILDREN
            and not isinstance(module, (nn.Sequential, nn.ModuleList)))


def _is_timm_mlp(module):
    names = {name for name, _ in module.named_children()}
    return ({"fc1", "act", "fc2"} <= names <= _MLP_CHILDREN
            and not isinstance(module, (nn.Sequential, nn.ModuleList)))


def _kan_layer(e, x, act, fc, act_name, fc_name):
    """kan.layer rational: fc(act(x)) in one op."""
    a, b, _, _ = _rational_coefficients(e, act, x.shape[-1], act_name)
    if x.shape[-1] != fc.in_features:
        raise e.error(f"{fc_name} expects {fc.in_features} channels, its "
                      f"input is {x.type}")
    w = e.weight(fc.weight, f"{fc_name}.weight")
    a = e.weight(a, f"{act_name}.weight_numerator")
    b = e.weight(b, f"{act_name}.weight_denominator")
    operands = [w, a, b]
    text = f"kan.layer rational {x}, {w}"
    if fc.bias is not None:
        c = e.weight(fc.bias, f"{fc_name}.bias")
        operands.append(c)
        text += f" bias({c} : {c.type})"
    _weight_dtype(e, x, *operands)
    text += f" coefficients({a}, {b} : {a.type}, {b.type})"
    shape = x.shape[:-1] + (fc.out_features,)
    out = e.op(f"{text} : {x.type}, {w.type} -> {tensor_type(shape, x.dtype)}",
               (shape, x.dtype))
    e.same_sizes(out, x, [(i, i) for i in range(x.rank - 1)])
    return out


def _convert_kan_block(e, m, x):
    """KAT's feed-forward block: fc2(act2(fc1(act1(x)))) with KAT_Group
    activations, as two fused kan.layer rational ops (dropouts are the
    identity at inference). Other activations are converted one by one."""
    for name in ("drop1", "drop2"):
        child = getattr(m, name, None)
        if child is not None and not _is_inference_identity(child):
            raise e.error(f"{name} is {type(child).__name__}, which is not "
                          "the identity at inference (use eval() mode)")
    norm = getattr(m, "norm", None)
    if norm is not None and not isinstance(norm, nn.Identity):
        raise e.error(f"norm is {type(norm).__name__}: KAT's block does not "
                      "apply it in forward, other blocks do between fc1 and "
                      "fc2; register a converter for this class to say "
                      "which")
    fused = (x.dtype in ("f32", "f16", "bf16") and
             all(_is_kat_group(getattr(m, a)) for a in ("act1", "act2")) and
             all(isinstance(getattr(m, f), nn.Linear) for f in ("fc1", "fc2")))
    if not fused:
        h = x
        for name in ("act1", "drop1", "fc1", "act2", "drop2", "fc2"):
            if getattr(m, name, None) is not None:
                h = e.call(getattr(m, name), h, name=name)
        return h
    _kan_input(e, x)
    h = _kan_layer(e, x, m.act1, m.fc1, "act1", "fc1")
    return _kan_layer(e, h, m.act2, m.fc2, "act2", "fc2")


def _convert_timm_mlp(e, m, x):
    """timm's Mlp: fc2(norm(act(fc1(x)))) with dropouts."""
    h = x
    for name in ("fc1", "act", "drop1", "norm", "fc2", "drop2"):
        if getattr(m, name, None) is not None:
            h = e.call(getattr(m, name), h, name=name)
    return h


register_converter("KAT_Group", _convert_kat_group)
register_converter("KAT_Group_Torch", _convert_kat_group)
_STRUCTURAL.append((_is_kan_block, _convert_kan_block))
_STRUCTURAL.append((_is_timm_mlp, _convert_timm_mlp))


# ---------------------------------------------------------------------------
# Entry point


_TORCH_ELEMENT = {torch.float32: "f32", torch.float64: "f64"}


def _input_array(x, i):
    if isinstance(x, torch.Tensor):
        if x.dtype not in _TORCH_ELEMENT:
            raise ConversionError(f"example input {i} is {x.dtype}; moka "
                                  "imports float32 or float64 inputs")
        return tuple(x.shape), _TORCH_ELEMENT[x.dtype]
    array = np.asarray(x)
    if array.dtype not in (np.float32, np.float64):
        raise ConversionError(f"example input {i} is {array.dtype}; moka "
                              "imports float32 or float64 inputs")
    return array.shape, _NUMPY_ELEMENT[array.dtype]


def _dynamic_dims(spec, shapes):
    if spec is None:
        return [{0} if len(s) >= 2 else set() for s in shapes]
    if spec is False:
        return [set() for _ in shapes]
    spec = list(spec)
    if len(spec) != len(shapes):
        raise ConversionError(f"dynamic_dims has {len(spec)} entries for "
                              f"{len(shapes)} example inputs")
    result = []
    for i, (dims, shape) in enumerate(zip(spec, shapes)):
        dims = set() if dims is None else {int(d) for d in dims}
        if any(not -len(shape) <= d < len(shape) for d in dims):
            raise ConversionError(f"dynamic_dims[{i}] = {sorted(dims)} is "
                                  f"out of range for rank {len(shape)}")
        result.append({d % len(shape) for d in dims})
    return result


def import_module(module, example_inputs, *, function="forward",
                  dynamic_dims=None):
    """Imports the torch module `module` as one function of a moka Module.

    `example_inputs` (a tensor or a tuple of tensors or numpy arrays, f32 or
    f64) fixes the ranks, element types and sizes of the function's
    arguments. By default the leading dimension of every input of rank >= 2
    is dynamic (``?``), so the compiled function takes any batch size;
    `dynamic_dims` overrides this: ``False`` for all sizes static, or one
    collection of dynamic dimension indices per input (``[(0, 1)]``).

    The module is read, not run; import it in ``eval()`` mode. Raises
    :class:`UnsupportedModuleError` for a module class without a converter
    (see :func:`register_converter`) and :class:`ConversionError` for a
    module that cannot be imported as it is.
    """
    if not isinstance(module, nn.Module):
        raise TypeError("moka.torch.import_module expects a torch.nn.Module, "
                        f"not {type(module).__name__}")
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_$.]*", function):
        raise ConversionError(f"invalid function name {function!r}")
    if isinstance(example_inputs, (torch.Tensor, np.ndarray)):
        example_inputs = (example_inputs,)
    inputs = [_input_array(x, i) for i, x in enumerate(example_inputs)]
    dynamic = _dynamic_dims(dynamic_dims, [s for s, _ in inputs])
    emitter = Emitter()
    args = [Value(f"%arg{i}", [None if d in dyn else n
                               for d, n in enumerate(shape)], dtype)
            for i, ((shape, dtype), dyn) in enumerate(zip(inputs, dynamic))]
    with torch.no_grad():
        result = emitter.call(module, *args)
    results = result if isinstance(result, tuple) else (result,)
    signature = ", ".join(f"{a.name}: {a.type}" for a in args)
    types = [r.type for r in results]
    returns = types[0] if len(types) == 1 else f"({', '.join(types)})"
    body = ["    " + line for line in emitter.lines]
    body.append(f"    return {', '.join(r.name for r in results)} : "
                f"{', '.join(types)}")
    text = "\n".join(["module {",
                      f"  func.func @{function}({signature}) -> {returns} {{",
                      *body, "  }", "}", ""])
    return Module(text, emitter.weights, [function])
