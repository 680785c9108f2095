"""``SpikeTime``: snnTorch 1.0.0's recording-to-spike-times module (``functional.loss.SpikeTime``).

``forward(spk_out, targets)`` returns ``(spike_times, target_times)``: the step of each output's
first spike (``multi_spike``: of its first ``F`` spikes, ``(F, B, N)``; an output without one gets
``T - 1``) with snnTorch's sign-estimator gradient (``d time / d spike = -1`` at the spike's step),
and the targets as times (class indices become ``on_target`` / ``off_target``; negative times count
back from ``T``). With ``tolerance``, times closer than it to their target are set to the target
(the gradient passes unchanged). ``mse_temporal_loss`` is this followed by a mean square error.

Differs from snnTorch as :class:`~snngraph.functional.mse_temporal_loss` does: ``off_target=-1``
really is the last step (snnTorch's ``targets_convert`` clamps it to 0), ``multi_spike`` consumes
each output's own spikes (snnTorch zeroes a whole time step of every output), and ``targets`` is
never modified in place (snnTorch rewrites its negative entries).
"""

from __future__ import annotations

from typing import Any

from torch import Tensor, nn

from snngraph.functional._common import check_output
from snngraph.functional.temporal import mse_temporal_loss, set_label_times

__all__ = ["SpikeTime"]


class SpikeTime(nn.Module):
    """Spike times of a recording ``(T, B, N)`` and of the targets (see the module docstring).

    Args:
        target_is_time: ``targets`` are times (``(B, N)``, or ``(F, B, N)`` with ``multi_spike``)
            rather than class indices ``(B,)``.
        on_target, off_target: the target times of the correct class and of the others (sequences
            of ``F`` times with ``multi_spike``).
        tolerance: times within this of their target count as on target.
        multi_spike: the first ``F`` spikes of each output, ``F = len(on_target)`` (or the targets'
            leading size with ``target_is_time``).
    """

    _label_times = mse_temporal_loss._label_times  # reads on_target, off_target and multi_spike
    _times = mse_temporal_loss._times  # and target_is_time, tolerance

    def __init__(self, target_is_time=False, on_target=0, off_target=-1, tolerance=0, multi_spike=False):
        super().__init__()
        set_label_times(self, target_is_time, on_target, off_target, tolerance, multi_spike)

    def forward(self, spk_out: Tensor, targets: Any) -> tuple[Tensor, Tensor]:
        time, target, _ = self._times(check_output("spk_out", spk_out), targets)
        return time, target
