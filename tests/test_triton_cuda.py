"""On a CUDA device, without the interpreter: the Triton scans against the torch scans (the comparisons of
``test_triton_scans.py``), and the compiled net on CUDA (issue 16 item 6): a training step with
``kernels="auto"`` (Triton) equal to ``kernels="torch"``, streaming steps, and state on the input's
device. Skipped without a GPU (``benchmarks/gpu_check.sh`` runs them where one is lent)."""

import pytest
import torch

import snngraph as sg
from snngraph.runtimes.torch.triton import available, interpreting

pytestmark = [
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
    pytest.mark.skipif(not available(), reason="triton is not installed"),
    pytest.mark.skipif(interpreting(), reason="TRITON_INTERPRET=1 runs kernels on CPU tensors, not the GPU"),
]

from test_triton_compile import _spy, every_fusable_model, norse_net  # noqa: E402
from triton_cases import (  # noqa: E402
    LEAKY,
    LSTM,
    RECURRENT,
    SPIKINGJELLY,
    SURROGATES,
    SYNAPTIC,
    check_leaky,
    check_low_precision,
    check_lstm,
    check_lstm_low_precision,
    check_recurrent,
    check_sj,
    check_sj_low_precision,
    check_synaptic,
)
from triton_cases_norse import NORSE, check_norse, check_norse_low_precision  # noqa: E402

CUDA = torch.device("cuda")


@pytest.mark.parametrize("reset,delay,per_neuron,graded", LEAKY)
def test_leaky(reset, delay, per_neuron, graded):
    check_leaky(reset, delay, per_neuron, graded, CUDA)


@pytest.mark.parametrize("surrogate", SURROGATES, ids=lambda s: s.name)
def test_leaky_surrogates(surrogate):
    check_leaky("subtract", False, True, 1.0, CUDA, surrogate=surrogate)


@pytest.mark.parametrize("model", ["integrate_fire", "leaky_integrator"])
def test_if_and_li(model):
    check_leaky("zero", True, True, 1.0, CUDA, model=model)


@pytest.mark.parametrize("reset,dense,per_neuron", RECURRENT)
def test_recurrent(reset, dense, per_neuron):
    check_recurrent(reset, dense, per_neuron, CUDA)


@pytest.mark.parametrize("reset,per_neuron,graded", SYNAPTIC)
def test_synaptic(reset, per_neuron, graded):
    check_synaptic(reset, per_neuron, graded, CUDA)


@pytest.mark.parametrize("model,reset,detach,decay_input", SPIKINGJELLY)
def test_spikingjelly(model, reset, detach, decay_input):
    check_sj(model, reset, detach, decay_input, CUDA)
    check_sj(model, reset, detach, decay_input, CUDA, scratch=True)


@pytest.mark.parametrize("case", sorted(LSTM))
def test_lstm(case):
    check_lstm(case, CUDA)
    check_lstm(case, CUDA, surrogate=SURROGATES[1], scratch=True)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_low_precision_state(dtype):
    check_low_precision(dtype, CUDA)
    check_sj_low_precision(dtype, CUDA)
    check_lstm_low_precision(dtype, CUDA)


def _train(kernels: str, x: torch.Tensor, target: torch.Tensor):
    torch.manual_seed(0)
    net = sg.compile(every_fusable_model(), kernels=kernels).to(CUDA)
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    out = net(x)
    loss = torch.nn.functional.mse_loss(out["mem"], target) + out["spk"].mean()
    loss.backward()
    opt.step()
    return out, {k: p.detach().clone() for k, p in net.named_parameters()}


