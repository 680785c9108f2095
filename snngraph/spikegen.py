"""Spike encoders and spiking targets, with snnTorch 1.0.0's names, signatures and defaults.

Deterministic encoders return what ``snntorch.spikegen`` returns; the stochastic ones make the
same torch RNG calls, so a fixed seed gives the same spikes. Results are time-first. Where
snnTorch has a bug, the function does the evident right thing and says so under "Differs from
snnTorch" in its docstring. Invalid arguments raise ``ValueError`` / ``TypeError`` naming them.
"""

from __future__ import annotations

import operator

import torch
from torch import Tensor

__all__ = [
    "delta",
    "from_one_hot",
    "latency",
    "latency_code",
    "latency_code_linear",
    "latency_code_log",
    "latency_interpolate",
    "rate",
    "rate_conv",
    "rate_interpolate",
    "target_rate_code",
    "targets_convert",
    "targets_latency",
    "targets_rate",
    "to_one_hot",
    "to_one_hot_inverse",
]

_PATTERNS = ("regular", "uniform", "poisson")


def _tensor(name: str, value: object) -> Tensor:
    if not isinstance(value, Tensor):
        raise TypeError(f"`{name}` must be a torch.Tensor, got {type(value).__name__}")
    return value


def _count(name: str, value: object, *, optional: bool = False) -> int:
    """A non-negative int; ``False``/``None`` mean "not given" (0) when ``optional``."""
    if optional and (value is False or value is None):
        return 0
    try:
        number = operator.index(value)
    except TypeError:
        raise TypeError(f"`{name}` must be an integer, got {value!r}") from None
    if number < 0:
        raise ValueError(f"`{name}` must not be negative, got {number}")
    return number


def _float_dtype(x: Tensor) -> torch.dtype:
    return x.dtype if x.is_floating_point() else torch.get_default_dtype()


def _on_off(mask: Tensor, on_target: float, off_target: float, dtype: torch.dtype) -> Tensor:
    """``on_target`` where ``mask`` is set, ``off_target`` elsewhere."""
    on = torch.as_tensor(on_target, dtype=dtype, device=mask.device)
    off = torch.as_tensor(off_target, dtype=dtype, device=mask.device)
    return torch.where(mask.bool(), on, off)


def _time_first(x: Tensor, num_steps: int) -> Tensor:
    return x.repeat(num_steps, *([1] * x.dim()))


def rate_conv(data: Tensor) -> Tensor:
    """Bernoulli spikes with probability ``data`` clipped to [0, 1], same shape as ``data``.

    Differs from snnTorch: integer inputs are converted to the default float dtype (snnTorch's
    ``torch.bernoulli`` rejects them).
    """
    data = _tensor("data", data)
    return torch.bernoulli(torch.clamp(data.to(_float_dtype(data)), min=0, max=1))


def rate(data: Tensor, num_steps=False, gain=1, offset=0, first_spike_time=0, time_var_input=False) -> Tensor:
    """Rate (Poisson/Bernoulli) encoding: each step spikes with probability ``gain*data+offset``.

    Args:
        data: Static input (repeated ``num_steps`` times along a new first dimension), or a
            time-first input when ``time_var_input=True``.
        num_steps: Number of steps for static input; must not be given for time-varying input.
        gain: Scale applied to ``data`` before encoding.
        offset: Shift applied to ``data`` after ``gain``.
        first_spike_time: Steps silenced at the start (static input) or zero steps prepended
            (time-varying input).
        time_var_input: Whether ``data`` already has a time dimension.

    Returns:
        Spikes of shape ``(num_steps, *data.shape)`` (static) or
        ``(first_spike_time + T, ...)`` (time-varying).

    Differs from snnTorch: ``gain`` and ``offset`` also apply to time-varying input (snnTorch
    silently ignores them there).
    """
    data = _tensor("data", data)
    steps = _count("num_steps", num_steps, optional=True)
    first = _count("first_spike_time", first_spike_time)
    if time_var_input:
        if steps:
            raise ValueError(
                "`num_steps` must not be given when time_var_input=True: the first "
                "dimension of `data` plus `first_spike_time` sets the steps"
            )
        spikes = rate_conv(data * gain + offset)
        if first:
            spikes = torch.cat((spikes.new_zeros((first, *spikes.shape[1:])), spikes))
        return spikes
    if not steps:
        raise ValueError(
            "`num_steps` must be a positive integer for static input (set time_var_input=True if `data` is time-first)"
        )
    if first > steps - 1:
        raise ValueError(f"`first_spike_time` ({first}) must be at most num_steps-1 ({steps - 1})")
    spikes = rate_conv(_time_first(data, steps) * gain + offset)
    spikes[:first] = 0
    return spikes


