"""The Triton Norse scans (``runtimes/torch/triton/norse.py``) in Triton's interpreter on CPU tensors against
the torch Norse scan: every cell and option, spikes exact, states and gradients within 1e-5 relative
(float32); float16/bfloat16 state against float32; ``sg.compile(kernels="triton")`` on a Norse net trains
like ``"torch"``, eagerly and under ``torch.compile``.

Run with ``make test-triton`` (installs triton, sets ``TRITON_INTERPRET=1``); skipped otherwise.
"""

import numpy as np
import pytest
import torch

import snngraph as sg
from snngraph.runtimes.torch.triton import available, interpreting

pytestmark = [
    pytest.mark.skipif(not available(), reason="triton is not installed (make test-triton installs it)"),
    pytest.mark.skipif(not interpreting(), reason="needs TRITON_INTERPRET=1 (make test-triton)"),
]

from triton_cases import SURROGATES  # noqa: E402 (after the skips)
from triton_cases_norse import CELLS, NORSE, check_norse, check_norse_low_precision  # noqa: E402

CPU = torch.device("cpu")


@pytest.mark.parametrize("cell,per_neuron,leak", NORSE)
def test_norse(cell, per_neuron, leak):
    check_norse(cell, per_neuron, leak, CPU)


@pytest.mark.parametrize("cell", CELLS)
def test_norse_fixed_parameters_spikes_only(cell):
    """Fixed parameters (no taus' gradients: the currents are not read back) and a loss on the spikes alone
    (LICell: on ``v`` and ``i``)."""
    check_norse(cell, True, True, CPU, learn=False, ports="all" if cell == "li" else "spk")


@pytest.mark.parametrize("cell", ["lif", "dense", "diagonal"])
@pytest.mark.parametrize("learn", [False, True], ids=["fixed", "learnt"])
def test_norse_scratch(cell, learn):
    """A private input: the currents go over it and the input gradient over them."""
    check_norse(cell, True, True, CPU, learn=learn, scratch=True, ports="spk")


@pytest.mark.parametrize("surrogate", SURROGATES, ids=lambda s: s.name)
def test_norse_surrogates(surrogate):
    check_norse("lif", True, True, CPU, surrogate=surrogate)


@pytest.mark.parametrize("cell", ["lif", "dense", "box_subtract"])
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_norse_low_precision_state(cell, dtype):
    check_norse_low_precision(cell, dtype, CPU)


def norse_net() -> sg.Graph:
    """Every Norse model: LIFCell (per-neuron learnt tau_mem_inv, v_leak, v_th), LIFRecurrentCell dense (learnt
    tau_syn_inv, recurrence) and diagonal, LIFBoxCell (subtract) and an LICell read-out."""
    g = sg.Graph("norse")
    x = g.input("x", (6,))
    common = dict(dt=0.002, v_leak=0.05, v_reset=-0.05)
    h = g.neuron("norse_lif", g.linear(x, 8, name="fc1"), name="lif", learn=("tau_mem_inv", "v_leak", "v_th"),
                 tau_mem_inv=np.linspace(80, 120, 8).astype(np.float32), v_th=0.3, **common)
    h = g.neuron("norse_lif_recurrent", g.linear(h, 8, name="fc2"), name="rec", learn=("tau_syn_inv",), v_th=0.05,
                 **common)
    h = g.neuron("norse_lif_recurrent", g.linear(h, 8, name="fc3"), name="diag", all_to_all=False, V=0.3, v_th=0.2,
                 **common)
    h = g.neuron("norse_lif_box", g.linear(h, 8, name="fc4"), name="box", reset_method="subtract", v_th=0.1,
                 learn=("v_th",), dt=0.002)
    o = g.neuron("norse_li", g.linear(h, 3, name="fc5"), name="li", learn=("tau_mem_inv",), dt=0.002)
    g.output("v", o.v)
    g.output("spk", h)
    return g


def _step(kernels: str, x: torch.Tensor, compiled: bool = False):
    torch.manual_seed(0)
    net = sg.compile(norse_net(), kernels=kernels)
    run = torch.compile(net, backend="aot_eager", fullgraph=True) if compiled else net
    out = run(x)
    loss = out["v"].square().sum() + out["spk"].sum()
    loss.backward()
    return net, out, {k: p.grad.clone() for k, p in net.named_parameters()}


@pytest.mark.parametrize("compiled", [False, True], ids=["eager", "torch.compile"])
def test_norse_net_training_step_equals_torch_kernels(monkeypatch, compiled):
    from snngraph.runtimes.torch.triton import norse

    calls = []
    for name in ("forward", "backward"):
        original = getattr(norse, name)

        def spied(*args, _original=original, _name=name, **kwargs):
            calls.append((_name, kwargs.get("out") is not None))
            return _original(*args, **kwargs)

        monkeypatch.setattr(norse, name, spied)
    x = torch.rand(9, 4, 6) * 4
    _, want, want_grads = _step("torch", x)
    assert not calls
    net, got, grads = _step("triton", x, compiled)
    assert {n for n in ("lif", "rec", "diag") if n in net._scratch} == {"lif", "rec", "diag"}
    # five forwards; the scratch populations' backwards write the input gradient over their currents
    assert calls == [("forward", False)] * 5 + [("backward", False)] * 2 + [("backward", True)] * 3
    assert torch.equal(got["spk"], want["spk"]) and 0 < want["spk"].count_nonzero() < want["spk"].numel()
    torch.testing.assert_close(got["v"], want["v"], rtol=1e-5, atol=1e-6)
    for name, g in want_grads.items():
        assert g.abs().sum() > 0, name
        torch.testing.assert_close(grads[name], g, rtol=1e-5, atol=1e-5 * max(g.abs().max().item(), 1e-3),
                                   msg=lambda m, n=name: f"{n}: {m}")


def test_norse_net_torch_func_grad_equals_torch_kernels():
    """``torch.func.functional_call`` + ``torch.func.grad`` through the Triton Norse op."""
    x = torch.rand(6, 3, 6) * 4
    grads = {}
    for kernels in ("torch", "triton"):
        torch.manual_seed(0)
        net = sg.compile(norse_net(), kernels=kernels)
        params = {n: p.detach() for n, p in net.named_parameters()}

        def loss(p, net=net):
            out = torch.func.functional_call(net, p, (x,))
            return out["v"].square().sum() + out["spk"].sum()

        grads[kernels] = torch.func.grad(loss)(params)
    for name, g in grads["torch"].items():
        torch.testing.assert_close(grads["triton"][name], g, rtol=1e-5, atol=1e-5 * max(g.abs().max().item(), 1e-3),
                                   msg=lambda m, n=name: f"{n}: {m}")
