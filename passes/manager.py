"""The pass manager: runs ``Graph -> Graph`` passes in order, verifying after each."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any

from snngraph.ir.errors import GraphError, PassError
from snngraph.ir.graph import Graph
from snngraph.ir.verify import verify

Pass = Callable[[Graph], Graph]


def pass_name(p: Any) -> str:
    return getattr(p, "name", None) or getattr(p, "__name__", None) or type(p).__name__


class PassManager:
    """Run ``passes`` on a graph; with ``verify=True`` check the IR before the first pass and
    after every pass.

    Args:
        passes: callables ``Graph -> Graph``, each with a ``name`` (or a ``__name__``).
        verify: verify the input and every pass output.
        dump: ``None``; a callable ``(pass_name, graph)`` called after each pass; or a folder
            where ``NN_<pass>.txt`` receives the text IR after each pass.

    Raises:
        PassError: naming the failing pass and the passes that ran before it.
    """

    def __init__(self, passes: Sequence[Pass], verify: bool = True, dump: Any = None):
        for p in passes:
            if not callable(p):
                raise GraphError(f"pass {p!r} is not callable")
        self.passes = list(passes)
        self.verify = verify
        self.dump = dump

    def __call__(self, graph: Graph) -> Graph:
        if self.verify:
            verify(graph)
        done: list[str] = []
        self._dump(0, "input", graph)
        for i, p in enumerate(self.passes, 1):
            name = pass_name(p)
            where = f"pass '{name}' (after {done or 'no passes'})"
            try:
                out = p(graph)
            except PassError:
                raise
            except Exception as e:
                raise PassError(f"{where} failed: {type(e).__name__}: {e}") from e
            if not isinstance(out, Graph):
                raise PassError(f"{where} returned {type(out).__name__}, not a Graph")
            if self.verify:
                try:
                    verify(out)
                except GraphError as e:
                    raise PassError(f"{where} produced an invalid graph: {e}") from e
            done.append(name)
            self._dump(i, name, out)
            graph = out
        return graph

    def _dump(self, index: int, name: str, graph: Graph) -> None:
        if self.dump is None:
            return
        if callable(self.dump):
            self.dump(name, graph)
            return
        os.makedirs(self.dump, exist_ok=True)
        with open(os.path.join(self.dump, f"{index:02d}_{name}.txt"), "w") as f:
            f.write(graph.to_text())

    def __repr__(self) -> str:
        return f"PassManager([{', '.join(pass_name(p) for p in self.passes)}], verify={self.verify})"