def _latency_args(data, num_steps, threshold, tau, first_spike_time, normalize) -> tuple[Tensor, int, int]:
    """snnTorch's ``_latency_errors``: ``(data, num_steps, first_spike_time)`` once checked."""
    data = _tensor("data", data)
    steps = _count("num_steps", num_steps, optional=True)
    first = _count("first_spike_time", first_spike_time)
    if not 0 < threshold < 1:
        raise ValueError(f"`threshold` must be in (0, 1), got {threshold}")
    if tau <= 0:
        raise ValueError(f"`tau` must be positive, got {tau}")
    if steps and first > steps - 1:
        raise ValueError(f"`first_spike_time` ({first}) must be at most num_steps-1 ({steps - 1})")
    if first and torch.max(data) > 1 and torch.min(data) < 0:
        raise ValueError("`first_spike_time` can only be applied to data between 0 and 1")
    if normalize and not steps:
        raise ValueError("`num_steps` must be given when normalize=True")
    return data, steps, first


def latency_code_linear(data: Tensor, num_steps=False, threshold=0.01, tau=1, first_spike_time=0,
                        normalize=False) -> Tensor:
    r"""Linear latency code: spike times :math:`t = \min(\tau (1 - x), \tau (1 - \theta)) + t_0`.

    With ``normalize``, :math:`\tau = T - 1 - t_0` so the latest spike falls on step ``T - 1``
    (and, for data above 1, the times are rescaled into ``[0, T - 1]`` as in snnTorch).

    Returns:
        Spike times shaped like ``data``.
    """
    data, steps, first = _latency_args(data, num_steps, threshold, tau, first_spike_time, normalize)
    if normalize:
        tau = steps - 1 - first
    spike_time = torch.clamp_max(-tau * (data - 1), -tau * (threshold - 1)) + first
    if normalize and torch.min(spike_time) < 0:  # only for data above 1, as in snnTorch
        low = torch.min(spike_time)
        spike_time = (spike_time - low) * (1 / (torch.max(spike_time) - low)) * (steps - 1)
    return spike_time


def latency_code_log(data: Tensor, num_steps=False, threshold=0.01, tau=1, first_spike_time=0, normalize=False,
                     epsilon=1e-7) -> Tensor:
    r"""Logarithmic latency code, the firing time of an RC circuit charged by the feature:

    .. math:: t = \tau \log\frac{x'}{x' - \theta} + t_0, \quad x' = \max(x, \theta + \epsilon)

    With ``normalize``, the times are scaled so the latest spike falls on step ``T - 1``.

    Returns:
        Spike times shaped like ``data``.
    """
    data, steps, first = _latency_args(data, num_steps, threshold, tau, first_spike_time, normalize)
    clamped = torch.clamp(data, threshold + epsilon)
    spike_time = tau * torch.log(clamped / (clamped - threshold))
    if first > 0:
        spike_time += first
    if normalize:
        spike_time = (spike_time - first) * (steps - first - 1) / torch.max(spike_time - first) + first
    return spike_time


def latency_code(
    data: Tensor,
    num_steps=False,
    threshold=0.01,
    tau=1,
    first_spike_time=0,
    normalize=False,
    linear=False,
    epsilon=1e-7,
) -> tuple[Tensor, Tensor]:
    """Spike times of a latency code (:func:`latency_code_log`, or :func:`latency_code_linear`
    when ``linear``), and the mask of features below ``threshold``.

    Returns:
        ``(spike_time, below_threshold)``, both shaped like ``data``.
    """
    if linear:
        spike_time = latency_code_linear(data, num_steps, threshold, tau, first_spike_time, normalize)
    else:
        spike_time = latency_code_log(data, num_steps, threshold, tau, first_spike_time, normalize, epsilon)
    return spike_time, data < threshold


