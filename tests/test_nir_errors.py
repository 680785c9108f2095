"""NIR import errors: unsupported NIR nodes and parameters raise GraphError naming them; missing
metadata and a missing dt warn."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest

import snngraph as sg

nir = pytest.importorskip("nir")


def snntorch_lif(beta: float, n: int) -> nir.LIF:
    """A LIF as snnTorch 1.0.0 exports ``snn.Leaky(beta)`` (dt = 1e-4)."""
    tau = np.full(n, 1e-4 / (1 - beta))
    return nir.LIF(tau=tau, r=tau / 1e-4, v_leak=np.zeros(n), v_threshold=np.ones(n), v_reset=np.zeros(n))


def test_missing_dt_warns_and_decays_outside_unit_interval_raise():
    graph = nir.NIRGraph(nodes={"input": nir.Input(np.array([3])), "lif": snntorch_lif(0.9, 3),
                                "output": nir.Output(np.array([3]))}, edges=[("input", "lif"), ("lif", "output")])
    with pytest.warns(UserWarning, match="dt=1.0"), pytest.raises(sg.GraphError, match="lif.*dt=1e-4"):
        sg.from_nir(graph)


@dataclass(eq=False)
class Custom(nir.NIRNode):
    """A NIR node type snngraph does not know."""

    gain: np.ndarray

    def __post_init__(self):
        self.input_type = {"input": np.array(self.gain.shape)}
        self.output_type = {"output": np.array(self.gain.shape)}


def _single(node) -> nir.NIRGraph:
    return nir.NIRGraph(nodes={"input": nir.Input(np.array([3])), "odd": node, "output": nir.Output(np.array([3]))},
                        edges=[("input", "odd"), ("odd", "output")], metadata={"dt": 1.0})


@pytest.mark.parametrize("node, match", [
    (Custom(gain=np.ones(3)), "'odd' of type Custom is not supported"),
    (nir.LIF(tau=np.full(3, 5.0), r=np.ones(3), v_leak=np.zeros(3), v_threshold=np.ones(3),
             v_reset=np.full(3, -0.5), metadata={"reset_mechanism": "zero", "discretization": "euler"}),
     "'odd': v_reset != 0"),
    (nir.CubaLIF(tau_syn=np.full(3, 5.0), tau_mem=np.full(3, 5.0), r=np.ones(3), v_leak=np.ones(3),
                 v_threshold=np.ones(3), metadata={"reset_mechanism": "zero", "discretization": "euler"}),
     "'odd' \\(CubaLIF\\): v_leak"),
    (nir.Delay(delay=np.array([1.0, 1.5, 1.0])), "Delay 'odd'"),
    (nir.IF(r=np.ones(3), v_threshold=np.ones(3), metadata={"reset_mechanism": "halve"}), "'odd': unknown reset"),
    (nir.LI(tau=np.full(3, 5.0), r=np.ones(3), v_leak=np.zeros(3), metadata={"discretization": "rk4"}),
     "'odd': unknown discretization"),
])
def test_unsupported_nodes_raise_graph_error_naming_them(node, match):
    with pytest.raises(sg.GraphError, match=match):
        sg.from_nir(_single(node))


def test_batched_affine_weights_are_not_supported():
    graph = nir.NIRGraph(nodes={"input": nir.Input(np.array([2, 3])), "odd": nir.Affine(
        weight=np.ones((2, 3, 3), np.float32), bias=np.zeros((2, 3), np.float32)), "output": nir.Output(
        np.array([2, 3]))}, edges=[("input", "odd"), ("odd", "output")])
    with pytest.raises(sg.GraphError, match="'odd': only 2-D"):
        sg.from_nir(graph, dt=1.0)


def test_bad_file_raises_graph_error(tmp_path):
    path = tmp_path / "broken.nir"
    path.write_bytes(b"not hdf5")
    with pytest.raises(sg.GraphError, match="broken.nir"):
        sg.from_nir(path)


def test_edge_to_a_subgraph_with_two_inputs_must_name_one():
    sub = nir.NIRGraph(nodes={"a": nir.Input(np.array([2])), "b": nir.Input(np.array([2])),
                              "out": nir.Output(np.array([2]))}, edges=[("a", "out"), ("b", "out")])
    graph = nir.NIRGraph(nodes={"input": nir.Input(np.array([2])), "sub": sub, "output": nir.Output(np.array([2]))},
                         edges=[("input", "sub"), ("sub", "output")], type_check=False)
    with pytest.raises(sg.GraphError, match="'sub' is ambiguous"):
        sg.from_nir(graph, dt=1.0)


def test_non_graph_argument_raises_graph_error():
    with pytest.raises(sg.GraphError, match="expected a nir.NIRGraph, got LIF"):
        sg.from_nir(snntorch_lif(0.9, 2), dt=1.0)
