"""NIR robustness: ``sg.from_nir`` on hostile NIR graphs (absurd, negative, fractional or NaN shapes,
NaN parameters, malformed metadata, edges to missing nodes) raises ``GraphError`` naming the node,
without absurd allocations; fuzzed mutations of a valid export raise nothing but ``GraphError``."""

from __future__ import annotations

import copy
import tracemalloc
import warnings
from typing import Any

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import snngraph as sg
from snngraph.ir.verify import verify

nir = pytest.importorskip("nir")

MiB = 1 << 20
META = {"reset_mechanism": "zero", "reset_delay": False, "discretization": "euler"}


def _lif(n: int = 3, **changes: Any) -> nir.LIF:
    fields = dict(tau=np.full(n, 5.0), r=np.ones(n), v_leak=np.zeros(n), v_threshold=np.ones(n), v_reset=np.zeros(n),
                  metadata=dict(META))
    fields.update(changes)
    return nir.LIF(**fields)


def _graph(nodes: dict, edges: list) -> nir.NIRGraph:
    return nir.NIRGraph(nodes=nodes, edges=edges, metadata={"dt": 1.0}, type_check=False)


def _single(node: Any, shape: tuple[int, ...] = (3,)) -> nir.NIRGraph:
    return _graph({"input": nir.Input(np.array(shape)), "odd": node, "output": nir.Output(np.array(shape))},
                  [("input", "odd"), ("odd", "output")])


def _io(shape: Any) -> nir.NIRGraph:
    return _graph({"input": nir.Input(np.array(shape)), "output": nir.Output(np.array([3]))}, [("input", "output")])


def _conv(**changes: Any) -> nir.Conv2d:
    fields = dict(input_shape=None, weight=np.ones((1, 1, 3, 3)), stride=1, padding=0, dilation=1, groups=1,
                  bias=np.zeros(1))
    fields.update(changes)
    return nir.Conv2d(**fields)


def _set(node: Any, **fields: Any) -> Any:
    """``node`` with ``fields`` overwritten after construction (NIR's constructors reject some values)."""
    for key, value in fields.items():
        setattr(node, key, value)
    return node


def _meta(**extra: Any) -> dict:
    return {**META, **extra}