def latency_interpolate(spike_time: Tensor, num_steps: int, on_target=1, off_target=0) -> Tensor:
    """Membrane-style target that ramps linearly from ``off_target`` to ``on_target`` at each
    element's (rounded) spike time, and stays at ``off_target`` afterwards.

    Spike times beyond ``num_steps`` never reach ``on_target``.

    Returns:
        Tensor of shape ``(num_steps, *spike_time.shape)``.

    Differs from snnTorch: snnTorch computes the value at the spike step as
    ``ratio*(on-off)+off`` and then turns every value above ``on_target`` off; rounding can push
    the spike step itself above ``on_target`` (e.g. on=0.7, off=0.1), dropping the spike. Here
    the spike step is capped at ``on_target``; steps after it are off.
    """
    spike_time = _tensor("spike_time", spike_time)
    steps = _count("num_steps", num_steps)
    if on_target < off_target:
        raise ValueError(f"`on_target` ({on_target}) must not be below `off_target` ({off_target})")
    dtype = _float_dtype(spike_time)
    fire = torch.round(spike_time).to(dtype)
    fire = torch.where(fire > steps, 0.5, fire)  # out of range: off at every step
    at_zero = fire == 0
    fire = torch.where(at_zero, 0.5, fire)
    step = torch.arange(steps, dtype=dtype, device=fire.device).reshape(-1, *([1] * fire.dim()))
    ratio = step * fire.reciprocal()  # snnTorch's `k / t` is `t.reciprocal() * k`
    if steps:
        ratio[0] = at_zero.to(dtype)
    target = torch.clamp_max(ratio * (on_target - off_target) + off_target, on_target)
    off = torch.as_tensor(off_target, dtype=dtype, device=fire.device)
    return torch.where(step > fire, off, target)


def latency(
    data: Tensor,
    num_steps=False,
    threshold=0.01,
    tau=1,
    first_spike_time=0,
    on_target=1,
    off_target=0,
    clip=False,
    normalize=False,
    linear=False,
    interpolate=False,
    bypass=False,
    epsilon=1e-7,
) -> Tensor:
    """Latency encoding: each feature in [0, 1] spikes once; larger features spike earlier.

    Args:
        data: Features in [0, 1].
        num_steps: Number of steps; may be omitted with ``bypass=True`` (then the latest spike
            sets it).
        threshold: Features below it fire at the last step (never, with ``clip=True``).
        tau: RC time constant (log code) or slope (linear code).
        first_spike_time: Earliest spike step.
        on_target: Value at spike steps.
        off_target: Value elsewhere.
        clip: Silence features below ``threshold``.
        normalize: Scale spike times so the latest falls on step ``num_steps - 1``.
        linear: Linear instead of logarithmic code.
        interpolate: Ramp linearly up to each spike (see ``latency_interpolate``).
        bypass: Allow spike times past ``num_steps`` (those spikes are dropped).
        epsilon: Keeps the log code finite at ``threshold``.

    Returns:
        Tensor of shape ``(num_steps, *data.shape)`` in ``data``'s float dtype.

    Differs from snnTorch: off steps are ``off_target`` also when it is negative or above
    ``on_target`` (snnTorch's ``clamp(spikes * on_target, off_target)`` gives 0 or loses the
    spikes there); ``clip`` also applies with ``interpolate=True`` (snnTorch ignores it); the
    output keeps a floating ``data`` dtype (snnTorch always returns float32).
    """
    data = _tensor("data", data)
    if data.numel() == 0:
        raise ValueError("`data` must not be empty")
    low, high = torch.min(data).item(), torch.max(data).item()
    if low < 0 or high > 1:
        raise ValueError(f"elements of `data` must be in [0, 1], got [{low}, {high}]")
    steps = _count("num_steps", num_steps, optional=True)
    if not steps and not bypass:
        raise ValueError("`num_steps` must be given (or bypass=True to take it from the latest spike time)")
    spike_time, below = latency_code(data, steps or False, threshold, tau, first_spike_time, normalize, linear, epsilon)
    last = int(torch.round(torch.max(spike_time)).item())
    if not steps:
        steps = last + 1
    if last > steps - 1 and not bypass:
        raise ValueError(
            f"the latest spike time ({last}) is out of range for num_steps ({steps}); "
            "set bypass=True, decrease `tau` or set normalize=True"
        )
    dtype = _float_dtype(data)
    if interpolate:
        out = latency_interpolate(spike_time.to(dtype), steps, on_target, off_target)
        return torch.where(below, torch.as_tensor(off_target, dtype=dtype), out) if clip else out
    fire_step = torch.round(torch.clamp_max(spike_time, steps - 1)).long()
    spikes = torch.zeros((steps, *data.shape), dtype=dtype, device=data.device)
    spikes = spikes.scatter(0, fire_step.unsqueeze(0), 1)
    keep = torch.round(spike_time) <= steps - 1
    if clip:
        keep = keep & ~below
    return _on_off(spikes.bool() & keep, on_target, off_target, dtype)


