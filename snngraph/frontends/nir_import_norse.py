r"""``sg.from_nir(graph, dt=dt, method="norse")``: a NIR graph written by Norse 1.1.0's ``to_nir`` as Norse's cells.

Norse exports its ``LIFCell`` as a ``CubaLIF`` and its ``LIFBoxCell`` as a ``LIF`` with
``tau = dt / tau_inv`` (its time step over its inverse time constant, not ``1 / tau_inv``), ``r = 1`` and
``w_in = 1``. Read with NIR's equations these graphs compute something else than Norse does (its
current jumps by the whole input, NIR's by ``dt / tau_syn`` of it), so ``method="norse"`` builds
Norse's own models instead, with the export's ``dt``: ``CubaLIF`` -> ``norse_lif`` and ``LIF`` ->
``norse_lif_box`` with :math:`\tau^{-1} = \Delta t / \tau`, ``v_leak``, ``v_th = v_threshold`` and
``v_reset`` (reset to a value). Other neuron nodes raise ``GraphError``; synapses import as usual.
"""

from __future__ import annotations

from typing import Any

import nir
import numpy as np

from snngraph.frontends.nir_import_nodes import CONVERTERS, Ctx, Recurrent, f32
from snngraph.ir.errors import GraphError
from snngraph.ir.graph import Graph, Handle


def _common(node: Any, name: str, ctx: Ctx, taus: dict[str, Any]) -> dict[str, Any]:
    for key in ("r", "w_in"):
        if hasattr(node, key) and np.any(np.asarray(getattr(node, key)) != 1):
            raise GraphError(f"NIR node '{name}': method='norse' needs {key} = 1 (Norse's export), got "
                             f"{np.asarray(getattr(node, key)).ravel()[:4].tolist()}")
    kw = {}
    for key, tau in taus.items():
        tau = np.asarray(tau, np.float64)
        if np.any(~(tau > 0)):
            raise GraphError(f"NIR node '{name}': method='norse' needs positive time constants, got {key}")
        kw[key] = f32(ctx.dt / tau)
    v_reset = getattr(node, "v_reset", None)
    kw.update(v_th=f32(node.v_threshold), v_leak=f32(node.v_leak),
              v_reset=f32(0.0 if v_reset is None else v_reset), dt=ctx.dt)
    return kw


def _cuba_lif(g: Graph, name: str, x: Handle, node: Any, ctx: Ctx) -> Handle:
    return g.norse_lif(x, name=name, **_common(node, name, ctx, {"tau_mem_inv": node.tau_mem,
                                                                  "tau_syn_inv": node.tau_syn}))


def _lif(g: Graph, name: str, x: Handle, node: Any, ctx: Ctx) -> Handle:
    return g.norse_lif_box(x, name=name, **_common(node, name, ctx, {"tau_mem_inv": node.tau}))


def _unsupported(g: Graph, name: str, x: Handle, node: Any, ctx: Ctx) -> Handle:
    raise GraphError(f"NIR node '{name}' ({type(node).__name__}) has no Norse model in method='norse' "
                     "(supported: CubaLIF from LIFCell, LIF from LIFBoxCell)")


NORSE_CONVERTERS = {**CONVERTERS, nir.CubaLIF: _cuba_lif, nir.LIF: _lif, nir.LI: _unsupported,
                    nir.CubaLI: _unsupported, nir.IF: _unsupported, nir.I: _unsupported,
                    nir.Threshold: _unsupported, Recurrent: _unsupported}
"""The converters of ``method="norse"``: Norse's neurons, everything else as NIR's."""
