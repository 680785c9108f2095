"""The ``leaky_parallel`` model and ``sg.nn.LeakyParallel`` against snnTorch 1.0.0's ``LeakyParallel``
(float64, 12-step sequences, spikes exact, gradients 1e-8 relative) for every option, sg.trace of
models using it (diagonal and dense recurrence), a compiled-graph training step and the ONNX export.
The registry-driven tests (test_models_registry.py) cover text, files and ONNX modes."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import snntorch as snn
import torch
from neuron_helpers import assert_onnx_matches, assert_streams, assert_trains, neuron_graph
from torch import nn

import snngraph as sg
from snngraph import GraphError

T, B, I, H = 12, 3, 4, 5
CASES = {
    "random_beta": dict(),
    "scalar_beta": dict(beta=0.8),
    "default_spike_grad": dict(beta=0.7, spike_grad=None),
    "learn_beta": dict(beta=0.8, learn_beta=True),
    "random_learn_beta": dict(learn_beta=True),
    "dense": dict(beta=0.6, weight_hh_enable=True),
    "dense_learn_beta": dict(weight_hh_enable=True, learn_beta=True),
    "no_bias": dict(beta=0.9, bias=False, learn_beta=True),
    "learn_threshold_graded": dict(beta=0.8, threshold=0.7, learn_threshold=True, graded_spikes_factor=1.5,
                                   learn_graded_spikes_factor=True),
    "clamped_beta": dict(beta=1.5),
    "fast_sigmoid": dict(beta=0.8, spike_grad=sg.surrogate.fast_sigmoid(slope=5)),
    "surrogate_disable": dict(beta=0.8, surrogate_disable=True),
    "dropout_ignored": dict(beta=0.8, dropout=0.5),
}


def _inputs(shape=(T, B, I), seed: int = 0) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64) * 1.5


def _dyadic(shape: torch.Size, seed: int) -> torch.Tensor:
    # snnTorch's default surrogate returns float32 spikes: dyadic loss weights keep their gradient exact
    return torch.randint(-8, 9, shape, generator=torch.Generator().manual_seed(seed)).to(torch.float64) / 8


def _pair(**kw) -> tuple[nn.Module, nn.Module]:
    kw = dict(kw)
    if "spike_grad" not in kw and not kw.get("surrogate_disable"):
        kw["spike_grad"] = sg.surrogate.atan()  # the same float64 spec on both sides
    if kw.get("spike_grad", 0) is None:
        del kw["spike_grad"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # nn.RNN: dropout does nothing with one layer
        torch.manual_seed(1)
        ours = sg.nn.LeakyParallel(I, H, **kw).double()
        torch.manual_seed(1)
        theirs = snn.LeakyParallel(I, H, **kw).double()
    return ours, theirs


def _run(neuron: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
    x = x.clone().requires_grad_(True)
    spk = neuron(x)
    loss = (spk * _dyadic(spk.shape, 4)).sum() + x.sum()  # x.sum(): a graph even without a surrogate
    params = [p for p in neuron.parameters() if p.requires_grad]
    grads = torch.autograd.grad(loss, [x, *params], allow_unused=True)
    return spk, tuple(torch.zeros_like(p) if g is None else g for p, g in zip([x, *params], grads, strict=True))


@pytest.mark.parametrize("case", sorted(CASES))
def test_equals_snntorch(case: str) -> None:
    ours, theirs = _pair(**CASES[case])
    assert list(ours.state_dict()) == list(theirs.state_dict())
    assert [n for n, _ in ours.named_parameters()] == [n for n, _ in theirs.named_parameters()]
    for key, value in theirs.state_dict().items():
        assert torch.equal(ours.state_dict()[key], value), key
    x = _inputs()
    (spk, grads), (r_spk, r_grads) = _run(ours, x), _run(theirs, x)
    assert spk.dtype == torch.float64 and 0 < spk.count_nonzero() < spk.numel()
    assert torch.equal(spk, r_spk.to(spk.dtype))
    for a, b in zip(grads, r_grads, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-8, atol=1e-12)


@pytest.mark.parametrize("case", ["random_learn_beta", "dense_learn_beta", "no_bias", "learn_threshold_graded"])
def test_forward_equals_the_derived_step_kernel(case: str) -> None:
    """sg.nn runs torch's fused RNN; the model's derived kernel (what the compiled graph runs) agrees."""
    ours, _ = _pair(**CASES[case])
    x = _inputs(seed=7)
    spk, grads = _run(ours, x)
    stepped, r_grads = _run(type("Stepped", (nn.Module,), {"forward": lambda self, v: ours.step_by_step(v),
                                                          "parameters": lambda self: ours.parameters()})(), x)
    assert torch.equal(spk, stepped) and spk.sum() > 0
    for a, b in zip(grads, r_grads, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-8, atol=1e-12)


def test_unbatched_input_equals_snntorch() -> None:
    ours, theirs = _pair(beta=0.8)
    x = _inputs((T, I), seed=2)
    assert ours(x).shape == (T, H) and torch.equal(ours(x), theirs(x))


@pytest.mark.parametrize("dense", [False, True])
def test_training_keeps_the_recurrence_snntorch_keeps(dense: bool) -> None:
    ours, theirs = _pair(beta=0.8, learn_beta=True, weight_hh_enable=dense)
    x = _inputs(seed=3)
    for neuron in (ours, theirs):
        opt = torch.optim.SGD(neuron.parameters(), lr=0.5)
        for _ in range(3):
            opt.zero_grad()
            (neuron(x) * _dyadic((T, B, H), 4)).sum().backward()
            opt.step()
    w, r_w = ours.rnn.weight_hh_l0.detach(), theirs.rnn.weight_hh_l0.detach()
    torch.testing.assert_close(w, r_w, rtol=1e-8, atol=1e-12)
    assert torch.count_nonzero(w - torch.diag(torch.diagonal(w))) == (H * H - H if dense else 0)


def test_per_neuron_beta_sets_the_diagonal() -> None:
    """snnTorch 1.0.0 ignores a per-neuron beta (its W_hh stays random); sg.nn puts it on the diagonal,
    which is snnTorch's diagonal W_hh filled by hand."""
    beta = torch.tensor([0.1, 0.3, 0.5, 0.7, 0.9], dtype=torch.float64)
    ours, theirs = _pair(beta=beta)
    diagonal = torch.diag(beta.float().double())  # built in float32, then .double()
    assert torch.equal(ours.rnn.weight_hh_l0, diagonal)
    assert not torch.equal(theirs.rnn.weight_hh_l0, diagonal)
    with torch.no_grad():
        theirs.rnn.weight_hh_l0.copy_(diagonal)
    x = _inputs(seed=4)
    (spk, grads), (r_spk, r_grads) = _run(ours, x), _run(theirs, x)
    assert torch.equal(spk, r_spk) and spk.sum() > 0
    for a, b in zip(grads, r_grads, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-8, atol=1e-12)
    with pytest.raises(GraphError, match="hidden_size"):
        sg.nn.LeakyParallel(I, H, beta=torch.ones(3))
    with pytest.raises(GraphError, match="expects"):
        sg.nn.LeakyParallel(I, H)(torch.zeros(T, B, I + 1))