HOSTILE = {
    "input of 2**40 elements": (lambda: _io([2**40]), "input 'input'.*too large"),
    "input of 2**20 x 2**20": (lambda: _io([2**20, 2**20]), "input 'input'.*too large"),
    "negative input dim": (lambda: _io([-3]), "input 'input'.*positive ints"),
    "zero input dim": (lambda: _io([0]), "input 'input'.*positive ints"),
    "empty input shape": (lambda: _io([]), "input 'input'.*non-empty"),
    "fractional input dim": (lambda: _io([2.5]), "NIR node 'input'.*whole numbers"),
    "NaN input dim": (lambda: _io([np.nan]), "NIR node 'input'.*whole numbers"),
    "NaN tau": (lambda: _single(_lif(tau=np.array([5.0, np.nan, 5.0]))), "NIR node 'odd' \\(LIF\\): tau holds NaN"),
    "NaN r": (lambda: _single(_lif(r=np.array([1.0, np.nan, 1.0]))), "NIR node 'odd' \\(LIF\\): r holds NaN"),
    "NaN v_threshold": (lambda: _single(_lif(v_threshold=np.full(3, np.nan))), "'odd' \\(LIF\\): v_threshold"),
    "infinite v_threshold": (lambda: _single(_lif(v_threshold=np.full(3, np.inf))), "leaky 'odd' threshold"),
    "NaN v_leak": (lambda: _single(_lif(v_leak=np.full(3, np.nan))), "'odd' \\(LIF\\): v_leak holds NaN"),
    "parameters of the wrong size": (lambda: _single(_lif(5)), "leaky 'odd'.*broadcast"),
    "NaN weight": (lambda: _single(nir.Affine(np.full((3, 3), np.nan), np.zeros(3))), "'odd' \\(Affine\\): weight"),
    "NaN scale": (lambda: _single(nir.Scale(np.array([1.0, np.nan, 1.0]))), "'odd' \\(Scale\\): scale holds NaN"),
    "NaN CubaLIF tau_syn": (lambda: _single(nir.CubaLIF(
        tau_syn=np.full(3, np.nan), tau_mem=np.full(3, 5.0), r=np.ones(3), v_leak=np.zeros(3), v_threshold=np.ones(3),
        metadata=dict(META))), "'odd' \\(CubaLIF\\): tau_syn"),
    "NaN recurrent weight": (lambda: _graph(
        {"input": nir.Input(np.array([3])), "l": _lif(), "w": nir.Linear(np.full((3, 3), np.nan)),
         "output": nir.Output(np.array([3]))}, [("input", "l"), ("l", "w"), ("w", "l"), ("l", "output")]),
        "NIR node 'l' \\(Linear\\): weight holds NaN"),
    "NaN delay": (lambda: _single(nir.Delay(np.full(3, np.nan))), "Delay 'odd'"),
    "infinite delay": (lambda: _single(nir.Delay(np.full(3, np.inf))), "Delay 'odd'"),
    "delay of 1e12 steps": (lambda: _single(nir.Delay(np.full(3, 1e12))), "delay 'odd'.*too large"),
    "non-numeric delay": (lambda: _single(_set(nir.Delay(np.ones(3)), delay="soon")), "Delay 'odd': delay must be"),
    "conv padding 2**40": (lambda: _single(_conv(padding=2**40), (1, 5, 5)), "'odd': padding must hold whole"),
    "conv padding 2**30": (lambda: _single(_conv(padding=2**30), (1, 5, 5)), "conv2d 'odd'.*too large"),
    "negative conv padding": (lambda: _single(_conv(padding=-5), (1, 5, 5)), "conv2d 'odd'.*non-negative"),
    "infinite conv stride": (lambda: _single(_conv(stride=np.array([np.inf, 1.0])), (1, 5, 5)),
                             "'odd': stride must hold whole numbers"),
    "fractional conv stride": (lambda: _single(_conv(stride=np.array([1.5, 1.0])), (1, 5, 5)),
                               "'odd': stride must hold whole numbers"),
    "pool kernel 2**40": (lambda: _single(nir.SumPool2d(np.array([2**40, 2**40]), np.array([1, 1]), np.array([0, 0])),
                                          (1, 5, 5)), "'odd': kernel_size must hold whole numbers"),
    "flatten dims out of range": (lambda: _single(nir.Flatten({"input": np.array([3])}, 5, 9)), "flatten 'odd'"),
    "flatten NaN dim": (lambda: _single(_set(nir.Flatten({"input": np.array([3])}, 0, 0), start_dim=np.nan)),
                        "NIR node 'odd' \\(Flatten\\): start_dim holds NaN"),
    "param_shapes of 2**40": (lambda: _single(_lif(metadata=_meta(param_shapes={"threshold": str(2**40)}))),
                              "NIR node 'odd' \\(LIF\\).*param_shapes\\['threshold'\\]"),
    "negative param_shapes": (lambda: _single(_lif(metadata=_meta(param_shapes={"threshold": "-3"}))),
                              "NIR node 'odd' \\(LIF\\).*param_shapes"),
    "zero param_shapes": (lambda: _single(_lif(metadata=_meta(param_shapes={"beta": "0"}))),
                          "NIR node 'odd' \\(LIF\\).*param_shapes\\['beta'\\]"),
    "param_shapes not a shape": (lambda: _single(_lif(metadata=_meta(param_shapes={"beta": "three"}))),
                                 "NIR node 'odd' \\(LIF\\).*is not a shape"),
    "unknown reset": (lambda: _single(_lif(metadata=_meta(reset_mechanism="explode"))), "'odd': unknown reset"),
    "reset_delay not a bool": (lambda: _single(_lif(metadata=_meta(reset_delay="no"))), "'odd': metadata reset_delay"),
    "unknown discretization": (lambda: _single(_lif(metadata=_meta(discretization="rk4"))), "'odd': unknown discr"),
    "edge from a missing node": (lambda: _graph({"input": nir.Input(np.array([3])), "output": nir.Output(
        np.array([3]))}, [("input", "output"), ("ghost", "output")]), "edge end 'ghost' names no node"),
    "edge to a missing node": (lambda: _graph({"input": nir.Input(np.array([3])), "output": nir.Output(
        np.array([3]))}, [("input", "output"), ("input", "ghost")]), "edge end 'ghost' names no node"),
    "node without input edge": (lambda: _graph({"input": nir.Input(np.array([3])), "odd": _lif(),
                                                "output": nir.Output(np.array([3]))}, [("input", "output")]),
                                "'odd' has no input edge"),
    "no Output node": (lambda: _graph({"input": nir.Input(np.array([3])), "odd": _lif()}, [("input", "odd")]),
                       "no Output node"),
    "Output index not an integer": (lambda: _graph({"input": nir.Input(np.array([3])), "output": nir.Output(
        np.array([3]), metadata={"index": "first"})}, [("input", "output")]), "\\['output'\\].*'index'"),
    "Output port unknown": (lambda: _graph({"input": nir.Input(np.array([3])), "l": _lif(), "output": nir.Output(
        np.array([3]), metadata={"port": "voltage"})}, [("input", "l"), ("l", "output")]),
        "Output 'output'.*'voltage'"),
    "dt of NaN": (lambda: nir.NIRGraph(nodes={"input": nir.Input(np.array([3])), "output": nir.Output(np.array(
        [3]))}, edges=[("input", "output")], metadata={"dt": float("nan")}, type_check=False), "dt must be"),
}


