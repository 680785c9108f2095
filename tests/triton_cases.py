"""The comparisons of the Triton scans with the torch scans, shared by the interpreter tests
(``test_triton_scans.py``, CPU tensors under ``TRITON_INTERPRET=1``) and the CUDA tests
(``test_triton_cuda.py``): same spikes, states and gradients within 1e-5 relative (float32)."""

from __future__ import annotations

import itertools

import torch

from snngraph.ir.surrogate import Surrogate
from snngraph.runtimes.torch.scan import ScanConfig, leaky_scan
from snngraph.runtimes.torch.scan_recurrent import RecurrentScanConfig, recurrent_leaky_scan
from snngraph.runtimes.torch.scan_sj import SjConfig, sj_scan
from snngraph.runtimes.torch.scan_synaptic import SynapticScanConfig, synaptic_scan

T, B, N = 7, 3, 5
ATAN = Surrogate("atan", (("alpha", 2.0),))
SURROGATES = [ATAN, Surrogate("fast_sigmoid", (("slope", 25.0),)), Surrogate("sigmoid", (("slope", 25.0),)),
              Surrogate("triangular", (("threshold", 1.0),)), Surrogate("heaviside", ()),
              Surrogate("straight_through_estimator", ()),
              Surrogate("spike_rate_escape", (("beta", 1.0), ("slope", 25.0))),
              Surrogate("LSO", (("slope", 0.1),)), Surrogate("SFS", (("slope", 25.0), ("B", -0.5)))]
LEAKY = list(itertools.product(["subtract", "zero", "none"], [True, False], [False, True], [1.0, 1.5]))
"""(reset, reset_delay, per_neuron, graded factor)."""
RECURRENT = list(itertools.product(["subtract", "zero", "none"], [True, False], [False, True]))
"""(reset, dense V, per_neuron)."""
SYNAPTIC = list(itertools.product(["subtract", "zero", "none"], [False, True], [1.0, 1.5]))
"""(reset, per_neuron, graded factor)."""
SPIKINGJELLY = [v for v in itertools.product(["sj_if", "sj_lif"], ["hard", "soft"], [False, True], [True, False])
                if v[0] == "sj_lif" or v[3]]
"""(model, reset, detach_reset, decay_input: a LIF option)."""


def close(got: torch.Tensor, want: torch.Tensor, name: str, rtol: float = 1e-5) -> None:
    scale = want.abs().max().item() if want.numel() else 0.0
    torch.testing.assert_close(got, want, rtol=rtol, atol=rtol * max(scale, 1e-3), msg=lambda m: f"{name}: {m}")


def _param(per_neuron: bool, value: float, spread: float, device, dtype) -> torch.Tensor:
    t = value + spread * (torch.rand(N) - 0.5) if per_neuron else torch.tensor(value)
    return t.to(device, dtype).requires_grad_()


def _compare(run_ref, run_triton, leaves, names, steps_out: int) -> None:
    """Run both, compare the outputs (the first exactly: spikes), then the gradients of a weighted loss."""
    got, want = run_triton(), run_ref()
    assert torch.equal(got[0], want[0]), "spikes differ"
    assert 0 < want[0].count_nonzero() < want[0].numel(), "the case should spike, but not everywhere"
    for i in range(1, steps_out):
        close(got[i], want[i], f"output {i}")
    gen = torch.Generator().manual_seed(1)
    weights = [torch.rand(w.shape, generator=gen).to(w) for w in want]
    grads = []
    for outs in (got, want):
        loss = sum((o * w).sum() for o, w in zip(outs, weights, strict=True))
        grads.append(torch.autograd.grad(loss, leaves, allow_unused=True))
    for name, g_got, g_want in zip(names, *grads, strict=True):
        assert (g_got is None) == (g_want is None), name
        if g_want is not None:
            close(g_got, g_want, f"d/d{name}")


