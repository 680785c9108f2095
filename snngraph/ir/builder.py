"""Builder methods of :class:`~snngraph.ir.graph.Graph` for inputs, outputs and synapses.

Each method checks its arguments and the types of its inputs at the call, raises
``GraphError`` naming the node on a mistake, and leaves the graph unchanged when it does.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np

from snngraph.ir import synapses as S
from snngraph.ir.builder_layers import LayerBuilder
from snngraph.ir.builder_math import MathBuilder
from snngraph.ir.builder_neurons import NeuronBuilder
from snngraph.ir.builder_spatial import SpatialBuilder
from snngraph.ir.errors import GraphError
from snngraph.ir.init import as_array, kaiming_weight, uniform_fan_in
from snngraph.ir.synapses import MAX_INT
from snngraph.ir.types import DTYPES, Param, Ref, check_name, check_shape

if TYPE_CHECKING:
    from snngraph.ir.graph import Handle
    from snngraph.ir.node import Node


MAX_PARAM = 2**31  # elements of one default-initialised weight


def is_int(value: Any) -> bool:
    """Whether ``value`` is an int or numpy integer (bools are not sizes)."""
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def _int(value: Any, what: str, low: int | None = None) -> int:
    """``value`` as a Python int in ``[low, 2**31 - 1]``, or GraphError naming ``what``."""
    if not is_int(value):
        raise GraphError(f"{what} must be an int, got {value!r}")
    if low is not None and value < low:
        kind = "a positive" if low == 1 else "a non-negative" if low == 0 else f"an int >= {low},"
        raise GraphError(f"{what} must be {kind} int, got {value!r}")
    if abs(int(value)) > MAX_INT:
        raise GraphError(f"{what} = {value!r} is too large (at most {MAX_INT})")
    return int(value)


def _tuple(value: Any, n: int, what: str, low: int = 1) -> tuple[int, ...]:
    """An int or ``n`` ints (each ``>= low``) as a tuple of ``n`` Python ints."""
    if is_int(value):
        return (_int(value, what, low),) * n
    if isinstance(value, (tuple, list)) and len(value) == n and all(is_int(v) for v in value):
        return tuple(_int(v, what, low) for v in value)
    raise GraphError(f"{what} must be an int or {n} ints, got {value!r}")


def _flag(value: Any, what: str) -> bool:
    """A bool (or numpy bool) as ``bool``; anything else is a GraphError (``bias="no"`` is not False)."""
    if not isinstance(value, (bool, np.bool_)):
        raise GraphError(f"{what} must be True or False, got {value!r}")
    return bool(value)


def _real(value: Any, what: str) -> float:
    """A finite real number (not a bool) as ``float``."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise GraphError(f"{what} must be a number, got {value!r}")
    try:
        number = float(value)
    except OverflowError:
        number = math.inf
    if not math.isfinite(number):
        raise GraphError(f"{what} must be finite, got {value!r}")
    return number


def _weight_shape(shape: tuple[int, ...], where: str) -> tuple[int, ...]:
    """Refuse a weight too large to allocate before it is initialised."""
    if math.prod(shape) > MAX_PARAM:
        raise GraphError(f"{where}: a weight of shape {list(shape)} is too large (more than {MAX_PARAM} elements)")
    return shape


