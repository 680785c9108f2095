"""Activation synapses: element-wise ``sigmoid``, ``tanh`` and ``gelu`` of the per-step value."""

from __future__ import annotations

from typing import ClassVar

from snngraph.ir.node import same_type
from snngraph.ir.synapses import Synapse, frozen

GELU_APPROXIMATIONS = ("none", "tanh")


@frozen
class Sigmoid(Synapse):
    """``1 / (1 + exp(-x))`` (``torch.nn.Sigmoid``)."""

    op: ClassVar[str] = "sigmoid"

    def infer(self, ins):
        return {"out": same_type(self, ins, spike=False)}


@frozen
class Tanh(Synapse):
    """``tanh(x)`` (``torch.nn.Tanh``)."""

    op: ClassVar[str] = "tanh"

    def infer(self, ins):
        return {"out": same_type(self, ins, spike=False)}


@frozen
class GELU(Synapse):
    """``x * Phi(x)`` (``torch.nn.GELU``); ``approximate="tanh"`` is torch's tanh approximation."""

    approximate: str = "none"
    op: ClassVar[str] = "gelu"

    def check(self):
        if self.approximate not in GELU_APPROXIMATIONS:
            raise self.error(f"approximate must be one of {list(GELU_APPROXIMATIONS)}, got {self.approximate!r}")

    def infer(self, ins):
        return {"out": same_type(self, ins, spike=False)}
