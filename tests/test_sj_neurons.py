"""SpikingJelly 2.0's IFNode, LIFNode and ParametricLIFNode traced into sj_if / sj_lif / sj_plif, against
SpikingJelly itself in float64: spikes exact, membranes 1e-9, gradients 1e-8, over T=12 steps, for
every reset variant, decay_input, detach_reset and each supported surrogate; single- and multi-step."""

from __future__ import annotations

import pytest
import torch

import snngraph as sg

pytest.importorskip("spikingjelly.activation_based")
from spikingjelly.activation_based import functional, neuron, surrogate  # noqa: E402

from tests.sj_helpers import only  # noqa: E402

T, B, N = 12, 3, 7
CONFIGS = [
    ("IFNode", {}),
    ("IFNode", {"v_reset": None}),
    ("IFNode", {"v_reset": -0.2, "detach_reset": True, "v_threshold": 0.7}),
    ("LIFNode", {"tau": 3.0}),
    ("LIFNode", {"tau": 2.5, "decay_input": False}),
    ("LIFNode", {"v_reset": None, "detach_reset": True}),
    ("LIFNode", {"v_reset": 0.3, "v_threshold": 0.8, "decay_input": False, "tau": 4.0}),
    ("ParametricLIFNode", {"init_tau": 3.0}),
    ("ParametricLIFNode", {"v_reset": None, "decay_input": False}),
    ("ParametricLIFNode", {"detach_reset": True, "v_reset": -0.1, "init_tau": 1.5}),
]
SURROGATES = [surrogate.Sigmoid(), surrogate.Sigmoid(alpha=2.5), surrogate.ATan(), surrogate.ATan(alpha=3.0),
              surrogate.PiecewiseQuadratic(), surrogate.PiecewiseExp(alpha=2.0), surrogate.SoftSign(),
              surrogate.SuperSpike(alpha=1.5), surrogate.Erf()]