def delta(data: Tensor, threshold=0.1, padding=False, off_spike=False) -> Tensor:
    """Spike where a feature rises by at least ``threshold`` from the previous step.

    Args:
        data: Time-first tensor.
        threshold: Minimum change that spikes.
        padding: Compare the first step with itself (no spike) instead of with zeros.
        off_spike: Also emit ``-1`` where the feature falls by at least ``threshold``.

    Returns:
        Tensor shaped like ``data``.
    """
    data = _tensor("data", data)
    first = data[:1] if padding else torch.zeros_like(data[:1])
    change = data - torch.cat((first, data[:-1]))
    spikes = torch.ones_like(data) * (change >= threshold)
    if off_spike:
        spikes = spikes + -torch.ones_like(data) * (change <= -threshold)
    return spikes


def to_one_hot(targets: Tensor, num_classes: int) -> Tensor:
    """One-hot encoding of class indices ``targets`` (shape ``(B,)``) as ``(B, num_classes)``."""
    targets = _tensor("targets", targets)
    classes = _count("num_classes", num_classes)
    if targets.dim() != 1:
        raise ValueError(f"`targets` must be 1-D class indices, got shape {tuple(targets.shape)}")
    if targets.numel() and (targets.min() < 0 or targets.max() > classes - 1):
        raise ValueError(
            f"`targets` must lie in [0, {classes - 1}] for num_classes={classes}, "
            f"got [{targets.min().item()}, {targets.max().item()}]"
        )
    one_hot = torch.zeros((len(targets), classes), device=targets.device)
    return one_hot.scatter(1, targets.long().unsqueeze(-1), 1)


def to_one_hot_inverse(one_hot_targets: Tensor) -> Tensor:
    """1 where ``one_hot_targets`` is 0 and 0 elsewhere."""
    one_hot_targets = _tensor("one_hot_targets", one_hot_targets)
    return (one_hot_targets == 0).to(one_hot_targets.dtype)


def from_one_hot(one_hot_label: Tensor) -> Tensor:
    """Class indices of one-hot labels.

    A 1-D label gives the positions of its ones (as snnTorch); a ``(..., C)`` batch gives the
    class of each row, shape ``(...)``.

    Differs from snnTorch: snnTorch returns ``torch.where(x == 1)[0]``, the *row* numbers of a
    2-D batch (``[[0, 1], [1, 0]]`` gives ``[0, 1]`` instead of ``[1, 0]``).
    """
    one_hot_label = _tensor("one_hot_label", one_hot_label)
    hot = one_hot_label == 1
    if one_hot_label.dim() <= 1:
        return torch.where(hot.reshape(-1))[0]
    if not torch.all(hot.sum(-1) == 1):
        raise ValueError("each row of `one_hot_label` must contain exactly one 1")
    return hot.to(torch.uint8).argmax(-1)


