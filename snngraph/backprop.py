"""snnTorch 1.0.0's ``backprop.BPTT`` / ``backprop.TBPTT`` / ``backprop.RTRL``, on :mod:`snngraph.train`.

All run one epoch and return the average loss, with snnTorch's signatures. ``net`` is a
per-step module whose neurons keep hidden state (``init_hidden=True``, the last one with
``output=True`` so the net returns ``(spk, mem)`` or ``(spk, syn, mem)``), or a compiled
snngraph net (``{"spk": ..., "mem": ...}``). Membrane losses (``mse_membrane_loss``,
``ce_max_membrane_loss``) get the membrane, every other criterion the spikes; the
regularisation term gets the spikes.

Differences from snnTorch 1.0.0 (bugs fixed):

* ``TBPTT`` with time-varying data and ``K`` set failed with ``UnboundLocalError``
  (``K_flag``); here it works.
* Neurons are detached between chunks per instance; snnTorch kept one registry entry per
  *boolean*, so a net mixing neuron types (Leaky and Synaptic) kept part of its state
  attached and failed on the second chunk. Nested neurons are reset too.
* Any callable criterion works (snnTorch matched ``criterion.__name__`` and failed with
  ``UnboundLocalError`` on others); the remainder chunk of a sequence not divisible by ``K``
  is weighted by its length instead of ``1 / (num_steps % K)``.
* The returned average loss is detached (snnTorch's kept the autograd graphs of the whole
  epoch alive) and no ``DeprecationWarning`` is raised on import.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import nn

from snngraph.train import StepNet, _epoch, _positive, _Run

__all__ = ["BPTT", "RTRL", "TBPTT"]

_MEMBRANE_LOSSES = frozenset({"mse_membrane_loss", "ce_max_membrane_loss"})


def _spikes(out: Any) -> Any:
    if isinstance(out, Mapping):
        return out["spk"] if "spk" in out else next(iter(out.values()))
    return out[0] if isinstance(out, (list, tuple)) else out


def _membrane(out: Any) -> Any:
    if isinstance(out, Mapping):
        return out["mem"] if "mem" in out else list(out.values())[-1]
    return out[-1] if isinstance(out, (list, tuple)) else out


def _check_time(num_steps, time_var: bool, time_first: bool, chunk: int | None) -> None:
    if num_steps and time_var:
        raise ValueError(
            "num_steps should not be specified if time_var is True: the first (time) dimension "
            "of each batch is used as num_steps."
        )
    if num_steps is False and not time_var:
        raise ValueError("num_steps must be specified if time_var is False (time-static input data).")
    if not time_var and not time_first:
        raise ValueError("time_first should not be specified if data is not time-varying (time_var=False).")
    if num_steps and chunk is not None and chunk > num_steps:
        raise ValueError(f"K must be less than or equal to num_steps, got K={chunk}, num_steps={num_steps}.")


def _loss(criterion: Callable, regularization) -> tuple[Callable, bool]:
    """The loss on the whole net output, and whether targets vary over time."""
    name = getattr(criterion, "__name__", type(criterion).__name__)
    pick = _membrane if name in _MEMBRANE_LOSSES else _spikes
    time_var_targets = name == "mse_membrane_loss" and bool(getattr(criterion, "time_var_targets", False))

    def loss_fn(out: Any, targets: Any) -> torch.Tensor:
        loss = criterion(pick(out), targets)
        if regularization:
            loss = loss + regularization(_spikes(out))
        return loss

    return loss_fn, time_var_targets


def TBPTT(
    net,
    dataloader,
    optimizer,
    criterion,
    num_steps=False,
    time_var=True,
    time_first=True,
    regularization=False,
    device="cpu",
    K=1,
):
    """Truncated backpropagation through time: a weight update every ``K`` time steps.

    The hidden state is carried, detached, from one chunk of ``K`` steps to the next, and
    reset at the start of every batch.

    Args:
        net: per-step network with ``init_hidden=True`` neurons, or a compiled snngraph net.
        dataloader: yields ``(data, targets)``.
        optimizer: torch optimizer over ``net``'s parameters.
        criterion: loss, e.g. ``snngraph.functional.ce_rate_loss()``, called on the
            ``(K, B, ...)`` spikes (membrane for membrane losses) and the targets.
        num_steps: number of steps; only (and then required) for time-static data.
        time_var: ``True`` if data is time-varying ``[T x B x ...]``, ``False`` if
            time-static ``[B x ...]``.
        time_first: ``False`` if time-varying data is ``[B x T x ...]``.
        regularization: optional term added to the loss, called on the spikes.
        device: where to train.
        K: time steps per weight update; ``None`` (or ``False``) for the whole sequence.

    Returns:
        torch.Tensor: the average loss over the epoch's batches.
    """
    K = None if K is None or K is False else _positive(K, "K", allow_none=False)
    _check_time(num_steps, time_var, time_first, K)
    if not isinstance(net, nn.Module):
        raise TypeError(f"net must be a torch.nn.Module, got {type(net).__name__}")
    if not (hasattr(net, "init_state") and hasattr(net, "step")):
        net = StepNet(net)
    loss_fn, time_var_targets = _loss(criterion, regularization)
    net.to(device)
    run = _Run(
        net=net,
        loss_fn=loss_fn,
        device=torch.device(device),
        select=lambda out: out,
        metrics={},
        num_steps=None if time_var else _positive(num_steps, "num_steps", allow_none=False),
        time_first=bool(time_first),
        tbptt_steps=K,
    )
    if time_var_targets:
        run.chunk_targets = lambda targets, start, stop: targets[start:stop]
    stats = _epoch(run, dataloader, optimizer, progress=False)
    return torch.tensor(sum(stats.batch_losses) / len(stats.batch_losses))


def _fixed_k(k: int | None, name: str, doc: str) -> Callable:
    """:func:`TBPTT` with ``K`` fixed, under snnTorch's signature of ``name`` (TBPTT's without ``K``)."""

    def run(net, dataloader, optimizer, criterion, num_steps=False, time_var=True, time_first=True,
            regularization=False, device="cpu"):
        return TBPTT(net, dataloader, optimizer, criterion, num_steps, time_var, time_first, regularization, device,
                     K=k)

    run.__name__ = run.__qualname__ = name
    run.__doc__ = doc
    return run


BPTT = _fixed_k(None, "BPTT", """Backpropagation through time: one weight update per batch, after the whole sequence.

    Args:
        net: per-step network with ``init_hidden=True`` neurons, or a compiled snngraph net.
        dataloader: yields ``(data, targets)``.
        optimizer: torch optimizer over ``net``'s parameters.
        criterion: loss, called on the ``(T, B, ...)`` spikes (membrane for membrane losses).
        num_steps: number of steps; only (and then required) for time-static data.
        time_var: ``True`` if data is time-varying ``[T x B x ...]``, ``False`` if
            time-static ``[B x ...]``.
        time_first: ``False`` if time-varying data is ``[B x T x ...]``.
        regularization: optional term added to the loss, called on the spikes.
        device: where to train.

    Returns:
        torch.Tensor: the average loss over the epoch's batches.
    """)

RTRL = _fixed_k(1, "RTRL", """snnTorch's "real-time recurrent learning": a forward pass, backward pass and weight
    update at every step.

    As in snnTorch 1.0.0 this is :func:`TBPTT` with ``K = 1`` (snnTorch's own definition): the state is
    carried detached from step to step, so each update's gradient sees one step only. It is not the
    forward-mode RTRL of Williams and Zipser (no sensitivity matrices are carried). Arguments as :func:`BPTT`.

    Returns:
        torch.Tensor: the average loss over the epoch's batches.
    """)
