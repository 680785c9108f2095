"""Property test: random valid graphs over every node kind export, pass the ONNX checker and run
in onnxruntime exactly like the eager runtime, in both export modes."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from onnx_helpers import compare, quantise

from snngraph.testing_graphs import random_graphs


@settings(max_examples=25, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                                     HealthCheck.too_slow])
@given(random_graphs(max_nodes=7))
def test_random_graphs_match_eager(tmp_path, graph):
    g = quantise(graph)
    compare(g, tmp_path, ((1, 1), (6, 2)), scale=3.0)
    compare(g, tmp_path, ((4, 1),), mode="step")
