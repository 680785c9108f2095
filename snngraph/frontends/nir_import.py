"""NIR -> snngraph: flatten nested graphs, find recurrence, build the graph in dependency order.

Steps:

1. Nested ``NIRGraph`` nodes are flattened into one graph with names prefixed by the sub-graph's
   (``sub.node``, then sanitised to ``sub_node``); a sub-graph's ``Input``/``Output`` nodes dissolve
   into the edges through them. A sub-graph that is exactly snnTorch's recurrent export
   (``input -> lif <-> w_rec``, ``lif -> output``) is kept whole and becomes one ``rleaky`` /
   ``rsynaptic`` named after the sub-graph; the same pattern in a flat graph (a LIF/CubaLIF and an
   Affine/Linear that only feed each other) becomes one named after the LIF.
2. Remaining cycles: NIR edges are instantaneous, and a cycle is given NIR's implicit one-step delay
   on the edge that closes it in a depth-first walk from the inputs (a ``g.feedback`` delay).
   Cycles through a NIR ``Delay`` node need no extra delay.
3. Several edges into one node are summed (an ``add`` node named ``<node>_sum``).
"""

from __future__ import annotations

import copy
import re
import warnings
from typing import Any

import nir
import numpy as np

from snngraph.frontends.nir import (
    DEFAULT_DT,
    DEFAULT_METHOD,
    DEFAULT_RESET,
    META_DT,
    META_INDEX,
    META_NAME,
    META_PORT,
    check_dt,
)
from snngraph.frontends.nir_import_nodes import CONVERTERS, Ctx, Recurrent, fold_leaks
from snngraph.frontends.nir_import_norse import NORSE_CONVERTERS
from snngraph.ir.errors import GraphError
from snngraph.ir.graph import Graph, Handle

_IDENTITY = object()  # a nested graph's Input/Output, dissolved into edges
_CELLS = (nir.LIF, nir.CubaLIF)
_DENSE = (nir.Affine, nir.Linear)


def import_graph(graph: Any, dt: float | None, method: str | None, name: str | None) -> Graph:
    """The snngraph graph of a NIR graph (see :func:`snngraph.frontends.nir.from_nir`)."""
    if not isinstance(graph, nir.NIRGraph):
        raise GraphError(f"NIR: expected a nir.NIRGraph, got {type(graph).__name__}")
    stored_dt = graph.metadata.get(META_DT) if isinstance(graph.metadata, dict) else None
    if dt is None and stored_dt is None:
        warnings.warn(f"NIR graph carries no dt and none was given: using dt={DEFAULT_DT}", UserWarning, stacklevel=3)
    ctx = Ctx(dt=check_dt(dt if dt is not None else stored_dt if stored_dt is not None else DEFAULT_DT), method=method)
    nodes: dict[str, Any] = {}
    edges: list[tuple[str, str]] = []
    try:
        _flatten(graph, "", nodes, edges, top=True)
    except RecursionError:
        raise GraphError("NIR graph: sub-graphs are nested too deeply") from None
    nodes = {k: _numpy_fields(n) for k, n in nodes.items()}
    edges = _dissolve_identities(nodes, edges)
    _fuse_recurrent(nodes, edges)
    names = _names(nodes)
    ctx.reserved = set(names.values())
    if method != "norse":  # Norse's models take v_leak themselves
        fold_leaks(nodes, edges, names, ctx)
    stored_name = graph.metadata.get(META_NAME) if isinstance(graph.metadata, dict) else None
    if name is None:
        name = str(stored_name) if isinstance(stored_name, str) and re.fullmatch(r"[A-Za-z_]\w*", stored_name) \
            else "nir"
    g = _build(Graph(name), nodes, edges, names, ctx)
    if ctx.undocumented:
        warnings.warn(f"NIR nodes {ctx.undocumented} carry no snngraph metadata: using reset_mechanism="
                      f"{DEFAULT_RESET[0]!r}, reset_delay={DEFAULT_RESET[1]} (NIR's reset to v_reset in the spiking "
                      f"step) and method={method or DEFAULT_METHOD!r}", UserWarning, stacklevel=3)
    return g