def _conv_params(where: str, c_in: int, out_channels: int, groups: Any, k: tuple[int, ...], weight: Any,
                 bias: Any, bias_value: Any, transposed: bool = False) -> tuple[int, Param, Param | None]:
    """``(groups, weight, bias)`` of a convolution, the weight ``(out, in / groups, *k)`` (transposed:
    ``(in, out / groups, *k)``), torch's initialisation where not given (bias: uniform in the fan-in of
    the weight's layout)."""
    groups = _int(groups, f"{where}: groups", low=1)
    if c_in % groups or out_channels % groups:
        raise GraphError(f"{where}: groups={groups!r} must divide in_channels={c_in} and out_channels")
    rows, cols = (c_in, out_channels) if transposed else (out_channels, c_in)
    shape = _weight_shape((rows, cols // groups, *k), where)
    w = kaiming_weight(shape, f"{where} weight") if weight is None else as_array(weight, f"{where} weight", shape)
    fan_in = (cols // groups) * math.prod(k)
    b = None
    if _flag(bias, f"{where}: bias") or bias_value is not None:
        b = uniform_fan_in((out_channels,), fan_in, f"{where} bias") if bias_value is None else \
            as_array(bias_value, f"{where} bias", (out_channels,))
    return groups, Param(w, True), None if b is None else Param(b, True)


class GraphBuilder(NeuronBuilder, LayerBuilder, MathBuilder, SpatialBuilder):
    """Mixin with the declarative API of SPEC §2 (the graph state lives in ``Graph``)."""

    # --- plumbing ----------------------------------------------------------------------------
    def _name(self, name: str | None, op: str) -> str:
        if name is not None:
            check_name(name)
            if name in self._nodes:
                raise GraphError(f"duplicate node name '{name}' in graph '{self.name}'")
            return name
        i = self._counts.get(op, 0) + 1  # every "<op><j>" with j < i is taken
        while f"{op}{i}" in self._nodes:
            self._counts[op] = i
            i += 1
        return f"{op}{i}"  # not reserved: a call that fails leaves the name free

    def _ref(self, value: Any, where: str) -> Ref:
        from snngraph.ir.graph import Handle

        if isinstance(value, Handle):
            if value.graph is not self:
                other = f"another graph also named '{self.name}'" if value.graph.name == self.name else \
                    f"graph '{value.graph.name}'"
                raise GraphError(f"{where}: value {value.name!r} belongs to {other}, not to graph '{self.name}' "
                                 "(handles cannot cross graphs)")
            return value.ref
        if isinstance(value, str):
            node, _, port = value.lstrip("%").partition(".")
            if node in self._nodes:
                return Ref(node, port or self._nodes[node].default_port)
        if isinstance(value, Ref) and value.node in self._nodes:
            return value
        raise GraphError(f"{where}: unknown input {value!r}")

    def _add(self, node: Node) -> Handle:
        """Check ``node`` against the graph, then add it; on error the graph is unchanged."""
        from snngraph.ir.graph import Handle, checked_infer

        node.check()
        types = self.types()
        for ref in node.inputs:
            if ref not in types:
                raise node.error(f"input {ref.text('')!r} does not exist")
        new = checked_infer(node, tuple(types[r] for r in node.inputs))
        self._nodes[node.name] = node
        for port, t in new.items():
            types[Ref(node.name, port)] = t
        return Handle(self, Ref(node.name, node.default_port))

    def _in_type(self, x: Any, where: str):
        ref = self._ref(x, where)
        return ref, self.types()[ref]

    # --- inputs and outputs ---------------------------------------------------------------------
    def input(self, name: str, shape: tuple[int, ...] | int, dtype: str = "float32") -> Handle:
        """Declare a graph input whose per-step values have ``shape`` (batch and time implicit)."""
        name = self._name(name, "input")
        if not isinstance(dtype, str) or dtype not in DTYPES:
            raise GraphError(f"input '{name}': dtype must be one of {list(DTYPES)}, got {dtype!r}")
        return self._add(S.Input(name=name, shape=check_shape(shape, f"input '{name}'"), dtype=dtype))

    def output(self, name: str, value: Any) -> None:
        """Declare the graph output ``name`` (e.g. ``"spk"``) to be ``value``."""
        check_name(name, "output")
        if name in self._outputs:
            raise GraphError(f"duplicate output name '{name}' in graph '{self.name}'")
        if name in self.inputs:
            raise GraphError(f"output '{name}' has the name of an input")
        self._outputs[name] = self._ref(value, f"output '{name}'")

    # --- synapses ---------------------------------------------------------------------------------
    def linear(self, x: Any, out_features: int, bias: bool = True, weight: Any = None, bias_value: Any = None,
               name: str | None = None) -> Handle:
        """Fully connected layer over the last feature dim, initialised like ``torch.nn.Linear``."""
        name = self._name(name, "linear")
        where = f"linear '{name}'"
        ref, t = self._in_type(x, where)
        out_features = _int(out_features, f"{where}: out_features", low=1)
        n_in = t.shape[-1]
        shape = _weight_shape((out_features, n_in), where)
        w = kaiming_weight(shape, f"{where} weight") if weight is None else as_array(weight, f"{where} weight", shape)
        b = None
        if _flag(bias, f"{where}: bias") or bias_value is not None:
            b = uniform_fan_in((out_features,), n_in, f"{where} bias") if bias_value is None else \
                as_array(bias_value, f"linear '{name}' bias", (out_features,))
        return self._add(S.Linear(name=name, inputs=(ref,), in_features=n_in, out_features=out_features,
                                  weight=Param(w, True), bias=None if b is None else Param(b, True)))

    def _conv(self, cls: type, x: Any, out_channels: int, kernel_size: Any, stride: Any, padding: Any,
              dilation: Any, groups: int, bias: bool, weight: Any, bias_value: Any, name: str | None) -> Handle:
        n = cls.dims
        name = self._name(name, cls.op)
        ref, t = self._in_type(x, f"{cls.op} '{name}'")
        where = f"{cls.op} '{name}'"
        if len(t.shape) != n + 1:
            raise GraphError(f"{where}: expects (C, {', '.join('L' * n)}) per step, got {list(t.shape)}")
        out_channels = _int(out_channels, f"{where}: out_channels", low=1)
        k, s, d = (_tuple(v, n, f"{where} {key}") for v, key in
                   ((kernel_size, "kernel_size"), (stride, "stride"), (dilation, "dilation")))
        p = _padding(padding, k, s, d, where)
        c_in = t.shape[0]
        groups, w, b = _conv_params(where, c_in, out_channels, groups, k, weight, bias, bias_value)
        return self._add(cls(name=name, inputs=(ref,), in_channels=c_in, out_channels=out_channels, kernel_size=k,
                             stride=s, padding=p, dilation=d, groups=groups, weight=w, bias=b))

    def conv1d(self, x: Any, out_channels: int, kernel_size: Any, stride: Any = 1, padding: Any = 0,
               dilation: Any = 1, groups: int = 1, bias: bool = True, weight: Any = None, bias_value: Any = None,
               name: str | None = None) -> Handle:
        """``torch.nn.Conv1d`` on (C, L) per-step inputs; in_channels is taken from ``x``."""
        return self._conv(S.Conv1d, x, out_channels, kernel_size, stride, padding, dilation, groups, bias, weight,
                          bias_value, name)

    def conv2d(self, x: Any, out_channels: int, kernel_size: Any, stride: Any = 1, padding: Any = 0,
               dilation: Any = 1, groups: int = 1, bias: bool = True, weight: Any = None, bias_value: Any = None,
               name: str | None = None) -> Handle:
        """``torch.nn.Conv2d`` on (C, H, W) per-step inputs; in_channels is taken from ``x``."""
        return self._conv(S.Conv2d, x, out_channels, kernel_size, stride, padding, dilation, groups, bias, weight,
                          bias_value, name)

    def _pool(self, cls: type, x: Any, kernel_size: Any, stride: Any, padding: Any, name: str | None) -> Handle:
        name = self._name(name, cls.op)
        where = f"{cls.op} '{name}'"
        ref, _ = self._in_type(x, where)
        k = _tuple(kernel_size, cls.dims, f"{where} kernel_size")
        s = k if stride is None else _tuple(stride, cls.dims, f"{where} stride")
        p = _tuple(padding, cls.dims, f"{where} padding", low=0)
        return self._add(cls(name=name, inputs=(ref,), kernel_size=k, stride=s, padding=p))

    def max_pool1d(self, x: Any, kernel_size: Any, stride: Any = None, padding: Any = 0,
                   name: str | None = None) -> Handle:
        """``torch.nn.MaxPool1d`` per step (stride defaults to kernel_size)."""
        return self._pool(S.MaxPool1d, x, kernel_size, stride, padding, name)

    def max_pool2d(self, x: Any, kernel_size: Any, stride: Any = None, padding: Any = 0,
                   name: str | None = None) -> Handle:
        """``torch.nn.MaxPool2d`` per step (stride defaults to kernel_size)."""
        return self._pool(S.MaxPool2d, x, kernel_size, stride, padding, name)

    def avg_pool1d(self, x: Any, kernel_size: Any, stride: Any = None, padding: Any = 0,
                   name: str | None = None) -> Handle:
        """``torch.nn.AvgPool1d`` per step (stride defaults to kernel_size)."""
        return self._pool(S.AvgPool1d, x, kernel_size, stride, padding, name)

    def avg_pool2d(self, x: Any, kernel_size: Any, stride: Any = None, padding: Any = 0,
                   name: str | None = None) -> Handle:
        """``torch.nn.AvgPool2d`` per step (stride defaults to kernel_size)."""
        return self._pool(S.AvgPool2d, x, kernel_size, stride, padding, name)

    def flatten(self, x: Any, start_dim: int = 0, end_dim: int = -1, name: str | None = None) -> Handle:
        """Flatten per-step dims (0 is the first feature dim: batch is implicit)."""
        name = self._name(name, "flatten")
        where = f"flatten '{name}'"
        ref, _ = self._in_type(x, where)
        start, end = _int(start_dim, f"{where}: start_dim"), _int(end_dim, f"{where}: end_dim")
        return self._add(S.Flatten(name=name, inputs=(ref,), start_dim=start, end_dim=end))

    def add(self, *xs: Any, name: str | None = None) -> Handle:
        """Element-wise sum of two or more values of one shape."""
        name = self._name(name, "add")
        if len(xs) < 2:
            raise GraphError(f"add '{name}': needs at least two inputs, got {len(xs)}")
        refs = tuple(self._ref(x, f"add '{name}'") for x in xs)
        return self._add(S.Add(name=name, inputs=refs))

    def concat(self, *xs: Any, dim: int = 0, name: str | None = None) -> Handle:
        """Concatenate along a per-step dim (``torch.cat`` on features)."""
        name = self._name(name, "concat")
        refs = tuple(self._ref(x, f"concat '{name}'") for x in xs)
        if not refs:
            raise GraphError(f"concat '{name}': needs at least one input")
        return self._add(S.Concat(name=name, inputs=refs, dim=_int(dim, f"concat '{name}': dim")))

    def scale(self, x: Any, factor: Any, learnable: bool = False, name: str | None = None) -> Handle:
        """Multiply by ``factor`` (a number or an array broadcasting to the per-step shape)."""
        name = self._name(name, "scale")
        ref, _ = self._in_type(x, f"scale '{name}'")
        f = as_array(factor, f"scale '{name}' factor")
        return self._add(S.Scale(name=name, inputs=(ref,), factor=Param(f, _flag(learnable, f"scale '{name}': "
                                                                                               "learnable"))))

    def relu(self, x: Any, name: str | None = None) -> Handle:
        """``max(x, 0)``."""
        name = self._name(name, "relu")
        ref, _ = self._in_type(x, f"relu '{name}'")
        return self._add(S.ReLU(name=name, inputs=(ref,)))

    def dropout(self, x: Any, p: float = 0.5, name: str | None = None) -> Handle:
        """Dropout with probability ``p`` (active in ``train()`` mode only)."""
        name = self._name(name, "dropout")
        ref, _ = self._in_type(x, f"dropout '{name}'")
        if isinstance(p, (bool, np.bool_)) or not isinstance(p, (int, float, np.integer, np.floating)) or \
                not 0.0 <= p <= 1.0:
            raise GraphError(f"dropout '{name}': p must lie in [0, 1], got {p!r}")
        return self._add(S.Dropout(name=name, inputs=(ref,), p=float(p)))

    def batch_norm(self, x: Any, eps: float = 1e-5, momentum: float = 0.1, affine: bool = True,
                   weight: Any = None, bias_value: Any = None, running_mean: Any = None, running_var: Any = None,
                   stats: str = "step", name: str | None = None) -> Handle:
        """``torch.nn.BatchNorm1d/2d`` over channel dim 0 (running statistics in ``eval()``). ``stats``: the
        training-mode batch statistics of each time step (``"step"``) or of the whole sequence's ``T * B``
        rows (``"sequence"``, SpikingJelly's multi-step batch norm; not in streaming ``step`` in training)."""
        name = self._name(name, "batch_norm")
        ref, t = self._in_type(x, f"batch_norm '{name}'")
        c = t.shape[0]
        where = f"batch_norm '{name}'"
        eps, momentum = _real(eps, f"{where}: eps"), _real(momentum, f"{where}: momentum")
        affine = _flag(affine, f"{where}: affine")
        if not isinstance(stats, str) or stats not in S.BATCH_NORM_STATS:
            raise GraphError(f"{where}: stats must be one of {list(S.BATCH_NORM_STATS)}, got {stats!r}")

        def vec(v, default):
            return as_array(default if v is None else v, where, (c,))

        return self._add(S.BatchNorm(
            name=name, inputs=(ref,), num_features=c, eps=eps, momentum=momentum,
            weight=Param(vec(weight, np.ones(c, np.float32)), True) if affine else None,
            bias=Param(vec(bias_value, np.zeros(c, np.float32)), True) if affine else None,
            running_mean=Param(vec(running_mean, np.zeros(c, np.float32))),
            running_var=Param(vec(running_var, np.ones(c, np.float32))), stats=stats))

    def delay(self, x: Any, steps: int = 1, name: str | None = None) -> Handle:
        """``y[t] = x[t - steps]``, zeros before."""
        name = self._name(name, "delay")
        ref, t = self._in_type(x, f"delay '{name}'")
        return self._add(S.Delay(name=name, inputs=(ref,), steps=_steps(steps, name), shape=t.shape))

    def feedback(self, shape: Any, steps: int = 1, name: str | None = None) -> Handle:
        """A delay whose input is connected later with :meth:`connect`: the way to close a loop.

        ``fb = g.feedback((256,)); h = g.add(g.linear(x, 256), fb); s = g.leaky(h, 0.9);
        g.connect(fb, g.linear(s, 256))``.
        """
        name = self._name(name, "feedback")
        node = S.Delay(name=name, steps=_steps(steps, name), shape=check_shape(shape, f"feedback '{name}'"))
        return self._add(node)

    def connect(self, feedback: Any, value: Any) -> None:
        """Connect the input of a :meth:`feedback` delay."""
        ref = self._ref(feedback, "connect")
        node = self._nodes[ref.node]
        if not isinstance(node, S.Delay) or node.inputs:
            raise GraphError(f"connect: '{ref.node}' is not an unconnected feedback delay")
        src, t = self._in_type(value, f"connect '{ref.node}'")
        new = node.replace(inputs=(src,))
        new.infer((t,))
        self._nodes[ref.node] = new
        self._invalidate()


def _steps(steps: Any, name: str) -> int:
    if not is_int(steps) or steps < 1:
        raise GraphError(f"delay '{name}': steps must be a positive int, got {steps!r}")
    return int(steps)


def _padding(padding: Any, k: tuple, s: tuple, d: tuple, where: str) -> tuple[int, ...]:
    if isinstance(padding, str) and padding == "valid":
        return (0,) * len(k)
    if isinstance(padding, str) and padding == "same":
        if any(si != 1 for si in s) or any(di * (ki - 1) % 2 for ki, di in zip(k, d, strict=True)):
            raise GraphError(f"{where}: padding='same' needs stride 1 and an odd effective kernel")
        return tuple(di * (ki - 1) // 2 for ki, di in zip(k, d, strict=True))
    return _tuple(padding, len(k), f"{where} padding", low=0)
