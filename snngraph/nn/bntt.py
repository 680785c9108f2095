r"""Batch normalisation through time (BNTT, Kim & Panda 2021), snnTorch 1.0.0's ``BatchNormTT1d/2d``.

Each time step has its own batch norm, with a per-step learnable scale :math:`\gamma^t` and no
shift (the bias is removed), so statistics and scale follow the changing spike rates:

.. math:: U^t = \lambda U^{t-1} + \gamma^t \frac{I^t - \mu^t}{\sqrt{(\sigma^t)^2 + \epsilon}}

Both return an ``nn.ModuleList`` of ``time_steps`` ``nn.BatchNorm1d`` / ``nn.BatchNorm2d`` layers,
exactly as snnTorch does (same parameter and buffer names, so state dicts load either way); step
``t`` applies ``bntt[t]``.

Example::

    bn = sg.nn.BatchNormTT1d(128, time_steps=25)
    for t in range(25):
        spk, mem = lif(bn[t](fc(x[t])), mem)
"""

from __future__ import annotations

from torch import nn

from snngraph.ir.errors import GraphError

__all__ = ["BatchNormTT1d", "BatchNormTT2d"]


def _bntt(cls: type[nn.Module], input_features: int, time_steps: int, eps: float, momentum: float,
          affine: bool) -> nn.ModuleList:
    name = "BatchNormTT1d" if cls is nn.BatchNorm1d else "BatchNormTT2d"
    for arg, value in (("input_features", input_features), ("time_steps", time_steps)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise GraphError(f"{name}: {arg} must be a positive integer, got {value!r}")
    bntt = nn.ModuleList([cls(input_features, eps=eps, momentum=momentum, affine=affine) for _ in range(time_steps)])
    for bn in bntt:
        bn.bias = None
    return bntt


def BatchNormTT1d(input_features: int, time_steps: int, eps: float = 1e-5, momentum: float = 0.1,
                  affine: bool = True) -> nn.ModuleList:
    """``time_steps`` ``nn.BatchNorm1d(input_features)`` layers without bias, one per time step.

    Args:
        input_features: features ``C`` of the ``(B, C)`` or ``(B, C, L)`` input.
        time_steps: number of time steps of the network.
        eps: added to the variance for numerical stability.
        momentum: running-statistics momentum.
        affine: whether each step has a learnable scale :math:`\\gamma^t`.

    Raises:
        GraphError: ``input_features`` or ``time_steps`` is not a positive integer.
    """
    return _bntt(nn.BatchNorm1d, input_features, time_steps, eps, momentum, affine)


def BatchNormTT2d(input_features: int, time_steps: int, eps: float = 1e-5, momentum: float = 0.1,
                  affine: bool = True) -> nn.ModuleList:
    """``time_steps`` ``nn.BatchNorm2d(input_features)`` layers without bias, one per time step.

    Args:
        input_features: channels ``C`` of the ``(B, C, H, W)`` input.
        time_steps, eps, momentum, affine: as in :func:`BatchNormTT1d`.

    Raises:
        GraphError: ``input_features`` or ``time_steps`` is not a positive integer.
    """
    return _bntt(nn.BatchNorm2d, input_features, time_steps, eps, momentum, affine)
