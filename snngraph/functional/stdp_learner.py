r"""``STDPLearner``: snnTorch 1.0.0's hook-based STDP trainer, on ``sg.nn`` layers and compiled nets.

The learner records the synapse's input (pre-synaptic spikes) with an ``InputMonitor`` and the
neuron's spikes with an ``OutputMonitor``; :meth:`STDPLearner.step` pairs the records in call
order, runs the single-step rule of the synapse's kind (:mod:`snngraph.functional.stdp`) over
them and accumulates :math:`\Delta W`, which it subtracts from ``weight.grad`` (``on_grad=True``,
so an optimizer step *adds* it) or returns.

Two ways of getting the spikes:

- ``sg.nn`` / plain torch models, called step by step: ``STDPLearner(fc1, lif1, ...)``. Each call
  of ``fc1`` records its input ``(B, N_in)`` and each call of ``lif1`` its spikes (the first element
  when the neuron returns ``(spk, mem)``: snnTorch 1.0.0 records the tuple and then crashes).
- compiled nets (``net = sg.compile(g)``): ``STDPLearner(net.fc1, net, ..., output="spk1")``, the
  post-synaptic spikes being the graph output ``spk1`` (make them one: ``g.output("spk1", lif1)``).
  The compiled synapse is time-batched: ``net.fc1`` runs once per ``net(x)`` over all ``T*B`` rows
  (convolutions perhaps in blocks of rows), and its neurons are never called. The learner therefore
  gathers ``fc1``'s input rows of one forward call, reshapes them to ``(T, B, ...)`` with the output's
  ``T`` and ``B`` and records ``T`` per-step pairs, the same pairs a step-by-step model records.
  ``net.step`` (streaming) is not observed.

Departure from snnTorch 1.0.0: ``reset()`` clears the records and the traces (snnTorch's calls a
``reset`` that ``nn.Module`` lacks and crashes).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

from snngraph.functional import probe
from snngraph.functional.stdp import (
    _identity,
    mstdp_linear_single_step,
    mstdpet_linear_single_step,
    stdp_conv1d_single_step,
    stdp_conv2d_single_step,
    stdp_linear_single_step,
)

__all__ = ["STDPLearner", "mstdp_linear_single_step", "mstdpet_linear_single_step", "stdp_conv1d_single_step",
           "stdp_conv2d_single_step", "stdp_linear_single_step"]  # snnTorch's module holds them all


def _spikes(output: Any) -> Tensor:
    """A neuron's recorded output: the spikes, also when it returned ``(spk, *state)``."""
    return output[0] if isinstance(output, tuple) else output


_RULES = ((nn.Linear, stdp_linear_single_step), (nn.Conv2d, stdp_conv2d_single_step),
          (nn.Conv1d, stdp_conv1d_single_step))
"""The single-step rule of each synapse kind."""


class _MonitorRecorder:
    """Per-step (pre, post) records of step-by-step modules: the synapse's inputs, the neuron's outputs."""

    def __init__(self, synapse: nn.Module, sn: nn.Module) -> None:
        self.inputs = probe.InputMonitor(synapse)
        self.outputs = probe.OutputMonitor(sn)

    @property
    def pre(self) -> list[Tensor]:
        return self.inputs.records

    @property
    def post(self) -> list[Any]:
        return self.outputs.records

    @property
    def enabled(self) -> bool:
        return self.inputs.is_enable()

    @enabled.setter
    def enabled(self, value: bool) -> None:
        for monitor in (self.inputs, self.outputs):
            if value:
                monitor.enable()
            else:
                monitor.disable()

    def clear(self) -> None:
        self.inputs.clear_recorded_data()
        self.outputs.clear_recorded_data()