# --- 1. flattening ----------------------------------------------------------------------------------
def _is_recurrent_subgraph(sub: nir.NIRGraph) -> tuple[str, str] | None:
    """``(lif, w_rec)`` keys when ``sub`` is exactly snnTorch's RLeaky/RSynaptic export."""
    kinds = {k: n for k, n in sub.nodes.items()}
    ins = [k for k, n in kinds.items() if isinstance(n, nir.Input)]
    outs = [k for k, n in kinds.items() if isinstance(n, nir.Output)]
    cells = [k for k, n in kinds.items() if isinstance(n, _CELLS)]
    dense = [k for k, n in kinds.items() if isinstance(n, _DENSE)]
    if len(kinds) != 4 or not (len(ins) == len(outs) == len(cells) == len(dense) == 1):
        return None
    lif, w = cells[0], dense[0]
    expected = {(ins[0], lif), (lif, w), (w, lif), (lif, outs[0])}
    return (lif, w) if set(map(tuple, sub.edges)) == expected and len(sub.edges) == 4 else None


def _flatten(graph: nir.NIRGraph, prefix: str, nodes: dict, edges: list, top: bool) -> None:
    for key, node in graph.nodes.items():
        full = prefix + key
        if isinstance(node, nir.NIRGraph):
            pattern = _is_recurrent_subgraph(node)
            if pattern:
                nodes[full] = Recurrent(node.nodes[pattern[0]], node.nodes[pattern[1]])
            else:
                _flatten(node, full + ".", nodes, edges, top=False)
        elif not top and isinstance(node, (nir.Input, nir.Output)):
            nodes[full] = _IDENTITY
        else:
            nodes[full] = node
    for a, b in graph.edges:
        edges.append((_endpoint(graph, prefix, a, nir.Output, nodes), _endpoint(graph, prefix, b, nir.Input, nodes)))


def _numpy_fields(node: Any) -> Any:
    """``node`` with its torch-tensor fields as numpy arrays (Norse and snnTorch write tensors into NIR
    nodes): a shallow copy, the caller's graph is left as it is."""
    if isinstance(node, Recurrent):
        return Recurrent(_numpy_fields(node.cell), _numpy_fields(node.w_rec))
    fields = vars(node) if hasattr(node, "__dict__") else {}
    tensors = {k: v for k, v in fields.items() if hasattr(v, "detach") and hasattr(v, "numpy")}
    if not tensors:
        return node
    new = copy.copy(node)
    for key, value in tensors.items():
        object.__setattr__(new, key, value.detach().cpu().numpy())
    return new


def _endpoint(graph: nir.NIRGraph, prefix: str, key: str, io: type, nodes: dict) -> str:
    """The flat name an edge end ``key`` refers to (a sub-graph name means its single Input/Output)."""
    if key in graph.nodes:
        node = graph.nodes[key]
        if isinstance(node, nir.NIRGraph) and not isinstance(nodes.get(prefix + key), Recurrent):
            ios = [k for k, n in node.nodes.items() if isinstance(n, io)]
            if len(ios) != 1:
                raise GraphError(f"NIR edge to sub-graph '{prefix + key}' is ambiguous: it has {len(ios)} "
                                 f"{io.__name__} nodes; name one as '{key}.<node>'")
            return f"{prefix}{key}.{ios[0]}"
        return prefix + key
    head, _, rest = key.partition(".")
    if rest and isinstance(graph.nodes.get(head), nir.NIRGraph):
        return _endpoint(graph.nodes[head], f"{prefix}{head}.", rest, io, nodes)
    raise GraphError(f"NIR edge end '{prefix + key}' names no node")


def _dissolve_identities(nodes: dict, edges: list) -> list[tuple[str, str]]:
    for ident in [k for k, n in nodes.items() if n is _IDENTITY]:
        preds = [a for a, b in edges if b == ident]
        succs = [b for a, b in edges if a == ident]
        edges = [e for e in edges if ident not in e] + [(a, b) for a in preds for b in succs]
        del nodes[ident]
    return edges


def _fuse_recurrent(nodes: dict, edges: list) -> None:
    """A LIF/CubaLIF and an Affine/Linear feeding only each other -> one Recurrent node (snnTorch's RLeaky)."""
    for w, node in list(nodes.items()):
        if not isinstance(node, _DENSE):
            continue
        ins = [a for a, b in edges if b == w]
        outs = [b for a, b in edges if a == w]
        if len(ins) == 1 and outs == ins and isinstance(nodes.get(ins[0]), _CELLS):
            cell = ins[0]
            nodes[cell] = Recurrent(nodes[cell], node)
            del nodes[w]
            edges[:] = [e for e in edges if w not in e]


