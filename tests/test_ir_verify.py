"""``verify`` rejects each illegal form: at least one case per check of ``snngraph.ir.verify.CHECKS``,
each failing that very check with a ``GraphError`` naming the node (or output)."""

import dataclasses

import numpy as np
import pytest

import snngraph as sg
from snngraph.ir import neurons as N
from snngraph.ir import synapses as S
from snngraph.ir.types import Param, Ref
from snngraph.ir.verify import CHECKS

X = S.Input(name="x", shape=(4,))
W = Param(np.ones((3, 4), np.float32), True)
FC = Ref("fc", "out")


def fc(name="fc", src="x", n_in=4, weight=W, **kw):
    return S.Linear(name=name, inputs=(Ref(src, "out"),), in_features=n_in, out_features=3, weight=weight, **kw)


def lif(name="lif", src=FC, **kw):
    fields = dict(beta=Param(0.9), threshold=Param(1.0), graded_spikes_factor=Param(1.0)) | kw
    return N.Leaky(name=name, inputs=(src,), **fields)


def graph(*nodes, outputs=None):
    return sg.Graph("bad", nodes, {"o": Ref("lif", "spk")} if outputs is None else outputs)


class Rogue(N.Leaky):
    """A subclass the IR does not know (not registered as a node kind)."""


def misregistered():
    g = graph(X, fc(), lif())
    g._nodes["alias"] = g._nodes.pop("lif")
    return g


# check name -> list of (id, graph factory, text the message must contain)
ILLEGAL = {
    "check_names": [
        ("unknown_kind", lambda: graph(X, fc(), Rogue(name="lif", inputs=(Ref("fc", "out"),), beta=Param(0.9),
                                                      threshold=Param(1.0), graded_spikes_factor=Param(1.0))),
         "'lif'"),
        ("invalid_name", lambda: graph(X, fc(name="1fc"), lif(src=Ref("1fc", "out"))), "'1fc'"),
        ("registered_under_other_name", misregistered, "'alias'"),
    ],
    "check_arity": [
        ("add_one_input", lambda: graph(X, S.Add(name="sum", inputs=(Ref("x", "out"),)), fc(src="sum"), lif()),
         "'sum'"),
        ("linear_two_inputs", lambda: graph(X, dataclasses.replace(fc(), inputs=(Ref("x", "out"),) * 2), lif()),
         "'fc'"),
        ("unconnected_feedback", lambda: graph(X, fc(), lif(), S.Delay(name="fb", shape=(3,))), "'fb'"),
        ("input_with_input", lambda: graph(dataclasses.replace(X, inputs=(Ref("fc", "out"),)), fc(), lif()), "'x'"),
    ],
    "check_refs": [
        ("missing_node", lambda: graph(X, fc(src="nope"), lif()), "'fc'"),
        ("missing_port", lambda: graph(X, fc(), lif(src=Ref("fc", "mem"))), "'lif'"),
    ],
    "check_acyclic": [
        ("self_loop", lambda: graph(X, S.Add(name="sum", inputs=(Ref("x", "out"), Ref("sum", "out"))),
                                    fc(src="sum"), lif()), "'sum'"),
        ("two_node_cycle", lambda: graph(X, S.Add(name="sum", inputs=(Ref("x", "out"), Ref("r", "out"))),
                                         S.ReLU(name="r", inputs=(Ref("sum", "out"),)), fc(src="r"), lif()),
         "'r'"),
    ],
    "check_nodes": [
        ("beta_out_of_range", lambda: graph(X, fc(), lif(beta=Param(1.5))), "'lif'"),
        ("nan_weight", lambda: graph(X, fc(weight=Param(np.full((3, 4), np.nan))), lif()), "'fc'"),
        ("bad_reset", lambda: graph(X, fc(), lif(reset_mechanism="soft")), "'lif'"),
        ("dropout_p", lambda: graph(X, S.Dropout(name="d", inputs=(Ref("x", "out"),), p=2.0), fc(src="d"), lif()),
         "'d'"),
        ("bad_input_shape", lambda: graph(S.Input(name="x", shape=(0,)), fc(), lif()), "'x'"),
        ("recurrence_inconsistent", lambda: graph(X, fc(), N.RLeaky(
            name="lif", inputs=(Ref("fc", "out"),), beta=Param(0.9), threshold=Param(1.0),
            graded_spikes_factor=Param(1.0), all_to_all=True)), "'lif'"),
        ("lapicque_negative_c", lambda: graph(X, fc(), N.Lapicque(
            name="lif", inputs=(Ref("fc", "out"),), R=Param(1.0), C=Param(-1.0), time_step=Param(1.0),
            threshold=Param(1.0), graded_spikes_factor=Param(1.0))), "'lif'"),
    ],
    "check_types": [
        ("in_features", lambda: graph(X, fc(n_in=5), lif()), "'fc'"),
        ("weight_shape", lambda: graph(X, fc(weight=Param(np.ones((4, 3)))), lif()), "'fc'"),
        ("beta_does_not_broadcast", lambda: graph(X, fc(), lif(beta=Param(np.full(4, 0.5)))), "'lif'"),
        ("add_shapes", lambda: graph(X, fc(), S.Add(name="lif", inputs=(Ref("fc", "out"), Ref("x", "out"))),
                                     outputs={"o": Ref("lif", "out")}), "'lif'"),
        ("delay_shape", lambda: graph(X, fc(), lif(), S.Delay(name="d", inputs=(Ref("lif", "spk"),), shape=(4,))),
         "'d'"),
    ],
    "check_io": [
        ("no_output", lambda: graph(X, fc(), lif(), outputs={}), "no output"),
        ("no_input", lambda: graph(S.Scale(name="c", inputs=(), factor=Param(1.0)), outputs={"o": Ref("c", "out")}),
         "no input"),
        ("unknown_output_node", lambda: graph(X, fc(), lif(), outputs={"o": Ref("nope", "out")}), "'o'"),
        ("unknown_output_port", lambda: graph(X, fc(), lif(), outputs={"o": Ref("lif", "syn")}), "'o'"),
        ("output_named_as_input", lambda: graph(X, fc(), lif(), outputs={"x": Ref("lif", "spk")}), "'x'"),
    ],
}
CASES = [(check, case_id, make, text) for check, cases in ILLEGAL.items() for case_id, make, text in cases]


