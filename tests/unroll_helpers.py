"""Graphs shared by the unrolling tests: every neuron kind with every reset variant, and delays."""

from __future__ import annotations

import numpy as np

import snngraph as sg

NEURONS = ("leaky", "synaptic", "alpha", "lapicque", "rleaky", "rsynaptic", "integrate_fire", "leaky_integrator",
           "adaptive_leaky")


def neuron_graph(kind: str, reset: str, delayed: bool, per_neuron: bool) -> sg.Graph:
    """input -> linear -> neuron of ``kind`` (every reset variant, scalar or per-neuron parameters)."""
    rng = np.random.default_rng(7)
    n = 5

    def p(low: float, high: float):
        return rng.uniform(low, high, n).astype(np.float32) if per_neuron else np.float32((low + high) / 2)

    g = sg.Graph(f"{kind}_{reset}")
    x = g.input("x", (4,))
    h = g.linear(x, n, weight=(rng.standard_normal((n, 4)) * 0.9).astype(np.float32), name="fc")
    common = dict(threshold=p(0.5, 1.2), reset_mechanism=reset, graded_spikes_factor=p(0.5, 1.5))
    if kind not in ("alpha", "lapicque"):
        common["reset_delay"] = delayed
    rec = dict(recurrent_weight=(rng.standard_normal((n, n)) * 0.5).astype(np.float32))
    build = {
        "leaky": lambda: g.leaky(h, p(0.6, 0.95), **common, name="nrn"),
        "synaptic": lambda: g.synaptic(h, p(0.5, 0.9), p(0.6, 0.95), **common, name="nrn"),
        "alpha": lambda: g.alpha(h, 0.9, 0.6, **common, name="nrn"),
        "lapicque": lambda: g.lapicque(h, R=2.0, C=p(1.0, 3.0), time_step=0.5, **common, name="nrn"),
        "rleaky": lambda: g.rleaky(h, p(0.6, 0.95), **rec, **common, name="nrn"),
        "rsynaptic": lambda: g.rsynaptic(h, p(0.5, 0.9), p(0.6, 0.95), V=p(-1, 1), all_to_all=False, **common,
                                         name="nrn"),
        "integrate_fire": lambda: g.integrate_fire(h, **common, name="nrn"),
        "leaky_integrator": lambda: g.leaky_integrator(g.leaky(h, 0.9, **common, name="pre"), p(0.5, 0.9),
                                                       name="nrn"),
        "adaptive_leaky": lambda: g.adaptive_leaky(h, p(0.6, 0.95), rho=p(0.5, 0.9), adaptation=p(0.1, 1.0),
                                                   **common, name="nrn"),
    }
    s = build[kind]()
    g.output("out", s)
    for port in s.node.ports[1:]:
        g.output(port, getattr(s, port))
    return g


def delay_graph() -> sg.Graph:
    """Delays of several lengths, a delay of a delay, and a loop closed through a 2-step delay."""
    rng = np.random.default_rng(1)
    g = sg.Graph("delays")
    x = g.input("x", (3,))
    fb = g.feedback((3,), steps=2, name="fb")
    h = g.add(g.linear(x, 3, weight=rng.standard_normal((3, 3)).astype(np.float32), name="fc"), fb, name="sum")
    s = g.synaptic(h, 0.8, 0.9, name="syn")
    g.connect(fb, g.linear(s, 3, weight=rng.standard_normal((3, 3)).astype(np.float32), name="back"))
    late = g.delay(g.delay(s.mem, steps=1, name="d1"), steps=3, name="d3")
    g.output("spk", s)
    g.output("late", late)
    g.output("x_late", g.delay(x, steps=2, name="dx"))
    return g