def test_training_step_on_cuda_auto_is_triton_and_equals_torch(monkeypatch):
    torch.manual_seed(1)
    x, target = (torch.rand(20, 16, 6) * 2).to(CUDA), torch.rand(20, 16, 3).to(CUDA)
    out_t, params_t = _train("torch", x, target)
    calls = _spy(monkeypatch)
    out, params = _train("auto", x, target)
    assert calls == {"leaky": 3, "recurrent": 1, "synaptic": 1}
    assert out["spk"].device.type == "cuda"
    assert (out["spk"] == out_t["spk"]).float().mean() > 0.999  # GEMMs may round differently by kernel choice
    torch.testing.assert_close(out["mem"], out_t["mem"], rtol=1e-4, atol=1e-5)
    for name, p in params_t.items():
        assert p.device.type == "cuda"
        torch.testing.assert_close(params[name], p, rtol=1e-4, atol=1e-5, msg=lambda m, n=name: f"{n}: {m}")


def test_streaming_steps_on_cuda_match_the_sequence():
    torch.manual_seed(0)
    net = sg.compile(every_fusable_model()).to(CUDA).eval()
    x = torch.rand(12, 4, 6, device=CUDA) * 2
    with torch.no_grad():
        whole = net(x)
        state = net.init_state(4, like=x)
        assert all(v.device.type == "cuda" for v in state.values())
        steps = []
        for t in range(x.shape[0]):
            out, state = net.step(x[t], state)
            steps.append(out["mem"])
        assert all(v.device.type == "cuda" for v in state.values())
    torch.testing.assert_close(torch.stack(steps), whole["mem"], rtol=1e-4, atol=1e-5)


def test_torch_compile_on_cuda_with_triton_kernels():
    torch.manual_seed(0)
    net = sg.compile(every_fusable_model(), kernels="triton").to(CUDA)
    x = torch.rand(10, 8, 6, device=CUDA) * 2
    eager = net(x)["mem"]
    compiled = torch.compile(net, fullgraph=True)(x)["mem"]
    torch.testing.assert_close(compiled, eager, rtol=1e-5, atol=1e-6)
    compiled.sum().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in net.parameters())


@pytest.mark.parametrize("cell,per_neuron,leak", NORSE)
def test_norse(cell, per_neuron, leak):
    check_norse(cell, per_neuron, leak, CUDA)


@pytest.mark.parametrize("cell", ["lif", "dense", "diagonal"])
def test_norse_scratch(cell):
    check_norse(cell, True, True, CUDA, scratch=True, ports="spk")


@pytest.mark.parametrize("cell", ["lif", "dense", "box_subtract"])
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_norse_low_precision_state(cell, dtype):
    check_norse_low_precision(cell, dtype, CUDA)


def test_norse_net_on_cuda_auto_is_triton_and_equals_torch(monkeypatch):
    """Every Norse model (``test_triton_compile.norse_net``) with ``kernels="auto"``: the Triton kernels, a training
    step equal to ``kernels="torch"`` (the GEMMs may round differently by kernel choice)."""

    from snngraph.runtimes.torch.triton import norse

    x = (torch.rand(20, 16, 6) * 4).to(CUDA)
    results = {}
    for kernels in ("torch", "auto"):
        calls = []
        original = norse.forward
        monkeypatch.setattr(norse, "forward", lambda *a, _o=original, _c=calls, **k: _c.append(1) or _o(*a, **k))
        torch.manual_seed(0)
        net = sg.compile(norse_net(), kernels=kernels).to(CUDA)
        out = net(x)
        (out["v"].square().sum() + out["spk"].sum()).backward()
        results[kernels] = out, {k: p.grad for k, p in net.named_parameters()}, len(calls)
    (out_t, grads_t, calls_t), (out, grads, calls) = results["torch"], results["auto"]
    assert (calls_t, calls) == (0, 5)
    assert (out["spk"] == out_t["spk"]).float().mean() > 0.999
    torch.testing.assert_close(out["v"], out_t["v"], rtol=1e-4, atol=1e-5)
    for name, g in grads_t.items():
        torch.testing.assert_close(grads[name], g, rtol=1e-4, atol=1e-4 * max(g.abs().max().item(), 1e-3),
                                   msg=lambda m, n=name: f"{n}: {m}")