def check_leaky(reset, delay, per_neuron, graded, device, surrogate=ATAN, model="leaky", dtype=torch.float32):
    """Leaky (IF: beta 1, not learnt; LI: no spikes) through ``triton.ops.leaky_scan`` vs ``scan.leaky_scan``."""
    from snngraph.runtimes.torch.triton import ops

    torch.manual_seed(0)
    x = (torch.rand(T, B, N) * 1.4 - 0.1).to(device, dtype).requires_grad_()
    mem0 = (torch.rand(B, N) * 1.2).to(device, dtype).requires_grad_()
    beta = torch.ones((), device=device, dtype=dtype) if model == "integrate_fire" else \
        _param(per_neuron, 0.8, 0.3, device, dtype)
    thr = _param(per_neuron, 1.0, 0.4, device, dtype)
    g = _param(False, graded, 0.0, device, dtype)
    spiking = model != "leaky_integrator"
    cfg = ScanConfig(reset, delay, surrogate if spiking else None, spiking)
    leaves = [x, mem0, thr, g] + ([beta] if beta.requires_grad else [])
    names = ["x", "mem0", "threshold", "graded", "beta"][:len(leaves)]
    if not spiking:
        def ref():
            return leaky_scan(x, mem0, beta, thr, g, cfg)[1:]

        def tri():
            return ops.leaky_scan(x, mem0, beta, thr, g, cfg)[1:]

        got, want = tri()[0], ref()[0]
        close(got, want, "mem")
        w = torch.rand_like(want)
        for name, a, b in zip(["x", "mem0", "beta"], torch.autograd.grad((got * w).sum(), [x, mem0, beta]),
                              torch.autograd.grad((want * w).sum(), [x, mem0, beta]), strict=True):
            close(a, b, f"d/d{name}")
        return
    _compare(lambda: leaky_scan(x, mem0, beta, thr, g, cfg), lambda: ops.leaky_scan(x, mem0, beta, thr, g, cfg),
             leaves, names, 2)


def check_recurrent(reset, dense, per_neuron, device, surrogate=ATAN, graded=1.0):
    from snngraph.runtimes.torch.triton import ops

    torch.manual_seed(0)
    x = (torch.rand(T, B, N) * 1.2).to(device).requires_grad_()
    spk0 = (torch.rand(B, N) < 0.3).float().to(device).requires_grad_()
    mem0 = torch.rand(B, N).to(device).requires_grad_()
    beta, thr = _param(per_neuron, 0.8, 0.3, device, torch.float32), _param(per_neuron, 1.0, 0.4, device, torch.float32)
    g = _param(False, graded, 0.0, device, torch.float32)
    weight = (torch.randn(N, N) * 0.5 if dense else torch.rand(N)).to(device).requires_grad_()
    bias = (torch.randn(N) * 0.1).to(device).requires_grad_() if dense else None
    cfg = RecurrentScanConfig(reset, surrogate, dense)
    leaves = [x, spk0, mem0, beta, thr, g, weight] + ([bias] if dense else [])
    names = ["x", "spk0", "mem0", "beta", "threshold", "graded", "weight", "bias"][:len(leaves)]
    args = (x, spk0, mem0, beta, thr, g, weight, bias, cfg)
    _compare(lambda: recurrent_leaky_scan(*args), lambda: ops.recurrent_leaky_scan(*args), leaves, names, 2)


def check_synaptic(reset, per_neuron, graded, device, surrogate=ATAN):
    from snngraph.runtimes.torch.triton import ops

    torch.manual_seed(0)
    x = (torch.rand(T, B, N) * 0.8 - 0.1).to(device).requires_grad_()
    syn0 = (torch.rand(B, N) * 0.5).to(device).requires_grad_()
    mem0 = (torch.rand(B, N) * 1.2).to(device).requires_grad_()
    f32 = torch.float32
    alpha, beta = _param(per_neuron, 0.7, 0.3, device, f32), _param(per_neuron, 0.8, 0.3, device, f32)
    thr, g = _param(per_neuron, 1.0, 0.4, device, f32), _param(False, graded, 0.0, device, f32)
    cfg = SynapticScanConfig(reset, surrogate)
    leaves = [x, syn0, mem0, alpha, beta, thr, g]
    names = ["x", "syn0", "mem0", "alpha", "beta", "threshold", "graded"]
    args = (x, syn0, mem0, alpha, beta, thr, g, cfg)
    _compare(lambda: synaptic_scan(*args), lambda: ops.synaptic_scan(*args), leaves, names, 3)


def check_sj(model, reset, detach, decay_input, device, surrogate=ATAN, per_neuron=True, scratch=False):
    """SpikingJelly IF / LIF through ``triton.ops.sj_scan`` vs ``scan_sj.sj_scan``: the weighted loss of both
    outputs, then of the spikes only and of the states only (each backward kernel variant). With ``scratch``
    the scans write over a private copy of ``x`` and return no states."""
    from snngraph.runtimes.torch.triton import ops

    torch.manual_seed(0)
    x = (torch.rand(T, B, N) * 1.2 - 0.2).to(device).requires_grad_()
    u0 = (torch.rand(B, N) * 0.6).to(device).requires_grad_()
    tau = (2.0 + 2.0 * torch.rand(N) if per_neuron else torch.tensor(2.5)).to(device)
    thr = (0.7 + 0.4 * torch.rand(N) if per_neuron else torch.tensor(1.0)).to(device)
    v_reset = (0.2 * torch.rand(N) - 0.1 if per_neuron else torch.tensor(0.0)).to(device)
    cfg = SjConfig(model == "sj_lif", reset == "soft", detach, decay_input, surrogate, scratch)

    def runner(scan):  # (with scratch: the spikes only, the states are not returned)
        return lambda: scan(x * 1.0, u0, tau, thr, v_reset, cfg)[:1] if scratch else scan(x, u0, tau, thr, v_reset,
                                                                                          cfg)

    _compare(runner(sj_scan), runner(ops.sj_scan), [x, u0], ["x", "u0"], 1 if scratch else 2)
    for only in ([0] if scratch else [0, 1]):
        got, want = runner(ops.sj_scan)(), runner(sj_scan)()
        w = torch.rand_like(want[only])
        for name, a, b in zip(["x", "u0"], torch.autograd.grad((got[only] * w).sum(), [x, u0]),
                              torch.autograd.grad((want[only] * w).sum(), [x, u0]), strict=True):
            close(a, b, f"output {only} only: d/d{name}")


