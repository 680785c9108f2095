"""The ``slstm`` / ``sconv2d_lstm`` cell models, ``sg.nn.SLSTM`` / ``SConv2dLSTM`` and ``sg.trace`` of
snnTorch models using them, against snnTorch 1.0.0 directly: float64, T = 12 steps, spikes exact,
states 1e-9, gradients 1e-8 relative, every reset mechanism, learnable threshold, pooling; a
compiled-graph training step and ONNX export in every mode. The registry-driven tests
(test_models_registry.py) cover both models' text/file round trips and option combinations too."""

from __future__ import annotations

import contextlib

import pytest
import snntorch as snn
import torch
from onnx_helpers import compare
from torch import Tensor, nn

import snngraph as sg
from snngraph import GraphError
from snngraph.ir.errors import GraphTypeError

T, B = 12, 3
RESETS = ("none", "subtract", "zero")
SPIKE = sg.surrogate.atan()  # the same float64 spec on both sides (snnTorch's own returns float32 spikes)


@contextlib.contextmanager
def float64_default():
    """snnTorch builds zero state with ``torch.zeros`` (the default dtype): float64 references need it."""
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        yield
    finally:
        torch.set_default_dtype(old)


def snntorch_step(ref: nn.Module, x: Tensor, syn: Tensor, mem: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """snnTorch's ``forward`` without its state-shape check (which drops the state of an SLSTM whose
    ``input_size != hidden_size``, see ``sg.nn.SLSTM``): its own reset, state function and firing."""
    ref.syn, ref.mem = syn, mem
    ref.reset = ref.mem_reset(ref.mem)
    syn, mem = ref.state_function(x)
    spk = ref.fire(mem)
    return spk, syn, mem


def compare_with_snntorch(ours: nn.Module, theirs: nn.Module, x: Tensor, bypass: bool = False) -> None:
    """Forward and gradients (input, every parameter) of both modules stepped over ``x``."""
    assert list(ours.state_dict()) == list(theirs.state_dict())
    ours.load_state_dict(theirs.state_dict())
    zeros = x.new_zeros((x.shape[1], *ours._state_shape(x[0])[1:]))
    results = []
    for neuron, step in ((ours, None), (theirs, snntorch_step if bypass else None)):
        xg = x.clone().requires_grad_(True)
        syn = mem = zeros
        spks, syns, mems = [], [], []
        for t in range(T):
            spk, syn, mem = neuron(xg[t], syn, mem) if step is None else step(neuron, xg[t], syn, mem)
            spks.append(spk), syns.append(syn), mems.append(mem)
        spk, syn, mem = torch.stack(spks), torch.stack(syns), torch.stack(mems)
        w = torch.randint(-8, 9, spk.shape, generator=torch.Generator().manual_seed(4)).to(torch.float64) / 8
        loss = (spk * w).sum() + (mem.pow(2) * 0.3).sum() + (syn * 0.1).sum()
        params = [p for p in neuron.parameters() if p.requires_grad]
        results.append((spk, syn, mem, torch.autograd.grad(loss, [xg, *params])))
    (spk, syn, mem, grads), (r_spk, r_syn, r_mem, r_grads) = results
    assert spk.dtype == torch.float64 and 0 < spk.sum() < spk.numel()
    assert torch.equal(spk, r_spk)
    torch.testing.assert_close(syn, r_syn, rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(mem, r_mem, rtol=1e-9, atol=1e-12)
    assert len(grads) == len(r_grads)
    for a, b in zip(grads, r_grads, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-8, atol=1e-12)


def _x(*shape: int, seed: int = 0, scale: float = 1.5) -> Tensor:
    return torch.randn(T, B, *shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64) * scale


SLSTM_CASES = {
    "none": dict(threshold=0.2),
    "subtract": dict(threshold=0.2, reset_mechanism="subtract"),
    "zero": dict(threshold=0.15, reset_mechanism="zero"),
    "learn_threshold": dict(threshold=0.2, learn_threshold=True, reset_mechanism="subtract"),
    "no_bias_fast_sigmoid": dict(threshold=0.1, bias=False, spike_grad=sg.surrogate.fast_sigmoid(slope=10)),
}


@pytest.mark.parametrize("case", sorted(SLSTM_CASES))
@pytest.mark.parametrize(("inputs", "hidden"), [(6, 6), (4, 7)])
def test_slstm_equals_snntorch(case: str, inputs: int, hidden: int) -> None:
    kw = {"spike_grad": SPIKE} | SLSTM_CASES[case]
    torch.manual_seed(0)
    theirs = snn.SLSTM(inputs, hidden, **kw).double()
    ours = sg.nn.SLSTM(inputs, hidden, **kw).double()
    compare_with_snntorch(ours, theirs, _x(inputs), bypass=inputs != hidden)


CONV_CASES = {
    "none": dict(threshold=0.1),
    "subtract_3x1": dict(threshold=0.1, reset_mechanism="subtract", kernel_size=(3, 1)),
    "zero_learn": dict(threshold=0.1, reset_mechanism="zero", learn_threshold=True),
    "max_pool": dict(threshold=0.1, reset_mechanism="subtract", max_pool=2),
    "avg_pool": dict(threshold=0.05, avg_pool=2),
}


@pytest.mark.parametrize("case", sorted(CONV_CASES))
def test_sconv2d_lstm_equals_snntorch(case: str) -> None:
    kw = {"spike_grad": SPIKE, "kernel_size": 3} | CONV_CASES[case]
    torch.manual_seed(0)
    theirs = snn.SConv2dLSTM(2, 3, **kw).double()
    ours = sg.nn.SConv2dLSTM(2, 3, **kw).double()
    compare_with_snntorch(ours, theirs, _x(2, 4, 6))


def test_init_hidden_output_and_state_handling() -> None:
    torch.manual_seed(0)
    explicit = sg.nn.SLSTM(4, 5, threshold=0.2, spike_grad=SPIKE).double()
    hidden = sg.nn.SLSTM(4, 5, threshold=0.2, spike_grad=SPIKE, init_hidden=True).double()
    both = sg.nn.SLSTM(4, 5, threshold=0.2, spike_grad=SPIKE, init_hidden=True, output=True).double()
    hidden.load_state_dict(explicit.state_dict())
    both.load_state_dict(explicit.state_dict())
    x = _x(4)
    syn, mem = explicit.reset_mem()
    ref = []
    for t in range(T):
        spk, syn, mem = explicit(x[t], syn, mem)  # empty state from reset_mem starts at zero
        ref.append(spk)
    assert torch.equal(torch.stack([hidden(x[t]) for t in range(T)]), torch.stack(ref))
    spk, syn1, mem1 = both(x[0])
    assert torch.equal(spk, ref[0]) and syn1.shape == mem1.shape == (B, 5)
    hidden.reset_hidden()
    assert hidden(torch.zeros(7, 4, dtype=torch.float64)).shape == (7, 5)  # a new batch size starts at zero
    with pytest.raises(GraphError, match="init_hidden"):
        hidden(x[0], syn, mem)
    with pytest.raises(GraphError, match=r"state 'syn' has shape \(3, 4\)"):
        explicit(x[0], torch.zeros(3, 4, dtype=torch.float64), mem)
    assert explicit.init_slstm()[0].numel() == 0


def test_constructor_checks() -> None:
    with pytest.raises(GraphError, match="only one of"):
        sg.nn.SConv2dLSTM(1, 2, 3, max_pool=2, avg_pool=2)
    with pytest.raises(GraphError, match="odd"):
        sg.nn.SConv2dLSTM(1, 2, 2)
    with pytest.raises(GraphTypeError, match="inhibition"):
        sg.nn.SLSTM(2, 2, inhibition=1)
    with pytest.raises(GraphError, match="reset_mechanism"):
        sg.nn.SLSTM(2, 2, reset_mechanism="hard")
    assert sg.nn.SLSTM(3, 4).reset_mechanism == "none" and sg.nn.SConv2dLSTM(1, 2, 3).reset_mechanism == "none"


# --- sg.trace of snnTorch models --------------------------------------------------------------------------
class ExplicitSLSTM(nn.Module):
    def __init__(self, **kw):
        super().__init__()
        self.fc = nn.Linear(4, 5)  # input_size == hidden_size: snnTorch drops the state otherwise
        self.lstm = snn.SLSTM(5, 5, spike_grad=SPIKE, **kw)
        self.out = nn.Linear(5, 2)

    def forward(self, x, syn, mem):
        spk, syn, mem = self.lstm(self.fc(x), syn, mem)
        return self.out(spk), syn, mem


class ExplicitConv(nn.Module):
    def __init__(self, **kw):
        super().__init__()
        self.conv = nn.Conv2d(1, 2, 3, padding=1)
        self.lstm = snn.SConv2dLSTM(2, 3, 3, spike_grad=SPIKE, **kw)

    def forward(self, x, syn, mem):
        return self.lstm(self.conv(x), syn, mem)


def _check_traced(model: nn.Module, graph: sg.Graph, x: Tensor, reference: list[Tensor]) -> sg.CompiledNet:
    """The compiled trace equals ``reference`` (the model stepped) in forward and every weight's gradient;
    its ``state_dict`` keys are the model's own."""
    net = sg.compile(graph)
    assert set(net.state_dict()) == set(model.state_dict())
    out = list(net(x).values())
    assert len(out) == len(reference)
    for got, want in zip(out, reference, strict=True):
        if got.dtype == want.dtype and set(torch.unique(want).tolist()) <= {0.0, 1.0}:
            assert torch.equal(got, want)
        torch.testing.assert_close(got, want, rtol=1e-9, atol=1e-12)
    w = [torch.randn(r.shape, generator=torch.Generator().manual_seed(i), dtype=torch.float64)
         for i, r in enumerate(reference)]
    model.zero_grad()
    sum((r * v).sum() for r, v in zip(reference, w, strict=True)).backward()
    sum((o * v).sum() for o, v in zip(out, w, strict=True)).backward()
    compiled = dict(net.named_parameters())
    for name, p in model.named_parameters():
        torch.testing.assert_close(compiled[name].grad, p.grad, rtol=1e-8, atol=1e-12, msg=name)
    return net


@pytest.mark.parametrize("reset", RESETS)
def test_trace_sequential_init_hidden(reset: str) -> None:
    with float64_default():
        torch.manual_seed(0)
        model = nn.Sequential(nn.Linear(4, 6), snn.SLSTM(6, 6, threshold=0.2, reset_mechanism=reset,
                                                         learn_threshold=True, spike_grad=SPIKE, init_hidden=True),
                              nn.Linear(6, 2))
        x = _x(4, seed=1)
        graph = sg.trace(model, x[0])
        assert [n.op for n in graph.nodes.values()] == ["input", "linear", "slstm", "linear"]
        model[1].reset_mem()
        reference = [torch.stack([model(x[t]) for t in range(T)])]
    _check_traced(model, graph, x, reference)


@pytest.mark.parametrize("reset", RESETS)
def test_trace_explicit_state(reset: str) -> None:
    torch.manual_seed(0)
    model = ExplicitSLSTM(threshold=0.2, reset_mechanism=reset).double()
    x = _x(4, seed=2)
    zeros = torch.zeros(B, 5, dtype=torch.float64)
    graph = sg.trace(model, (x[0], zeros, zeros))
    assert list(graph.inputs) == ["x"]
    syn = mem = zeros
    outs = []
    for t in range(T):
        y, syn, mem = model(x[t], syn, mem)
        outs.append((y, syn, mem))
    reference = [torch.stack(v) for v in zip(*outs, strict=True)]
    _check_traced(model, graph, x, reference)


@pytest.mark.parametrize("reset", RESETS)
def test_trace_conv_lstm(reset: str) -> None:
    torch.manual_seed(0)
    model = ExplicitConv(threshold=0.1, reset_mechanism=reset).double()
    x = _x(1, 5, 4, seed=3)
    zeros = torch.zeros(B, 3, 5, 4, dtype=torch.float64)
    graph = sg.trace(model, (x[0], zeros, zeros))
    syn = mem = zeros
    outs = []
    for t in range(T):
        spk, syn, mem = model(x[t], syn, mem)
        outs.append((spk, syn, mem))
    reference = [torch.stack(v) for v in zip(*outs, strict=True)]
    assert 0 < reference[0].sum() < reference[0].numel()
    _check_traced(model, graph, x, reference)


def test_snntorch_state_dict_loads_into_the_traced_net() -> None:
    torch.manual_seed(0)
    model = ExplicitSLSTM(threshold=0.2).double()
    zeros = torch.zeros(B, 5, dtype=torch.float64)
    net = sg.compile(sg.trace(model, (_x(4)[0], zeros, zeros)))
    other = ExplicitSLSTM(threshold=0.2).double()
    net.load_state_dict(other.state_dict())
    assert torch.equal(net.lstm.lstm_cell.weight_hh, other.lstm.lstm_cell.weight_hh)
    mine = sg.nn.SLSTM(5, 5)
    mine.load_state_dict(net.lstm.state_dict())  # and on to sg.nn (float32 <- float64 copies)


# --- built graphs: training, streaming, ONNX ------------------------------------------------------------
def _graph(conv: bool = False) -> sg.Graph:
    g = sg.Graph("conv_lstm" if conv else "lstm")
    if conv:
        x = g.input("x", shape=(1, 4, 4))
        h = g.sconv2d_lstm(g.conv2d(x, 2, 3, padding=1, name="c"), out_channels=3, kernel_size=3, threshold=0.1,
                           learn_threshold=True, reset_mechanism="subtract", name="n")
    else:
        x = g.input("x", shape=(4,))
        h = g.slstm(g.linear(x, 6, name="fc"), hidden_size=5, threshold=0.15, learn_threshold=True,
                    reset_mechanism="zero", name="n")
    g.output("spk", h)
    g.output("mem", h.mem)
    g.output("syn", h.syn)
    return g


@pytest.mark.parametrize("conv", [False, True])
def test_compiled_graph_training_step(conv: bool) -> None:
    torch.manual_seed(0)
    net = sg.compile(_graph(conv))
    shape = (1, 4, 4) if conv else (4,)
    x = torch.rand(T, B, *shape, generator=torch.Generator().manual_seed(2)) * 2
    before = {k: v.detach().clone() for k, v in net.named_parameters()}
    out = net(x)
    assert 0 < out["spk"].sum() < out["spk"].numel()
    loss = (out["spk"].mean() - 0.5) ** 2 + out["mem"].pow(2).mean() + out["syn"].pow(2).mean()
    loss.backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in net.parameters())
    torch.optim.SGD(net.parameters(), lr=0.1).step()
    assert all(not torch.equal(before[k], v) for k, v in net.named_parameters())
    state = net.init_state(B)
    assert state["n.mem"].shape == (B, 3, 4, 4) if conv else (B, 5)
    with torch.no_grad():
        seq = net(x[:4])
        for t in range(4):
            step, state = net.step(x[t], state=state)
    for key in seq:
        torch.testing.assert_close(step[key], seq[key][-1], rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("mode", ["sequence", "step", "unrolled"])
@pytest.mark.parametrize("conv", [False, True])
def test_onnx_export_equals_torch(conv: bool, mode: str, tmp_path) -> None:
    torch.manual_seed(0)
    g = _graph(conv)
    if mode == "unrolled":
        net = sg.compile(g).eval()
        path = tmp_path / "u.onnx"
        sg.export_onnx(net, path, num_steps=6, unroll=True)
        from onnx_helpers import assert_close

        from snngraph.runtimes.onnx import Session

        x = (torch.rand(6, 2, *g.inputs["x"].shape, generator=torch.Generator().manual_seed(5)) * 2)
        with torch.no_grad():
            want = net(x)
        got = Session(path).run({"x": x.numpy()})
        for key, value in want.items():
            assert_close(key, got[key], value.numpy(), spike=key == "spk")
        assert want["spk"].sum() > 0
        return
    want = compare(g, tmp_path, shapes=((6, 2), (9, 1)), mode=mode)
    assert want["spk"].sum() > 0


def test_builder_and_shape_errors() -> None:
    g = sg.Graph("e")
    x = g.input("x", shape=(4,))
    with pytest.raises(GraphError, match="hidden_size"):
        g.slstm(x)
    with pytest.raises(GraphError, match="weight_ih"):
        g.slstm(x, hidden_size=3, weight_ih=torch.zeros(12, 5))
    with pytest.raises(GraphError, match="1-D input"):
        g.slstm(g.input("y", shape=(2, 4)), hidden_size=3)
    img = g.input("img", shape=(2, 4, 4))
    with pytest.raises(GraphError, match="odd"):
        g.sconv2d_lstm(img, out_channels=2, kernel_size=2)
    with pytest.raises(GraphError, match="unexpected keyword"):
        g.slstm(x, hidden_size=3, out_channels=2)
    h = g.slstm(x, hidden_size=3)
    assert g.type_of(h.mem).shape == (3,) and g.type_of(h.spk).spike
    c = g.sconv2d_lstm(img, out_channels=5, kernel_size=(3, 1))
    assert g.type_of(c.syn).shape == (5, 4, 4)
    assert set(g.nodes[c.name].params()) >= {"conv.weight", "conv.bias", "threshold"}


def test_derived_kernels_take_the_cell_maps() -> None:
    import inspect

    from snngraph.runtimes.torch.cell import cell_maps
    from snngraph.runtimes.torch.kernels import NEURON_KERNELS

    for op in ("slstm", "sconv2d_lstm"):
        kernel = NEURON_KERNELS[op]
        params = inspect.signature(kernel.step).parameters
        assert list(params)[:3] == ["x", "syn", "mem"] and kernel.state_names == ("syn", "mem")
        assert {"recurrent", "project", "threshold", "graded_spikes_factor", "spike_grad",
                "reset_mechanism"} <= set(params)
    torch.manual_seed(0)
    cell = nn.LSTMCell(4, 3).double()
    tensors = {"weight_ih": cell.weight_ih, "weight_hh": cell.weight_hh, "bias_ih": cell.bias_ih,
               "bias_hh": cell.bias_hh}
    project, recurrent = cell_maps("linear", 4, tensors)
    x, h, c = _x(4)[0], _x(3, seed=1)[0], _x(3, seed=2)[0]
    spk, syn, mem = NEURON_KERNELS["slstm"].step(x, c, h, project=project, recurrent=recurrent, threshold=0.1)
    want_h, want_c = cell(x, (h, c))  # no reset: exactly torch's LSTMCell
    torch.testing.assert_close(mem, want_h, rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(syn, want_c, rtol=1e-12, atol=1e-14)
    assert torch.equal(spk, (mem > 0.1).to(mem.dtype))


# --- state_quant and inhibition -------------------------------------------------------------------------
def _quantiser():
    from snntorch.functional import quant

    return quant.state_quant(num_bits=4, uniform=True, threshold=1.0)  # snnTorch's own: 16 levels in [-1, 1]


@pytest.mark.parametrize("reset", RESETS)
def test_slstm_state_quant_equals_snntorch(reset: str) -> None:
    """snnTorch quantises ``syn`` and ``mem`` after the update (and the membrane again when firing)."""
    with float64_default():  # (snnTorch's quantiser holds its levels in the default dtype)
        kw = dict(threshold=0.2, reset_mechanism=reset, spike_grad=SPIKE, state_quant=_quantiser())
        torch.manual_seed(0)
        theirs, ours = snn.SLSTM(5, 5, **kw), sg.nn.SLSTM(5, 5, **kw)
        compare_with_snntorch(ours, theirs, _x(5, seed=5))


def test_sconv2d_lstm_state_quant_with_pooling_equals_snntorch() -> None:
    with float64_default():
        kw = dict(threshold=0.1, spike_grad=SPIKE, kernel_size=3, max_pool=2, state_quant=_quantiser())
        torch.manual_seed(0)
        theirs, ours = snn.SConv2dLSTM(2, 3, **kw), sg.nn.SConv2dLSTM(2, 3, **kw)
        compare_with_snntorch(ours, theirs, _x(2, 4, 6, seed=6))


def test_traced_state_quant_equals_snntorch() -> None:
    """``sg.trace`` reads snnTorch's quantiser's levels; the node runs the derived step (no fused scan)."""
    with float64_default():
        torch.manual_seed(0)
        model = nn.Sequential(nn.Linear(4, 6), snn.SLSTM(6, 6, threshold=0.2, spike_grad=SPIKE, init_hidden=True,
                                                         state_quant=_quantiser()), nn.Linear(6, 2))
        x = _x(4, seed=7)
        graph = sg.trace(model, x[0])
        model[1].reset_mem()
        reference = [torch.stack([model(x[t]) for t in range(T)])]
    net = _check_traced(model, graph, x, reference)
    lstm = next(n for n in net.graph.nodes.values() if n.op == "slstm")
    assert lstm.state_quant is not None and not lstm.fused


@pytest.mark.filterwarnings("ignore:Inhibition is an unstable feature")  # (snnTorch's, at construction)
@pytest.mark.parametrize("conv", [False, True])
def test_inhibition_lets_only_each_sample_s_largest_membrane_fire(conv: bool) -> None:
    """snnTorch 1.0.0's LSTMs accept ``inhibition`` and ignore it; here it does what snnTorch documents. The
    state never depends on the spikes, so the reference is snnTorch's membranes through its own
    ``fire_inhibition``."""
    kw = dict(threshold=0.05, spike_grad=SPIKE, inhibition=True)
    with float64_default():
        torch.manual_seed(0)
        theirs = snn.SConv2dLSTM(2, 3, 3, **kw) if conv else snn.SLSTM(5, 5, **kw)
        ours = sg.nn.SConv2dLSTM(2, 3, 3, **kw) if conv else sg.nn.SLSTM(5, 5, **kw)
        ours.load_state_dict(theirs.state_dict())
        x = _x(*((2, 4, 6) if conv else (5,)), seed=8)
        syn = mem = torch.zeros(B, *((3, 4, 6) if conv else (5,)))
        ours_syn, ours_mem = syn, mem
        for t in range(T):
            plain, syn, mem = theirs(x[t], syn, mem)
            spk, ours_syn, ours_mem = ours(x[t], ours_syn, ours_mem)
            want = theirs.fire_inhibition(mem.size(0), mem) if not conv else _winner_spikes(mem, 0.05)
            assert torch.equal(spk, want)
            torch.testing.assert_close(ours_mem, mem, rtol=1e-9, atol=1e-12)
            assert spk.flatten(1).sum(1).le(1).all() and (plain.sum() > spk.sum() or plain.sum() <= B)


def _winner_spikes(mem: Tensor, threshold: float) -> Tensor:
    """snnTorch's ``fire_inhibition`` over all of a sample's neurons (snnTorch's takes dim 1 only, which
    crashes for (B, C, H, W) states): the first largest membrane of each sample, if above threshold."""
    flat = mem.flatten(1)
    mask = torch.zeros_like(flat).scatter_(1, flat.argmax(1, keepdim=True), 1.0).view_as(mem)
    return (mem > threshold).to(mem.dtype) * mask