def _models(lib, dense: bool) -> nn.Module:
    torch.manual_seed(0)
    kw = dict(weight_hh_enable=True) if dense else dict(beta=0.8)  # dense: nn.RNN's random W_hh
    return nn.Sequential(nn.Linear(I, 6), lib.LeakyParallel(6, H, learn_beta=True, threshold=0.5,
                                                            spike_grad=sg.surrogate.atan(), **kw),
                         lib.LeakyParallel(H, 3, threshold=0.25, spike_grad=sg.surrogate.fast_sigmoid(),
                                           bias=False)).double()


@pytest.mark.parametrize("dense", [False, True], ids=["diagonal", "dense"])
@pytest.mark.parametrize("lib", [snn, sg.nn], ids=["snntorch", "sg.nn"])
def test_trace_computes_what_running_the_model_computes(lib, dense: bool) -> None:
    model = _models(lib, dense)
    x = _inputs((T, B, I), seed=5)
    ref = model(x)
    g = sg.trace(model, x)
    nodes = [n for n in g.nodes.values() if n.op == "leaky_parallel"]
    assert len(nodes) == 2 and nodes[0].all_to_all is dense and nodes[1].all_to_all is False
    assert nodes[0].bias_hh.learnable and nodes[1].bias_hh.is_scalar
    net = sg.compile(g).double()
    spk = net(x)["spk"]
    assert 0 < spk.count_nonzero() < spk.numel() and torch.equal(spk, ref)
    w = _dyadic(spk.shape, 6)
    grads = torch.autograd.grad((spk * w).sum(), [p for p in net.parameters() if p.requires_grad])
    ref_grads = torch.autograd.grad((model(x) * w).sum(), [p for p in model.parameters() if p.requires_grad])
    # the recurrent weights: V (diagonal) against snnTorch's masked W_hh gradient
    ours = {n: g_ for n, g_ in zip([n for n, p in net.named_parameters() if p.requires_grad], grads, strict=True)}
    theirs = {n: g_ for n, g_ in zip([n for n, p in model.named_parameters() if p.requires_grad], ref_grads,
                                     strict=True)}
    torch.testing.assert_close(ours["_1_input.weight"], theirs["1.rnn.weight_ih_l0"], rtol=1e-8, atol=1e-12)
    torch.testing.assert_close(ours["1.bias_hh"], theirs["1.rnn.bias_hh_l0"], rtol=1e-8, atol=1e-12)
    recurrent = ours["1.recurrent.weight"] if dense else torch.diag(ours["1.V"])
    torch.testing.assert_close(recurrent, theirs["1.rnn.weight_hh_l0"], rtol=1e-8, atol=1e-12)


def _graph(dense: bool) -> sg.Graph:
    rng = np.random.default_rng(0)
    rec = dict(recurrent_weight=(rng.integers(-8, 9, (H, H)) / 32).astype(np.float32), recurrent_bias=False) \
        if dense else dict(all_to_all=False, V=np.linspace(0.2, 0.9, H, dtype=np.float32))
    return neuron_graph("leaky_parallel", I, H, lambda g, c: g.leaky_parallel(
        c, threshold=0.5, bias_hh=np.full(H, 0.125, np.float32), learn_bias_hh=True, **rec, name="n"))


@pytest.mark.parametrize("dense", [False, True], ids=["diagonal", "dense"])
def test_compiled_graph_training_step(dense: bool) -> None:
    torch.manual_seed(0)
    net = sg.compile(_graph(dense))
    x = torch.rand(T, B, I, generator=torch.Generator().manual_seed(2)) * 2
    assert_trains(net, x)
    assert_streams(net, x)


@pytest.mark.parametrize("dense", [False, True], ids=["diagonal", "dense"])
def test_onnx_export_equals_torch(tmp_path, dense: bool) -> None:
    net = sg.compile(_graph(dense))
    x = torch.round(torch.rand(T, B, I, generator=torch.Generator().manual_seed(3)) * 16) / 8
    assert_onnx_matches(net, x, tmp_path / "leaky_parallel.onnx")
