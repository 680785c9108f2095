"""The fused LSTM scan (``runtimes/torch/scan_lstm.py``) equals the derived ``slstm`` / ``sconv2d_lstm``
step loop in float64: spikes, cell and hidden states bit for bit, gradients of the projected input, the
initial state, threshold (scalar and per-neuron), graded factor and recurrent weight/bias to 1e-12
relative; every reset, both gate orders and cell kinds, pooled spikes, a kept graph; compiled graphs
fuse it and equal the unfused ones; ``torch.compile(fullgraph=True)``, ``torch.export`` with dynamic
T/B and ``torch.func`` run it as the custom op ``snngraph::lstm_scan``."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import snngraph as sg
from snngraph.ir.surrogate import Surrogate
from snngraph.runtimes.torch.kernels import NEURON_KERNELS
from snngraph.runtimes.torch.scan_lstm import LstmScanConfig, lstm_scan

ATAN = Surrogate("atan", (("alpha", 2.0),))
FAST = Surrogate("fast_sigmoid", (("slope", 10.0),))
T, B = 10, 3
f64 = torch.float64


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _inputs(conv: bool, per_neuron: bool, graded: float, bias: bool):
    g = _gen(0)
    hidden = (3, 4, 6) if conv else (5,)
    gates = (12, 4, 6) if conv else (20,)
    z = (torch.randn(T, B, *gates, generator=g, dtype=f64) * 1.2).requires_grad_()
    syn0 = (torch.randn(B, *hidden, generator=g, dtype=f64) * 0.3).requires_grad_()
    mem0 = (torch.rand(B, *hidden, generator=g, dtype=f64) * 0.3).requires_grad_()
    if per_neuron:
        thr = torch.rand((3, 1, 1) if conv else (5,), generator=g, dtype=f64) * 0.1 + 0.05
    else:
        thr = torch.tensor(0.1, dtype=f64)
    thr.requires_grad_()
    graded = torch.tensor(graded, dtype=f64).requires_grad_()
    weight = (torch.randn(12, 3, 3, 3, generator=g, dtype=f64) * 0.3 if conv else
              torch.randn(20, 5, generator=g, dtype=f64) * 0.4).requires_grad_()
    b = (torch.randn(20, generator=g, dtype=f64) * 0.1).requires_grad_() if bias and not conv else None
    return z, syn0, mem0, thr, graded, weight, b


def _reference(op: str, cfg: LstmScanConfig, z, syn0, mem0, thr, graded, weight, bias):
    """The derived step kernel looped over time."""
    step = NEURON_KERNELS[op].step

    def recurrent(h):
        return F.linear(h, weight, bias) if cfg.cell == "linear" else F.conv2d(h, weight, None, padding=cfg.padding)

    pool = {} if cfg.pool == "none" else {"pool": cfg.pool, "pool_size": cfg.pool_size}
    c, h, outs = syn0, mem0, []
    for t in range(T):
        spk, c, h = step(z[t], c, h, recurrent=recurrent, threshold=thr, graded_spikes_factor=graded,
                         spike_grad=cfg.surrogate, reset_mechanism=cfg.reset, **pool)
        outs.append((spk, c, h))
    return [torch.stack(v) for v in zip(*outs, strict=True)]


CASES = {
    "none": ("slstm", dict(reset="none"), {}),
    "subtract": ("slstm", dict(reset="subtract"), {}),
    "zero": ("slstm", dict(reset="zero"), {}),
    "per_neuron_graded": ("slstm", dict(reset="subtract", surrogate=FAST), dict(per_neuron=True, graded=1.5)),
    "no_bias": ("slstm", dict(reset="zero"), dict(bias=False)),
    "conv_none": ("sconv2d_lstm", dict(reset="none", cell="conv2d", order="ifog", padding=(1, 1)), {}),
    "conv_subtract": ("sconv2d_lstm", dict(reset="subtract", cell="conv2d", order="ifog", padding=(1, 1)),
                      dict(per_neuron=True)),
    "conv_zero_graded": ("sconv2d_lstm", dict(reset="zero", cell="conv2d", order="ifog", padding=(1, 1)),
                         dict(graded=0.5)),
    "conv_max_pool": ("sconv2d_lstm", dict(reset="subtract", cell="conv2d", order="ifog", padding=(1, 1),
                                           pool="max", pool_size=(2, 2)), dict(per_neuron=True)),
    "conv_avg_pool": ("sconv2d_lstm", dict(reset="zero", cell="conv2d", order="ifog", padding=(1, 1),
                                           pool="avg", pool_size=(2, 3)), dict(graded=1.5)),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_lstm_scan_matches_step_loop(case: str) -> None:
    op, cfg_kw, in_kw = CASES[case]
    cfg = LstmScanConfig(surrogate=cfg_kw.pop("surrogate", ATAN), **cfg_kw)
    args = _inputs(cfg.cell == "conv2d", in_kw.get("per_neuron", False), in_kw.get("graded", 1.0),
                   in_kw.get("bias", True))
    got = lstm_scan(*args, cfg)
    want = _reference(op, cfg, *args)
    for a, b in zip(got, want, strict=True):
        assert torch.equal(a, b)
    assert 0 < want[0].count_nonzero() < want[0].numel()
    w = [torch.randn(v.shape, generator=_gen(i + 1), dtype=f64) for i, v in enumerate(want)]
    leaves = [a for a in args if a is not None]
    grads = [torch.autograd.grad(sum((v * u).sum() for v, u in zip(out, w, strict=True)), leaves)
             for out in (got, want)]
    names = ["z", "syn0", "mem0", "threshold", "graded", "weight", "bias"]
    for name, a, b in zip(names, *grads, strict=False):
        assert a.abs().sum() > 0 or name == "graded", name
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12, msg=lambda m, n=name: f"{n}: {m}")


def test_only_spikes_or_only_states_reach_the_loss() -> None:
    cfg = LstmScanConfig("subtract", ATAN)
    args = _inputs(False, False, 1.0, True)
    leaves = [a for a in args if a is not None]
    for pick in (0, 1, 2):
        got = torch.autograd.grad(lstm_scan(*args, cfg)[pick].sum(), leaves, allow_unused=True)
        want = torch.autograd.grad(_reference("slstm", cfg, *args)[pick].sum(), leaves, allow_unused=True)
        for a, b in zip(got, want, strict=True):
            if b is None:
                assert a is None or not a.any()
            else:
                torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


def test_scratch_projection_and_kept_graph() -> None:
    """With ``scratch_input`` the gates overwrite the projection; a kept graph gives the same gradients twice."""
    cfg = LstmScanConfig("zero", ATAN, scratch_input=True)
    z, *rest = _inputs(False, False, 1.0, True)
    want = _reference("slstm", LstmScanConfig("zero", ATAN), z, *rest)
    private = z * 1.0
    got = lstm_scan(private, *rest, cfg)
    assert all(torch.equal(a, b) for a, b in zip(got, want, strict=True))
    loss = got[0].sum() + got[2].pow(2).sum()
    first = torch.autograd.grad(loss, [z, rest[-2]], retain_graph=True)
    second = torch.autograd.grad(loss, [z, rest[-2]])
    ref = torch.autograd.grad(want[0].sum() + want[2].pow(2).sum(), [z, rest[-2]])
    for a, b, c in zip(first, second, ref, strict=True):
        torch.testing.assert_close(a, c, rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(b, c, rtol=1e-12, atol=1e-12)


# --- compiled graphs ---------------------------------------------------------------------------------------
def _graph(conv: bool, reset: str = "subtract") -> sg.Graph:
    g = sg.Graph("lstm")
    if conv:
        x = g.input("x", shape=(2, 4, 6))
        h = g.sconv2d_lstm(x, out_channels=3, kernel_size=3, threshold=0.05, learn_threshold=True,
                           reset_mechanism=reset, name="n")
    else:
        x = g.input("x", shape=(4,))
        h = g.slstm(g.linear(x, 6, name="fc"), hidden_size=5, threshold=0.1, learn_threshold=True,
                    reset_mechanism=reset, name="n")
    g.output("spk", h)
    g.output("mem", h.mem)
    g.output("syn", h.syn)
    return g


def _x(conv: bool, steps: int = T, batch: int = B) -> torch.Tensor:
    shape = (2, 4, 6) if conv else (4,)
    return torch.randn(steps, batch, *shape, generator=_gen(7), dtype=f64) * 1.5


def _pair(conv: bool, reset: str = "subtract") -> tuple[torch.nn.Module, torch.nn.Module]:
    torch.manual_seed(0)
    g = _graph(conv, reset)
    fused = sg.compile(g).double()
    unfused = sg.compile(g, passes=[p for p in sg.passes.default_pipeline() if p.name != "fuse_state_updates"])
    unfused.double().load_state_dict(fused.state_dict())
    return fused, unfused


def _loss(out: dict[str, torch.Tensor]) -> torch.Tensor:
    w = torch.randn(out["spk"].shape, generator=_gen(3), dtype=out["spk"].dtype)
    return (out["spk"] * w).sum() + out["mem"].pow(2).sum() * 0.3 + out["syn"].sum() * 0.1


@pytest.mark.parametrize("reset", ["none", "subtract", "zero"])
@pytest.mark.parametrize("conv", [False, True])
def test_compiled_graph_fuses_and_equals_the_derived_loop(conv: bool, reset: str) -> None:
    fused, unfused = _pair(conv, reset)
    x = _x(conv)
    out = {k: fused(x)[k] for k in ("spk", "syn", "mem")}
    assert type(out["spk"].grad_fn).__name__ == "_LstmScanBackward"
    ref = unfused(x)
    assert all(torch.equal(out[k], ref[k]) for k in out)
    assert 0 < ref["spk"].sum() < ref["spk"].numel()
    for net, o in ((fused, out), (unfused, ref)):
        net.zero_grad()
        _loss(o).backward()
    for (name, a), b in zip(fused.named_parameters(), unfused.parameters(), strict=True):
        torch.testing.assert_close(a.grad, b.grad, rtol=1e-9, atol=1e-12, msg=name)


@pytest.fixture
def _fresh_dynamo():
    torch._dynamo.reset()


@pytest.mark.usefixtures("_fresh_dynamo")
@pytest.mark.parametrize("conv", [False, True])
def test_compile_fullgraph_export_and_func(conv: bool) -> None:
    fused, _ = _pair(conv)
    x = _x(conv, 6, 2)
    compiled = torch.compile(fused, fullgraph=True, backend="aot_eager", dynamic=True)
    names = [n for n, _ in fused.named_parameters()]
    grads = []
    for fn in (fused, compiled):
        out = fn(x)
        fused.zero_grad()
        _loss(out).backward()
        grads.append((out, [p.grad.clone() for p in fused.parameters()]))
    (want, want_g), (got, got_g) = grads
    assert all(torch.equal(got[k], want[k]) for k in want)
    for name, a, b in zip(names, got_g, want_g, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-12, msg=name)
    dims = ({0: torch.export.Dim("T", min=2, max=64), 1: torch.export.Dim("B", min=2, max=64)},)
    program = torch.export.export(fused, (x,), dynamic_shapes={"args": dims})
    assert any("lstm_scan" in str(n.target) for n in program.graph.nodes)
    for steps, batch in ((4, 2), (9, 5)):
        xs = _x(conv, steps, batch)
        assert all(torch.equal(program.module()(xs)[k], fused(xs)[k]) for k in ("spk", "syn", "mem"))
    params = {k: p.detach().clone() for k, p in fused.named_parameters()}

    def loss(p):
        return _loss(torch.func.functional_call(fused, p, (x,)))

    func_grads = torch.func.grad(loss)(params)
    for name, b in zip(names, want_g, strict=True):
        torch.testing.assert_close(func_grads[name], b, rtol=1e-9, atol=1e-12, msg=name)


def test_the_custom_op_passes_opcheck() -> None:
    from snngraph.runtimes.torch import scan_lstm_ops  # noqa: F401  (registers the op)

    z, syn0, mem0, thr, graded, weight, bias = (a.detach()[:4] if a.dim() == 3 else a.detach()
                                                for a in _inputs(False, False, 1.0, True))
    z, syn0, mem0, thr, graded, weight, bias = (a.requires_grad_() for a in (z, syn0, mem0, thr, graded, weight, bias))
    args = (z, syn0, mem0, thr, graded, weight, bias, "subtract", "atan", [2.0], "linear", "ifgo", [0, 0],
            "none", [1, 1], False)
    torch.library.opcheck(torch.ops.snngraph.lstm_scan.default, args,
                          test_utils=("test_schema", "test_faketensor", "test_aot_dispatch_dynamic"))
