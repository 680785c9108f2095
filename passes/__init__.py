"""Compiler passes (``Graph -> Graph``) and the pass manager that runs them."""

from snngraph.passes.eliminate_dead_nodes import eliminate_dead_nodes
from snngraph.passes.fuse_state_updates import fuse_state_updates
from snngraph.passes.insert_surrogates import insert_surrogates
from snngraph.passes.manager import PassManager, pass_name
from snngraph.passes.unroll_time import unroll_time


def default_pipeline() -> list:
    """The passes ``sg.compile`` runs, in order (each has a ``.name``)."""
    return [eliminate_dead_nodes, unroll_time, insert_surrogates, fuse_state_updates]


__all__ = ["PassManager", "default_pipeline", "eliminate_dead_nodes", "fuse_state_updates", "insert_surrogates",
           "pass_name", "unroll_time"]
