"""A model's declared default surrogate (Norse's SuperSpike) is what its node
runs when it has none, with or without the ``insert_surrogates`` pass (``sg.compile(g, passes=[])``)."""

import pytest
import torch

from snngraph.ir.surrogate import DEFAULT_SURROGATE, surrogate_of
from snngraph.passes import insert_surrogates
from snngraph.testing import assert_graphs_equivalent
from snngraph.testing_graphs import node_kind_graphs

KINDS = {kind: g for kind, g in node_kind_graphs().items()
         if any(getattr(getattr(n, "model", None), "surrogate", None) is not None for n in g.nodes.values())}


def test_models_with_a_declared_surrogate_are_covered():
    assert {"norse_lif", "norse_lif_box", "norse_lif_recurrent"} <= set(KINDS)


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_unset_surrogate_runs_the_models_default_without_the_pass(kind):
    g = KINDS[kind]
    for node in g.nodes.values():
        if getattr(node, "family", None) == "neuron" and node.surrogate is None and node.model.surrogate is not None:
            assert surrogate_of(node) == node.model.surrogate != DEFAULT_SURROGATE
    assert_graphs_equivalent(g, g, passes_a=[], passes_b=[insert_surrogates], num_steps=6, atol=1e-12,
                             dtype=torch.float64)
