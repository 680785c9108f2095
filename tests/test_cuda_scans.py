"""Every fused torch scan (snnTorch's, SpikingJelly's, Norse's, the LSTMs') on a CUDA device against the same
net on the CPU: forward outputs and every gradient, eager and under ``torch.compile`` (the scans' custom
ops), float64. Skipped without a GPU; ``benchmarks/gpu_check.sh`` runs it where one is lent.

``SNNGRAPH_TEST_DEVICE=cpu`` runs the same comparisons CPU against CPU (a check of the test itself).
"""

from __future__ import annotations

import copy
import os

import pytest
import torch
from model_cases import (
    MODELS,
    assert_grads_close,
    build,
    graph_inputs,
    learnable,
    run_with_grads,
    scan_cases,
    variant_kw,
)

import snngraph as sg

DEVICE = torch.device(os.environ.get("SNNGRAPH_TEST_DEVICE", "cuda"))
pytestmark = pytest.mark.skipif(DEVICE.type == "cuda" and not torch.cuda.is_available(), reason="needs a CUDA device")


def _on(net: torch.nn.Module, compiled: bool):
    moved = copy.deepcopy(net).to(DEVICE)
    return moved, (torch.compile(moved, fullgraph=True, dynamic=True, backend="aot_eager") if compiled else moved)


@pytest.mark.parametrize("compiled", [False, True], ids=["eager", "compiled"])
@pytest.mark.parametrize(("model_name", "options", "variant"), scan_cases())
def test_scan_on_the_device_equals_the_cpu(model_name, options, variant, compiled):
    torch._dynamo.reset()
    g = build(model_name, learn=learnable(MODELS[model_name]), **variant_kw(variant), **options)
    net = sg.compile(g).double()
    assert net.graph.nodes["n"].fused
    x = torch.from_numpy(graph_inputs(g)).double()
    want_out, want_grads = run_with_grads(net, x)
    moved, run = _on(net, compiled)
    got_out, got_grads = run_with_grads(_Forward(moved, run), x.to(DEVICE))
    for key, want in want_out.items():
        torch.testing.assert_close(got_out[key].cpu(), want, rtol=1e-12, atol=1e-12, msg=key)
    assert_grads_close(got_grads, want_grads)


class _Forward(torch.nn.Module):
    """``run`` (the moved net, perhaps compiled) with the moved net's parameters as its own."""

    def __init__(self, net: torch.nn.Module, run):
        super().__init__()
        self.net, self._run = net, run

    def forward(self, x):
        return self._run(x)

    def named_parameters(self, *args, **kwargs):
        return self.net.named_parameters(*args, **kwargs)
