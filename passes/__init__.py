"""Compiler passes (``Graph -> Graph``) and the pass manager that runs them."""

from snngraph.passes.insert_surrogates import insert_surrogates
from snngraph.passes.manager import PassManager, pass_name


def default_pipeline() -> list:
    """The passes ``sg.compile`` runs, in order (each has a ``.name``)."""
    return [insert_surrogates]


__all__ = ["PassManager", "default_pipeline", "insert_surrogates", "pass_name"]
