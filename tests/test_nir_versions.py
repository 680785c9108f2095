"""NIR interop details (hardening #19 item 17): torch-tensor parameters in NIR nodes (as Norse and
snnTorch write them) import like numpy ones, and the lowest declared ``nir`` release works."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import warnings

import nir
import numpy as np
import pytest
import torch

import snngraph as sg


def _graph(as_tensor: bool, tau: list[float]) -> nir.NIRGraph:
    t = (lambda a: torch.tensor(a, dtype=torch.float32)) if as_tensor else (lambda a: np.asarray(a, np.float32))
    nodes = {"in": nir.Input(np.array([2])), "fc": nir.Affine(t(np.ones((3, 2))), t(np.zeros(3))),
             "lif": nir.LIF(tau=t(tau), r=t([1.0] * 3), v_leak=t([0.0] * 3), v_threshold=t([1.0] * 3)),
             "out": nir.Output(np.array([3]))}
    return nir.NIRGraph(nodes=nodes, edges=[("in", "fc"), ("fc", "lif"), ("lif", "out")], metadata={})


def _from_nir(graph: nir.NIRGraph) -> sg.Graph:
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "NIR nodes")  # no snngraph reset metadata: the documented default
        return sg.from_nir(graph, dt=1e-3)


def test_tensor_parameters_import_like_numpy_ones():
    tensors, arrays = _graph(True, [0.01, 0.02, 0.03]), _graph(False, [0.01, 0.02, 0.03])
    assert _from_nir(tensors).nodes == _from_nir(arrays).nodes
    assert isinstance(tensors.nodes["lif"].tau, torch.Tensor)  # the caller's graph is left as it was


def test_tensor_parameters_reach_the_error_path_as_graph_errors():
    """A NaN in a tensor parameter used to fail inside numpy (``min(): argument 'dim'``, a DeprecationWarning)."""
    with pytest.raises(sg.GraphError, match="NIR node 'lif' .*tau holds NaN"):
        _from_nir(_graph(True, [0.01, float("nan"), 0.03]))


@pytest.mark.slow
def test_the_lowest_declared_nir_release_round_trips(tmp_path):
    """``nir>=1.0.6`` is what pyproject declares: install exactly 1.0.6 beside the suite and round-trip."""
    target = tmp_path / "nir106"
    done = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target),
                           "nir==1.0.6"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    code = textwrap.dedent("""
        import warnings, nir, numpy as np, torch, snngraph as sg
        assert nir.__file__.startswith(TARGET), nir.__file__
        torch.manual_seed(0)
        g = sg.Graph("n"); x = g.input("x", (4,))
        s = g.synaptic(g.linear(x, 3, name="fc"), alpha=0.8, beta=0.9, name="syn"); g.output("spk", s)
        back = sg.from_nir(sg.to_nir(g, dt=1e-3), dt=1e-3)
        xs = torch.rand(6, 2, 4) * 2
        assert torch.equal(sg.compile(back)(xs)["spk"], sg.compile(g)(xs)["spk"])
        print("ok", nir.__version__ if hasattr(nir, "__version__") else "")
    """).replace("TARGET", repr(str(target)))
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                         env={"PYTHONPATH": str(target), "PATH": "/usr/bin:/bin"})
    assert run.returncode == 0 and "ok" in run.stdout, run.stderr[-3000:]


def test_norse_export_recipe():
    """Norse 1.1.0's ``to_nir`` writes ``tau = dt / tau_inv`` (not ``1 / tau_inv``), ``r = 1`` and ``w_in = 1``
    as tensors; importing with ``dt = dt_norse**2`` recovers Norse's decays ``1 - dt tau_inv`` (docs/nir.md).
    ``make test`` installs Norse without its torchvision (which cannot sit beside the CPU torch)."""
    norse = pytest.importorskip("norse.torch")
    dt = 1e-3
    torch.manual_seed(0)
    params = norse.LIFParameters(tau_mem_inv=torch.tensor(100.0), tau_syn_inv=torch.tensor(200.0),
                                 v_th=torch.tensor(0.3))
    model = norse.SequentialState(torch.nn.Linear(4, 3), norse.LIFCell(params, dt=dt))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # nirtorch's own deprecation notice
        graph = norse.to_nir(model, torch.rand(1, 4), dt=dt)
    cell = graph.nodes["1"]
    assert float(cell.tau_mem) == pytest.approx(dt / 100.0) and float(cell.tau_syn) == pytest.approx(dt / 200.0)
    assert float(cell.r) == 1.0 and float(cell.w_in) == 1.0
    imported = _from_nir_dt(graph, dt**2)
    syn = next(node for node in imported.nodes.values() if node.op == "synaptic")
    assert float(syn.beta.value) == pytest.approx(1 - dt * 100.0, rel=1e-5)
    assert float(syn.alpha.value) == pytest.approx(1 - dt * 200.0, rel=1e-5)


def _from_nir_dt(graph: nir.NIRGraph, dt: float) -> sg.Graph:
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "NIR nodes")
        return sg.from_nir(graph, dt=dt)
