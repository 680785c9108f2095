"""``sg.from_nir(graph, dt=dt, method="norse")`` of a graph written by Norse 1.1.0's own ``to_nir``: Norse's
models, computing what the Norse model computes (docs/nir.md)."""

from __future__ import annotations

import warnings

import pytest
import torch

import snngraph as sg

norse = pytest.importorskip("norse.torch")
nir = pytest.importorskip("nir")


def _export(model, dt):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # nirtorch's own deprecation notice
        return norse.to_nir(model, torch.rand(1, 4), dt=dt)


@pytest.mark.parametrize("dt", [1e-3, 5e-4])
def test_norse_export_imports_as_norse_models(dt):
    torch.manual_seed(0)
    box = norse.LIFBoxParameters(tau_mem_inv=torch.tensor(300.0), v_leak=torch.tensor(0.1), v_th=torch.tensor(0.8))
    lif = norse.LIFParameters(tau_syn_inv=torch.tensor(250.0), v_th=torch.tensor(0.5), v_leak=torch.tensor(0.05))
    model = norse.SequentialState(torch.nn.Linear(4, 6), norse.LIFCell(lif, dt=dt), torch.nn.Linear(6, 3),
                                  norse.LIFBoxCell(box, dt=dt))
    with torch.no_grad():
        model[2].weight.mul_(4.0)
        model[2].bias.fill_(0.6)
    g = sg.from_nir(_export(model, dt), dt=dt, method="norse")
    assert sorted(n.op for n in g.nodes.values() if n.family == "neuron") == ["norse_lif", "norse_lif_box"]
    xs = torch.rand(24, 3, 4) * 20
    s, want = None, []
    for t in range(xs.shape[0]):
        y, s = model(xs[t], s)
        want.append(y)
    want = torch.stack(want)
    got = next(iter(sg.compile(g)(xs[:, :, None]).values()))[:, :, 0]  # Norse writes the input as (1, 4)
    assert 0 < int(want.sum()) < want.numel()
    assert torch.equal(got, want)


def test_norse_method_refuses_what_norse_does_not_export():
    graph = nir.NIRGraph(nodes={"input": nir.Input(input_type={"input": [3]}),
                                "li": nir.LI(tau=torch.ones(3), r=torch.ones(3), v_leak=torch.zeros(3)),
                                "output": nir.Output(output_type={"output": [3]})},
                         edges=[("input", "li"), ("li", "output")])
    with pytest.raises(sg.GraphError, match="'li' \\(LI\\) has no Norse model"):
        sg.from_nir(graph, dt=1e-3, method="norse")
    lif = nir.CubaLIF(tau_mem=torch.ones(3), tau_syn=torch.ones(3), r=2 * torch.ones(3), v_leak=torch.zeros(3),
                      v_threshold=torch.ones(3))
    graph = nir.NIRGraph(nodes={"input": nir.Input(input_type={"input": [3]}), "lif": lif,
                                "output": nir.Output(output_type={"output": [3]})},
                         edges=[("input", "lif"), ("lif", "output")])
    with pytest.raises(sg.GraphError, match="needs r = 1"):
        sg.from_nir(graph, dt=1e-3, method="norse")
