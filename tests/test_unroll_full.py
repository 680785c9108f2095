"""``unroll_time(g, steps=T)``: the fully unrolled graph, run for one step with the torch runtime,
computes what the original graph computes over T steps (outputs, input and parameter gradients)."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from unroll_helpers import NEURONS, delay_graph, neuron_graph

import snngraph as sg
from snngraph.ir.verify import verify
from snngraph.passes import unroll_time
from snngraph.passes.unroll_full import split_step_name
from snngraph.runtimes.torch.unrolled import run_unrolled

KIND_GRAPHS = sg.testing.node_kind_graphs()


def sequences(g: sg.Graph, steps: int, batch: int, dtype: torch.dtype, seed: int = 0) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return {n: (torch.rand((steps, batch, *node.shape), generator=gen, dtype=torch.float64) * 3 - 1).to(dtype)
            for n, node in g.inputs.items()}


def run_both(g: sg.Graph, steps: int, dtype: torch.dtype, seed: int = 0):
    """(original outputs, unrolled outputs, original input grads, unrolled input grads, both nets)."""
    net, unrolled = sg.compile(g).to(dtype).eval(), sg.compile(unroll_time(g, steps=steps)).to(dtype).eval()
    xs = sequences(g, steps, 3, dtype, seed)
    results = []
    for run in (lambda x: net(**x), lambda x: run_unrolled(unrolled, x)):
        x = {k: v.clone().requires_grad_(True) for k, v in xs.items()}
        out = run(x)
        gen = torch.Generator().manual_seed(seed + 1)
        loss = sum((v * torch.randn(v.shape, generator=gen, dtype=torch.float64).to(dtype)).sum()
                   for _, v in sorted(out.items()))
        grads = (torch.autograd.grad(loss, list(x.values()), allow_unused=True) if loss.requires_grad
                 else [None] * len(x))
        # no path from an input (e.g. an output delayed beyond the run) is a zero gradient
        grads = [torch.zeros_like(v) if d is None else d for v, d in zip(x.values(), grads, strict=True)]
        results.append(({k: v.detach() for k, v in out.items()}, dict(zip(x, grads, strict=True))))
    (out_a, grad_a), (out_b, grad_b) = results
    return out_a, out_b, grad_a, grad_b, net, unrolled


def assert_same(g: sg.Graph, steps: int, dtype: torch.dtype, atol: float, seed: int = 0) -> None:
    """Outputs within ``atol`` (spikes exactly); input gradients within ``atol`` in float64 (in float32 the
    fused scans' hand-written backward rounds differently from autograd through the step kernels: 1e-4)."""
    grad_atol = atol if dtype == torch.float64 else 1e-4
    out_a, out_b, grad_a, grad_b, _, _ = run_both(g, steps, dtype, seed)
    assert list(out_a) == list(out_b)
    for key, want in out_a.items():
        if g.type_of(g.outputs[key]).spike:
            assert torch.equal(out_b[key], want), key
        torch.testing.assert_close(out_b[key], want, atol=atol, rtol=0, msg=key)
    assert set(grad_a) == set(grad_b)
    for key, want in grad_a.items():
        torch.testing.assert_close(grad_b[key], want, atol=grad_atol, rtol=0, msg=f"grad {key}")


@pytest.mark.parametrize("kind", sorted(KIND_GRAPHS))
def test_every_node_kind_float32_outputs(kind):
    assert_same(KIND_GRAPHS[kind], 6, torch.float32, atol=1e-6)


@pytest.mark.parametrize("kind", sorted(KIND_GRAPHS))
def test_every_node_kind_float64_input_gradients(kind):
    assert_same(KIND_GRAPHS[kind], 5, torch.float64, atol=1e-9, seed=3)


@pytest.mark.parametrize("kind", NEURONS)
@pytest.mark.parametrize("reset,delayed", [("subtract", True), ("subtract", False), ("zero", True),
                                           ("zero", False), ("none", True)])
@pytest.mark.parametrize("per_neuron", [False, True])
def test_neuron_reset_variants(kind, reset, delayed, per_neuron):
    g = neuron_graph(kind, reset, delayed, per_neuron)
    assert_same(g, 7, torch.float32, atol=1e-6)
    assert_same(g, 4, torch.float64, atol=1e-9, seed=1)


def test_parameter_gradients_sum_over_the_copies():
    """Each copy holds the same parameter values; the copies' gradients add up to the original's."""
    g = neuron_graph("rleaky", "subtract", True, True)
    steps = 5
    net, unrolled = sg.compile(g).double(), sg.compile(unroll_time(g, steps=steps)).double()
    for p in (*net.parameters(), *unrolled.parameters()):
        p.requires_grad_(True)
    xs = sequences(g, steps, 2, torch.float64, seed=5)
    net(**xs)["mem"].square().sum().backward()
    run_unrolled(unrolled, xs)["mem"].square().sum().backward()
    summed: dict[str, torch.Tensor] = {}
    for key, p in unrolled.named_parameters():
        node, _, param = key.partition(".")
        base = f"{split_step_name(node)[0]}.{param}"
        summed[base] = summed.get(base, 0) + (p.grad if p.grad is not None else 0)
    grads = {k: p.grad for k, p in net.named_parameters()}
    assert set(grads) == set(summed)
    for key, want in grads.items():
        torch.testing.assert_close(summed[key], want, atol=1e-9, rtol=0, msg=key)


@pytest.mark.parametrize("steps", [1, 2, 3, 6])
def test_delays_and_feedback_loops(steps):
    g = delay_graph()
    assert_same(g, steps, torch.float32, atol=1e-6)
    assert_same(g, steps, torch.float64, atol=1e-9, seed=2)


def test_unrolled_graph_is_valid_and_stateless():
    u = unroll_time(delay_graph(), steps=4)
    verify(u)
    net = sg.compile(u)
    # what state is left is the zero delays of the first steps (no history) and step 0's fresh neurons
    assert {k for k in net.init_state(1) if k.endswith(".buffer")} == {"fb_t0.buffer", "fb_t1.buffer",
                                                                     "d1_t0.buffer", "d3_t0.buffer",
                                                                     "d3_t1.buffer", "d3_t2.buffer",
                                                                     "dx_t0.buffer", "dx_t1.buffer"}
    assert all(n.startswith("syn_t0.") for n in net.init_state(1) if not n.endswith(".buffer"))
    assert [n.state_inputs for n in (u.nodes["syn_t0"], u.nodes["syn_t3"])] == [False, True]
    assert list(u.inputs) == ["x_t0", "x_t1", "x_t2", "x_t3"]
    assert list(u.outputs)[:4] == ["spk_t0", "spk_t1", "spk_t2", "spk_t3"]


@settings(max_examples=40, deadline=None)
@given(sg.testing.random_graphs(max_nodes=6))
def test_random_graphs(g):
    assert_same(g, 4, torch.float64, atol=1e-9)


def test_run_unrolled_checks_its_inputs():
    g = KIND_GRAPHS["leaky"]
    u = sg.compile(unroll_time(g, steps=3))
    with pytest.raises(sg.GraphError, match=r"must be a \(3, B, \.\.\.\) sequence"):
        run_unrolled(u, {"x": torch.zeros(2, 1, 4)})
    with pytest.raises(sg.GraphError, match="takes inputs"):
        run_unrolled(u, {"y": torch.zeros(3, 1, 4)})
