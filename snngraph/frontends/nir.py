r"""NIR interop with the time discretisation stated explicitly.

`NIR <https://neuroir.org>`_ graphs state continuous-time equations (``tau``, ``r``, ``v_leak``,
``v_reset``) and leave the time step to each importer. snngraph's neurons are discrete (snnTorch
semantics), so :func:`to_nir` and :func:`from_nir` take the step ``dt`` and the discretisation
``method`` explicitly, and record both, with the reset convention, in NIR node metadata so that a
round trip snngraph -> NIR -> snngraph computes exactly what the original graph computes.

For a first-order node :math:`\tau \dot v = (v_{leak} - v) + R\,I` both methods give

.. math:: v[t] = \beta\,v[t-1] + (1 - \beta)\,(R\,I[t] + v_{leak})

with :math:`\beta = 1 - \Delta t / \tau` (``"euler"``, forward Euler) or
:math:`\beta = e^{-\Delta t / \tau}` (``"exp"``, exponential Euler: exact decay, input held over the
step). The per-node mapping table is in ``docs/nir.md``.
"""

from __future__ import annotations

import math
import os
from typing import TYPE_CHECKING, Any

import numpy as np

from snngraph.ir.errors import GraphError

if TYPE_CHECKING:
    import nir as nir_pkg

    from snngraph.ir.graph import Graph

__all__ = ["METHODS", "decay_from_tau", "from_nir", "tau_from_decay", "to_nir"]

METHODS = ("euler", "exp")
# metadata keys written on export and read on import
META_RESET = "reset_mechanism"
META_RESET_DELAY = "reset_delay"
META_METHOD = "discretization"
META_DT = "dt"
META_SHAPES = "param_shapes"
META_PORT = "port"
META_NAME = "name"
META_INDEX = "index"  # position of an Output among the graph outputs (HDF5 sorts names)
# NIR's own reset: v <- v_reset in the step the neuron fires
DEFAULT_RESET = ("zero", False)
DEFAULT_DT = 1.0
DEFAULT_METHOD = "euler"


def check_dt(dt: Any) -> float:
    """``dt`` as a positive finite float, or GraphError."""
    try:
        value = float(dt)
    except (TypeError, ValueError):
        raise GraphError(f"NIR: dt must be a positive number, got {dt!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise GraphError(f"NIR: dt must be a positive finite number, got {dt!r}")
    return value


def check_method(method: Any) -> str:
    """``method`` if it is ``"euler"`` or ``"exp"``, else GraphError."""
    if method not in METHODS:
        raise GraphError(f"NIR: method must be one of {METHODS}, got {method!r}")
    return method


def decay_from_tau(tau: Any, dt: float, method: str) -> np.ndarray:
    r"""The per-step decay of a time constant: :math:`1 - \Delta t/\tau` or :math:`e^{-\Delta t/\tau}`
    (float64; ``tau = inf`` gives 1, ``tau = 0`` with ``"exp"`` gives 0)."""
    tau = np.asarray(tau, dtype=np.float64)
    with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
        return 1.0 - dt / tau if method == "euler" else np.exp(-dt / tau)


def tau_from_decay(beta: Any, dt: float, method: str) -> np.ndarray:
    r"""The time constant of a per-step decay, inverse of :func:`decay_from_tau` (float64)."""
    beta = np.asarray(beta, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        return dt / (1.0 - beta) if method == "euler" else -dt / np.log(beta)


def to_nir(graph: Graph, dt: float = 1.0, method: str = "euler", path: Any = None) -> nir_pkg.NIRGraph:
    """Export a graph to a ``nir.NIRGraph`` with time step ``dt``.

    Args:
        graph: the snngraph graph (or a compiled net: its current parameters are exported).
        dt: the time step the discrete decays stand for (``tau = dt / (1 - beta)`` for ``"euler"``,
            ``-dt / log(beta)`` for ``"exp"``).
        method: ``"euler"`` or ``"exp"``; recorded in each neuron's metadata.
        path: when given, also write the graph there with ``nir.write`` (HDF5).

    Returns:
        The NIR graph. Neuron nodes carry metadata ``reset_mechanism``, ``reset_delay``,
        ``discretization``, ``dt`` and ``param_shapes``.

    Raises:
        GraphError: naming a node with no NIR counterpart (or a feature NIR cannot state).
    """
    _require_nir()
    from snngraph.frontends.nir_export import export_graph
    from snngraph.ir.graph import Graph

    if hasattr(graph, "to_graph"):  # a compiled net: its current parameters
        graph = graph.to_graph()
    if not isinstance(graph, Graph):
        raise GraphError(f"to_nir expects an snngraph Graph or compiled net, got {type(graph).__name__}")
    out = export_graph(graph, check_dt(dt), check_method(method))
    if path is not None:
        import nir

        nir.write(path, out)
    return out


def from_nir(nir_graph: Any, dt: float | None = None, method: str | None = None, name: str | None = None) -> Graph:
    """Import a ``nir.NIRGraph`` (or a NIR file path) as an snngraph graph.

    Args:
        nir_graph: a ``nir.NIRGraph``, or a path to a file written by ``nir.write``.
        dt: the time step; ``None`` takes the ``dt`` stored by :func:`to_nir`, else 1.0 (with a
            ``UserWarning``).
        method: ``"euler"`` or ``"exp"``; ``None`` takes each node's stored ``discretization``,
            else ``"euler"``. ``"norse"``: a graph exported by Norse 1.1.0's ``to_nir`` (with ``dt`` its
            time step) as Norse's models (:mod:`snngraph.frontends.nir_import_norse`).
        name: the name of the returned graph; ``None`` takes the name stored by :func:`to_nir`, else ``"nir"``.

    Returns:
        The graph; outputs are named after the NIR ``Output`` nodes.

    Raises:
        GraphError: naming a NIR node that has no snngraph counterpart, or whose parameters
            give decays outside [0, 1] at this ``dt``.

    Warns:
        UserWarning: when neurons carry no reset/discretisation metadata, listing them and the
            defaults used (NIR's reset to ``v_reset`` in the spiking step: ``reset_mechanism="zero"``,
            ``reset_delay=False``; ``"euler"``), or when ``dt`` is neither given nor stored.
    """
    _require_nir()
    from snngraph.frontends.nir_import import import_graph

    if method is not None and method != "norse":
        check_method(method)
    if dt is not None:
        dt = check_dt(dt)
    if isinstance(nir_graph, (str, os.PathLike)):
        from snngraph.frontends.nir_file import read_nir_file

        nir_graph = read_nir_file(nir_graph)
    return import_graph(nir_graph, dt, method, name)


def _require_nir() -> None:
    try:
        import nir  # noqa: F401
    except ImportError as err:
        raise ImportError("NIR interop needs the 'nir' package: pip install 'snngraph[nir]'") from err