def test_every_check_has_cases():
    assert set(ILLEGAL) == {c.__name__ for c in CHECKS}


@pytest.mark.parametrize(("check", "case_id", "make", "text"), CASES, ids=[f"{c[0]}-{c[1]}" for c in CASES])
def test_verify_rejects(check, case_id, make, text):
    g = make()
    by_name = {c.__name__: c for c in CHECKS}
    with pytest.raises(sg.GraphError) as direct:
        by_name[check](g)
    assert text in str(direct.value), str(direct.value)
    with pytest.raises(sg.GraphError):
        sg.verify(g)
    with pytest.raises(sg.GraphError):
        sg.compile(g)


def test_verify_accepts_a_legal_graph_and_returns_it():
    g = graph(X, fc(), lif())
    for check in CHECKS:
        check(g)
    assert sg.verify(g) is g


def test_verify_rejects_non_graphs():
    with pytest.raises(sg.GraphError, match="expected an snngraph Graph"):
        sg.verify("graph g\nend\n")


def test_pass_returning_an_invalid_graph_raises_pass_error():
    def breaks_beta(g):
        return g.with_nodes({"lif": lif(beta=Param(3.0))})

    breaks_beta.name = "breaks_beta"
    with pytest.raises(sg.PassError, match=r"pass 'breaks_beta'.*produced an invalid graph.*'lif'"):
        sg.compile(graph(X, fc(), lif()), passes=[breaks_beta])
