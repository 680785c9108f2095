r"""snnTorch 1.0.0's ``AssociativeLeaky``: an associative-memory spiking neuron with a matrix state.

A heads model (:mod:`snngraph.ir.model_heads`): the node holds the projections ``to_v``, ``to_k``,
``to_alpha`` and (``use_q_projection``) ``to_q``, named as in snnTorch's ``state_dict``; the state
``S`` is a ``d_value x d_key`` matrix per sample.
"""

from __future__ import annotations

from typing import Any

from snngraph.ir.model import neuron_model
from snngraph.ir.model_heads import Heads
from snngraph.models.common import FIRING, fire


def _output(p: dict[str, Any]) -> tuple[int, ...]:
    """``d*d`` readout features with the query projection, else the ``d*n`` flattened spikes."""
    return (p["d_value"] * (p["d_value"] if p["use_q_projection"] else p["d_key"]),)


ASSOCIATIVE_HEADS = Heads(
    sizes={"to_v": ("d_value",), "to_k": ("d_key",), "to_alpha": ("d_key",), "to_q": ("d_key", "d_value")},
    state=("d_value", "d_key"), output=_output, when={"to_q": "use_q_projection"},
    spikes=lambda p: not p["use_q_projection"])


@neuron_model("associative_leaky", params=FIRING, state="S", options={"use_q_projection": (True, False)},
              cell="heads", heads=ASSOCIATIVE_HEADS, builtin=True,
              snntorch_buffers={"reset_mechanism_val": lambda node: 0})
def associative_leaky(ops: Any, x: Any, state: dict[str, Any], p: dict[str, Any]) -> tuple[Any, dict]:
    r"""Associative leaky neuron (snnTorch ``AssociativeLeaky``); ports ``spk`` (the output) and ``S``.

    .. math::
        v_t = W_v x_t + b_v, \quad k_t &= W_k x_t + b_k, \quad \alpha_t = \sigma(W_\alpha x_t + b_\alpha) \\
        S_t &= S_{t-1} \operatorname{diag}(\alpha_t) + v_t k_t^\top \quad (d \times n) \\
        Z_t &= g\,H(S_t - \theta), \qquad y_t = \operatorname{vec}(Z_t\,Q_t)\ \text{or}\ \operatorname{vec}(Z_t)

    with :math:`Q_t` the query ``to_q(x_t)`` as an :math:`n \times d` matrix (``use_q_projection``),
    :math:`d` = ``d_value``, :math:`n` = ``d_key``. snnTorch evaluates :math:`S_t` in a closed form
    guarded by ``1e-8`` terms (recent writes fade from long sequences); this is the recurrence that
    form means.
    """
    d, n = p["d_value"], p["d_key"]
    alpha = ops.sigmoid(ops.project(x, "to_alpha"))
    S = state["S"] * ops.reshape(alpha, (1, n)) + ops.outer(ops.project(x, "to_v"), ops.project(x, "to_k"))
    Z = fire(ops, S, p["threshold"], p["graded_spikes_factor"])
    if not p["use_q_projection"]:
        return ops.reshape(Z, (d * n,)), {"S": S}
    y = ops.matmul(Z, ops.reshape(ops.project(x, "to_q"), (n, d)))
    return ops.reshape(y, (d * d,)), {"S": S}