def _inputs(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    x = (torch.rand(T, B, N, generator=gen, dtype=torch.float64) * 2.6 - 0.4).requires_grad_(True)
    weights = torch.randn(T, B, N, generator=gen, dtype=torch.float64)
    return x, weights


def _reference(node: torch.nn.Module, x: torch.Tensor, multi_step: bool = False):
    """SpikingJelly's spikes and membranes, stepped one step at a time (or in multi-step mode)."""
    functional.reset_net(node)
    if multi_step:
        node.step_mode = "m"
        return node(x), None
    spikes, vs = [], []
    for xt in x:
        spikes.append(node(xt))
        vs.append(node.v.detach().clone())
    return torch.stack(spikes), torch.stack(vs)


def _compiled(node: torch.nn.Module, example: torch.Tensor):
    g = sg.trace(node, example)
    return g, sg.compile(g).double()


def _check_grads(ref_spk, got_spk, x_ref, x_got, weights, params=()):
    gx_ref, *gp_ref = torch.autograd.grad((ref_spk * weights).sum(), [x_ref, *(p for p, _ in params)])
    gx_got, *gp_got = torch.autograd.grad((got_spk * weights).sum(), [x_got, *(p for _, p in params)])
    assert gx_ref.abs().sum() > 0
    torch.testing.assert_close(gx_got, gx_ref, rtol=1e-8, atol=1e-12)
    for a, b in zip(gp_got, gp_ref, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-8, atol=1e-12)


@pytest.mark.parametrize(("cls", "kwargs"), CONFIGS, ids=[f"{c}-{k}" for c, k in CONFIGS])
def test_neuron_matches_spikingjelly(cls, kwargs):
    node = getattr(neuron, cls)(surrogate_function=surrogate.ATan(), **kwargs).double()
    x, weights = _inputs()
    ref_spk, ref_v = _reference(node, x)
    g, net = _compiled(node, x[0].detach())
    (name,) = [n for n, v in g.nodes.items() if v.family == "neuron"]
    assert g.nodes[name].op == {"IFNode": "sj_if", "LIFNode": "sj_lif", "ParametricLIFNode": "sj_plif"}[cls]
    x_got = x.detach().clone().requires_grad_(True)
    got_spk = only(net(x_got))
    assert 0 < ref_spk.sum() < ref_spk.numel()
    assert torch.equal(got_spk, ref_spk)
    # membranes: the state holds V - v_reset (v_reset 0 for the soft reset)
    state, offset = None, kwargs.get("v_reset", 0.0) or 0.0
    for t in range(T):
        out, state = net.step(x[t].detach(), state)
        assert torch.equal(only(out), ref_spk[t].detach())
        torch.testing.assert_close(state[f"{name}.v"] + offset, ref_v[t], rtol=0, atol=1e-9)
    params = [(node.w, dict(net.named_parameters())[f"{name}.w"])] if cls == "ParametricLIFNode" else []
    _check_grads(ref_spk, got_spk, x, x_got, weights, params)


@pytest.mark.parametrize("fn", SURROGATES, ids=lambda f: f"{type(f).__name__}{f.alpha}")
def test_surrogate_gradients_match(fn):
    node = neuron.LIFNode(tau=2.0, surrogate_function=fn).double()
    x, weights = _inputs(1)
    ref_spk, _ = _reference(node, x)
    _, net = _compiled(node, x[0].detach())
    x_got = x.detach().clone().requires_grad_(True)
    got_spk = only(net(x_got))
    assert torch.equal(got_spk, ref_spk)
    _check_grads(ref_spk, got_spk, x, x_got, weights)


@pytest.mark.parametrize(("cls", "kwargs"), CONFIGS[::3], ids=[f"{c}-{k}" for c, k in CONFIGS[::3]])
def test_multi_step_neuron_traced_from_a_sequence(cls, kwargs):
    node = getattr(neuron, cls)(surrogate_function=surrogate.Sigmoid(), step_mode="m", **kwargs).double()
    x, weights = _inputs(2)
    ref_spk, _ = _reference(node, x, multi_step=True)
    _, net = _compiled(node, x.detach())  # multi-step: the (T, B, ...) example the model takes
    assert node.step_mode == "m"  # tracing left the model as it was
    x_got = x.detach().clone().requires_grad_(True)
    got_spk = only(net(x_got))
    assert torch.equal(got_spk, ref_spk)
    _check_grads(ref_spk, got_spk, x, x_got, weights)


def test_firing_at_exactly_the_threshold_is_spikingjelly_s():
    """SpikingJelly fires at H >= threshold (snnTorch at >): an input landing exactly on it spikes."""
    node = neuron.IFNode(v_threshold=1.0, v_reset=None)
    x = torch.tensor([[[0.5, 1.0, 0.25]], [[0.5, 0.0, 0.75]]])
    net = sg.compile(sg.trace(node, x[0]))
    assert torch.equal(only(net(x)), _reference(node, x)[0])
    assert only(net(x))[:, 0].tolist() == [[0.0, 1.0, 0.0], [1.0, 0.0, 1.0]]


def test_plif_learns_tau_like_spikingjelly():
    """A few SGD steps on ParametricLIFNode's w give the same w in both; state_dict loads both ways."""
    torch.manual_seed(0)
    layer = torch.nn.Sequential(torch.nn.Linear(5, 6), neuron.ParametricLIFNode(init_tau=2.0)).double()
    net = sg.compile(sg.trace(layer, torch.zeros(2, 5, dtype=torch.float64))).double()
    assert set(net.state_dict()) == set(layer.state_dict()) == {"0.weight", "0.bias", "1.w"}
    x = torch.rand(8, 4, 5, dtype=torch.float64) * 1.5
    target = torch.rand(8, 4, 6, dtype=torch.float64)
    opt_ref = torch.optim.SGD(layer.parameters(), lr=0.5)
    opt_got = torch.optim.SGD(net.parameters(), lr=0.5)
    for _ in range(4):
        functional.reset_net(layer)
        for opt, out in ((opt_ref, torch.stack([layer(xt) for xt in x])), (opt_got, only(net(x)))):
            opt.zero_grad()
            ((out - target) ** 2).sum().backward()
            opt.step()
    assert abs(float(layer[1].w.detach())) > 1e-4  # tau moved
    torch.testing.assert_close(net.state_dict()["1.w"], layer.state_dict()["1.w"], rtol=1e-8, atol=1e-12)
    fresh = neuron.ParametricLIFNode(init_tau=4.0).double()
    holder = torch.nn.Sequential(torch.nn.Linear(5, 6).double(), fresh)
    holder.load_state_dict(net.state_dict())
    assert float(fresh.w.detach()) == float(net.state_dict()["1.w"])
    net.load_state_dict(torch.nn.Sequential(torch.nn.Linear(5, 6), neuron.ParametricLIFNode(init_tau=3.0))
                        .double().state_dict())
    assert float(net.state_dict()["1.w"]) == pytest.approx(-0.6931471805599453)


def test_unsupported_neurons_and_surrogates_are_named():
    with pytest.raises(sg.GraphError, match="SpikingJelly neuron .*QIFNode is not supported"):
        sg.trace(torch.nn.Sequential(torch.nn.Linear(3, 3), neuron.QIFNode()), torch.zeros(2, 3))
    with pytest.raises(sg.GraphError, match="surrogate .*LeakyKReLU is not supported"):
        sg.trace(neuron.LIFNode(surrogate_function=surrogate.LeakyKReLU()), torch.zeros(2, 3))
    with pytest.raises(sg.GraphError, match="non-spiking mode"):
        sg.trace(neuron.LIFNode(surrogate_function=surrogate.ATan(spiking=False)), torch.zeros(2, 3))


def test_builder_and_text_round_trip():
    g = sg.Graph("sj")
    x = g.input("x", (4,))
    a = g.sj_lif(x, tau=3.0, reset="soft", spike_grad=sg.surrogate.erf(alpha=1.5), name="a")
    b = g.sj_plif(a.spk, w=0.3, learn_w=True, decay_input=False, name="b")
    g.output("spk", g.sj_if(b.spk, v_reset=0.1, detach_reset=True, name="c").spk)
    assert sg.parse(g.to_text()) == g
    with pytest.raises(sg.GraphError, match="tau"):
        sg.Graph("bad").sj_lif(sg.Graph("bad").input("x", (2,)), tau=1.0)
