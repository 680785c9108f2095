"""What the torch runtime can fuse: the neuron models (and options) that have a hand-written scan.

Plain data and predicates, no torch: the backend-neutral ``fuse_state_updates`` pass asks this table
(``sg.passes.default_pipeline()`` passes it in). The scans themselves are registered against the
same names in :mod:`snngraph.runtimes.torch.sequence` (``SCAN_RUNNERS``) and tested bit for bit
against the model's derived step kernel.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from snngraph.ir.surrogate import SURROGATE_NAMES, surrogate_of

# SSO draws noise in its backward: a scan would draw it in another order than the step loop, so
# gradients would differ in distribution-preserving but not identical ways; it stays unfused, and so
# do plain callables (their backward is unknown to the scans).
DETERMINISTIC = tuple(n for n in SURROGATE_NAMES if n != "SSO")


def _any(node: Any) -> bool:
    return True


def _delayed_reset(node: Any) -> bool:
    return node.reset_delay


def _positive_tau(node: Any) -> bool:
    """``state_leaky`` runs as Leaky's scan with decay ``exp(-1/tau)``, which that scan keeps in [0, 1]."""
    return bool((node.tau.value > 0).all())


SCANS: dict[str, Callable[[Any], bool]] = {
    "leaky": _any,
    "integrate_fire": _any,
    "leaky_integrator": _any,
    "rleaky": _delayed_reset,
    "synaptic": _delayed_reset,
    "state_leaky": _positive_tau,
    "sj_if": _any,  # their parameters are not learnable (SpikingJelly's are Python floats)
    "sj_lif": _any,
    "slstm": _any,  # (no reset_delay option: snnTorch's LSTMs always reset from the previous membrane)
    "sconv2d_lstm": _any,
    "norse_lif": _any,
    "norse_li": _any,
    "norse_lif_recurrent": _any,
    "norse_lif_box": _any,
    "associative_leaky": _any,
}
"""Model name -> which of its nodes (by options) the torch scans cover."""


def torch_can_fuse(node: Any) -> bool:
    """Whether the torch runtime has a scan for ``node`` (its model, options and surrogate).

    A node without a surrogate yet counts as having the default (``atan``), so fusing does not depend
    on ``insert_surrogates`` having run first.
    """
    rule = SCANS.get(node.op)
    if rule is None or getattr(node, "inhibition", False) or getattr(node, "state_quant", None) is not None:
        return False  # (no scan takes the max over a layer or quantises: the derived step runs them)
    if node.model.spiking:
        surrogate = surrogate_of(node)
        if surrogate.name not in DETERMINISTIC:
            return False
    return rule(node)
