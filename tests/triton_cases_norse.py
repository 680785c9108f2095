"""The comparisons of the Triton Norse scans (``triton/norse.py``) with the torch Norse scan (``scan_norse.py``),
shared by the interpreter tests (``test_triton_norse.py``) and the CUDA tests (``test_triton_cuda.py``): same
spikes, states and every gradient within 1e-5 relative (float32), for every cell and option."""

from __future__ import annotations

import itertools

import torch
from triton_cases import close

from snngraph.ir.surrogate import Surrogate
from snngraph.runtimes.torch.scan_norse import NorseLifConfig, norse_lif_scan

T, B, N = 7, 3, 5
DT = 0.002
SUPERSPIKE = Surrogate("fast_sigmoid", (("slope", 1.0),))  # Norse's default
CELLS = ("lif", "li", "box_value", "box_subtract", "dense", "diagonal")
NORSE = list(itertools.product(CELLS, [False, True], [False, True]))
"""(cell, per-neuron parameters, nonzero v_leak / v_reset)."""
PARAMS = ("tau_syn_inv", "tau_mem_inv", "v_leak", "v_th", "v_reset")
READS = {"lif": PARAMS, "dense": PARAMS, "diagonal": PARAMS, "li": PARAMS[:3], "box_value": PARAMS[1:],
         "box_subtract": PARAMS[1:4]}
"""The parameters each cell reads (LICell: no spikes; LIFBoxCell: no current, ``subtract`` no v_reset)."""


def config(cell: str, surrogate: Surrogate = SUPERSPIKE, scratch: bool = False) -> NorseLifConfig:
    recurrent = cell if cell in ("dense", "diagonal") else None
    return NorseLifConfig(DT, None if cell == "li" else surrogate, scratch, recurrent, cell.startswith("box"),
                          cell == "box_subtract")


def _param(per_neuron: bool, value: float, spread: float, n: int, device, dtype, learn: bool) -> torch.Tensor:
    t = value + spread * (torch.rand(n) - 0.5) if per_neuron else torch.tensor(value)
    return t.to(device, dtype).requires_grad_(learn)


def inputs(cell: str, per_neuron: bool, leak: bool, device, dtype=torch.float32, learn: bool = True,
           n: int = N) -> dict[str, torch.Tensor | None]:
    """The scan's arguments by name (leaves requiring grad: the state, and the parameters with ``learn``)."""
    torch.manual_seed(0)
    recurrent = cell in ("dense", "diagonal")
    args = {"x": (torch.rand(T, B, n) * 3 - 0.3).to(device, dtype).requires_grad_(),
            "u0": (torch.rand(B, n) * 0.6).to(device, dtype).requires_grad_(),
            "i0": (torch.rand(B, n) * 1.5).to(device, dtype).requires_grad_(not cell.startswith("box"))}
    values = {"tau_syn_inv": (200.0, 80.0), "tau_mem_inv": (100.0, 60.0), "v_leak": (0.1, 0.1) if leak else (0.0, 0.0),
              "v_th": (0.5, 0.2) if leak else (1.0, 0.0), "v_reset": (-0.1, 0.1) if leak else (0.0, 0.0)}
    for name, (value, spread) in values.items():
        args[name] = _param(per_neuron, value, spread, n, device, dtype, learn and name in READS[cell])
    args["spk0"] = (torch.rand(B, n) < 0.4).to(device, dtype).requires_grad_() if recurrent else None
    weight = {"dense": lambda: torch.randn(n, n) * 0.5, "diagonal": lambda: torch.rand(n) - 0.3}.get(cell)
    args["weight"] = weight().to(device, dtype).requires_grad_() if weight is not None else None
    args["bias"] = (torch.randn(n) * 0.1).to(device, dtype).requires_grad_() if cell == "dense" else None
    return args


def run(scan, args: dict, cfg: NorseLifConfig) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    x = args["x"].clone() if cfg.scratch_input else args["x"]  # (a scratch scan's input is its own)
    return scan(x, args["u0"], args["i0"], *(args[p] for p in PARAMS), cfg, args["spk0"], args["weight"],
                args["bias"])


