"""``sg.nn.AssociativeLeaky`` against snnTorch 1.0.0's ``AssociativeLeaky`` (float64, multi-step,
outputs exact, gradients 1e-8 relative), with and without the query projection.

snnTorch evaluates the matrix state in a closed form guarded by ``+ 1e-8`` terms, which fade recent
writes out of long sequences; sg.nn runs the recurrence that closed form means. The exact
reference is therefore snnTorch's own ``forward`` with its two guards set to zero; the unguarded
comparison and the long-sequence fading are tested too. snnTorch's spikes are float32 (its
``bmm`` then fails in float64), so the references use a dtype-keeping surrogate."""

from __future__ import annotations

import inspect
import textwrap

import pytest
import snntorch as snn
import torch
from torch import nn

import snngraph as sg
from snngraph import GraphError

T, B, IN, D, N = 10, 3, 5, 2, 3


def _exact_reference() -> type:
    """snnTorch's AssociativeLeaky with its ``1e-8`` guards at zero: the closed form, exactly."""
    source = textwrap.dedent(inspect.getsource(snn.AssociativeLeaky.forward)).replace("1e-8", "0.0")
    namespace: dict = {}
    exec(source, {"torch": torch}, namespace)  # snnTorch's own code, one constant changed
    return type("ExactAssociativeLeaky", (snn.AssociativeLeaky,), {"forward": namespace["forward"]})


def _pair(reference: type, q: bool, **kw) -> tuple[nn.Module, nn.Module]:
    torch.manual_seed(2)
    ours = sg.nn.AssociativeLeaky(IN, D, N, D * N, use_q_projection=q, **kw).double()
    torch.manual_seed(2)
    theirs = reference(IN, D, N, D * N, use_q_projection=q, **kw).double()
    theirs.spike_grad = sg.surrogate.atan()
    theirs.eps = 0.0 if reference is not snn.AssociativeLeaky else theirs.eps
    return ours, theirs


def _inputs(steps: int = T, seed: int = 0) -> torch.Tensor:
    return torch.randn(steps, B, IN, generator=torch.Generator().manual_seed(seed), dtype=torch.float64) * 2