def check_low_precision(dtype, device) -> None:
    """float16 / bfloat16 state: the Triton kernels accumulate in float32, so their membranes stay
    within the state dtype's rounding of a float32 run, spikes nearly all agree, and the backward
    gives finite gradients of the right dtypes close to float32's."""
    from snngraph.runtimes.torch.triton import ops

    torch.manual_seed(0)
    x32 = torch.rand(T, B, 64, device=device) * 0.6
    mem0 = torch.zeros(B, 64, device=device)
    thr, g = torch.tensor(1.0, device=device), torch.tensor(1.0, device=device)
    cfg = ScanConfig("subtract", True, ATAN, True)
    outs = {}
    for dt in (torch.float32, dtype):
        x = x32.to(dt).requires_grad_()
        beta = torch.tensor(0.9, device=device, dtype=dt).requires_grad_()
        spk, mem = ops.leaky_scan(x, mem0.to(dt), beta, thr.to(dt), g.to(dt), cfg)
        gx, gb = torch.autograd.grad((spk.float() * 0.5).sum() + mem.float().sum(), [x, beta])
        assert spk.dtype == mem.dtype == gx.dtype == gb.dtype == dt
        outs[dt] = (spk.float(), mem.float(), gx.float(), gb.float())
    (s32, m32, gx32, gb32), (s, m, gx, gb) = outs[torch.float32], outs[dtype]
    assert (s == s32).float().mean() > 0.97
    agree = (s == s32).all(0)  # neurons whose spike trains match: their membranes match to rounding
    eps = torch.finfo(dtype).eps
    assert agree.float().mean() > 0.8
    assert ((m - m32).abs()[:, agree] <= 4 * eps * (1 + m32.abs()[:, agree])).all()
    assert torch.isfinite(gx).all() and torch.isfinite(gb).all()
    assert ((gx - gx32).abs()[:, agree] <= 0.05 * (1 + gx32.abs()[:, agree])).all()
    assert (gb - gb32).abs() <= 0.05 * gb32.abs()


def check_sj_low_precision(dtype, device) -> None:
    """SpikingJelly's LIF with float16 / bfloat16 state: outputs and gradients in the state dtype, the charged
    membranes accumulated in float32, so spikes nearly all agree with a float32 run and the states of the
    neurons whose spike trains agree stay within the dtype's rounding."""
    from snngraph.runtimes.torch.triton import ops

    torch.manual_seed(0)
    x32 = torch.rand(T, B, 64, device=device) * 2.4
    tau, thr, v_reset = (torch.tensor(v, device=device) for v in (2.0, 1.0, 0.0))
    cfg = SjConfig(True, False, False, True, ATAN)
    outs = {}
    for dt in (torch.float32, dtype):
        x = x32.to(dt).requires_grad_()
        u0 = torch.zeros(B, 64, device=device, dtype=dt).requires_grad_()
        spk, v = ops.sj_scan(x, u0, tau.to(dt), thr.to(dt), v_reset.to(dt), cfg)
        gx, gu0 = torch.autograd.grad((spk.float() * 0.5).sum() + v.float().sum(), [x, u0])
        assert spk.dtype == v.dtype == gx.dtype == gu0.dtype == dt
        outs[dt] = (spk.float(), v.float(), gx.float())
    (s32, v32, gx32), (s, v, gx) = outs[torch.float32], outs[dtype]
    assert (s == s32).float().mean() > 0.97 and 0 < s32.count_nonzero() < s32.numel()
    agree = (s == s32).all(0)
    eps = torch.finfo(dtype).eps
    assert agree.float().mean() > 0.8
    assert ((v - v32).abs()[:, agree] <= 4 * eps * (1 + v32.abs()[:, agree])).all()
    assert torch.isfinite(gx).all()
    assert ((gx - gx32).abs()[:, agree] <= 0.05 * (1 + gx32.abs()[:, agree])).all()