def _leaves(args: dict) -> dict[str, torch.Tensor]:
    return {k: v for k, v in args.items() if v is not None and v.requires_grad}


def _loss(outs, ports: str) -> torch.Tensor:
    """A weighted sum of the non-empty outputs (``ports="spk"``: the spikes only)."""
    gen = torch.Generator().manual_seed(1)
    used = [o for k, o in zip("svi", outs, strict=True) if o.numel() and (ports == "all" or k == "s")]
    return sum((o * torch.rand(o.shape, generator=gen).to(o)).sum() for o in used)


def check_norse(cell: str, per_neuron: bool, leak: bool, device, surrogate: Surrogate = SUPERSPIKE,
                learn: bool = True, scratch: bool = False, ports: str = "all") -> None:
    """``triton.ops.norse_lif_scan`` vs ``scan_norse.norse_lif_scan``: spikes equal, ``v``, ``i`` and the gradients
    of every leaf within 1e-5 relative."""
    from snngraph.runtimes.torch.triton import ops

    args, cfg = inputs(cell, per_neuron, leak, device, learn=learn), config(cell, surrogate, scratch)
    got, want = run(ops.norse_lif_scan, args, cfg), run(norse_lif_scan, args, cfg)
    assert torch.equal(got[0], want[0]), "spikes differ"
    if cfg.spiking:
        assert 0 < want[0].count_nonzero() < want[0].numel(), "the case should spike, but not everywhere"
    for name, a, b in zip(("v", "i"), got[1:], want[1:], strict=True):
        assert a.shape == b.shape, name
        close(a, b, name)
    leaves = _leaves(args)
    grads = [torch.autograd.grad(_loss(outs, ports), list(leaves.values()), allow_unused=True) for outs in (got, want)]
    for name, g_got, g_want in zip(leaves, *grads, strict=True):
        assert (g_got is None) == (g_want is None), name
        if g_want is not None:
            # (LICell's v relative to v_leak does not depend on it)
            assert g_want.abs().sum() > 0 or (cell, name) == ("li", "v_leak"), f"d/d{name} is zero"
            close(g_got, g_want, f"d/d{name}")


def check_norse_low_precision(cell: str, dtype: torch.dtype, device) -> None:
    """float16 / bfloat16 state: the Triton kernels compute in float32 and round what they store, so spikes
    nearly all agree with a float32 run, the membranes stay within a few rounding steps where the spike trains
    agree (a dense recurrence couples every neuron: until the first step where any spike differs), and the
    gradients are finite, of the state dtype and close to float32's."""
    from snngraph.runtimes.torch.triton import ops

    outs = {}
    for dt in (torch.float32, dtype):
        args, cfg = inputs(cell, True, True, device, dt, n=64), config(cell)
        spk, v, i = run(ops.norse_lif_scan, args, cfg)
        grads = torch.autograd.grad(_loss((spk, v, i), "all"), list(_leaves(args).values()))
        assert spk.dtype == v.dtype == dt and all(g.dtype == dt for g in grads)
        outs[dt] = spk.float(), v.float(), [g.float() for g in grads]
    (s32, v32, g32), (s, v, g) = outs[torch.float32], outs[dtype]
    assert (s == s32).float().mean() > 0.97
    eps = torch.finfo(dtype).eps
    if cell == "dense":
        differ = (s != s32).flatten(1).any(1)
        agree = (slice(0, int(differ.nonzero()[0]) if differ.any() else T), slice(None))
    else:
        agree = (slice(None), (s == s32).all(0))
        assert agree[1].float().mean() > 0.8
    assert ((v - v32).abs()[agree] <= 8 * eps * (1 + v32.abs()[agree])).all()
    assert v[agree].numel() > 0
    for got, want in zip(g, g32, strict=True):
        assert torch.isfinite(got).all()
        assert (got - want).norm() <= 0.25 * want.norm()  # (a flipped spike moves its reset's gradient)
    if cell != "dense":  # x's gradient where the spike trains agree
        assert ((g[0] - g32[0]).abs()[agree] <= 0.05 * (1 + g32[0].abs()[agree])).all()
