"""Runs of convolutions and pooling go through the runtime block by block (``spatial_chains``):
the same values and gradients as running each node over all rows, chosen only where the
intermediate results are read by nothing else."""

import pytest
import torch

import snngraph as sg
import snngraph.runtimes.torch.module as module
from snngraph.runtimes.torch.lower import spatial_chains


def _graph(variant: str = "plain") -> sg.Graph:
    torch.manual_seed(0)
    g = sg.Graph("chain")
    x = g.input("x", (2, 14, 14))
    c1 = g.conv2d(x, 3, 3, name="conv1")
    p1 = g.max_pool2d(c1, 2, name="pool1")
    c2 = g.conv2d(p1, 4, 3, padding=1, name="conv2")
    p2 = g.avg_pool2d(c2, 2, name="pool2")
    lif = g.leaky(g.linear(g.flatten(p2), 5, name="fc"), 0.9, name="lif")
    g.output("spk", lif)
    g.output("mem", lif.mem)
    if variant == "tap":
        g.output("pooled", p1)
    if variant == "branch":
        g.output("side", g.leaky(g.flatten(c1), 0.8, name="side"))
    return g


@pytest.mark.parametrize("variant,chains", [("plain", {"conv1": ("conv1", "pool1", "conv2", "pool2")}),
                                            ("tap", {"conv1": ("conv1", "pool1"), "conv2": ("conv2", "pool2")}),
                                            ("branch", {"pool1": ("pool1", "conv2", "pool2")})])
def test_chains_stop_where_a_result_is_read_elsewhere(variant, chains):
    assert spatial_chains(sg.compile(_graph(variant)).graph) == chains


@pytest.mark.parametrize("variant", ["plain", "tap", "branch"])
def test_chained_blocks_equal_node_by_node(variant, monkeypatch):
    g = _graph(variant)
    monkeypatch.setattr(module, "ROW_BLOCK_ELEMENTS", 3 * 12 * 12 * 7)  # blocks of 7 rows: the blocked path
    chained = sg.compile(g).double()
    plain = sg.compile(g).double()
    plain._chains, plain._chained = {}, set()
    x = torch.rand(6, 5, 2, 14, 14, dtype=torch.float64)
    results = []
    for net in (chained, plain):
        out = net(x)
        sum((v * torch.linspace(0.5, 1.5, v.numel(), dtype=v.dtype).reshape(v.shape)).sum()
            for v in out.values()).backward()
        results.append((out, {k: p.grad.clone() for k, p in net.named_parameters()}))
    (out_a, grad_a), (out_b, grad_b) = results
    assert out_a.keys() == out_b.keys()
    for key in out_a:
        torch.testing.assert_close(out_a[key], out_b[key], rtol=1e-12, atol=1e-12)
    for key in grad_a:
        torch.testing.assert_close(grad_a[key], grad_b[key], rtol=1e-10, atol=1e-10, msg=key)