def _run(neuron: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
    x = x.clone().requires_grad_(True)
    y = neuron(x)
    w = torch.randn(y.shape, generator=torch.Generator().manual_seed(7), dtype=torch.float64)
    return y, torch.autograd.grad((y * w).sum(), [x, *neuron.parameters()])


@pytest.mark.parametrize("q", [True, False], ids=["q_projection", "no_q"])
def test_equals_snntorch_closed_form(q: bool) -> None:
    ours, theirs = _pair(_exact_reference(), q)
    assert list(ours.state_dict()) == list(theirs.state_dict())
    assert all(torch.equal(v, theirs.state_dict()[k]) for k, v in ours.state_dict().items())
    x = _inputs()
    (y, grads), (r_y, r_grads) = _run(ours, x), _run(theirs, x)
    assert y.shape == (T, B, D * D if q else D * N) and 0 < y.count_nonzero() < y.numel()
    torch.testing.assert_close(y, r_y, rtol=1e-9, atol=1e-12)
    for a, b in zip(grads, r_grads, strict=True):
        assert a.abs().sum() > 0
        torch.testing.assert_close(a, b, rtol=1e-8, atol=1e-12)


def test_short_sequences_equal_unmodified_snntorch() -> None:
    ours, theirs = _pair(snn.AssociativeLeaky, True)
    x = _inputs(8, seed=1)
    y, r_y = ours(x), theirs(x)
    torch.testing.assert_close(y, r_y, rtol=1e-9, atol=1e-12)  # the spikes agree, so the readouts do


def test_long_sequences_keep_recent_writes() -> None:
    """At a decay near 0.5 snnTorch's guard overtakes the decay product after ~27 steps and the state
    forgets what was just written; the recurrence keeps it (spikes stay alive)."""
    ours, theirs = _pair(snn.AssociativeLeaky, False)
    with torch.no_grad():
        for m in (ours, theirs):
            m.to_alpha.weight.zero_()
            m.to_alpha.bias.zero_()  # alpha = 0.5 everywhere
    x = _inputs(80, seed=3)
    y, r_y = ours(x), theirs(x)
    assert y[60:].sum() > 0 and r_y[60:].sum() == 0
    torch.testing.assert_close(y[:20], r_y[:20])


def test_constructors_and_errors() -> None:
    neuron = sg.nn.AssociativeLeaky.from_num_spiking_neurons(IN, 9)
    assert (neuron.d_value, neuron.d_key) == (3, 3) and neuron(torch.randn(4, 2, IN)).shape == (4, 2, 9)
    assert sg.nn.AssociativeLeaky(IN, D, N, None).num_spiking_neurons is None
    with pytest.raises(GraphError, match="perfect square"):
        sg.nn.AssociativeLeaky.from_num_spiking_neurons(IN, 8)
    with pytest.raises(GraphError, match="must equal"):
        sg.nn.AssociativeLeaky(IN, D, N, 7)
    with pytest.raises(GraphError, match="positive"):
        sg.nn.AssociativeLeaky(0, D, N, None)
    assert sg.nn.AssociativeLeaky(IN, D, N, None, use_q_projection=False).to_q is None


def _model(lib, q: bool) -> nn.Module:
    torch.manual_seed(5)
    model = nn.Sequential(nn.Linear(4, IN), lib.AssociativeLeaky(IN, D, N, D * N, use_q_projection=q)).double()
    model[1].spike_grad = sg.surrogate.atan()  # snnTorch's float32 spikes fail in float64
    return model


@pytest.mark.parametrize("q", [True, False], ids=["q_projection", "no_q"])
@pytest.mark.parametrize("lib", [snn, sg.nn], ids=["snntorch", "sg.nn"])
def test_trace_computes_what_running_the_model_computes(lib, q: bool) -> None:
    """The traced graph holds one ``associative_leaky`` node with the module's projections (its
    ``state_dict`` keys); it equals sg.nn's module, forward and gradients."""
    model, ours = _model(lib, q), _model(sg.nn, q)
    x = _inputs(T, seed=8)[..., :4] * 2
    g = sg.trace(model, x)
    assert [n.op for n in g.nodes.values() if n.family == "neuron"] == ["associative_leaky"]
    net = sg.compile(g).double()
    assert set(net.state_dict()) == set(model.state_dict())
    y = next(iter(net(x).values()))
    ref = ours(x)
    assert 0 < ref.count_nonzero() < ref.numel()
    torch.testing.assert_close(y, ref, rtol=1e-9, atol=1e-12)
    w = torch.randn(ref.shape, generator=torch.Generator().manual_seed(9), dtype=torch.float64)
    trained = [p for p in net.parameters() if p.requires_grad]
    grads = torch.autograd.grad((y * w).sum(), trained)
    r_grads = torch.autograd.grad((ref * w).sum(), list(ours.parameters()))
    assert len(grads) == len(r_grads)
    for a, b in zip(grads, r_grads, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-8, atol=1e-12)


def test_traced_graph_trains_and_exports_to_onnx(tmp_path) -> None:
    import numpy as np
    import onnxruntime as ort

    model = _model(sg.nn, True).float()
    x = torch.round(torch.randn(T, B, 4, generator=torch.Generator().manual_seed(3)) * 16) / 8
    net = sg.compile(sg.trace(model, x))
    opt = torch.optim.SGD(net.parameters(), lr=0.05)
    before = {k: v.detach().clone() for k, v in net.named_parameters() if v.requires_grad}
    next(iter(net(x).values())).pow(2).mean().backward()
    opt.step()
    assert all(not torch.equal(before[k], v) for k, v in net.named_parameters() if v.requires_grad)
    with torch.no_grad():
        y = next(iter(net(x).values()))
    path = tmp_path / "associative.onnx"
    sg.export_onnx(net, path)
    session = ort.InferenceSession(str(path))
    (r_y,) = session.run(None, {session.get_inputs()[0].name: x.numpy()})
    assert y.count_nonzero() > 0
    np.testing.assert_allclose(r_y, y.numpy(), rtol=1e-5, atol=1e-5)