def target_rate_code(num_steps, first_spike_time=0, rate=1, firing_pattern="regular"):
    """Spike train of one output at a firing ``rate``, and its spike steps.

    ``'regular'`` fires every ``1/rate`` steps from ``first_spike_time``; ``'uniform'`` draws as
    many times uniformly (duplicates merge); ``'poisson'`` fires each step with probability
    ``rate``.

    Returns:
        ``(spikes of shape (num_steps,), spike steps)``.
    """
    steps = _count("num_steps", num_steps)
    first = _count("first_spike_time", first_spike_time)
    if not 0 <= rate <= 1:
        raise ValueError(f"`rate` must be in [0, 1], got {rate}")
    if first > steps:
        raise ValueError(f"`first_spike_time` ({first}) must not exceed num_steps ({steps})")
    pattern = str(firing_pattern).lower()
    if pattern not in _PATTERNS:
        raise ValueError(f"`firing_pattern` must be one of {_PATTERNS}, got {firing_pattern!r}")
    if rate == 0:
        return torch.zeros(steps), torch.zeros(0)
    if pattern == "poisson":
        spikes = torch.bernoulli(torch.cat((torch.zeros(first), torch.ones(steps - first) * rate)))
        return spikes, torch.where(spikes == 1)[0]
    times = torch.arange(first, steps, 1 / rate)
    if pattern == "uniform":
        times = torch.rand(len(times)) * (steps - first) + first
    return torch.zeros(steps).scatter(0, times.long(), 1), times.long()


def rate_interpolate(spike_time: Tensor, num_steps, on_target=1, off_target=0, epsilon=1e-7):
    """Target that ramps linearly from ``off_target`` to ``on_target`` up to each spike step.

    Returns:
        Tensor of shape ``(num_steps,)``; steps after the last spike are ``off_target``.

    Differs from snnTorch: ``on_target == off_target`` gives a constant target (snnTorch fails
    in ``torch.arange`` with a zero step); spike steps outside ``[0, num_steps)`` are ignored
    (snnTorch then returns a shorter tensor).
    """
    spike_time = _tensor("spike_time", spike_time)
    steps = _count("num_steps", num_steps)
    out = torch.full((steps,), float(off_target))
    fires = sorted({int(t) for t in spike_time.reshape(-1).tolist() if 0 <= t < steps and t == int(t)})
    previous = -1
    for step in fires:
        gap = step - previous - 1
        if gap == 0:
            out[step] = on_target
        else:  # torch.arange(off, on + epsilon, (on - off) / gap), computed as torch does
            ramp = off_target + (on_target - off_target) / gap * torch.arange(gap + 1, dtype=torch.float64)
            out[previous + 1 : step + 1] = ramp.to(out.dtype)
        previous = step
    return out


