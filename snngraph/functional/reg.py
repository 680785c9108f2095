"""Activity regularisers (snnTorch's ``l1_rate_sparsity``)."""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["l1_rate_sparsity"]


class l1_rate_sparsity:
    """L1 penalty on the total spike count: ``Lambda * spk_out.sum()``.

    Args:
        Lambda: Scale of the penalty.
    """

    __name__ = "l1_rate_sparsity"

    def __init__(self, Lambda=1e-5):  # snnTorch's argument name
        self.Lambda = Lambda

    def __call__(self, spk_out: Tensor) -> Tensor:
        if not isinstance(spk_out, Tensor):
            raise TypeError(f"`spk_out` must be a torch.Tensor, got {type(spk_out).__name__}")
        return self.Lambda * torch.sum(spk_out)

    def __repr__(self) -> str:
        return f"l1_rate_sparsity(Lambda={self.Lambda!r})"
