"""Compiler passes: structure (golden text IR), verify, numeric equivalence with the unfused
graph (outputs and every parameter gradient), idempotence, and the pass manager's errors."""

from pathlib import Path

import pytest
import torch

import snngraph as sg
from snngraph.passes import eliminate_dead_nodes, fuse_state_updates, insert_surrogates, unroll_time

GOLDEN = Path(__file__).parent / "golden"


def mlp(reset="subtract", delay=True, per_neuron=False):
    torch.manual_seed(0)
    g = sg.Graph("mlp")
    x = g.input("x", (12,))
    beta = torch.rand(16) if per_neuron else 0.9
    h = g.leaky(g.linear(x, 16, name="fc1"), beta=beta, reset_mechanism=reset, reset_delay=delay,
                learn_beta=True, learn_threshold=True, name="lif1")
    h = g.integrate_fire(g.linear(h, 8, name="fc2"), threshold=1.5, reset_mechanism=reset, name="if1")
    o = g.leaky_integrator(g.linear(h, 4, name="fc3"), beta=0.8, learn_beta=True, name="li")
    g.output("out", o)
    g.output("spk", h)
    return g


def loop_graph():
    torch.manual_seed(0)
    g = sg.Graph("loop")
    x = g.input("x", (6,))
    fb = g.feedback((6,), name="fb")
    s = g.leaky(g.add(g.linear(x, 6, name="a"), fb, name="sum"), beta=0.8, name="lif")
    g.connect(fb, g.linear(s, 6, name="b"))
    o = g.leaky(g.linear(s, 3, name="c"), beta=0.8, name="out_lif")
    g.linear(x, 5, name="unused")
    g.output("spk", o)
    return g


def run(net, x):
    out = net(x)
    loss = sum((v * torch.linspace(0.5, 1.5, v.numel()).reshape(v.shape)).sum() for v in out.values())
    grads = torch.autograd.grad(loss, [p for p in net.parameters()], allow_unused=True)
    return out, dict(zip([k for k, _ in net.named_parameters()], grads, strict=True))


def assert_equivalent(g, x):
    ref = sg.compile(g, passes=[insert_surrogates]).double()
    fused = sg.compile(g).double()
    out_a, grads_a = run(ref, x)
    out_b, grads_b = run(fused, x)
    for key in out_a:
        assert torch.equal(out_a[key], out_b[key]), key
    for key, grad in grads_b.items():
        torch.testing.assert_close(grad, grads_a[key], rtol=1e-10, atol=1e-10, msg=key)


@pytest.mark.parametrize("reset", ["subtract", "zero", "none"])
@pytest.mark.parametrize("delay", [True, False])
@pytest.mark.parametrize("per_neuron", [False, True])
def test_default_pipeline_preserves_semantics(reset, delay, per_neuron):
    x = (torch.rand(11, 3, 12, dtype=torch.float64) * 2)
    assert_equivalent(mlp(reset, delay, per_neuron), x)


def test_loops_stay_unfused_and_equivalent():
    g = loop_graph()
    out = sg.passes.PassManager(sg.passes.default_pipeline())(g)
    assert not out.nodes["lif"].fused and out.nodes["out_lif"].fused
    assert "unused" not in out.nodes
    assert_equivalent(g, torch.rand(7, 2, 6, dtype=torch.float64) * 2)


def test_fuse_marks_only_scannable_neurons_with_builtin_surrogates():
    torch.manual_seed(0)
    g = sg.Graph("mixed")
    x = g.input("x", (4,))
    a = g.synaptic(x, alpha=0.5, beta=0.9, reset_delay=False, name="syn")
    b = g.leaky(a, beta=0.9, spike_grad=lambda u: (u > 0).float(), name="custom")
    c = g.leaky(b, beta=0.9, name="plain")
    g.output("o", c)
    d = g.leaky(c, beta=0.9, spike_grad=sg.surrogate.SSO(), name="stochastic")
    g.output("d", d)
    e = g.alpha(d, alpha=0.9, beta=0.8, name="alpha")
    g.output("e", g.synaptic(e, alpha=0.5, beta=0.9, name="syn_delayed"))
    out = fuse_state_updates(insert_surrogates(g))
    assert [n for n, node in out.nodes.items() if getattr(node, "fused", False)] == ["plain", "syn_delayed"]


