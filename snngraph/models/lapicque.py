r"""Lapicque's RC neuron (snnTorch ``Lapicque``), and snnTorch's resolution of ``beta``, ``R`` and ``C``."""

from __future__ import annotations

from typing import Any

import numpy as np

from snngraph.ir.errors import GraphError
from snngraph.ir.init import as_array
from snngraph.ir.model import INHIBITION, OptionSpec, ParamSpec, neuron_model
from snngraph.models.common import FIRING, delayed_reset, fire, reset_after

POSITIVE = ParamSpec(None, 0.0, strict_low=True, learnable=False)
TIME_STEP = ParamSpec(1.0, 0.0, strict_low=True, learnable=False)


def is_given(value: Any) -> bool:
    """snnTorch's truthiness test: ``None``, ``False`` and zero mean "not given"; tensors are given."""
    if value is None or value is False:
        return False
    if hasattr(value, "detach"):
        return True
    return bool(np.any(np.asarray(value) != 0))


def _log(value: Any) -> Any:
    if hasattr(value, "detach"):
        import torch

        return torch.log(value)
    out = np.log(np.asarray(value, dtype=np.float64))
    return float(out) if out.ndim == 0 else out


def _one_like(beta: Any) -> Any:
    if hasattr(beta, "detach"):
        import torch

        return torch.as_tensor(1)
    return 1.0


def _require_positive(name: str, value: Any) -> None:
    arr = np.asarray(value.detach().cpu() if hasattr(value, "detach") else value, dtype=np.float64)
    if not np.all(np.isfinite(arr) & (arr > 0)):
        raise GraphError(f"lapicque: {name} must be finite and positive (beta in (0, 1)), got {value!r}")


def lapicque_rc(beta: Any = None, R: Any = None, C: Any = None, time_step: Any = 1.0, *, check: bool = True):
    r"""Resolve Lapicque's ``R`` and ``C`` the way snnTorch's ``_lapicque_cases`` does.

    Exactly one of these must hold (``None``, ``False`` or 0 mean "not given", as in snnTorch):

    * ``R`` and ``C`` given, ``beta`` not: they are used as they are;
    * ``beta`` only: :math:`R = 1`, :math:`C = \Delta t / (R \log(1/\beta))`;
    * ``beta`` and ``R``: :math:`C = \Delta t / (R \log(1/\beta))`;
    * ``beta`` and ``C``: :math:`R = \Delta t / (C \log(1/\beta))`.

    Values may be numbers, numpy arrays or torch tensors; tensors are computed with snnTorch's own
    expressions (``R`` becomes ``torch.as_tensor(1)``), so values match bit for bit. snnTorch accepts
    all three together and then fails at the first forward (``R`` is never set); here that is an
    error up front. The builder (``g.lapicque``) and ``sg.nn.Lapicque`` both resolve through here.

    Raises:
        GraphError: a combination snnTorch rejects, or non-finite / non-positive results.
    """
    has_beta, has_r, has_c = is_given(beta), is_given(R), is_given(C)
    if has_r and has_c and not has_beta:
        out = (R, C)
    elif has_beta and not (has_r and has_c):
        if not hasattr(beta, "detach") and not np.all((np.asarray(beta, np.float64) > 0)
                                                      & (np.asarray(beta, np.float64) < 1)):
            raise GraphError(f"lapicque: beta must be in (0, 1) to derive R or C, got {beta!r}")
        log_inv = _log(1 / beta)
        if has_c:
            out = (time_step / (C * log_inv), C)
        else:
            R = R if has_r else _one_like(beta)
            out = (R, time_step / (R * log_inv))
    else:
        raise GraphError("lapicque: give beta (optionally with one of R, C) or both R and C without beta; "
                         f"got beta={beta!r}, R={R!r}, C={C!r}")
    if check:
        for name, value in (("R", out[0]), ("C", out[1]), ("time_step", time_step)):
            _require_positive(name, value)
    return out


def _prepare(kwargs: dict[str, Any], where: str) -> dict[str, Any]:
    """The builder's ``beta`` / ``R`` / ``C`` -> ``R`` and ``C``, in torch's float32 arithmetic like snnTorch."""
    import torch

    def tensor(key: str) -> Any:
        value = kwargs.get(key)
        return torch.as_tensor(as_array(value, f"{where} {key}")) if is_given(value) else None

    beta, r, c = tensor("beta"), tensor("R"), tensor("C")
    dt = torch.as_tensor(as_array(kwargs.get("time_step", 1.0), f"{where} time_step"))
    try:
        r, c = lapicque_rc(beta, r, c, dt)
    except GraphError as e:
        raise GraphError(f"{where}: {str(e).removeprefix('lapicque: ')}") from None
    rest = {k: v for k, v in kwargs.items() if k != "beta"}
    return rest | {"R": r.numpy(), "C": c.numpy(), "time_step": dt.numpy()}


@neuron_model("lapicque", params={"R": POSITIVE, "C": POSITIVE, "time_step": TIME_STEP, **FIRING}, state=("mem",),
              options={"reset_mechanism": OptionSpec(("subtract", "zero", "none")), "inhibition": INHIBITION},
              prepare=_prepare, extra_keywords={"beta": None}, positional=("beta", "R", "C", "time_step", "threshold"),
              builtin=True, state_quant=True)
def lapicque(ops: Any, x: Any, state: dict[str, Any], p: dict[str, Any]) -> tuple[Any, dict]:
    r"""Lapicque's RC neuron (snnTorch ``Lapicque``, forward Euler); ports ``spk``, ``mem``.

    .. math::
        U_0[t] &= I[t]\,R\,\frac{1}{RC}\,\Delta t + \left(1 - \frac{\Delta t}{RC}\right) U[t-1] \\
        U[t] &= U_0[t] - R[t]\,\theta \ \text{(subtract)}, \qquad U_0[t] - R[t]\,U_0[t] \ \text{(zero)} \\
        S[t] &= g\,H(U[t] - \theta)

    Give ``beta``, or ``R`` and ``C``, or ``beta`` and one of them (:func:`lapicque_rc`); ``beta``
    only derives them. As in snnTorch there is no ``reset_delay`` option (the reset is always delayed).
    """
    threshold, r, c, dt = p["threshold"], p["R"], p["C"], p["time_step"]
    reset = delayed_reset(ops, p, state["mem"], threshold)
    mem = x * r * (1 / (r * c)) * dt + (1 - (dt / (r * c))) * state["mem"]
    mem = ops.quant(reset_after(p["reset_mechanism"], mem, reset, threshold))
    return fire(ops, mem, threshold, p["graded_spikes_factor"], p["inhibition"]), {"mem": mem}