LSTM = {  # name: (cell, reset, per-neuron threshold, graded factor, bias)
    "subtract": ("linear", "subtract", False, 1.0, True),
    "zero_per_neuron_graded": ("linear", "zero", True, 1.5, True),
    "none_no_bias": ("linear", "none", False, 1.0, False),
    "conv_subtract": ("conv2d", "subtract", True, 1.0, False),
    "conv_zero_graded": ("conv2d", "zero", False, 0.5, False),
}
"""The LSTM cases of the Triton kernels (no pooled spikes: those keep the torch scan)."""


def check_lstm(case, device, surrogate=ATAN, scratch=False):
    """``slstm`` / ``sconv2d_lstm`` through ``triton.ops.lstm_scan`` vs ``scan_lstm.lstm_scan``: spikes exact,
    states and the gradients of the projection, initial state, threshold, graded factor and recurrent
    weight/bias within 1e-5. With ``scratch`` the Triton scan writes its gates over a private copy of ``z``."""
    from snngraph.runtimes.torch.scan_lstm import LstmScanConfig, lstm_scan
    from snngraph.runtimes.torch.triton import ops

    cell, reset, per_neuron, graded, has_bias = LSTM[case]
    conv = cell == "conv2d"
    gen = torch.Generator().manual_seed(0)
    hidden, gates = ((3, 4, 5), (12, 4, 5)) if conv else ((6,), (24,))

    def leaf(t):
        return t.to(device).requires_grad_()

    z = leaf(torch.randn(T, B, *gates, generator=gen) * 1.5)
    syn0, mem0 = leaf(torch.randn(B, *hidden, generator=gen) * 0.3), leaf(torch.rand(B, *hidden, generator=gen) * 0.3)
    thr = leaf(torch.rand((3, 1, 1) if conv else (6,), generator=gen) * 0.1 + 0.05 if per_neuron else
               torch.tensor(0.1))
    g = leaf(torch.tensor(graded))
    weight = leaf(torch.randn(12, 3, 3, 3, generator=gen) * 0.3 if conv else torch.randn(24, 6, generator=gen) * 0.4)
    bias = leaf(torch.randn(24, generator=gen) * 0.1) if has_bias else None
    order, padding = ("ifog", (1, 1)) if conv else ("ifgo", (0, 0))
    leaves = [z, syn0, mem0, thr, g, weight] + ([bias] if has_bias else [])
    names = ["z", "syn0", "mem0", "threshold", "graded", "weight", "bias"][:len(leaves)]

    def runner(scan, private):
        cfg = LstmScanConfig(reset, surrogate, cell, order, padding, scratch_input=private)
        return lambda: scan(z * 1.0 if private else z, syn0, mem0, thr, g, weight, bias, cfg)

    _compare(runner(lstm_scan, False), runner(ops.lstm_scan, scratch), leaves, names, 3)


def check_lstm_low_precision(dtype, device) -> None:
    """An SLSTM with float16 / bfloat16 state and weights: outputs and gradients in that dtype, finite, the cell
    state carried in float32, so spikes nearly all agree with a float32 run and the hidden states of the
    neurons whose spike trains agree stay within a few of the dtype's eps (its GEMMs round too)."""
    from snngraph.runtimes.torch.scan_lstm import LstmScanConfig
    from snngraph.runtimes.torch.triton import ops

    gen = torch.Generator().manual_seed(0)
    z32, w32 = torch.randn(T, B, 4 * 64, generator=gen) * 1.5, torch.randn(4 * 64, 64, generator=gen) * 0.1
    cfg = LstmScanConfig("subtract", ATAN)
    outs = {}
    for dt in (torch.float32, dtype):
        z = z32.to(device, dt).requires_grad_()
        zeros = torch.zeros(B, 64, device=device, dtype=dt)
        thr, g = torch.tensor(0.1, device=device, dtype=dt), torch.tensor(1.0, device=device, dtype=dt)
        spk, syn, mem = ops.lstm_scan(z, zeros, zeros, thr, g, w32.to(device, dt), None, cfg)
        (gz,) = torch.autograd.grad((spk.float() * 0.5).sum() + mem.float().sum() + syn.float().sum(), [z])
        assert spk.dtype == syn.dtype == mem.dtype == gz.dtype == dt
        outs[dt] = (spk.float(), mem.float(), gz.float())
    (s32, m32, gz32), (s, m, gz) = outs[torch.float32], outs[dtype]
    assert (s == s32).float().mean() > 0.97 and 0 < s32.count_nonzero() < s32.numel()
    agree = (s == s32).all(0)
    assert agree.float().mean() > 0.7
    assert ((m - m32).abs()[:, agree] <= 8 * torch.finfo(dtype).eps * (1 + m32.abs()[:, agree])).all()
    assert torch.isfinite(gz).all()
    assert (gz - gz32).norm() <= 0.05 * gz32.norm()
