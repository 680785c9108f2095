"""Training loop for spiking sequence models: full or truncated BPTT, validation, checkpoints.

A *sequence model* maps ``x`` of shape ``(T, B, ...)`` to a tensor, a tuple or a dict of
``(T, B, ...)`` outputs; a compiled snngraph net is one (it returns ``{"spk": ..., "mem": ...}``).
Truncated BPTT needs the streaming interface of compiled nets, ``init_state(batch_size)`` and
``step(x_t, state) -> (out_t, state)``. :class:`StepNet` gives both interfaces to a plain
per-step module whose neurons keep hidden state (``init_hidden=True``, snnTorch style)::

    net = StepNet(nn.Sequential(nn.Linear(784, 100), sg.nn.Leaky(beta=0.9, init_hidden=True)))
    history = fit(net, loader, loss_fn, optimizer, epochs=5, tbptt_steps=25)
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from tqdm import tqdm

__all__ = ["StepNet", "accuracy", "detach_hidden", "fit", "reset_hidden", "select_output"]

Metric = Callable[[torch.Tensor, Any], Any]


# --------------------------------------------------------------------------- state helpers


def _tree(fn: Callable[[torch.Tensor], Any], value: Any) -> Any:
    """Apply ``fn`` to every tensor inside nested dicts, lists and tuples."""
    if isinstance(value, torch.Tensor):
        return fn(value)
    if isinstance(value, Mapping):
        return type(value)({k: _tree(fn, v) for k, v in value.items()})
    if isinstance(value, tuple) and hasattr(value, "_fields"):
        return type(value)(*(_tree(fn, v) for v in value))
    if isinstance(value, (list, tuple)):
        return type(value)(_tree(fn, v) for v in value)
    return value


def _stack(steps: list[Any], cat: bool = False) -> Any:
    """Stack per-step outputs (tensors, tuples or dicts of tensors) along a new time axis,
    or concatenate time chunks along the existing one when ``cat``."""
    first = steps[0]
    if isinstance(first, torch.Tensor):
        return torch.cat(steps) if cat else torch.stack(steps)
    if isinstance(first, Mapping):
        return type(first)({k: _stack([s[k] for s in steps], cat) for k in first})
    if isinstance(first, (list, tuple)):
        items = [_stack([s[i] for s in steps], cat) for i in range(len(first))]
        return type(first)(*items) if hasattr(first, "_fields") else type(first)(items)
    raise TypeError(f"net outputs must be tensors, tuples or dicts of tensors, got {type(first).__name__}")


def reset_hidden(module: nn.Module) -> None:
    """Reset the hidden state of every neuron inside ``module`` (nested too).

    Uses ``snngraph.utils.reset`` when available and also zeroes the non-persistent buffers
    (snnTorch's ``mem``, ``syn``...) of every submodule with ``init_hidden=True``.

    Args:
        module: the per-step network.
    """
    try:
        reset = importlib.import_module("snngraph.utils").reset
    except (ImportError, AttributeError):
        reset = None
    if reset is not None:
        reset(module)
    for sub in module.modules():
        if getattr(sub, "init_hidden", False) is True:
            for name in sub._non_persistent_buffers_set:
                buf = sub._buffers.get(name)
                if buf is not None:
                    sub._buffers[name] = torch.zeros_like(buf)


def detach_hidden(module: nn.Module) -> None:
    """Cut the autograd history of the state held inside ``module``.

    Every buffer or tensor attribute of ``module`` and its submodules that carries an
    autograd history (a ``grad_fn``) is hidden state from the last steps: it is replaced by
    its detached value. Parameters and plain buffers have no history and are untouched.

    Args:
        module: the network.
    """
    for sub in module.modules():
        for name, buf in sub._buffers.items():
            if buf is not None and buf.grad_fn is not None:
                sub._buffers[name] = buf.detach()
        for name, value in list(vars(sub).items()):
            if isinstance(value, torch.Tensor) and value.grad_fn is not None:
                setattr(sub, name, value.detach())


class StepNet(nn.Module):
    """A per-step module with hidden-state neurons, run as a sequence model.

    ``forward(x)`` resets the hidden state and runs every step of ``x`` ``(T, B, ...)``,
    stacking the per-step outputs (a tensor, or a tuple such as ``(spk, mem)``) along time.
    ``init_state`` / ``step`` give the streaming interface used by truncated BPTT; the state
    lives inside the neurons, so the returned state is an empty tuple.

    Args:
        module: per-step network, e.g. ``nn.Sequential`` of layers and ``init_hidden=True``
            neurons from ``snngraph.nn`` or snnTorch.
        reset: function resetting ``module``'s hidden state; default :func:`reset_hidden`.
    """

    def __init__(self, module: nn.Module, reset: Callable[[nn.Module], None] | None = None) -> None:
        super().__init__()
        if not isinstance(module, nn.Module):
            raise TypeError(f"module must be a torch.nn.Module, got {type(module).__name__}")
        self.module = module
        self._reset = reset or reset_hidden

    def init_state(self, batch_size: int) -> tuple:
        """Reset the hidden state for a new batch of ``batch_size`` sequences."""
        self._reset(self.module)
        return ()

    def step(self, x_t: torch.Tensor, state: tuple = ()) -> tuple[Any, tuple]:
        """One time step: ``(module(x_t), state)``."""
        return self.module(x_t), state

    def forward(self, x: torch.Tensor) -> Any:
        """Run the whole sequence ``x`` ``(T, B, ...)`` from a fresh state."""
        state = self.init_state(x.shape[1])
        outs = []
        for x_t in x:
            out, state = self.step(x_t, state)
            outs.append(out)
        return _stack(outs)


# --------------------------------------------------------------------------- outputs, metrics


def select_output(out: Any, output: str | int | Callable | None = None) -> Any:
    """Pick the training output from what the net returned.

    Args:
        out: a tensor, a tuple/list or a dict of tensors.
        output: ``None`` for the first value (the tensor itself, ``out[0]``, or the dict's
            first value), a dict key or tuple index, or a callable applied to ``out``.

    Returns:
        The selected output.
    """
    if callable(output):
        return output(out)
    if output is None:
        if isinstance(out, Mapping):
            return next(iter(out.values()))
        return out[0] if isinstance(out, (list, tuple)) else out
    try:
        return out[output]
    except (KeyError, IndexError, TypeError):
        keys = list(out) if isinstance(out, Mapping) else f"{type(out).__name__} of {len(out)}"
        raise KeyError(f"output={output!r} not in the net's outputs ({keys})") from None


def accuracy(output: torch.Tensor, targets: torch.Tensor) -> float:
    """Fraction of samples whose most active output (summed over time) is the target class.

    Uses ``snngraph.functional.accuracy_rate`` when it exists.

    Args:
        output: spikes or membrane ``(T, B, C)``.
        targets: class indices ``(B,)``.

    Returns:
        The accuracy in [0, 1].
    """
    try:
        accuracy_rate = importlib.import_module("snngraph.functional").accuracy_rate
    except (ImportError, AttributeError):
        return float((output.sum(dim=0).argmax(dim=-1) == targets).float().mean())
    return float(accuracy_rate(output, targets))


def _is_class_labels(targets: Any, output: Any) -> bool:
    return (
        isinstance(targets, torch.Tensor)
        and isinstance(output, torch.Tensor)
        and targets.dim() == 1
        and not targets.is_floating_point()
        and output.dim() >= 3
        and output.shape[1] == targets.shape[0]
    )


# --------------------------------------------------------------------------- one epoch


@dataclass
class _Run:
    """How to run batches: shared by :func:`fit` and :mod:`snngraph.backprop`."""

    net: nn.Module
    loss_fn: Callable[[Any, Any], torch.Tensor]
    device: torch.device
    select: Callable[[Any], Any]
    metrics: Mapping[str, Metric] | None = None
    num_steps: int | None = None
    time_first: bool = True
    tbptt_steps: int | None = None
    chunk_targets: Callable[[Any, int, int], Any] = lambda y, start, stop: y


@dataclass
class _Stats:
    sums: dict[str, float] = field(default_factory=dict)
    samples: int = 0
    batch_losses: list[float] = field(default_factory=list)

    def add(self, name: str, value: float, weight: int) -> None:
        self.sums[name] = self.sums.get(name, 0.0) + float(value) * weight

    def means(self, prefix: str = "") -> dict[str, float]:
        return {prefix + k: v / max(self.samples, 1) for k, v in self.sums.items()}


def _prepare(run: _Run, x: Any, y: Any) -> tuple[torch.Tensor, Any]:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"the loader must yield (x, y) with x a tensor, got {type(x).__name__}")
    x = x.to(run.device)
    y = _tree(lambda t: t.to(run.device), y)
    if run.num_steps is not None:
        return x.unsqueeze(0).expand(run.num_steps, *x.shape), y
    if x.dim() < 2:
        raise ValueError(f"x must be time-first (T, B, ...), got shape {tuple(x.shape)}")
    return (x if run.time_first else x.transpose(0, 1)), y


def _train_batch(run: _Run, optimizer: torch.optim.Optimizer, x: torch.Tensor, y: Any) -> tuple[float, Any]:
    """One optimisation pass over a batch; returns (loss, detached outputs over all steps)."""
    if run.tbptt_steps is None:
        optimizer.zero_grad()
        out = run.net(x)
        loss = run.loss_fn(run.select(out), y)
        loss.backward()
        optimizer.step()
        return float(loss.detach()), _tree(torch.Tensor.detach, out)
    steps = x.shape[0]
    state = _tree(lambda t: t.to(run.device), run.net.init_state(batch_size=x.shape[1]))
    total, chunks = 0.0, []
    for start in range(0, steps, run.tbptt_steps):
        stop = min(start + run.tbptt_steps, steps)
        optimizer.zero_grad()
        outs = []
        for t in range(start, stop):
            out_t, state = run.net.step(x[t], state)
            outs.append(out_t)
        out = _stack(outs)
        loss = run.loss_fn(run.select(out), run.chunk_targets(y, start, stop))
        loss.backward()
        optimizer.step()
        state = _tree(torch.Tensor.detach, state)
        detach_hidden(run.net)
        total += float(loss.detach()) * (stop - start) / steps
        chunks.append(_tree(torch.Tensor.detach, out))
    return total, _stack(chunks, cat=True)


def _record(run: _Run, stats: _Stats, loss: float, out: Any, y: Any, batch: int) -> None:
    stats.samples += batch
    stats.batch_losses.append(loss)
    stats.add("loss", loss, batch)
    if run.metrics is None:
        selected = run.select(out)
        if _is_class_labels(y, selected):
            stats.add("accuracy", accuracy(selected, y), batch)
        return
    for name, fn in run.metrics.items():
        stats.add(name, fn(run.select(out), y), batch)


def _epoch(run: _Run, loader, optimizer=None, progress: bool = False, desc: str = "") -> _Stats:
    """Train on (``optimizer`` given) or evaluate every batch of ``loader``."""
    stats = _Stats()
    run.net.train(optimizer is not None)
    bar = tqdm(loader, desc=desc, disable=not progress, unit="batch", leave=True)
    for batch in bar:
        if not isinstance(batch, (list, tuple)) or len(batch) != 2:
            raise TypeError("the loader must yield (x, y) pairs")
        x, y = _prepare(run, *batch)
        if optimizer is not None:
            loss, out = _train_batch(run, optimizer, x, y)
        else:
            with torch.no_grad():
                out = run.net(x)
                loss = float(run.loss_fn(run.select(out), y))
        _record(run, stats, loss, out, y, x.shape[1])
        bar.set_postfix(loss=f"{loss:.4f}")
    bar.close()
    if stats.samples == 0:
        raise ValueError("the loader yielded no batches")
    return stats


# --------------------------------------------------------------------------- checkpoints


def _save_checkpoint(path: Path, net, optimizer, epoch: int, history: list[dict[str, float]]) -> None:
    payload = {
        "format": "snngraph.train.checkpoint/1",
        "epoch": epoch,
        "model": net.state_dict(),
        "optimizer": optimizer.state_dict(),
        "history": history,
        "rng": torch.get_rng_state(),
        "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }
    tmp = path.with_name(path.name + ".tmp")
    torch.save(payload, tmp)
    os.replace(tmp, path)


def _load_checkpoint(path: Path, net, optimizer, device) -> tuple[int, list[dict[str, float]]]:
    if not path.is_file():
        raise FileNotFoundError(f"resume=True but checkpoint {path} does not exist")
    payload = torch.load(path, map_location=device, weights_only=True)
    if not isinstance(payload, dict) or payload.get("format") != "snngraph.train.checkpoint/1":
        raise ValueError(f"checkpoint {path} was not written by snngraph.train.fit")
    net.load_state_dict(payload["model"])
    optimizer.load_state_dict(payload["optimizer"])
    torch.set_rng_state(payload["rng"].cpu())
    cuda_rng = [state.cpu() for state in payload.get("cuda_rng", [])]
    if cuda_rng and torch.cuda.is_available() and len(cuda_rng) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(cuda_rng)
    return int(payload["epoch"]), list(payload["history"])


# --------------------------------------------------------------------------- fit


def _positive(value: Any, name: str, allow_none: bool = True) -> int | None:
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    return value


def _resolve_device(net: nn.Module, device) -> torch.device:
    if device is not None:
        return torch.device(device)
    param = next(iter(net.parameters()), None)
    return param.device if param is not None else torch.device("cpu")


def fit(
    net: nn.Module,
    loader,
    loss_fn: Callable[[Any, Any], torch.Tensor],
    optimizer: torch.optim.Optimizer,
    epochs: int = 1,
    num_steps: int | None = None,
    tbptt_steps: int | None = None,
    val_loader=None,
    metrics: Mapping[str, Metric] | None = None,
    checkpoint: str | os.PathLike | None = None,
    resume: bool = False,
    device: str | torch.device | None = None,
    progress: bool = True,
    *,
    output: str | int | Callable | None = None,
    time_first: bool = True,
) -> list[dict[str, float]]:
    """Train a sequence model with surrogate-gradient BPTT.

    Args:
        net: sequence model ``x (T, B, ...) -> outputs`` (a compiled net, a :class:`StepNet`...).
        loader: iterable of ``(x, y)`` batches, ``x`` time-first ``(T, B, ...)``.
        loss_fn: ``loss_fn(output, y)`` on the selected ``(T, B, ...)`` output.
        optimizer: a torch optimizer over ``net``'s parameters.
        epochs: total number of epochs (counting those restored by ``resume``).
        num_steps: when set, ``x`` is time-static ``(B, ...)`` and is presented at each of
            ``num_steps`` steps (snnTorch's ``time_var=False``).
        tbptt_steps: truncated BPTT: update the weights every ``tbptt_steps`` steps, carrying
            the state, detached, into the next chunk; needs ``net.init_state`` / ``net.step``.
            The loss of a batch is then the length-weighted mean of its chunk losses.
        val_loader: optional validation batches, evaluated after every epoch.
        metrics: ``{name: fn(output, y)}`` averaged over samples; ``None`` records
            ``accuracy`` (:func:`accuracy`) when ``y`` holds class indices.
        checkpoint: file written after every epoch (model, optimizer, history, RNG states);
            resuming from it continues exactly as an uninterrupted run would.
        resume: continue from ``checkpoint`` (loaded with ``torch.load(weights_only=True)``).
        device: where to train; default the device of ``net``'s parameters.
        progress: show a tqdm progress bar per epoch.
        output: which output to train on, see :func:`select_output`.
        time_first: ``False`` when ``x`` is ``(B, T, ...)``.

    Returns:
        One dict per epoch: ``epoch``, ``loss``, the metrics, and ``val_``-prefixed ones.
    """
    epochs = _positive(epochs, "epochs", allow_none=False)
    run = _Run(
        net=net,
        loss_fn=loss_fn,
        device=_resolve_device(net, device),
        select=lambda out: select_output(out, output),
        metrics=metrics,
        num_steps=_positive(num_steps, "num_steps"),
        time_first=bool(time_first),
        tbptt_steps=_positive(tbptt_steps, "tbptt_steps"),
    )
    if run.tbptt_steps is not None and not (hasattr(net, "init_state") and hasattr(net, "step")):
        raise TypeError(
            "tbptt_steps needs a net with init_state(batch_size) and step(x_t, state); "
            "wrap a per-step module in snngraph.train.StepNet"
        )
    if resume and checkpoint is None:
        raise ValueError("resume=True needs checkpoint= (the file to resume from)")
    net.to(run.device)
    path = Path(checkpoint) if checkpoint is not None else None
    start, history = _load_checkpoint(path, net, optimizer, run.device) if resume else (0, [])
    for epoch in range(start, epochs):
        stats = _epoch(run, loader, optimizer, progress, desc=f"epoch {epoch + 1}/{epochs}")
        row = {"epoch": epoch + 1, **stats.means()}
        if val_loader is not None:
            row.update(_epoch(run, val_loader).means(prefix="val_"))
        history.append(row)
        if path is not None:
            _save_checkpoint(path, net, optimizer, epoch + 1, history)
    return history
