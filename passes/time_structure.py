"""Time structure of a graph: which nodes can run over the whole sequence at once, and which
form a loop (a cycle closed by a delay) that must advance one step at a time.

Pure analysis shared by the ``unroll_time`` pass and the runtimes.
"""

from __future__ import annotations

from dataclasses import dataclass

from snngraph.ir.graph import Graph, topo_order


@dataclass(frozen=True)
class Stage:
    """``kind == "seq"``: one node over all T steps at once; ``"loop"``: nodes stepped together."""

    kind: str
    nodes: tuple[str, ...]


def strongly_connected(graph: Graph) -> list[list[str]]:
    """Tarjan's SCCs over all data edges (delay edges included), iteratively."""
    nodes = graph.nodes
    succ: dict[str, list[str]] = {n: [] for n in nodes}
    for n, node in nodes.items():
        for r in node.inputs:
            if r.node in succ:
                succ[r.node].append(n)
    index, low, on_stack, stack, out = {}, {}, set(), [], []
    counter = 0
    for root in nodes:
        if root in index:
            continue
        work = [(root, 0)]
        while work:
            v, i = work.pop()
            if i == 0:
                index[v] = low[v] = counter
                counter += 1
                stack.append(v)
                on_stack.add(v)
            if i < len(succ[v]):
                work.append((v, i + 1))
                w = succ[v][i]
                if w not in index:
                    work.append((w, 0))
                elif w in on_stack:
                    low[v] = min(low[v], index[w])
                continue
            if low[v] == index[v]:
                comp = []
                while True:
                    w = stack.pop()
                    on_stack.discard(w)
                    comp.append(w)
                    if w == v:
                        break
                out.append(comp)
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[v])
    return out


def stages(graph: Graph) -> list[Stage]:
    """Stages in execution order: each loop is a cycle through delays, everything else is "seq"."""
    order = topo_order(graph.nodes)
    position = {n: i for i, n in enumerate(order)}
    comp_of: dict[str, int] = {}
    comps = strongly_connected(graph)
    for i, comp in enumerate(comps):
        for n in comp:
            comp_of[n] = i
    looping = {i for i, comp in enumerate(comps) if len(comp) > 1 or any(
        r.node == comp[0] for r in graph.nodes[comp[0]].inputs)}
    # Order components so each follows the components it reads from (delay edges included).
    deps = {i: set() for i in range(len(comps))}
    for n, node in graph.nodes.items():
        for r in node.inputs:
            if comp_of[r.node] != comp_of[n]:
                deps[comp_of[n]].add(comp_of[r.node])
    done, result = set(), []
    pending = sorted(range(len(comps)), key=lambda c: min(position[n] for n in comps[c]))
    while pending:
        c = next(c for c in pending if deps[c] <= done)
        pending.remove(c)
        done.add(c)
        members = tuple(sorted(comps[c], key=position.__getitem__))
        result.append(Stage("loop" if c in looping else "seq", members))
    return result


def has_loops(graph: Graph) -> bool:
    return any(s.kind == "loop" for s in stages(graph))


__all__ = ["Stage", "has_loops", "stages", "strongly_connected"]