def _names(nodes: dict) -> dict[str, str]:
    """Flat NIR name -> a unique snngraph identifier (names that already are identifiers are kept)."""
    out = {key: key for key in nodes if re.fullmatch(r"[A-Za-z_]\w*", key) and key.isascii()}
    taken = set(out.values())
    for key in nodes:
        if key in out:
            continue
        base = re.sub(r"[^A-Za-z0-9_]", "_", key) or "node"
        base = base if re.match(r"[A-Za-z_]", base) else f"n_{base}"
        name, i = base, 1
        while name in taken:
            i += 1
            name = f"{base}_{i}"
        taken.add(name)
        out[key] = name
    return {key: out[key] for key in nodes}


# --- 2. recurrence ----------------------------------------------------------------------------------
def _back_edges(nodes: dict, edges: list) -> set[tuple[str, str]]:
    """Edges closing a cycle in a depth-first walk from the inputs (edges into Delay nodes excluded)."""
    succ: dict[str, list[str]] = {k: [] for k in nodes}
    for a, b in edges:
        if not isinstance(nodes[b], nir.Delay):
            succ[a].append(b)
    state: dict[str, int] = {}
    back: set[tuple[str, str]] = set()
    roots = [k for k, n in nodes.items() if isinstance(n, nir.Input)] + list(nodes)
    for root in roots:
        if root in state:
            continue
        state[root] = 1
        stack = [(root, iter(succ[root]))]
        while stack:
            node, it = stack[-1]
            nxt = next(it, None)
            if nxt is None:
                state[node] = 2
                stack.pop()
            elif state.get(nxt) == 1:
                back.add((node, nxt))
            elif nxt not in state:
                state[nxt] = 1
                stack.append((nxt, iter(succ[nxt])))
    return back


def _order(nodes: dict, edges: list, back: set) -> list[str]:
    deps = {k: set() for k in nodes}
    for a, b in edges:
        if (a, b) not in back and not isinstance(nodes[b], nir.Delay):
            deps[b].add(a)
    order: list[str] = []
    done: set[str] = set()
    while len(order) < len(nodes):
        ready = [k for k in nodes if k not in done and deps[k] <= done]
        if not ready:
            raise GraphError(f"NIR graph: cannot order nodes {[k for k in nodes if k not in done]}")
        order += ready
        done.update(ready)
    return order


# --- 3. building ------------------------------------------------------------------------------------
def _shape_of(nodes: dict, key: str) -> tuple[int, ...]:
    types = getattr(nodes[key], "output_type", None) or {}
    shape = next(iter(types.values()), None)
    if shape is None:
        raise GraphError(f"NIR node '{key}' has no output type: cannot size the recurrent delay after it")
    dims = np.asarray(shape).reshape(-1)
    if dims.dtype.kind not in "iuf" or not np.all(np.isfinite(dims)) or np.any(dims != np.round(dims)):
        raise GraphError(f"NIR node '{key}': output type {dims.tolist()} must hold whole numbers")
    return tuple(int(d) for d in dims)


def _check_finite(node: Any, key: str) -> None:
    """NaN in any numeric field of a NIR node (or of a fused recurrent cell) raises GraphError naming it."""
    if isinstance(node, Recurrent):
        _check_finite(node.cell, key)
        _check_finite(node.w_rec, key)
        return
    for name, value in vars(node).items():
        if name in ("input_type", "output_type", "metadata") or isinstance(value, (str, bytes, dict)):
            continue
        arr = np.asarray(value) if isinstance(value, (np.ndarray, list, tuple, float, int)) else None
        if arr is not None and arr.dtype.kind in "fc" and np.any(np.isnan(arr)):
            raise GraphError(f"NIR node '{key}' ({type(node).__name__}): {name} holds NaN")


def _sum(g: Graph, handles: list[Handle], name: str, ctx: Ctx) -> Handle:
    if not handles:
        raise GraphError(f"NIR node '{name}' has no input edge")
    return handles[0] if len(handles) == 1 else g.add(*handles, name=ctx.fresh(g, f"{name}_sum"))


