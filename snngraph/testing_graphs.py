"""Graphs for tests: :func:`random_graphs`, a hypothesis strategy of valid graphs over every node
kind, and :func:`node_kind_graphs`, one small hand-built graph per node kind and variant.

Random graphs are built through the public builder, one choice at a time from hypothesis data, so
a failing example shrinks to a short chain of simple nodes. Parameter values come from a numpy
generator seeded by a hypothesis-drawn integer (never from torch's or numpy's global RNG), so every
example reproduces from its hypothesis seed alone.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from snngraph.ir.graph import Graph, Handle
from snngraph.ir.model import get_model
from snngraph.ir.neurons import NEURON_OPS, RESETS
from snngraph.ir.surrogate import Surrogate

# Every op random_graphs can emit (besides "input"), simplest first so that shrinking prefers them.
# The order steers hypothesis's shrinker: check the shrink tests of tests/test_testing.py (slow ones
# too, `-m slow`) when inserting ops; appending new neurons at the very end has kept them from shrinking.
# "feedback" is a loop closed through a delay with g.feedback / g.connect.
OPS: tuple[str, ...] = (
    "leaky", "linear", "relu", "scale", "add", "delay", "flatten", "concat", "dropout", "batch_norm",
    "conv1d", "conv2d", "max_pool1d", "avg_pool1d", "max_pool2d", "avg_pool2d", "feedback",
    "synaptic", "alpha", "lapicque", "rleaky", "rsynaptic", "integrate_fire", "leaky_integrator", "adaptive_leaky",
    "delta_leaky", "nir_lif", "sigmoid", "tanh", "gelu", "mul", "sub", "layer_norm", "group_norm", "matmul",
    "adaptive_avg_pool1d", "adaptive_avg_pool2d", "transpose", "permute", "reshape", "slice", "dropout2d",
    "upsample", "conv_transpose2d", "slstm", "sconv2d_lstm", "state_leaky", "norse_lif", "norse_lif_box", "norse_li",
    "norse_lif_recurrent", "sj_if", "sj_lif", "sj_plif", "leaky_parallel", "associative_leaky",
)
_RANK = {"conv1d": 2, "max_pool1d": 2, "avg_pool1d": 2, "conv2d": 3, "max_pool2d": 3, "avg_pool2d": 3,
         "feedback": 1, "adaptive_avg_pool1d": 2, "adaptive_avg_pool2d": 3, "dropout2d": 3, "conv_transpose2d": 3,
         "slstm": 1, "sconv2d_lstm": 3, "associative_leaky": 1}
_MIN_RANK = {"matmul": 2, "upsample": 2}  # ops that take any per-step rank from this one up


def _fits(op: str, rank: int) -> bool:
    return _RANK.get(op, rank) == rank and rank >= _MIN_RANK.get(op, 1)


def random_graphs(max_nodes: int = 8, ops: tuple[str, ...] | None = None, surrogates: bool = False) -> Any:
    """A hypothesis strategy of valid graphs of about ``max_nodes`` nodes over ``ops`` (default :data:`OPS`).

    The graphs have one or two inputs (vectors, or (C, L) / (C, H, W) maps when conv or pooling ops
    are allowed), fan-in adds and concats, delays, feedback loops, every neuron kind with scalar or
    per-neuron parameters, learnable flags, every reset mechanism and graded spikes; outputs are
    the last value plus up to two earlier ones (state ports included). Neurons leave ``spike_grad``
    unset (the default surrogate) unless ``surrogates=True``, which also draws the built-in
    deterministic surrogates (not ``SSO``) — formats that do not carry surrogates (NIR, ONNX)
    compare gradients only with the default.
    """
    from hypothesis import strategies as st

    chosen = tuple(OPS if ops is None else ops)
    unknown = sorted(set(chosen) - set(OPS))
    if unknown or not chosen:
        raise ValueError(f"random_graphs: unknown ops {unknown}; choose from {list(OPS)}")

    @st.composite
    def graphs(draw: Any) -> Graph:
        return _Drawer(draw, chosen, surrogates).build(max_nodes)

    return graphs()


class _Drawer:
    """Builds one random graph from hypothesis draws."""

    def __init__(self, draw: Any, ops: tuple[str, ...], surrogates: bool = False):
        from hypothesis import strategies as st

        self.st = st
        self.surrogates = surrogates
        self.draw = draw
        self.ops = ops
        self.rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
        self.g = Graph("random")
        self.pool: list[Handle] = []

    # --- small draws --------------------------------------------------------------------------
    def flag(self) -> bool:
        return self.draw(self.st.booleans())

    def integer(self, low: int, high: int) -> int:
        return self.draw(self.st.integers(low, high))

    def pick(self, options: Any) -> Any:
        return self.draw(self.st.sampled_from(list(options)))

    def array(self, shape: tuple[int, ...], low: float, high: float) -> np.ndarray:
        return self.rng.uniform(low, high, size=shape).astype(np.float32)

    def weight(self, shape: tuple[int, ...], fan_in: int) -> np.ndarray:
        return (self.rng.standard_normal(shape) * 1.5 / np.sqrt(fan_in)).astype(np.float32)

    def value(self, shape: tuple[int, ...], low: float, high: float, scalars: tuple[float, ...]) -> Any:
        """A scalar from ``scalars`` or a per-neuron tensor (full shape or last dim) in [low, high]."""
        if not self.flag():
            return self.pick(scalars)
        return self.array(shape if self.flag() else shape[-1:], low, high)

    # --- the graph ------------------------------------------------------------------------------
    def build(self, max_nodes: int) -> Graph:
        rank = 1
        if any((op in _RANK and _RANK[op] > 1) or op in _MIN_RANK for op in self.ops):
            rank = self.integer(1, 3)
        shapes = {1: lambda: (self.integer(1, 6),), 2: lambda: (self.integer(1, 3), self.integer(3, 8)),
                  3: lambda: (self.integer(1, 3), self.integer(3, 6), self.integer(3, 6))}
        self.pool.append(self.g.input("x", shapes[rank]()))
        if self.flag():
            self.pool.append(self.g.input("x2", (self.integer(1, 6),)))
        limit = max_nodes + len(self.pool)
        while len(self.g.nodes) < limit:
            # each op is one hypothesis span, so the shrinker can delete it whole; a 0 ends the graph
            self.draw(self._step())
            if self.integer(0, 4) == 0:
                break
        self._outputs()
        return self.g

    def _step(self) -> Any:
        """A strategy that adds one op to the graph (its draws grouped as one example)."""
        @self.st.composite
        def step(draw: Any) -> None:
            outer, self.draw = self.draw, draw
            try:
                x = self.pool[len(self.pool) - 1 - self.integer(0, len(self.pool) - 1)]
                choices = [op for op in self.ops if _fits(op, len(x.shape))]
                spatial = [op for op in choices if _RANK.get(op, 1) > 1]
                if spatial and self.flag():  # conv stacks: maps prefer conv and pooling half the time
                    choices = spatial
                if choices:
                    self.pool.append(getattr(self, "_" + self.pick(choices))(x))
            finally:
                self.draw = outer

        return step()

    def _outputs(self) -> None:
        last = next((h for h in reversed(self.pool) if h.node.op != "input"), self.pool[-1])
        self.g.output("out", last)
        extra = self.draw(self.st.lists(self.st.integers(0, len(self.pool) - 1), max_size=2, unique=True))
        for i, k in enumerate(extra):
            if self.pool[k].ref != last.ref:
                self.g.output(f"out{i + 1}", self.pool[k])

    # --- synapses -------------------------------------------------------------------------------
    def _linear(self, x: Handle) -> Handle:
        n_in, n_out = x.shape[-1], self.integer(1, 6)
        bias = self.flag()
        return self.g.linear(x, n_out, bias=bias, weight=self.weight((n_out, n_in), n_in),
                             bias_value=self.array((n_out,), -0.5, 0.5) if bias else None)

    def _conv(self, x: Handle, method: str) -> Handle:
        c_in, spatial = x.shape[0], x.shape[1:]
        out = self.integer(1, 3) * (c_in if self.flag() else 1)
        groups = self.pick([d for d in range(1, c_in + 1) if c_in % d == 0 and out % d == 0])
        k = tuple(self.integer(1, min(3, n)) for n in spatial)
        fan_in = c_in // groups * int(np.prod(k))
        bias = self.flag()
        return getattr(self.g, method)(
            x, out, k, stride=self.integer(1, 2), padding=self.integer(0, 1), groups=groups, bias=bias,
            weight=self.weight((out, c_in // groups, *k), fan_in),
            bias_value=self.array((out,), -0.5, 0.5) if bias else None)

    def _conv1d(self, x: Handle) -> Handle:
        return self._conv(x, "conv1d")

    def _conv2d(self, x: Handle) -> Handle:
        return self._conv(x, "conv2d")

    def _pool(self, x: Handle, method: str) -> Handle:
        k = self.integer(1, min(2, *x.shape[1:]))
        return getattr(self.g, method)(x, k, stride=None if self.flag() else 1, padding=self.integer(0, k // 2))

    def _max_pool1d(self, x: Handle) -> Handle:
        return self._pool(x, "max_pool1d")

    def _avg_pool1d(self, x: Handle) -> Handle:
        return self._pool(x, "avg_pool1d")

    def _max_pool2d(self, x: Handle) -> Handle:
        return self._pool(x, "max_pool2d")

    def _avg_pool2d(self, x: Handle) -> Handle:
        return self._pool(x, "avg_pool2d")

    def _flatten(self, x: Handle) -> Handle:
        r = len(x.shape)
        start = self.integer(0, r - 1)
        end = self.integer(start, r - 1)
        return self.g.flatten(x, start_dim=start - r if self.flag() else start, end_dim=end if self.flag() else end - r)

    def _add(self, x: Handle) -> Handle:
        same = [h for h in self.pool if h.shape == x.shape]
        others = [same[self.integer(0, len(same) - 1)] for _ in range(self.integer(1, 2))]
        return self.g.add(x, *others)

    def _concat(self, x: Handle) -> Handle:
        r = len(x.shape)
        dim = self.integer(0, r - 1)

        def fits(h: Handle) -> bool:
            return len(h.shape) == r and h.shape[:dim] + h.shape[dim + 1:] == x.shape[:dim] + x.shape[dim + 1:]

        fitting = [h for h in self.pool if fits(h)]
        others = [fitting[self.integer(0, len(fitting) - 1)] for _ in range(self.integer(0, 2))]
        return self.g.concat(x, *others, dim=dim - r if self.flag() else dim)

    def _scale(self, x: Handle) -> Handle:
        return self.g.scale(x, self.value(x.shape, -2.0, 2.0, (2.0, 0.5, -1.0)), learnable=self.flag())

    def _relu(self, x: Handle) -> Handle:
        return self.g.relu(x)

    def _dropout(self, x: Handle) -> Handle:
        return self.g.dropout(x, p=self.pick((0.5, 0.0, 0.25, 1.0)))

    def _batch_norm(self, x: Handle) -> Handle:
        c = x.shape[0]
        return self.g.batch_norm(x, affine=self.flag(), weight=self.array((c,), 0.5, 1.5),
                                 bias_value=self.array((c,), -0.5, 0.5), running_mean=self.array((c,), -0.5, 0.5),
                                 running_var=self.array((c,), 0.5, 2.0), stats=self.pick(("step", "sequence")))

    def _sigmoid(self, x: Handle) -> Handle:
        return self.g.sigmoid(x)

    def _tanh(self, x: Handle) -> Handle:
        return self.g.tanh(x)

    def _gelu(self, x: Handle) -> Handle:
        return self.g.gelu(x, approximate=self.pick(("none", "tanh")))

    def _same_shape(self, x: Handle) -> Handle:
        same = [h for h in self.pool if h.shape == x.shape]
        return same[self.integer(0, len(same) - 1)]

    def _mul(self, x: Handle) -> Handle:
        return self.g.mul(x, self._same_shape(x))

    def _sub(self, x: Handle) -> Handle:
        return self.g.sub(x, self._same_shape(x))

    def _layer_norm(self, x: Handle) -> Handle:
        dims = x.shape[len(x.shape) - self.integer(1, len(x.shape)):]
        affine = self.flag()
        return self.g.layer_norm(x, dims, elementwise_affine=affine, bias=self.flag(),
                                 weight=self.array(dims, 0.5, 1.5) if affine else None)

    def _group_norm(self, x: Handle) -> Handle:
        """Groups of at least two values (torch refuses one-value groups for a batch of one); a relu when
        the value is a single number."""
        c, rest = x.shape[0], int(np.prod(x.shape[1:]))
        groups = [d for d in range(1, c + 1) if c % d == 0 and c // d * rest >= 2]
        if not groups:
            return self.g.relu(x)
        affine = self.flag()
        return self.g.group_norm(x, self.pick(groups), affine=affine,
                                 weight=self.array((c,), 0.5, 1.5) if affine else None,
                                 bias_value=self.array((c,), -0.5, 0.5) if affine else None)

    def _matmul(self, x: Handle) -> Handle:
        """``x @ y`` with ``y`` a fitting value of the pool, or ``x``'s own transpose."""
        lead, k = x.shape[:-2], x.shape[-1]
        fitting = [h for h in self.pool if len(h.shape) == len(x.shape) and h.shape[:-2] == lead and h.shape[-2] == k]
        if fitting and self.flag():
            return self.g.matmul(x, fitting[self.integer(0, len(fitting) - 1)])
        return self.g.matmul(x, self.g.transpose(x, -1, -2))

    def _adaptive(self, x: Handle, method: str) -> Handle:
        # output sizes that divide the input's, so that the ONNX export (AveragePool) takes them
        size = tuple(self.pick([d for d in range(1, n + 1) if n % d == 0]) for n in x.shape[1:])
        return getattr(self.g, method)(x, size)

    def _adaptive_avg_pool1d(self, x: Handle) -> Handle:
        return self._adaptive(x, "adaptive_avg_pool1d")

    def _adaptive_avg_pool2d(self, x: Handle) -> Handle:
        return self._adaptive(x, "adaptive_avg_pool2d")

    def _transpose(self, x: Handle) -> Handle:
        r = len(x.shape)
        return self.g.transpose(x, self.integer(-r, r - 1), self.integer(-r, r - 1))

    def _permute(self, x: Handle) -> Handle:
        return self.g.permute(x, tuple(self.draw(self.st.permutations(range(len(x.shape))))))

    def _reshape(self, x: Handle) -> Handle:
        n = int(np.prod(x.shape))
        shapes = [(n,), tuple(reversed(x.shape)), (-1, x.shape[-1])] + [(d, -1) for d in (2, 3) if n % d == 0]
        return self.g.reshape(x, self.pick(shapes))

    def _slice(self, x: Handle) -> Handle:
        dim = self.integer(-len(x.shape), len(x.shape) - 1)
        size = x.shape[dim]
        start = self.integer(0, size - 1)
        return self.g.slice(x, dim, start, self.integer(start + 1, size))

    def _dropout2d(self, x: Handle) -> Handle:
        return self.g.dropout2d(x, p=self.pick((0.5, 0.0, 0.25, 1.0)))

    def _upsample(self, x: Handle) -> Handle:
        mode = self.pick(("nearest", "bilinear")) if len(x.shape) == 3 else "nearest"
        corners = self.flag() if mode == "bilinear" else None
        spatial = x.shape[1:]
        if max(spatial) <= 8 and self.flag():
            return self.g.upsample(x, scale_factor=self.pick((2.0, 1.5, 1.0)), mode=mode, align_corners=corners)
        size = tuple(self.integer(1, min(2 * n, 12)) for n in spatial)
        return self.g.upsample(x, size=size, mode=mode, align_corners=corners)

    def _conv_transpose2d(self, x: Handle) -> Handle:
        c_in = x.shape[0]
        out = self.integer(1, 3) * (c_in if self.flag() else 1)
        groups = self.pick([d for d in range(1, c_in + 1) if c_in % d == 0 and out % d == 0])
        k = (self.integer(1, 3), self.integer(1, 3))
        stride = self.integer(1, 2) if max(x.shape[1:]) <= 8 else 1
        dilation = self.integer(1, 2)
        bias = self.flag()
        return self.g.conv_transpose2d(
            x, out, k, stride=stride, padding=tuple(self.integer(0, (ki - 1) // 2) for ki in k),
            output_padding=self.integer(0, max(stride, dilation) - 1), groups=groups, bias=bias, dilation=dilation,
            weight=self.weight((c_in, out // groups, *k), out // groups * k[0] * k[1]),
            bias_value=self.array((out,), -0.5, 0.5) if bias else None)

    def _delay(self, x: Handle) -> Handle:
        return self.g.delay(x, steps=self.integer(1, 3))

    def _feedback(self, x: Handle) -> Handle:
        """``fb = feedback; s = neuron(linear(x) + fb); fb <- s | s.mem | linear(s)``."""
        m = self.integer(1, 6)
        fb = self.g.feedback((m,), steps=self.integer(1, 2))
        h = self.g.add(self._linear_to(x, m), fb)
        neurons = [op for op in self.ops if op in NEURON_OPS and _fits(op, 1)  # (cells change the size)
                   and get_model(op).cell is None] or ["leaky"]
        s = getattr(self, "_" + self.pick(neurons))(h)
        back = self.pick(("linear", "spk", "mem"))
        if back == "mem" and "mem" in s.node.ports and s.ref.port != "mem":
            s = s.mem
        self.g.connect(fb, self._linear_to(s, m) if back == "linear" else s)
        return s

    def _linear_to(self, x: Handle, n_out: int) -> Handle:
        n_in = x.shape[-1]
        return self.g.linear(x, n_out, weight=self.weight((n_out, n_in), n_in),
                             bias_value=self.array((n_out,), -0.5, 0.5))

    # --- neurons --------------------------------------------------------------------------------
    def _common(self, x: Handle, reset_delay: bool = True, snntorch_options: bool = True) -> dict[str, Any]:
        kw = dict(threshold=self.value(x.shape, 0.25, 1.5, (1.0, 0.5)), learn_threshold=self.flag(),
                  reset_mechanism=self.pick(("subtract", *(r for r in RESETS if r != "subtract"))),
                  graded_spikes_factor=self.value(x.shape, 0.5, 2.0, (1.0, 0.5)),
                  learn_graded_spikes_factor=self.flag(), spike_grad=self._surrogate())
        if reset_delay:
            kw["reset_delay"] = not self.flag()
        return kw | (self._snntorch_options() if snntorch_options else {})

    def _snntorch_options(self) -> dict[str, Any]:
        """Sometimes snnTorch's ``inhibition`` and, sometimes, a 2- or 4-bit ``state_quant``."""
        from snngraph.functional import state_quant

        bits = self.pick((None, None, None, 2, 4))
        return dict(inhibition=self.pick((False, False, False, True)),
                    state_quant=None if bits is None else state_quant(num_bits=bits))

    def _surrogate(self) -> Any:
        """None (the default, filled in by ``insert_surrogates``) or a built-in surrogate; not the
        stochastic ``SSO``, whose gradients are random."""
        from snngraph import surrogate

        if not self.surrogates:
            return None
        name = self.pick((None, "fast_sigmoid", "atan", "sigmoid", "triangular", "heaviside",
                          "straight_through_estimator", "spike_rate_escape", "SFS", "LSO"))
        return None if name is None else getattr(surrogate, name)()

    def _decay(self, x: Handle) -> Any:
        return self.value(x.shape, 0.0, 1.0, (0.9, 0.5, 0.0, 1.0))

    def _with_state(self, h: Handle) -> Handle:
        """The spikes, or (sometimes) one of the neuron's state ports."""
        if self.flag():
            return h
        return getattr(h, self.pick(h.node.ports[1:]))

    def _leaky(self, x: Handle) -> Handle:
        return self._with_state(self.g.leaky(x, self._decay(x), learn_beta=self.flag(), **self._common(x)))

    def _synaptic(self, x: Handle) -> Handle:
        return self._with_state(self.g.synaptic(x, self._decay(x), self._decay(x), learn_alpha=self.flag(),
                                                learn_beta=self.flag(), **self._common(x)))

    def _alpha(self, x: Handle) -> Handle:
        alpha = self.value(x.shape, 0.6, 0.95, (0.9, 0.8))
        beta = np.float32(self.pick((0.5, 0.8, 0.0))) * np.asarray(alpha, np.float32)
        return self._with_state(self.g.alpha(x, alpha, beta, learn_alpha=self.flag(), learn_beta=self.flag(),
                                             **self._common(x, reset_delay=False)))

    def _lapicque(self, x: Handle) -> Handle:
        if self.flag():
            kw = dict(beta=self.value(x.shape, 0.3, 0.95, (0.9, 0.5)))
        else:
            kw = dict(R=self.pick((1.0, 2.0)), C=self.value(x.shape, 0.5, 4.0, (2.0, 5.0)))
        return self._with_state(self.g.lapicque(x, time_step=self.pick((1.0, 0.5)), **kw,
                                                **self._common(x, reset_delay=False)))

    def _recurrent(self, x: Handle) -> dict[str, Any]:
        n = x.shape[-1]
        if len(x.shape) == 1 and self.flag():
            return dict(all_to_all=True, recurrent_weight=self.weight((n, n), n),
                        recurrent_bias=self.array((n,), -0.5, 0.5), learn_recurrent=self.flag())
        return dict(all_to_all=False, V=self.value(x.shape, -1.0, 1.0, (1.0, 0.5)), learn_recurrent=self.flag())

    def _rleaky(self, x: Handle) -> Handle:
        return self._with_state(self.g.rleaky(x, self._decay(x), learn_beta=self.flag(), **self._recurrent(x),
                                              **self._common(x)))

    def _rsynaptic(self, x: Handle) -> Handle:
        return self._with_state(self.g.rsynaptic(x, self._decay(x), self._decay(x), learn_alpha=self.flag(),
                                                 learn_beta=self.flag(), **self._recurrent(x), **self._common(x)))

    def _integrate_fire(self, x: Handle) -> Handle:
        return self._with_state(self.g.integrate_fire(x, **self._common(x)))

    def _leaky_integrator(self, x: Handle) -> Handle:
        return self.g.leaky_integrator(x, self._decay(x), learn_beta=self.flag())

    def _delta_leaky(self, x: Handle) -> Handle:
        return self._with_state(self.g.delta_leaky(x, self._decay(x), self.value(x.shape, 0.1, 1.0, (0.5, 1.0)),
                                                   learn_beta=self.flag(), learn_delta_threshold=self.flag()))

    def _nir_lif(self, x: Handle) -> Handle:
        common = self._common(x, reset_delay=False, snntorch_options=False)
        return self._with_state(self.g.nir_lif(x, self._decay(x), learn_beta=self.flag(), **common))

    def _state_leaky(self, x: Handle) -> Handle:
        return self._with_state(self.g.state_leaky(
            x, self.value(x.shape, 0.5, 10.0, (2.0, 5.0)), threshold=self.value(x.shape, 0.25, 1.5, (1.0, 0.5)),
            graded_spikes_factor=self.value(x.shape, 0.5, 2.0, (1.0, 0.5)), learn_tau=self.flag(),
            learn_threshold=self.flag(), spike_grad=self._surrogate()))

    def _leaky_parallel(self, x: Handle) -> Handle:
        rec = self._recurrent(x)
        rec.pop("recurrent_bias", None)  # torch's RNN keeps its hidden bias as bias_hh
        return self._with_state(self.g.leaky_parallel(
            x, threshold=self.value(x.shape, 0.25, 1.5, (1.0, 0.5)), bias_hh=self.value(x.shape, -0.5, 0.5, (0.0,)),
            learn_bias_hh=self.flag(), spike_grad=self._surrogate(), recurrent_bias=False, **rec))

    def _norse(self, x: Handle, synaptic: bool = True, firing: bool = True) -> dict[str, Any]:
        """Norse's parameters (forward Euler: ``dt * tau_inv <= 1``)."""
        kw = dict(tau_mem_inv=self.value(x.shape, 50.0, 500.0, (100.0, 250.0)), learn_tau_mem_inv=self.flag(),
                  v_leak=self.value(x.shape, -0.2, 0.2, (0.0, 0.1)), learn_v_leak=self.flag(),
                  dt=self.pick((0.001, 0.002)))
        if synaptic:
            kw |= dict(tau_syn_inv=self.value(x.shape, 100.0, 500.0, (200.0, 400.0)), learn_tau_syn_inv=self.flag())
        if firing:
            kw |= dict(v_th=self.value(x.shape, 0.25, 1.5, (1.0, 0.5)), learn_v_th=self.flag(),
                       v_reset=self.value(x.shape, -0.2, 0.2, (0.0, -0.1)), spike_grad=self._surrogate())
        return kw

    def _norse_lif(self, x: Handle) -> Handle:
        return self._with_state(self.g.norse_lif(x, **self._norse(x)))

    def _norse_lif_box(self, x: Handle) -> Handle:
        return self._with_state(self.g.norse_lif_box(x, reset_method=self.pick(("value", "subtract")),
                                                     **self._norse(x, synaptic=False)))

    def _norse_li(self, x: Handle) -> Handle:
        return self.g.norse_li(x, **self._norse(x, firing=False))

    def _norse_lif_recurrent(self, x: Handle) -> Handle:
        return self._with_state(self.g.norse_lif_recurrent(x, **self._recurrent(x), **self._norse(x)))

    def _sj(self, x: Handle) -> dict[str, Any]:
        """SpikingJelly's firing and reset (its threshold and reset value are not learnable)."""
        return dict(v_threshold=self.value(x.shape, 0.25, 1.5, (1.0, 0.5)), v_reset=self.pick((0.0, -0.1)),
                    reset=self.pick(("hard", "soft")), detach_reset=self.flag(), spike_grad=self._surrogate())

    def _sj_if(self, x: Handle) -> Handle:
        return self._with_state(self.g.sj_if(x, **self._sj(x)))

    def _sj_lif(self, x: Handle) -> Handle:
        return self._with_state(self.g.sj_lif(x, tau=self.value(x.shape, 1.0, 10.0, (2.0, 4.0)),
                                              decay_input=self.flag(), **self._sj(x)))

    def _sj_plif(self, x: Handle) -> Handle:
        return self._with_state(self.g.sj_plif(x, w=self.pick((0.0, 0.5, -0.5)), learn_w=self.flag(),
                                               decay_input=self.flag(), **self._sj(x)))

    def _cell(self) -> dict[str, Any]:
        """A cell model's firing (scalar: its state has the hidden size, not the input's)."""
        return dict(threshold=self.pick((0.25, 0.5)), learn_threshold=self.flag(), spike_grad=self._surrogate(),
                    reset_mechanism=self.pick(("none", "subtract", "zero")))

    def _slstm(self, x: Handle) -> Handle:
        n, h = x.shape[-1], self.pick((2, 3))
        return self._with_state(self.g.slstm(
            x, hidden_size=h, weight_ih=self.weight((4 * h, n), n), weight_hh=self.weight((4 * h, h), h),
            bias_ih=self.array((4 * h,), -0.5, 0.5), bias_hh=self.array((4 * h,), -0.5, 0.5), **self._cell()))

    def _sconv2d_lstm(self, x: Handle) -> Handle:
        c, h, k = x.shape[0], self.pick((1, 2)), self.pick((1, 3))
        fan_in = (c + h) * k * k
        pool = self.pick(("none", "max", "avg"))  # (spikes of the pooled membrane)
        size = None if pool == "none" else self.pick([s for s in (1, 2) if s <= min(x.shape[1:])])
        return self._with_state(self.g.sconv2d_lstm(
            x, out_channels=h, kernel_size=k, conv_weight=self.weight((4 * h, c + h, k, k), fan_in),
            conv_bias=self.array((4 * h,), -0.5, 0.5), pool=pool, pool_size=size, **self._cell()))

    def _associative_leaky(self, x: Handle) -> Handle:
        """Its projections (``to_q`` when ``use_q_projection``) and scalar firing; the readout or ``S``."""
        n_in, d, n, q = x.shape[-1], self.pick((1, 2)), self.pick((2, 3)), self.flag()
        sizes = {"to_v": d, "to_k": n, "to_alpha": n, **({"to_q": d * n} if q else {})}
        weights = {f"{h}_weight": self.weight((m, n_in), n_in) for h, m in sizes.items()}
        weights.update({f"{h}_bias": self.array((m,), -0.5, 0.5) for h, m in sizes.items()})
        return self._with_state(self.g.associative_leaky(
            x, threshold=self.pick((0.25, 0.5)), learn_threshold=self.flag(), spike_grad=self._surrogate(),
            use_q_projection=q, **weights))

    def _adaptive_leaky(self, x: Handle) -> Handle:
        return self._with_state(self.g.adaptive_leaky(
            x, self._decay(x), rho=self._decay(x), adaptation=self.value(x.shape, 0.0, 2.0, (1.0, 0.2)),
            learn_beta=self.flag(), learn_rho=self.flag(), learn_adaptation=self.flag(),
            **self._common(x, snntorch_options=False)))


def node_kind_graphs(seed: int = 0) -> dict[str, Graph]:
    """One small, valid graph per node kind and variant (``"rleaky_one_to_one"``, ``"leaky_tensor"``,
    ...), each ending in a spiking neuron, with seeded explicit parameters. Together they hold
    every op of ``NODE_KINDS``."""
    rng = np.random.default_rng(seed)

    def w(*shape: int) -> np.ndarray:
        return (rng.standard_normal(shape) * 1.5 / np.sqrt(np.prod(shape[1:]))).astype(np.float32)

    def u(low: float, high: float, *shape: int) -> np.ndarray:
        return rng.uniform(low, high, size=shape).astype(np.float32)

    out = {}
    for key, body in _KIND_BODIES.items():
        g = Graph(key)
        rank = _KIND_RANK.get(key, 1)
        x = g.input("x", {1: (4,), 2: (2, 8), 3: (2, 6, 6)}[rank])
        h = body(g, x, w, u)
        if h.node.family != "neuron":
            h = g.leaky(h, 0.9, name="lif")
        g.output("spk", h)
        if "mem" in h.node.ports:
            g.output("mem", h.mem)
        out[key] = g
    return out


def _feedback(g: Graph, x: Handle, w: Any, u: Any) -> Handle:
    fb = g.feedback((3,), name="fb")
    s = g.leaky(g.add(g.linear(x, 3, weight=w(3, 4), name="fc"), fb, name="sum"), 0.8, name="lif")
    g.connect(fb, g.linear(s, 3, weight=w(3, 3), name="back"))
    return s


_KIND_RANK = {"conv1d": 2, "max_pool1d": 2, "avg_pool1d": 2, "conv2d": 3, "max_pool2d": 3, "avg_pool2d": 3,
              "flatten": 3, "batch_norm_2d": 3, "batch_norm_sequence": 3, "group_norm": 3, "layer_norm_2d": 3,
              "matmul": 2, "adaptive_avg_pool1d": 2, "adaptive_avg_pool2d": 3, "conv_transpose2d": 3,
              "upsample": 2, "upsample_bilinear": 3, "dropout2d": 3, "transpose": 3, "permute": 3, "reshape": 3,
              "sconv2d_lstm": 3, "sconv2d_lstm_max_pool": 3, "slice": 3}
_ASSOCIATIVE = {"to_v": 2, "to_k": 3, "to_alpha": 3, "to_q": 6}
_KIND_BODIES: dict[str, Any] = {
    "input": lambda g, x, w, u: x,
    "linear": lambda g, x, w, u: g.linear(x, 3, weight=w(3, 4), bias_value=u(-0.5, 0.5, 3), name="fc"),
    "linear_no_bias": lambda g, x, w, u: g.linear(x, 3, bias=False, weight=w(3, 4), name="fc"),
    "conv1d": lambda g, x, w, u: g.conv1d(x, 4, 3, padding=1, weight=w(4, 2, 3), name="conv"),
    "conv2d": lambda g, x, w, u: g.conv2d(x, 2, 3, stride=2, groups=2, bias=False, weight=w(2, 1, 3, 3), name="conv"),
    "max_pool1d": lambda g, x, w, u: g.max_pool1d(x, 2, name="pool"),
    "avg_pool1d": lambda g, x, w, u: g.avg_pool1d(x, 3, stride=1, padding=1, name="pool"),
    "max_pool2d": lambda g, x, w, u: g.max_pool2d(x, 2, name="pool"),
    "avg_pool2d": lambda g, x, w, u: g.avg_pool2d(x, (2, 3), stride=1, name="pool"),
    "flatten": lambda g, x, w, u: g.flatten(x, name="flat"),
    "add": lambda g, x, w, u: g.add(x, g.scale(x, 0.5, name="halved"), x, name="sum"),
    "concat": lambda g, x, w, u: g.concat(x, g.relu(x, name="r"), dim=-1, name="cat"),
    "scale": lambda g, x, w, u: g.scale(x, u(-2, 2, 4), learnable=True, name="gain"),
    "relu": lambda g, x, w, u: g.relu(g.scale(x, u(-2, 2, 4), name="mixed"), name="r"),
    "dropout": lambda g, x, w, u: g.dropout(x, 0.25, name="drop"),
    "batch_norm": lambda g, x, w, u: g.batch_norm(x, running_mean=u(-1, 1, 4), running_var=u(0.5, 2, 4), name="bn"),
    "batch_norm_2d": lambda g, x, w, u: g.batch_norm(x, affine=False, name="bn"),
    "sigmoid": lambda g, x, w, u: g.sigmoid(g.scale(x, u(-2, 2, 4), name="mixed"), name="act"),
    "tanh": lambda g, x, w, u: g.tanh(g.scale(x, u(-2, 2, 4), name="mixed"), name="act"),
    "gelu": lambda g, x, w, u: g.gelu(g.scale(x, u(-2, 2, 4), name="mixed"), name="act"),
    "gelu_tanh": lambda g, x, w, u: g.gelu(x, approximate="tanh", name="act"),
    "layer_norm": lambda g, x, w, u: g.layer_norm(x, 4, weight=u(0.5, 1.5, 4), bias_value=u(-0.5, 0.5, 4),
                                                  name="ln"),
    "layer_norm_2d": lambda g, x, w, u: g.layer_norm(x, (6, 6), elementwise_affine=False, name="ln"),
    "group_norm": lambda g, x, w, u: g.group_norm(x, 2, weight=u(0.5, 1.5, 2), bias_value=u(-0.5, 0.5, 2),
                                                  name="gn"),
    "mul": lambda g, x, w, u: g.mul(x, g.scale(x, u(-2, 2, 4), name="gate"), name="prod"),
    "sub": lambda g, x, w, u: g.sub(g.scale(x, 2.0, name="twice"), g.relu(x, name="r"), name="diff"),
    "matmul": lambda g, x, w, u: g.matmul(x, g.conv1d(x, 8, 1, bias=False, weight=w(8, 2, 1), name="proj"),
                                          name="mm"),
    "adaptive_avg_pool1d": lambda g, x, w, u: g.adaptive_avg_pool1d(x, 4, name="pool"),
    "adaptive_avg_pool2d": lambda g, x, w, u: g.adaptive_avg_pool2d(x, (3, 1), name="pool"),
    "conv_transpose2d": lambda g, x, w, u: g.conv_transpose2d(x, 2, 3, stride=2, padding=1, output_padding=1,
                                                              weight=w(2, 2, 3, 3), bias_value=u(-0.5, 0.5, 2),
                                                              name="deconv"),
    "upsample": lambda g, x, w, u: g.upsample(x, scale_factor=2, name="up"),
    "upsample_bilinear": lambda g, x, w, u: g.upsample(x, size=(9, 4), mode="bilinear", align_corners=True,
                                                       name="up"),
    "dropout2d": lambda g, x, w, u: g.dropout2d(x, 0.25, name="drop"),
    "transpose": lambda g, x, w, u: g.transpose(x, 0, -1, name="tr"),
    "permute": lambda g, x, w, u: g.permute(x, (1, 2, 0), name="perm"),
    "reshape": lambda g, x, w, u: g.reshape(x, (6, -1), name="rs"),
    "slice": lambda g, x, w, u: g.slice(x, -1, 1, 5, name="sl"),
    "delay": lambda g, x, w, u: g.delay(x, steps=2, name="d"),
    "feedback": _feedback,
    "leaky": lambda g, x, w, u: g.leaky(x, 0.9, name="lif"),
    "leaky_tensor": lambda g, x, w, u: g.leaky(x, u(0.5, 1, 4), threshold=u(0.5, 1.5, 4), learn_beta=True,
                                               learn_threshold=True, reset_mechanism="zero", name="lif"),
    "leaky_graded": lambda g, x, w, u: g.leaky(x, 0.8, graded_spikes_factor=2.5, learn_graded_spikes_factor=True,
                                               reset_mechanism="none", reset_delay=False, name="lif"),
    "synaptic": lambda g, x, w, u: g.synaptic(x, 0.8, 0.9, learn_alpha=True, name="lif"),
    "alpha": lambda g, x, w, u: g.alpha(x, 0.9, 0.8, name="lif"),
    "lapicque": lambda g, x, w, u: g.lapicque(x, R=2.0, C=u(1, 4, 4), time_step=0.5, name="lif"),
    "rleaky": lambda g, x, w, u: g.rleaky(x, 0.9, recurrent_weight=w(4, 4), recurrent_bias=u(-0.5, 0.5, 4),
                                          name="lif"),
    "rleaky_one_to_one": lambda g, x, w, u: g.rleaky(x, 0.9, V=u(-1, 1, 4), all_to_all=False, name="lif"),
    "rsynaptic": lambda g, x, w, u: g.rsynaptic(x, 0.8, 0.9, recurrent_weight=w(4, 4), learn_recurrent=False,
                                                name="lif"),
    "rsynaptic_one_to_one": lambda g, x, w, u: g.rsynaptic(x, 0.8, 0.9, V=0.5, all_to_all=False, name="lif"),
    "integrate_fire": lambda g, x, w, u: g.integrate_fire(x, threshold=2.0, name="lif"),
    "leaky_integrator": lambda g, x, w, u: g.leaky_integrator(g.leaky(x, 0.9, name="pre"), 0.7, name="li"),
    "adaptive_leaky": lambda g, x, w, u: g.adaptive_leaky(x, 0.9, rho=0.8, adaptation=0.5, learn_rho=True, name="lif"),
    "delta_leaky": lambda g, x, w, u: g.delta_leaky(x, 0.9, delta_threshold=u(0.1, 0.5, 4), learn_beta=True,
                                                    name="lif"),
    "nir_lif": lambda g, x, w, u: g.nir_lif(x, u(0.5, 0.95, 4), threshold=0.5, learn_beta=True, name="lif"),
    "state_leaky": lambda g, x, w, u: g.state_leaky(x, tau=u(2, 10, 4), threshold=0.5, learn_tau=True, name="lif"),
    "leaky_parallel": lambda g, x, w, u: g.leaky_parallel(x, recurrent_weight=w(4, 4), recurrent_bias=False,
                                                          bias_hh=u(-0.5, 0.5, 4), learn_bias_hh=True, name="lif"),
    "leaky_parallel_one_to_one": lambda g, x, w, u: g.leaky_parallel(x, V=u(0, 1, 4), all_to_all=False, name="lif"),
    "norse_lif": lambda g, x, w, u: g.norse_lif(x, tau_mem_inv=u(50, 150, 4), v_th=0.5, learn_tau_mem_inv=True,
                                                dt=0.002, name="lif"),
    "norse_lif_box": lambda g, x, w, u: g.norse_lif_box(x, v_leak=0.1, reset_method="subtract", name="lif"),
    "norse_li": lambda g, x, w, u: g.norse_li(x, tau_syn_inv=u(100, 300, 4), name="li"),
    "norse_lif_recurrent": lambda g, x, w, u: g.norse_lif_recurrent(x, recurrent_weight=w(4, 4), recurrent_bias=False,
                                                                    name="lif"),
    "slstm": lambda g, x, w, u: g.slstm(x, hidden_size=3, threshold=0.2, reset_mechanism="subtract",
                                        weight_ih=w(12, 4), weight_hh=w(12, 3), bias_ih=u(-0.5, 0.5, 12),
                                        bias_hh=u(-0.5, 0.5, 12), learn_threshold=True, name="lif"),
    "sconv2d_lstm": lambda g, x, w, u: g.sconv2d_lstm(x, out_channels=2, kernel_size=3, threshold=0.2,
                                                      conv_weight=w(8, 4, 3, 3), conv_bias=u(-0.5, 0.5, 8),
                                                      reset_mechanism="zero", name="lif"),
    "associative_leaky": lambda g, x, w, u: g.associative_leaky(
        x, threshold=0.3, learn_threshold=True, name="lif",
        **{f"{h}_{p}": w(m, 4) if p == "weight" else u(-0.5, 0.5, m) for h, m in _ASSOCIATIVE.items()
           for p in ("weight", "bias")}),
    "associative_leaky_no_q": lambda g, x, w, u: g.associative_leaky(
        x, use_q_projection=False, bias=False, name="lif",
        **{f"{h}_weight": w(m, 4) for h, m in _ASSOCIATIVE.items() if h != "to_q"}),
    "sj_if": lambda g, x, w, u: g.sj_if(x, v_threshold=u(0.5, 1.5, 4), v_reset=-0.1, name="lif"),
    "sj_lif": lambda g, x, w, u: g.sj_lif(x, tau=3.0, reset="soft", decay_input=False, detach_reset=True,
                                          spike_grad=Surrogate("sigmoid", (("slope", 4.0),)), name="lif"),
    "sj_plif": lambda g, x, w, u: g.sj_plif(x, w=0.5, learn_w=True, spike_grad=Surrogate("erf", (("alpha", 2.0),)),
                                            name="lif"),
    "sconv2d_lstm_max_pool": lambda g, x, w, u: g.sconv2d_lstm(x, out_channels=2, kernel_size=3, threshold=0.1,
                                                               conv_weight=w(8, 4, 3, 3), conv_bias=u(-0.5, 0.5, 8),
                                                               pool="max", pool_size=2, name="lif"),
    # (appended: the kinds above draw their values from one generator in this order)
    "batch_norm_sequence": lambda g, x, w, u: g.batch_norm(x, running_mean=u(-1, 1, 2), running_var=u(0.5, 2, 2),
                                                           stats="sequence", name="bn"),
}