def _peak_allocation(fn: Any) -> int:
    tracemalloc.start()
    try:
        fn()
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return peak


@pytest.mark.parametrize("case", list(HOSTILE))
def test_hostile_nir_raises_graph_error_naming_the_node(case):
    make, match = HOSTILE[case]
    graph = make()

    def load() -> None:
        with pytest.raises(sg.GraphError, match=match):
            sg.from_nir(graph)

    assert _peak_allocation(load) < 64 * MiB


def test_absurdly_nested_subgraphs_raise_graph_error():
    inner = nir.NIRGraph(nodes={"i": nir.Input(np.array([3])), "o": nir.Output(np.array([3]))}, edges=[("i", "o")],
                         type_check=False)
    for _ in range(3000):
        inner = nir.NIRGraph(nodes={"i": nir.Input(np.array([3])), "s": inner, "o": nir.Output(np.array([3]))},
                             edges=[("i", "s"), ("s", "o")], type_check=False)
    with pytest.raises(sg.GraphError, match="nested too deeply"):
        sg.from_nir(_single(inner))


# --- hostile files -----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def nir_file(tmp_path_factory) -> bytes:
    torch.manual_seed(0)
    g = sg.Graph("small")
    fb = g.feedback((4,), name="fb")
    s = g.synaptic(g.add(g.linear(g.input("x", (3,)), 4, name="fc"), fb), alpha=0.5, beta=0.9, name="syn")
    g.connect(fb, g.scale(s, 0.5, name="sc"))
    g.output("spk", s)
    path = tmp_path_factory.mktemp("nir") / "small.nir"
    sg.to_nir(g, dt=1.0, path=path)
    return path.read_bytes()


def test_file_declaring_terabytes_is_refused_before_reading(nir_file, tmp_path):
    """A 60 kB HDF5 file can declare a 16 GiB chunked dataset it never wrote; reading it would allocate it all."""
    h5py = pytest.importorskip("h5py")
    path = tmp_path / "huge.nir"
    path.write_bytes(nir_file)
    with h5py.File(path, "a") as f:
        del f["node/nodes/fc/weight"]
        f.create_dataset("node/nodes/fc/weight", shape=(2**16, 2**16), dtype="f4", chunks=(64, 64))
    assert path.stat().st_size < MiB

    def load() -> None:
        with pytest.raises(sg.GraphError, match=r"huge.nir.*declare more than .*'node/nodes/fc/weight'"):
            sg.from_nir(path)

    assert _peak_allocation(load) < 64 * MiB


