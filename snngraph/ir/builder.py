"""Builder methods of :class:`~snngraph.ir.graph.Graph` for inputs, outputs and synapses.

Each method checks its arguments and the types of its inputs at the call, raises
``GraphError`` naming the node on a mistake, and leaves the graph unchanged when it does.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from snngraph.ir import synapses as S
from snngraph.ir.builder_neurons import NeuronBuilder
from snngraph.ir.errors import GraphError
from snngraph.ir.init import as_array, kaiming_weight, uniform_fan_in
from snngraph.ir.types import DTYPES, Param, Ref, check_name, check_shape

if TYPE_CHECKING:
    from snngraph.ir.graph import Handle
    from snngraph.ir.node import Node


def _tuple(value: Any, n: int, what: str) -> tuple[int, ...]:
    if isinstance(value, int) and not isinstance(value, bool):
        return (value,) * n
    if isinstance(value, (tuple, list)) and len(value) == n and all(isinstance(v, int) for v in value):
        return tuple(value)
    raise GraphError(f"{what} must be an int or {n} ints, got {value!r}")


class GraphBuilder(NeuronBuilder):
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
                raise GraphError(f"{where}: value {value.name!r} belongs to graph '{value.graph.name}', not "
                                 f"'{self.name}'")
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
        if dtype not in DTYPES:
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
        ref, t = self._in_type(x, f"linear '{name}'")
        if not isinstance(out_features, int) or out_features < 1:
            raise GraphError(f"linear '{name}': out_features must be a positive int, got {out_features!r}")
        n_in = t.shape[-1]
        shape = (out_features, n_in)
        w = kaiming_weight(shape, f"linear '{name}' weight") if weight is None else \
            as_array(weight, f"linear '{name}' weight", shape)
        b = None
        if bias or bias_value is not None:
            b = uniform_fan_in((out_features,), n_in, f"linear '{name}' bias") if bias_value is None else \
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
        k, s, d = (_tuple(v, n, f"{where} {key}") for v, key in
                   ((kernel_size, "kernel_size"), (stride, "stride"), (dilation, "dilation")))
        p = _padding(padding, k, s, d, where)
        c_in = t.shape[0]
        if not isinstance(groups, int) or groups < 1 or c_in % groups or out_channels % groups:
            raise GraphError(f"{where}: groups={groups!r} must divide in_channels={c_in} and out_channels")
        shape = (out_channels, c_in // groups, *k)
        w = kaiming_weight(shape, f"{where} weight") if weight is None else as_array(weight, f"{where} weight", shape)
        fan_in = (c_in // groups) * math.prod(k)
        b = None
        if bias or bias_value is not None:
            b = uniform_fan_in((out_channels,), fan_in, f"{where} bias") if bias_value is None else \
                as_array(bias_value, f"{where} bias", (out_channels,))
        return self._add(cls(name=name, inputs=(ref,), in_channels=c_in, out_channels=out_channels, kernel_size=k,
                             stride=s, padding=p, dilation=d, groups=groups, weight=Param(w, True),
                             bias=None if b is None else Param(b, True)))

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
        p = _tuple(padding, cls.dims, f"{where} padding")
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
        ref, _ = self._in_type(x, f"flatten '{name}'")
        return self._add(S.Flatten(name=name, inputs=(ref,), start_dim=start_dim, end_dim=end_dim))

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
        return self._add(S.Concat(name=name, inputs=refs, dim=dim))

    def scale(self, x: Any, factor: Any, learnable: bool = False, name: str | None = None) -> Handle:
        """Multiply by ``factor`` (a number or an array broadcasting to the per-step shape)."""
        name = self._name(name, "scale")
        ref, _ = self._in_type(x, f"scale '{name}'")
        f = as_array(factor, f"scale '{name}' factor")
        return self._add(S.Scale(name=name, inputs=(ref,), factor=Param(f, learnable)))

    def relu(self, x: Any, name: str | None = None) -> Handle:
        """``max(x, 0)``."""
        name = self._name(name, "relu")
        ref, _ = self._in_type(x, f"relu '{name}'")
        return self._add(S.ReLU(name=name, inputs=(ref,)))

    def dropout(self, x: Any, p: float = 0.5, name: str | None = None) -> Handle:
        """Dropout with probability ``p`` (active in ``train()`` mode only)."""
        name = self._name(name, "dropout")
        ref, _ = self._in_type(x, f"dropout '{name}'")
        if not isinstance(p, (int, float)) or not 0.0 <= p <= 1.0:
            raise GraphError(f"dropout '{name}': p must lie in [0, 1], got {p!r}")
        return self._add(S.Dropout(name=name, inputs=(ref,), p=float(p)))

    def batch_norm(self, x: Any, eps: float = 1e-5, momentum: float = 0.1, affine: bool = True,
                   weight: Any = None, bias_value: Any = None, running_mean: Any = None, running_var: Any = None,
                   name: str | None = None) -> Handle:
        """``torch.nn.BatchNorm1d/2d`` over channel dim 0 (running statistics in ``eval()``)."""
        import numpy as np

        name = self._name(name, "batch_norm")
        ref, t = self._in_type(x, f"batch_norm '{name}'")
        c = t.shape[0]
        where = f"batch_norm '{name}'"

        def vec(v, default):
            return as_array(default if v is None else v, where, (c,))

        return self._add(S.BatchNorm(
            name=name, inputs=(ref,), num_features=c, eps=float(eps), momentum=float(momentum),
            weight=Param(vec(weight, np.ones(c, np.float32)), True) if affine else None,
            bias=Param(vec(bias_value, np.zeros(c, np.float32)), True) if affine else None,
            running_mean=Param(vec(running_mean, np.zeros(c, np.float32))),
            running_var=Param(vec(running_var, np.ones(c, np.float32)))))

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
    if not isinstance(steps, int) or isinstance(steps, bool) or steps < 1:
        raise GraphError(f"delay '{name}': steps must be a positive int, got {steps!r}")
    return steps


def _padding(padding: Any, k: tuple, s: tuple, d: tuple, where: str) -> tuple[int, ...]:
    if padding == "valid":
        return (0,) * len(k)
    if padding == "same":
        if any(si != 1 for si in s) or any(di * (ki - 1) % 2 for ki, di in zip(k, d, strict=True)):
            raise GraphError(f"{where}: padding='same' needs stride 1 and an odd effective kernel")
        return tuple(di * (ki - 1) // 2 for ki, di in zip(k, d, strict=True))
    p = _tuple(padding, len(k), f"{where} padding")
    if min(p) < 0:
        raise GraphError(f"{where}: padding must be non-negative, got {padding!r}")
    return p