def targets_rate(
    targets: Tensor,
    num_classes,
    num_steps=False,
    first_spike_time=0,
    correct_rate=1,
    incorrect_rate=0,
    on_target=1,
    off_target=0,
    firing_pattern="regular",
    interpolate=False,
    epsilon=1e-7,
) -> Tensor:
    """Rate-coded targets for class indices.

    With ``correct_rate=1``, ``incorrect_rate=0`` and ``first_spike_time=0`` the result is the
    one-hot ``(B, C)`` tensor with ``on_target``/``off_target``; otherwise it is time-first
    ``(num_steps, B, C)``: correct classes fire at ``correct_rate``, the others at
    ``incorrect_rate`` (see ``target_rate_code``), ramping up to each spike with ``interpolate``.

    Differs from snnTorch: time-varying targets without ``interpolate`` have shape
    ``(num_steps, B, C)`` (snnTorch broadcasts time against classes and fails, or returns a
    5-D tensor); negative ``off_target`` is kept (snnTorch clamps it to 0); ``first_spike_time``
    without ``num_steps`` raises instead of returning an empty tensor.
    """
    if not 0 <= correct_rate <= 1 or not 0 <= incorrect_rate <= 1:
        raise ValueError(f"`correct_rate` ({correct_rate}) and `incorrect_rate` ({incorrect_rate}) must be in [0, 1]")
    if incorrect_rate > correct_rate:
        raise ValueError("`correct_rate` must not be below `incorrect_rate`")
    if str(firing_pattern).lower() not in _PATTERNS:
        raise ValueError(f"`firing_pattern` must be one of {_PATTERNS}, got {firing_pattern!r}")
    steps = _count("num_steps", num_steps, optional=True)
    first = _count("first_spike_time", first_spike_time)
    one_hot = to_one_hot(targets, num_classes)
    dtype = one_hot.dtype
    if correct_rate == 1 and incorrect_rate == 0:
        out = _on_off(one_hot, on_target, off_target, dtype)
        if first == 0:
            return out
        if not steps or first > steps:
            raise ValueError(f"`num_steps` must be given and at least first_spike_time ({first})")
        out = _time_first(out, steps)
        out[:first] = off_target
        return out
    if not steps:
        raise ValueError("`num_steps` must be given when correct_rate != 1 or incorrect_rate != 0")
    correct, correct_times = target_rate_code(steps, first, correct_rate, firing_pattern)
    incorrect, incorrect_times = target_rate_code(steps, first, incorrect_rate, firing_pattern)
    hot = _time_first(one_hot, steps)
    if interpolate:
        correct = rate_interpolate(correct_times, steps, on_target, off_target, epsilon)
        incorrect = rate_interpolate(incorrect_times, steps, on_target, off_target, epsilon)
    correct = correct.to(hot.device)[:, None, None]
    incorrect = incorrect.to(hot.device)[:, None, None]
    if interpolate:
        return hot * correct + to_one_hot_inverse(hot) * incorrect
    return _on_off(hot * correct + to_one_hot_inverse(hot) * incorrect, on_target, off_target, dtype)


def targets_latency(
    targets: Tensor,
    num_classes,
    num_steps=False,
    first_spike_time=0,
    on_target=1,
    off_target=0,
    interpolate=False,
    threshold=0.01,
    tau=1,
    clip=False,
    normalize=False,
    linear=False,
    epsilon=1e-7,
    bypass=False,
):
    """Latency-coded targets: ``latency`` applied to the one-hot encoding of ``targets``.

    The correct class fires first; the others (below ``threshold``) fire last, or never with
    ``clip=True``. Returns a ``(num_steps, B, num_classes)`` tensor.
    """
    one_hot = to_one_hot(targets, num_classes)
    return latency(  # positional: latency's own argument order
        one_hot, num_steps, threshold, tau, first_spike_time, on_target, off_target, clip, normalize,
        linear, interpolate, bypass, epsilon,
    )  # fmt: skip


def targets_convert(
    targets: Tensor,
    num_classes,
    code="rate",
    num_steps=False,
    first_spike_time=0,
    correct_rate=1,
    incorrect_rate=0,
    on_target=1,
    off_target=0,
    firing_pattern="regular",
    interpolate=False,
    epsilon=1e-7,
    threshold=0.01,
    tau=1,
    clip=False,
    normalize=False,
    linear=False,
    bypass=False,
):
    """Spiking targets for class indices: ``targets_rate`` (``code='rate'``) or
    ``targets_latency`` (``code='latency'``) with the matching arguments.

    Differs from snnTorch: with ``code='latency'``, ``on_target``, ``off_target``,
    ``interpolate`` and ``epsilon`` are passed on (snnTorch drops them).
    """
    if code == "rate":  # positional: the callee's own argument order
        return targets_rate(
            targets, num_classes, num_steps, first_spike_time, correct_rate, incorrect_rate,
            on_target, off_target, firing_pattern, interpolate, epsilon,
        )  # fmt: skip
    if code == "latency":
        return targets_latency(
            targets, num_classes, num_steps, first_spike_time, on_target, off_target, interpolate,
            threshold, tau, clip, normalize, linear, epsilon, bypass,
        )  # fmt: skip
    raise ValueError(f"`code` must be 'rate' or 'latency', got {code!r}")
