"""A compiled net is an ordinary PyTorch module (SPEC §11, issue 16): its synapses are torch modules
called in the forward pass (hooks, apply, prune, print), and it deep-copies, pickles, averages and
trains under autocast; tracing exporters are refused naming sg.export_onnx.
(torch.compile / torch.export / torch.func: tests/test_torch_compile.py.)"""

from __future__ import annotations

import copy
import io
import warnings

import pytest
import torch
import torch.nn.utils.prune as prune
from torch import nn

import snngraph as sg


def _net(conv: bool = False) -> torch.nn.Module:
    torch.manual_seed(0)
    g = sg.Graph("m")
    if conv:
        x = g.input("x", shape=(2, 8, 8))
        h = g.max_pool2d(g.conv2d(x, 4, 3, padding=1, name="conv"), 2, name="pool")
        h = g.leaky(g.batch_norm(h, name="bn"), beta=0.9, name="lif0")
        x = g.flatten(h, name="flat")
    else:
        x = g.input("x", shape=(12,))
    h = g.leaky(g.linear(x, 16, name="fc1"), beta=0.9, learn_beta=True, name="lif1")
    o = g.leaky(g.linear(h, 4, name="fc2"), beta=0.9, name="lif2")
    g.output("spk", o)
    g.output("mem", o.mem)
    return sg.compile(g)


def _x(conv: bool = False) -> torch.Tensor:
    shape = (6, 3, 2, 8, 8) if conv else (6, 3, 12)
    return torch.rand(*shape, generator=torch.Generator().manual_seed(1)) * 2


def test_synapses_are_their_torch_modules():
    net = _net(conv=True)
    assert type(net.fc1).__mro__[1] is nn.Linear and isinstance(net.fc1, nn.Linear)
    assert isinstance(net.conv, nn.Conv2d) and isinstance(net.pool, nn.MaxPool2d)
    assert isinstance(net.bn, nn.BatchNorm2d) and isinstance(net.flat, nn.Flatten)
    text = str(net)
    assert "Linear(in_features=64, out_features=16, bias=True)" in text and "Conv2d(2, 4" in text
    assert "NodeParams(beta=[], threshold=[], graded_spikes_factor=[])" in text
    linears = []
    net.apply(lambda m: linears.append(m) if isinstance(m, nn.Linear) else None)
    assert linears == [net.fc1, net.fc2]
    assert {"fc1.weight", "conv.weight", "bn.running_mean", "lif1.beta"} <= set(net.state_dict())


def test_forward_hooks_run_with_the_whole_sequence_as_rows():
    net = _net()
    seen = []
    handle = net.fc2.register_forward_hook(lambda m, args, out: seen.append((tuple(args[0].shape), out)))
    out = net(_x())
    handle.remove()
    (shape, rows), = seen
    assert shape == (18, 16) and rows.shape == (18, 4)  # T*B rows, once (spike-fed: the bool-saving path)
    net(_x())
    assert len(seen) == 1 and out["mem"].abs().sum() > 0


def test_pruning_trains_through_the_module():
    net = _net()
    prune.l1_unstructured(net.fc1, "weight", amount=0.5)
    mask = net.fc1.weight_mask.clone()
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    for _ in range(2):
        loss = net(_x())["mem"].pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert net.fc1.weight_orig.grad is not None and torch.equal(net.fc1.weight == 0, mask == 0)


def test_deepcopy_save_and_averaged_model():
    net = _net(conv=True).eval()
    x = _x(conv=True)
    ref = net(x)
    twin = copy.deepcopy(net)
    assert torch.equal(twin(x)["spk"], ref["spk"]) and twin.fc1.weight is not net.fc1.weight
    with torch.no_grad():
        twin.fc1.weight.zero_()
    assert net.fc1.weight.abs().sum() > 0
    buffer = io.BytesIO()
    torch.save(net, buffer)
    buffer.seek(0)
    loaded = torch.load(buffer, weights_only=False)
    assert torch.equal(loaded(x)["mem"], ref["mem"])
    average = torch.optim.swa_utils.AveragedModel(net)
    average.update_parameters(net)
    assert torch.equal(average(x)["spk"], ref["spk"])


def test_autocast_bfloat16_forward_and_backward():
    net = _net()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = net(_x())
        loss = out["mem"].float().pow(2).mean() + out["spk"].float().mean()
    loss.backward()
    assert out["mem"].dtype == torch.float32  # neuron state accumulates in float32 (lower.neuron_precision)
    grads = [p.grad for p in net.parameters()]
    assert all(g is not None and g.dtype == torch.float32 and torch.isfinite(g).all() for g in grads)


def test_tracing_exporters_name_sg_export_onnx(tmp_path):
    net = _net()
    with pytest.raises(sg.GraphError, match="sg.export_onnx"), warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # torch's notice about its legacy exporter
        torch.onnx.export(net, (_x(),), str(tmp_path / "m.onnx"), dynamo=False)
    with pytest.raises(sg.GraphError, match="sg.export_onnx"), warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # torch.jit.trace is deprecated itself
        torch.jit.trace(net, (_x(),), strict=False)
    assert not (tmp_path / "m.onnx").exists()