class _CompiledRecorder:
    """Per-step (pre, post) records of a compiled net: the synapse's rows of one forward call, split by step."""

    def __init__(self, synapse: nn.Module, net: nn.Module, output: str) -> None:
        self.output = output
        self.pending: list[Tensor] = []
        self.pre: list[Tensor] = []
        self.post: list[Tensor] = []
        self.enabled = True
        self.hooks = [synapse.register_forward_hook(self._on_synapse), net.register_forward_pre_hook(self._start),
                      net.register_forward_hook(self._on_net)]

    def _start(self, module: nn.Module, args: tuple) -> None:
        self.pending = []  # rows seen outside a forward call (net.step) are not paired

    def _on_synapse(self, module: nn.Module, args: tuple, result: Any) -> None:
        if self.enabled:
            self.pending.append(args[0])

    def _on_net(self, module: nn.Module, args: tuple, result: Any) -> None:
        rows, self.pending = self.pending, []
        if not self.enabled or not rows:
            return
        if self.output not in result:
            raise KeyError(f"STDPLearner: the net has no output {self.output!r} (outputs: {sorted(result)})")
        spikes = result[self.output]
        steps, batch = spikes.shape[:2]
        pre = torch.cat(rows)
        pre = pre.reshape(steps, batch, *pre.shape[1:])
        self.pre.extend(pre.unbind(0))
        self.post.extend(spikes.unbind(0))

    def clear(self) -> None:
        self.pending.clear()
        self.pre.clear()
        self.post.clear()

    def remove(self) -> None:
        for hook in self.hooks:
            hook.remove()


class STDPLearner(nn.Module):
    """STDP on ``synapse`` (``nn.Linear``, ``nn.Conv2d`` or ``nn.Conv1d``) driven by neuron ``sn``'s spikes.

    Args:
        synapse: the layer whose weight learns.
        sn: the neuron module after it, or a compiled net (then ``output`` names the spike output).
        tau_pre, tau_post: trace time constants.
        f_pre, f_post: weight-dependence of depression and potentiation (default: identity).
        output: with a compiled net, the graph output holding the post-synaptic spikes.
    """

    def __init__(
        self,
        synapse: nn.Linear | nn.Conv2d | nn.Conv1d,
        sn: nn.Module,
        tau_pre: float,
        tau_post: float,
        f_pre: Callable = _identity,
        f_post: Callable = _identity,
        *,
        output: str | None = None,
    ):
        super().__init__()
        from snngraph.runtimes.torch.module import CompiledNet

        self.tau_pre = tau_pre
        self.tau_post = tau_post
        self.f_pre = f_pre
        self.f_post = f_post
        self.synapse = synapse
        self.trace_pre: Tensor | None = None
        self.trace_post: Tensor | None = None
        self._recorder: _CompiledRecorder | _MonitorRecorder
        if isinstance(sn, CompiledNet):
            names = list(sn.graph.outputs)
            if output is None and len(names) != 1:
                raise ValueError(f"STDPLearner on a compiled net: pass output= naming the spike output ({names})")
            self._recorder = _CompiledRecorder(synapse, sn, names[0] if output is None else output)
        elif output is not None:
            raise ValueError("STDPLearner: output= names a compiled net's output; sn is not a compiled net")
        else:
            self._recorder = _MonitorRecorder(synapse, sn)
            self.in_spike_monitor, self.out_spike_monitor = self._recorder.inputs, self._recorder.outputs

    def reset(self) -> None:
        """Clear the records and the traces."""
        self.trace_pre = self.trace_post = None
        self._recorder.clear()

    def disable(self) -> None:
        """Stop recording."""
        self._recorder.enabled = False

    def enable(self) -> None:
        """Record again."""
        self._recorder.enabled = True

    def step(self, on_grad: bool = True, scale: float = 1.0) -> Tensor | None:
        """Consume the records in order: ``delta_w`` summed over them, times ``scale``.

        With ``on_grad`` the sum is subtracted from ``synapse.weight.grad`` (so gradient descent adds
        it) and nothing is returned; otherwise it is returned (``None`` when nothing was recorded).
        """
        stdp_f = next((rule for kind, rule in _RULES if isinstance(self.synapse, kind)), None)
        if stdp_f is None:
            raise NotImplementedError(self.synapse)
        pre, post = self._recorder.pre, self._recorder.post
        if len(pre) != len(post):
            raise ValueError(f"STDPLearner: {len(pre)} synapse inputs but {len(post)} neuron outputs recorded; "
                             "record each step through both")
        delta_w = None
        while pre:
            in_spike, out_spike = pre.pop(0), _spikes(post.pop(0))
            self.trace_pre, self.trace_post, dw = stdp_f(
                self.synapse, in_spike, out_spike, self.trace_pre, self.trace_post,
                self.tau_pre, self.tau_post, self.f_pre, self.f_post,
            )
            if scale != 1.0:
                dw *= scale
            delta_w = dw if delta_w is None else delta_w + dw
        if on_grad:
            if delta_w is None:
                return None
            weight = self.synapse.weight
            weight.grad = -delta_w if weight.grad is None else weight.grad - delta_w
            return None
        return delta_w
