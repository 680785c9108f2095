"""Write a compiler pass, test it, and put it in the pipeline ``sg.compile`` runs.

A pass is any callable ``Graph -> Graph`` with a ``name``. It reads the graph as data and returns
a new graph (``graph.with_nodes``), never mutating the one it was given; when it changes
nothing it returns the very same graph object, so "did the pass change anything" is
``out is not graph``. The pass here, ``merge_delays``, rewrites a chain of delays into one:

    delay(delay(x, steps=a), steps=b)  ->  delay(x, steps=a + b)

when the inner delay feeds only the outer one and is no graph output (otherwise both stay).
The tests below are the four a pass needs (docs/writing-a-pass.md explains each): a structural
assertion, verification, numerical equivalence before/after (outputs and gradients, with
``sg.testing.assert_graphs_equivalent``, also on hypothesis' random graphs) and idempotence::

    python examples/custom_pass.py            # runs the tests, then compiles with the pass
    python examples/custom_pass.py --quick    # fewer random graphs
    python -m pytest examples/custom_pass.py  # the same tests under pytest
"""

from __future__ import annotations

import argparse

import torch
from hypothesis import HealthCheck, given, settings

import snngraph as sg


def _mergeable(graph: sg.Graph):
    """The first (outer, inner) pair of delays that ``merge_delays`` may fuse, or ``None``."""
    consumers = graph.consumers()
    outputs = {ref.node for ref in graph.outputs.values()}
    for outer in graph.nodes.values():
        if outer.op != "delay" or not outer.inputs:
            continue
        inner = graph.nodes[outer.inputs[0].node]
        if (inner.op == "delay" and inner.inputs and consumers[inner.name] == [outer.name]
                and inner.name not in outputs and inner.inputs[0].node != outer.name):
            return outer, inner
    return None


def merge_delays(graph: sg.Graph) -> sg.Graph:
    """Fuse chains of delays: ``delay(delay(x, a), b) -> delay(x, a + b)``.

    Rewrite cases:
        * the inner delay's only consumer is the outer delay and it is not a graph output:
          the outer delay reads ``x`` directly with ``steps = a + b``; the inner one is removed.
        * anything else (the inner delay fans out, or is an output): unchanged.

    Returns ``graph`` itself when there is nothing to merge.
    """
    while (pair := _mergeable(graph)) is not None:
        outer, inner = pair
        merged = outer.replace(inputs=inner.inputs, steps=outer.steps + inner.steps)
        graph = graph.with_nodes({inner.name: None, outer.name: merged})
    return graph


merge_delays.name = "merge_delays"


# ----------------------------------------------------------------------------------- the tests


def chain_graph() -> sg.Graph:
    """x -> linear -> delay(1) -> delay(2) -> delay(1) -> leaky, plus a fanned-out delay pair."""
    torch.manual_seed(0)
    g = sg.Graph("delays")
    x = g.input("x", shape=(6,))
    h = g.linear(x, 6, name="fc")
    d = g.delay(g.delay(g.delay(h, 1, name="d1"), 2, name="d2"), 1, name="d3")
    s = g.leaky(d, beta=0.9, name="lif")
    e = g.delay(s, 1, name="e1")                         # e1 feeds two nodes: not mergeable
    g.output("spk", g.leaky(g.add(g.delay(e, 2, name="e2"), e, name="sum"), beta=0.8, name="lif2"))
    g.output("mem", s.mem)
    return g


def test_structure():
    out = merge_delays(chain_graph())
    delays = {n: node.steps for n, node in out.nodes.items() if node.op == "delay"}
    assert delays == {"d3": 4, "e1": 1, "e2": 2}, delays
    assert out.nodes["d3"].inputs == chain_graph().nodes["d1"].inputs  # reads the linear directly


def test_verifies():
    sg.verify(merge_delays(chain_graph()))               # raises GraphError on an invalid graph


def test_same_outputs_and_gradients():
    g = chain_graph()
    sg.testing.assert_graphs_equivalent(g, merge_delays(g), num_steps=12)
    # the same, with the pass inside the compiler pipeline (PassManager verifies after each pass)
    sg.testing.assert_graphs_equivalent(g, g, passes_b=[merge_delays, *sg.passes.default_pipeline()])


def test_idempotent_and_identity():
    once = merge_delays(chain_graph())
    assert merge_delays(once) is once
    plain = sg.Graph("plain")
    plain.output("spk", plain.leaky(plain.linear(plain.input("x", (3,)), 2, name="fc"), beta=0.5, name="lif"))
    assert merge_delays(plain) is plain


def test_feedback_loop():
    """A loop closed through two delays in a row still runs, with one delay of 2 steps."""
    torch.manual_seed(0)
    g = sg.Graph("loop")
    x = g.input("x", shape=(4,))
    fb = g.feedback((4,), name="fb")
    s = g.leaky(g.add(g.linear(x, 4, name="fc"), fb, name="sum"), beta=0.9, name="lif")
    g.connect(fb, g.delay(g.linear(s, 4, name="rec"), 1, name="d"))
    g.output("spk", s)
    out = merge_delays(g)
    assert out.nodes["fb"].steps == 2 and "d" not in out.nodes
    sg.testing.assert_graphs_equivalent(g, out, num_steps=10)


RANDOM_EXAMPLES = 40


@settings(max_examples=RANDOM_EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
@given(sg.testing.random_graphs(max_nodes=8))
def test_random_graphs(g):
    sg.testing.assert_graphs_equivalent(g, merge_delays(g), num_steps=8)


# ----------------------------------------------------------------------------------- the script


def main(argv: list[str] | None = None) -> dict:
    """Run the example with command-line ``argv``; returns what it measured (also printed)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer random graphs (for tests)")
    args = parser.parse_args(argv)
    examples = 5 if args.quick else RANDOM_EXAMPLES
    random_test = settings(max_examples=examples, deadline=None, suppress_health_check=list(HealthCheck))(
        given(sg.testing.random_graphs(max_nodes=8))(test_random_graphs.hypothesis.inner_test))
    tests = [test_structure, test_verifies, test_same_outputs_and_gradients, test_idempotent_and_identity,
             test_feedback_loop, random_test]
    for test in tests:
        test()
        print(f"passed: {getattr(test, '__name__', 'test_random_graphs')}")

    g = chain_graph()
    manager = sg.passes.PassManager([merge_delays, *sg.passes.default_pipeline()], verify=True)
    print(manager)
    net = sg.compile(g, passes=manager.passes)
    print(net.graph)                                    # the graph after the whole pipeline
    delays = {n: node.steps for n, node in net.graph.nodes.items() if node.op == "delay"}
    print(f"delays before: {[n for n, node in g.nodes.items() if node.op == 'delay']}, after: {delays}")
    return {"tests": len(tests), "delays": delays}


if __name__ == "__main__":
    main()
