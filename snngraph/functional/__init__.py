"""Losses, accuracy, regularisers and state quantisation for spiking outputs.

Names and arguments follow ``snntorch.functional`` 1.0.0; outputs are recorded time-first,
``(T, B, C)``, and targets are class indices ``(B,)``.

``probe`` holds the hook-based monitors (``probe.OutputMonitor`` ...); ``stdp`` / ``stdp_learner``
snnTorch's STDP rules and ``STDPLearner`` (snnTorch 1.0.0 keeps them in ``functional.stdp_learner``
without exporting them from ``functional``; both spellings work here).
"""

from snngraph.functional import probe
from snngraph.functional.acc import accuracy_rate, accuracy_temporal
from snngraph.functional.loss import (
    ce_count_loss,
    ce_max_membrane_loss,
    ce_rate_loss,
    ce_temporal_loss,
    mse_count_loss,
    mse_membrane_loss,
    mse_temporal_loss,
)
from snngraph.functional.quant import StateQuant, state_quant
from snngraph.functional.reg import l1_rate_sparsity
from snngraph.functional.spike_time import SpikeTime
from snngraph.functional.stdp import (
    mstdp_linear_single_step,
    mstdpet_linear_single_step,
    stdp_conv1d_single_step,
    stdp_conv2d_single_step,
    stdp_linear_single_step,
)
from snngraph.functional.stdp_learner import STDPLearner
from snngraph.functional.temporal import first_spike_time

__all__ = [
    "STDPLearner",
    "SpikeTime",
    "StateQuant",
    "accuracy_rate",
    "accuracy_temporal",
    "ce_count_loss",
    "ce_max_membrane_loss",
    "ce_rate_loss",
    "ce_temporal_loss",
    "first_spike_time",
    "l1_rate_sparsity",
    "mse_count_loss",
    "mse_membrane_loss",
    "mse_temporal_loss",
    "mstdp_linear_single_step",
    "mstdpet_linear_single_step",
    "probe",
    "state_quant",
    "stdp_conv1d_single_step",
    "stdp_conv2d_single_step",
    "stdp_linear_single_step",
]
