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

import torch
from torch import Tensor, nn

from snngraph.functional._common import check_labels, check_output
from snngraph.functional.temporal import _FirstSpikes, _Tolerance, mse_temporal_loss, set_target_options

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

    def __init__(self, target_is_time=False, on_target=0, off_target=-1, tolerance=0, multi_spike=False):
        super().__init__()
        set_target_options(self, target_is_time, on_target, off_target, tolerance, multi_spike)

    def forward(self, spk_out: Tensor, targets: Any) -> tuple[Tensor, Tensor]:
        spk = check_output("spk_out", spk_out)
        steps = spk.size(0)
        if self.target_is_time:
            if not isinstance(targets, Tensor):
                raise TypeError("with target_is_time=True, `targets` must be a tensor of times")
            target = targets.to(device=spk.device, dtype=spk.dtype)
            count = target.size(0) if self.multi_spike else 1
        else:
            target = self._label_times(check_labels(targets, spk.size(1), spk.size(-1)), spk)
            count = len(self.on_target) if self.multi_spike else 1
        target = torch.where(target < 0, steps + target, target)
        time = _FirstSpikes.apply(spk, count)
        time = time if self.multi_spike else time[0]
        if self.tolerance:
            time = _Tolerance.apply(time, target.expand_as(time), self.tolerance)
        return time, target
