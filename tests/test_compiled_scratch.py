"""Under ``torch.compile`` / ``torch.export`` a scan whose input current is private (``lower.scratch_inputs``)
writes its state over that current and its backward writes the input gradient over the saved membranes
(the op ``snngraph::<scan>_backward_over_mems``), as the eager scans do; values and gradients stay eager's.

Not when the current is observed (a forward hook on its layer), nor when the graph is kept for another
backward (``retain_graph`` with ``torch._functorch.config.donated_buffer`` off; with it on, torch refuses).
"""

import pytest
import torch
import torch._functorch.config as aot_config
from torch._dynamo.backends.common import aot_autograd
from torch._functorch.aot_autograd import make_boxed_func

import snngraph as sg

NEURONS = {
    "leaky": lambda g, c: g.leaky(c, 0.9, name="hid"),
    "rleaky": lambda g, c: g.rleaky(c, 0.9, name="hid"),
    "synaptic": lambda g, c: g.synaptic(c, 0.7, 0.9, name="hid"),
}
SCANS = {"leaky": "leaky_scan", "rleaky": "recurrent_leaky_scan", "synaptic": "synaptic_scan"}


def _net(kind: str) -> torch.nn.Module:
    """``x (6) -> fc1 (5) -> hidden -> fc2 (3) -> leaky``: the hidden neuron's current is private, its
    parameters fixed (so the backward may write over its membranes)."""
    g = sg.Graph(kind)
    h = NEURONS[kind](g, g.linear(g.input("x", (6,)), 5, name="fc1"))
    o = g.leaky(g.linear(h, 3, name="fc2"), 0.8, name="out")
    g.output("spk", o)
    g.output("mem", o.mem)
    torch.manual_seed(0)
    return sg.compile(g)


class _Recorded:
    """``aot_eager`` that keeps the forward and backward graphs it runs."""

    def __init__(self):
        self.fw_graphs: list[torch.fx.GraphModule] = []
        self.bw_graphs: list[torch.fx.GraphModule] = []
        self.backend = aot_autograd(fw_compiler=self._keep(self.fw_graphs), bw_compiler=self._keep(self.bw_graphs))

    @staticmethod
    def _keep(graphs):
        def compiler(gm, example_inputs):
            graphs.append(gm)
            return make_boxed_func(gm.forward)

        return compiler


def _compiled(net: torch.nn.Module):
    """``net`` under ``torch.compile`` (``aot_eager``), and the record of its forward and backward graphs."""
    graphs = _Recorded()
    return torch.compile(net, fullgraph=True, dynamic=True, backend=graphs.backend), graphs


def _scratch_flags(graphs: _Recorded, scan: str) -> list[bool]:
    """The ``scratch`` argument of each forward call of ``snngraph::<scan>``."""
    op = getattr(torch.ops.snngraph, scan).default
    return [n.args[-1] for g in graphs.fw_graphs for n in g.graph.nodes if n.target is op]


def _backward_code(graphs: _Recorded) -> str:
    return "\n".join(g.code for g in graphs.bw_graphs)


def _step(fn, net: torch.nn.Module, x: torch.Tensor, retain: bool = False) -> tuple[dict, dict]:
    net.zero_grad()
    out = fn(x)
    loss = out["mem"].pow(2).sum() + out["spk"].sum()
    loss.backward(retain_graph=retain)
    if retain:
        loss.backward()
    return {k: v.detach() for k, v in out.items()}, {k: p.grad.clone() for k, p in net.named_parameters()}


def _assert_same(got: tuple[dict, dict], want: tuple[dict, dict]) -> None:
    (out, grads), (ref, ref_grads) = got, want
    assert torch.equal(out["spk"], ref["spk"])
    torch.testing.assert_close(out["mem"], ref["mem"], rtol=0, atol=1e-6)
    assert grads.keys() == ref_grads.keys()
    for key in ref_grads:
        torch.testing.assert_close(grads[key], ref_grads[key], rtol=1e-6, atol=1e-6)


@pytest.fixture(autouse=True)
def _fresh_dynamo():
    torch._dynamo.reset()


