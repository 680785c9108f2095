"""SpikingJelly 2.0's zoo Spikformer (``model.spikformer``, unmodified) through sg.trace's sequence-level
tracing: forward and gradients against SpikingJelly's multi-step run, state_dict keys both ways, a
training step, ONNX export. Small config: 32x32 inputs, patch 4, embed 64, 4 heads, 1-2 blocks, T=4,
B=2, float64, in evaluation mode and in training mode (its batch norms, called on ``x.flatten(0, 1)``,
trace as ``stats="sequence"``: statistics of the T*B rows, as SpikingJelly's)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import snngraph as sg

pytest.importorskip("spikingjelly.activation_based")
from spikingjelly.activation_based import neuron  # noqa: E402

from tests.onnx_helpers import compare, quantise  # noqa: E402
from tests.sj_helpers import only, step_sj, zoo  # noqa: E402

T, B = 4, 2


def _images(seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.rand(T, B, 3, 32, 32, generator=gen, dtype=torch.float64)


def _spikformer(depths: int = 1, seed: int = 0) -> nn.Module:
    """The zoo's Spikformer with batch norms calibrated on one sequence (running statistics of that
    sequence, spread affine parameters), so that every layer spikes."""
    torch.manual_seed(seed)
    model = zoo("spikformer").Spikformer(T=T, img_size_h=32, img_size_w=32, patch_size=4, num_classes=10,
                                         embed_dims=64, num_heads=4, depths=depths).double()
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    with torch.no_grad():
        for bn in norms:
            bn.momentum = 1.0
            bn.weight.uniform_(0.8, 1.6)
            bn.bias.uniform_(-0.2, 0.4)
        model.train()
        step_sj(model, _images(99), multi_step=True)
    for bn in norms:
        bn.momentum = 0.1
    return model.eval()


def _spike_rates(model: nn.Module, x: torch.Tensor) -> dict[str, float]:
    rates: dict[str, float] = {}
    hooks = [m.register_forward_hook(lambda mod, i, o, k=k: rates.__setitem__(k, float(o.mean())))
             for k, m in model.named_modules() if isinstance(m, neuron.BaseNode)]
    with torch.no_grad():
        step_sj(model, x, multi_step=True)
    for h in hooks:
        h.remove()
    return rates


def _grads(module: nn.Module, out: torch.Tensor, weights: torch.Tensor) -> dict[str, torch.Tensor]:
    module.zero_grad()
    (out * weights).sum().backward()
    return {k: p.grad.clone() for k, p in module.named_parameters()}


@pytest.mark.parametrize("depths", [1, 2])
def test_spikformer_forward_and_gradients(depths):
    model = _spikformer(depths)
    x = _images()
    rates = _spike_rates(model, x)
    assert len(rates) == 5 + 5 * depths and all(0 < r < 1 for r in rates.values()), rates
    g = sg.trace(model, x)
    ops = [n.op for n in g.nodes.values()]
    assert ops.count("matmul") == 2 * depths and ops.count("slice") == 3 * depths and "permute" not in ops
    net = sg.compile(g).double().eval()
    assert set(net.state_dict()) == set(model.state_dict())
    x_want, x_got = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
    want = step_sj(model, x_want, multi_step=True)
    got = only(net(x_got))
    assert got.shape == (T, B, 10)
    torch.testing.assert_close(got, want, rtol=1e-9, atol=1e-9)
    weights = torch.randn_like(want)
    grads_want, grads_got = _grads(model, want, weights), _grads(net, got, weights)
    assert set(grads_got) == set(grads_want)
    for key, value in grads_want.items():
        torch.testing.assert_close(grads_got[key], value, rtol=1e-8, atol=1e-10, msg=key)
    assert x_want.grad.abs().sum() > 0
    torch.testing.assert_close(x_got.grad, x_want.grad, rtol=1e-8, atol=1e-10)


def test_spikformer_in_training_mode_pools_batch_norm_statistics():
    model = _spikformer(1)
    x = _images(3)
    g = sg.trace(model, x)
    assert {n.stats for n in g.nodes.values() if n.op == "batch_norm"} == {"sequence"}
    net = sg.compile(g).double()
    model.train(), net.train()
    want = step_sj(model, x, multi_step=True)
    got = only(net(x))
    torch.testing.assert_close(got, want, rtol=1e-9, atol=1e-9)
    weights = torch.randn_like(want)
    grads_want, grads_got = _grads(model, want, weights), _grads(net, got, weights)
    for key, value in grads_want.items():
        torch.testing.assert_close(grads_got[key], value, rtol=1e-8, atol=1e-10, msg=key)
    stats = {k: v for k, v in model.state_dict().items() if "running" in k}
    for key, value in stats.items():
        torch.testing.assert_close(net.state_dict()[key], value, rtol=1e-12, atol=1e-12, msg=key)


def test_spikformer_state_dict_both_ways():
    model, other = _spikformer(seed=0), _spikformer(seed=1)
    x = _images(2)
    net = sg.compile(sg.trace(model, x)).double().eval()
    net.load_state_dict(other.state_dict())
    with torch.no_grad():
        torch.testing.assert_close(only(net(x)), step_sj(other, x, multi_step=True), rtol=1e-9, atol=1e-9)
        model.load_state_dict(net.state_dict())
        torch.testing.assert_close(step_sj(model, x, multi_step=True), step_sj(other, x, multi_step=True))


def test_spikformer_training_step():
    """One SGD step on the same loss in both (evaluation-mode batch norms): the same parameters after, the
    same outputs; then a training-mode step of the compiled net lowers its loss."""
    model = _spikformer()
    x, target = _images(3), torch.randint(0, 10, (B,), generator=torch.Generator().manual_seed(3))
    net = sg.compile(sg.trace(model, x)).double().eval()
    for module in (model, net):
        opt = torch.optim.SGD(module.parameters(), lr=0.5)
        out = step_sj(model, x, multi_step=True) if module is model else only(net(x))
        nn.functional.cross_entropy(out.mean(0), target).backward()
        opt.step()
        opt.zero_grad()
    params = dict(net.named_parameters())
    for key, value in model.named_parameters():
        torch.testing.assert_close(params[key], value, rtol=1e-9, atol=1e-12, msg=key)
    with torch.no_grad():
        torch.testing.assert_close(only(net(x)), step_sj(model, x, multi_step=True), rtol=1e-9, atol=1e-9)
    net.train()
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    losses = []
    for _ in range(3):
        loss = nn.functional.cross_entropy(only(net(x)).mean(0), target)
        losses.append(float(loss.detach()))
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert np.isfinite(losses).all() and losses[-1] < losses[0]


def test_spikformer_exports_to_onnx(tmp_path):
    model = _spikformer().float()
    g = quantise(sg.trace(model, torch.zeros(T, B, 3, 32, 32)))
    out = compare(g, tmp_path, shapes=((T, B), (2, 3)), scale=1.0)
    assert np.abs(next(iter(out.values()))).sum() > 0
