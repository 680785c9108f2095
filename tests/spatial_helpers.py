"""Shared checks of the spatial and shape layer tests: a compiled graph against the torch op stepped
per time step in float64, forward and gradients (inputs and parameters)."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

import snngraph as sg

T, B = 6, 3


def assert_matches_stepped(g: sg.Graph, reference: Callable[..., torch.Tensor], params: dict[str, nn.Parameter]
                           | None = None, seed: int = 0) -> None:
    """``g`` compiled (float64, eval) equals ``reference`` applied to each step's (B, ...) inputs over a T-step
    sequence: outputs to 1e-9, input gradients and the gradients of ``params`` (reference parameter -> compiled
    net's ``state_dict`` key) to 1e-8 relative."""
    gen = torch.Generator().manual_seed(seed)
    xs = {k: torch.randn((T, B, *n.shape), generator=gen, dtype=torch.float64, requires_grad=True)
          for k, n in g.inputs.items()}
    net = sg.compile(g).double().eval()
    got = net(**xs)["out"]
    want = torch.stack([reference(*(xs[k][t] for k in g.inputs)) for t in range(T)])
    assert got.shape == want.shape and got.dtype == torch.float64
    torch.testing.assert_close(got, want, atol=1e-9, rtol=1e-9)
    weights = torch.randn(got.shape, generator=gen, dtype=torch.float64)
    ref_params = list((params or {}).values())
    net_params = [dict(net.named_parameters())[k] for k in (params or {})]
    leaves = list(xs.values())
    grads_got = torch.autograd.grad((got * weights).sum(), leaves + net_params)
    grads_want = torch.autograd.grad((want * weights).sum(), leaves + ref_params)
    for a, b in zip(grads_got, grads_want, strict=True):
        torch.testing.assert_close(a, b, atol=1e-10, rtol=1e-8)


def load_from(g: sg.Graph, node: str, module: nn.Module) -> nn.Module:
    """``module`` (float64) holding the parameter values of IR node ``node``."""
    module = module.double()
    with torch.no_grad():
        for key, p in g.nodes[node].params().items():
            getattr(module, key).copy_(torch.tensor(p.value))
    return module
