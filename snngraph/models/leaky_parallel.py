r"""snnTorch 1.0.0's ``LeakyParallel``: a ReLU RNN cell whose hidden state is thresholded, declared once."""

from __future__ import annotations

from typing import Any

from snngraph.ir.model import ParamSpec, neuron_model
from snngraph.models.common import FIRING, fire


@neuron_model("leaky_parallel", params={**FIRING, "bias_hh": ParamSpec(0.0)}, state=("mem",), recurrent=True,
              builtin=True)
def leaky_parallel(ops: Any, x: Any, state: dict[str, Any], p: dict[str, Any]) -> tuple[Any, dict]:
    r"""``torch.nn.RNN(nonlinearity="relu")``'s cell, thresholded (snnTorch ``LeakyParallel``); ports ``spk``, ``mem``.

    .. math::
        U[t] &= \mathrm{ReLU}(I[t] + V(U[t-1]) + b_{hh}) \\
        S[t] &= g\,H(U[t] - \theta)

    :math:`I[t] = W_{ih} x[t] + b_{ih}` comes from the linear layer feeding the neuron. The
    recurrence :math:`V` reads the *membrane* (not the spikes): one-to-one ``V`` is the diagonal
    :math:`\beta` of snnTorch's default diagonal ``weight_hh_l0``; all-to-all ``recurrent.weight``
    its dense ``weight_hh_l0`` (``weight_hh_enable=True``). There is no reset, and the spikes do not
    feed back (the carried ``spk`` state is unused). The ReLU's gradient at 0 is 0, as torch's.
    """
    pre = x + ops.recurrent(state["mem"]) + p["bias_hh"]
    mem = ops.where(ops.gt(pre, 0.0), pre, 0.0)
    return fire(ops, mem, p["threshold"], p["graded_spikes_factor"]), {"mem": mem}