def test_fusing_does_not_depend_on_insert_surrogates_having_run():
    """A neuron without a surrogate yet has the default (atan): fusing first fuses the same nodes."""
    g = mlp()
    before = {n for n, node in fuse_state_updates(g).nodes.items() if getattr(node, "fused", False)}
    after = {n for n, node in fuse_state_updates(insert_surrogates(g)).nodes.items() if getattr(node, "fused", False)}
    assert before == after == {"lif1", "if1", "li"}
    assert insert_surrogates(fuse_state_updates(g)).to_text() == fuse_state_updates(insert_surrogates(g)).to_text()


def test_fusion_is_asked_of_the_target():
    """The pass knows no model: it fuses exactly what the target's capability says it can."""
    from snngraph.passes.fuse_state_updates import FuseStateUpdates
    from snngraph.runtimes.torch.capabilities import SCANS

    asked = []
    only_leaky = FuseStateUpdates(lambda node: asked.append(node.name) or node.op == "leaky")
    out = only_leaky(mlp())
    assert sorted(asked) == ["if1", "li", "lif1"]
    assert [n for n, node in out.nodes.items() if getattr(node, "fused", False)] == ["lif1"]
    assert FuseStateUpdates(lambda node: False)(mlp()).to_text() == mlp().to_text()
    assert set(SCANS) == set(__import__("snngraph.runtimes.torch.sequence", fromlist=["x"]).SCAN_RUNNERS)


@pytest.mark.parametrize("p", [eliminate_dead_nodes, unroll_time, insert_surrogates, fuse_state_updates])
def test_passes_are_idempotent_and_verified(p):
    for g in (mlp(), loop_graph()):
        once = p(g)
        sg.verify(once)
        assert p(once) is once


def test_unroll_time_places_each_loop_contiguously():
    g = loop_graph()
    order = list(unroll_time(g).nodes)
    loop = [order.index(n) for n in ("fb", "sum", "lif", "b")]
    assert loop == list(range(loop[0], loop[0] + 4))


@pytest.mark.parametrize("name", ["mlp", "loop"])
def test_golden_text_after_default_pipeline(name):
    g = {"mlp": mlp, "loop": loop_graph}[name]()
    text = sg.passes.PassManager(sg.passes.default_pipeline())(g).to_text()
    golden = GOLDEN / f"{name}.default_pipeline.txt"
    assert text == golden.read_text()


def test_pass_manager_names_failing_pass_and_the_ones_before():
    def breaks(graph):
        return graph.with_outputs({})

    breaks.name = "breaks"
    with pytest.raises(sg.PassError, match=r"pass 'breaks' \(after \['insert_surrogates'\]\) produced an invalid"):
        sg.passes.PassManager([insert_surrogates, breaks])(mlp())

    def raises(graph):
        raise RuntimeError("boom")

    with pytest.raises(sg.PassError, match="pass 'raises'.*boom"):
        sg.passes.PassManager([raises])(mlp())
    with pytest.raises(sg.PassError, match="returned int"):
        sg.passes.PassManager([lambda g: 3])(mlp())


def test_pass_manager_dumps_text_after_each_pass(tmp_path):
    sg.passes.PassManager(sg.passes.default_pipeline(), dump=tmp_path)(mlp())
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == ["00_input.txt", "01_eliminate_dead_nodes.txt", "02_unroll_time.txt", "03_insert_surrogates.txt",
                     "04_fuse_state_updates.txt"]
    assert "fused=true" in (tmp_path / files[-1]).read_text()


def test_default_pipeline_names():
    assert [p.name for p in sg.passes.default_pipeline()] == [
        "eliminate_dead_nodes", "unroll_time", "insert_surrogates", "fuse_state_updates"]
