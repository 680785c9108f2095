r"""Learnable spike magnitudes (snnTorch 1.0.0's ``GradedSpikes``).

.. math:: y_{b,i} = w_i\, x_{b,i}

One weight per neuron of the preceding layer, a parameter of shape ``(size, 1)`` as in snnTorch
(so state dicts load either way), initialised to ``constant_factor`` or, when it is falsy, drawn
from :math:`\mathcal{U}[0.5, 1.5)` with ``torch.rand`` like snnTorch.

Note:
    snnTorch 1.0.0 multiplies the input by the ``(size, 1)`` weights as they are, which
    broadcasts along the *second-to-last* axis: a ``(batch, size)`` input fails unless
    ``batch == size`` (then it scales samples, not neurons) or ``batch == 1`` (then it returns a
    ``(size, size)`` outer product). snngraph scales the neuron axis, axis 1 (features of
    ``(B, size)``, channels of ``(B, size, ...)``); a 1-D ``(size,)`` input is scaled per element.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from snngraph.ir.errors import GraphError

__all__ = ["GradedSpikes"]


class GradedSpikes(nn.Module):
    """Per-neuron learnable spike magnitude: ``GradedSpikes(size, constant_factor)``."""

    def __init__(self, size: int, constant_factor: float | None):
        super().__init__()
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            raise GraphError(f"GradedSpikes: size must be a positive integer, got {size!r}")
        self.size = size
        shape = [size, 1]
        self.weights = nn.Parameter(torch.ones(size=shape) * constant_factor if constant_factor
                                    else torch.rand(size=shape) + 0.5)

    def forward(self, x: Tensor) -> Tensor:
        """``x`` with axis 1 (axis 0 for a 1-D input) scaled by the weights."""
        axis = 0 if x.dim() == 1 else 1
        if x.dim() == 0 or x.shape[axis] != self.size:
            raise GraphError(f"GradedSpikes: input of shape {tuple(x.shape)} has no neuron axis of size "
                             f"{self.size} (axis 1, or axis 0 of a 1-D input)")
        return x * self.weights.reshape(self.size, *([1] * (x.dim() - axis - 1)))

    def extra_repr(self) -> str:
        return f"size={self.size}"