@pytest.mark.parametrize("kind", list(NEURONS))
def test_compiled_scratch_scan_writes_over_its_current_and_equals_eager(kind):
    net = _net(kind)
    x = torch.rand(7, 3, 6) * 2
    compiled, graphs = _compiled(net)
    _assert_same(_step(compiled, net, x), _step(net, net, x))
    assert _scratch_flags(graphs, SCANS[kind])[0] is True
    assert _scratch_flags(graphs, "leaky_scan")[-1] is False  # the readout's state is an output
    assert f"{SCANS[kind]}_backward_over_mems" in _backward_code(graphs)


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:`torch.jit.script_method` is deprecated:DeprecationWarning")  # inside inductor
@pytest.mark.parametrize("kind", list(NEURONS))
def test_inductor_scratch_scan_equals_eager(kind):
    """Inductor re-inplaces the mutating backward op onto the donated membranes."""
    net = _net(kind)
    compiled = torch.compile(net, fullgraph=True, dynamic=True)
    for steps, batch in ((7, 3), (5, 4)):
        x = torch.rand(steps, batch, 6) * 2
        _assert_same(_step(compiled, net, x), _step(net, net, x))


def test_learnable_beta_keeps_the_membranes():
    """beta's gradient reads the membranes: the functional backward runs, with eager's values."""
    g = sg.Graph("learn")
    h = g.leaky(g.linear(g.input("x", (6,)), 5, name="fc1"), 0.9, learn_beta=True, name="hid")
    g.output("spk", h)
    g.output("mem", g.leaky(g.linear(h, 3, name="fc2"), 0.8, name="out").mem)
    torch.manual_seed(0)
    net = sg.compile(g)
    x = torch.rand(6, 2, 6) * 2
    compiled, graphs = _compiled(net)
    _assert_same(_step(compiled, net, x), _step(net, net, x))
    assert _scratch_flags(graphs, "leaky_scan") == [True, False]
    assert "over_mems" not in _backward_code(graphs) and "leaky_scan_backward" in _backward_code(graphs)


def test_a_hooked_layer_keeps_its_output():
    """A forward hook may keep the layer's output: the scan then takes a buffer of its own."""
    net = _net("leaky")
    x = torch.rand(5, 2, 6) * 2
    kept = []
    net.fc1.register_forward_hook(lambda module, args, out: kept.append(out))
    compiled, graphs = _compiled(net)
    got = _step(compiled, net, x)
    want = torch.nn.functional.linear(x.reshape(-1, 6), net.fc1.weight, net.fc1.bias)
    torch.testing.assert_close(kept[-1].detach(), want, rtol=0, atol=1e-6)
    assert _scratch_flags(graphs, "leaky_scan") == [False, False]
    kept.clear()
    _assert_same(got, _step(net, net, x))


@pytest.mark.parametrize("kind", list(NEURONS))
def test_retain_graph_without_donated_buffers_keeps_the_membranes(kind):
    net = _net(kind)
    x = torch.rand(6, 2, 6) * 2
    want = _step(net, net, x, retain=True)
    with aot_config.patch(donated_buffer=False):
        compiled = torch.compile(net, fullgraph=True, dynamic=True, backend="aot_eager")
        _assert_same(_step(compiled, net, x, retain=True), want)


@pytest.mark.parametrize("retain", [False, True])
def test_exported_program_runs_eagerly_with_scratch(retain):
    """An exported program's ops run eagerly: the backward reads ``retain_graph`` when it runs."""
    net = _net("leaky")
    x = torch.rand(6, 2, 6) * 2
    dims = ({0: torch.export.Dim("T", min=2, max=128)},)
    program = torch.export.export(net, (x,), dynamic_shapes={"args": dims})
    scans = [n.args[-1] for n in program.graph.nodes if n.target is torch.ops.snngraph.leaky_scan.default]
    assert scans == [True, False]
    module = program.module()
    module.load_state_dict(net.state_dict())
    _assert_same(_step(module, module, x, retain=retain), _step(net, net, x, retain=retain))