def _build(g: Graph, nodes: dict, edges: list, names: dict, ctx: Ctx) -> Graph:
    back = _back_edges(nodes, edges)
    handles: dict[str, Handle] = {}
    pending: list[tuple[Handle, list[str], str]] = []  # (feedback, sources, name) connected at the end
    for key in _order(nodes, edges, back):
        node, name = nodes[key], names[key]
        srcs = [a for a, b in edges if b == key and (a, b) not in back]
        if isinstance(node, nir.Input):
            handles[key] = g.input(name, shape=_shape_of(nodes, key))
        elif isinstance(node, nir.Output):
            continue
        elif isinstance(node, nir.Delay):
            handles[key] = g.feedback(_shape_of(nodes, key), steps=_delay_steps(node, name, ctx), name=name)
            pending.append((handles[key], srcs, name))
        else:
            ins = [handles[a] for a in srcs]
            for a, _ in sorted(e for e in back if e[1] == key):
                fb = g.feedback(_shape_of(nodes, a), name=ctx.fresh(g, f"{names[a]}_to_{name}"))
                pending.append((fb, [a], fb.name))
                ins.append(fb)
            convert = (NORSE_CONVERTERS if ctx.method == "norse" else CONVERTERS).get(type(node))
            if convert is None:
                raise GraphError(f"NIR node '{key}' of type {type(node).__name__} is not supported")
            _check_finite(node, key)
            try:
                handles[key] = convert(g, name, _sum(g, ins, name, ctx), node, ctx)
            except GraphError:
                raise
            except (ValueError, TypeError, OverflowError, IndexError) as err:  # malformed foreign data
                raise GraphError(f"NIR node '{key}' ({type(node).__name__}): malformed parameters or "
                                 f"metadata: {err}") from err
    for fb, srcs, name in pending:
        g.connect(fb, _sum(g, [handles[a] for a in srcs], name, ctx))
    _outputs(g, nodes, edges, names, handles, ctx)
    return g


def _delay_steps(node: nir.Delay, name: str, ctx: Ctx) -> int:
    try:
        steps = np.asarray(node.delay, np.float64) / ctx.dt
    except (TypeError, ValueError):
        raise GraphError(f"NIR Delay '{name}': delay must be numbers, got {node.delay!r}") from None
    first = float(steps.reshape(-1)[0]) if steps.size and np.all(np.isfinite(steps)) else 0.0
    if not first or not np.allclose(steps, round(first), rtol=0, atol=1e-6) or round(first) < 1:
        raise GraphError(f"NIR Delay '{name}': delays {np.unique(node.delay)} must be one whole number (>= 1) of "
                         f"steps dt={ctx.dt:g} for every neuron")
    return int(round(first))


def _outputs(g: Graph, nodes: dict, edges: list, names: dict, handles: dict, ctx: Ctx) -> None:
    outs = [k for k, n in nodes.items() if isinstance(n, nir.Output)]
    if any(META_INDEX in nodes[k].metadata for k in outs):  # written by to_nir: the others were added by
        outs = [k for k in outs if META_INDEX in nodes[k].metadata]  # nir's type inference for leaf nodes
    if not outs:
        raise GraphError("NIR graph has no Output node: nothing to compute")
    try:
        outs.sort(key=lambda k: int(nodes[k].metadata.get(META_INDEX, len(outs))))
    except (TypeError, ValueError, OverflowError):
        bad = [k for k in outs if not isinstance(nodes[k].metadata.get(META_INDEX, 0), (int, np.integer))]
        raise GraphError(f"NIR Output nodes {bad}: metadata 'index' must be an integer") from None
    for key in outs:
        node = nodes[key]
        srcs = [handles[a] for a, b in edges if b == key]
        port = node.metadata.get(META_PORT)
        if port is not None and len(srcs) == 1:
            if not isinstance(port, str) or port not in srcs[0].node.ports:
                raise GraphError(f"NIR Output '{key}': metadata port {port!r} is not an output of '{srcs[0].name}'")
            srcs = [getattr(srcs[0], str(port))]
        g.output(str(node.metadata.get(META_NAME, names[key])), _sum(g, srcs, names[key], ctx))