def test_corrupt_files_raise_nothing_but_graph_error(nir_file, tmp_path):
    rng = np.random.default_rng(0)
    path = tmp_path / "corrupt.nir"
    outcomes = {"loaded": 0, "refused": 0}
    for i in range(60):
        data = bytearray(nir_file)
        for pos in rng.integers(0, len(data), size=rng.integers(1, 5)):
            data[pos] = int(rng.integers(0, 256))
        path.write_bytes(bytes(data[: int(rng.integers(0, len(data)))] if i % 4 == 0 else data))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            try:
                verify(sg.from_nir(path))
                outcomes["loaded"] += 1  # the bytes hit parameter values: NIR files carry no checksum
            except sg.GraphError as err:
                assert str(err)
                outcomes["refused"] += 1
    assert outcomes["refused"] >= 10, outcomes


def test_cycle_without_neurons_imports_as_a_one_step_loop():
    """NIR edges are instantaneous; a cycle gets NIR's implicit one-step delay (docs/nir.md), so a loop of
    stateless nodes is a well-defined discrete recurrence: y[t] = x[t] + 0.5 y[t-1], not an error."""
    graph = _graph({"input": nir.Input(np.array([2])), "a": nir.Scale(np.full(2, 0.5)),
                    "output": nir.Output(np.array([2]))}, [("input", "a"), ("a", "a"), ("a", "output")])
    g = sg.from_nir(graph)
    assert [n.steps for n in g.nodes.values() if n.op == "delay"] == [1]
    xs = torch.ones(4, 1, 2)
    out = sg.compile(g)(xs)["output"][:, 0, 0]
    assert torch.allclose(out, torch.tensor([0.5, 0.75, 0.875, 0.9375]))


# --- fuzzed mutations of a valid export ------------------------------------------------------------
def _base() -> nir.NIRGraph:
    torch.manual_seed(0)
    g = sg.Graph("base")
    x = g.input("x", (1, 6, 6))
    flat = g.flatten(g.avg_pool2d(g.leaky(g.conv2d(x, 2, 3, padding=1, name="conv"), beta=0.8, name="l0"), 2,
                                  name="pool"), name="flat")
    fb = g.feedback((8,), name="fb")
    s = g.synaptic(g.add(g.linear(flat, 8, name="fc"), fb, name="sum"), alpha=0.5, beta=0.9, name="syn")
    g.connect(fb, g.scale(s, 0.5, name="sc"))
    g.output("spk", g.rleaky(g.linear(s, 4, name="fc2"), beta=0.9, name="rl"))
    return sg.to_nir(g, dt=1.0)


BASE = _base()
NODES = sorted(k for k, v in BASE.nodes.items() if not isinstance(v, nir.NIRGraph))
JUNK = st.sampled_from([np.nan, np.inf, -np.inf, -1, 0, 2**40, 2.5, 1e300, "x", None, np.zeros(0), np.ones((2, 2, 2)),
                        np.full(3, np.nan), [1, "a"], {"k": 1}])


@st.composite
def mutations(draw: Any) -> tuple[str, str, Any]:
    key = draw(st.sampled_from(NODES))
    node = BASE.nodes[key]
    fields = sorted(f for f in vars(node) if f not in ("input_type", "output_type"))
    field = draw(st.sampled_from(fields))
    if field == "metadata":
        meta_key = draw(st.sampled_from(["reset_mechanism", "reset_delay", "discretization", "param_shapes", "index",
                                         "port", "name"]))
        value = draw(st.one_of(JUNK, st.sampled_from(["", "1,2,3", "-1", "3,,", str(2**40), {"beta": "7"}])))
        return key, f"metadata.{meta_key}", value
    return key, field, draw(JUNK)


@settings(max_examples=150, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(mutations())
def test_mutated_exports_raise_nothing_but_graph_error(mutation):
    key, field, value = mutation
    graph = copy.deepcopy(BASE)
    node = graph.nodes[key]
    if field.startswith("metadata."):
        node.metadata[field.split(".", 1)[1]] = value
    else:
        setattr(node, field, value)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # undocumented-metadata notices; numpy warnings stay errors
        try:
            g = sg.from_nir(graph)
        except sg.GraphError as err:
            assert str(err)
            return
    assert verify(g) is g
