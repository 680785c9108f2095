"""NIR graphs as snnTorch's and Norse's exporters build them import with weights and decays intact;
unsupported NIR nodes and parameters raise GraphError naming them."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import snngraph as sg

nir = pytest.importorskip("nir")
snn = pytest.importorskip("snntorch")

SNNTORCH_DT = 1e-4  # the dt snnTorch 1.0.0's export_to_nir hard-codes


def rng_weights(*shape: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(-0.6, 0.6, shape).astype(np.float32)


def snntorch_lif(beta: float, n: int, thr: float = 1.0) -> nir.LIF:
    """What snntorch.export_nir._extract_snntorch_module builds for ``snn.Leaky(beta)``."""
    beta_arr = np.full(n, beta, np.float32)
    tau = SNNTORCH_DT / (1 - beta_arr)
    return nir.LIF(tau=tau, v_threshold=np.full(n, thr, np.float32), v_leak=np.zeros_like(beta_arr),
                   r=tau / SNNTORCH_DT, v_reset=np.zeros(n, np.float32))


def snntorch_cubalif(alpha: float, beta: float, n: int) -> nir.CubaLIF:
    a, b = np.full(n, alpha, np.float32), np.full(n, beta, np.float32)
    tau_syn, tau_mem = SNNTORCH_DT / (1 - a), SNNTORCH_DT / (1 - b)
    return nir.CubaLIF(tau_syn=tau_syn, tau_mem=tau_mem, v_threshold=np.ones(n, np.float32), v_leak=np.zeros(n),
                       r=tau_mem / SNNTORCH_DT, w_in=tau_syn / SNNTORCH_DT, v_reset=np.zeros(n, np.float32))


def run(g: sg.Graph, xs: torch.Tensor) -> dict[str, torch.Tensor]:
    with torch.no_grad():
        return sg.compile(g).eval()(xs)


def test_snntorch_leaky_mlp_imports_like_snntorch_import_nir(tmp_path):
    w1, b1, w2 = rng_weights(8, 5), rng_weights(8, seed=1), rng_weights(3, 8, seed=2)
    graph = nir.NIRGraph(nodes={"input": nir.Input(np.array([5])), "fc1": nir.Affine(weight=w1, bias=b1),
                                "lif1": snntorch_lif(0.9, 8), "fc2": nir.Linear(weight=w2),
                                "lif2": snntorch_lif(0.8, 3, thr=0.5), "output": nir.Output(np.array([3]))},
                         edges=[("input", "fc1"), ("fc1", "lif1"), ("lif1", "fc2"), ("fc2", "lif2"),
                                ("lif2", "output")])
    nir.write(tmp_path / "snntorch.nir", graph)
    with pytest.warns(UserWarning, match="reset_mechanism='zero', reset_delay=False"):
        g = sg.from_nir(tmp_path / "snntorch.nir", dt=SNNTORCH_DT)
    assert [n.op for n in g.nodes.values()] == ["input", "linear", "leaky", "linear", "leaky"]  # no gain nodes
    np.testing.assert_array_equal(g.nodes["fc1"].weight.value, w1)
    np.testing.assert_array_equal(g.nodes["fc1"].bias.value, b1)
    assert g.nodes["fc2"].bias is None
    np.testing.assert_allclose(g.nodes["lif1"].beta.value, 0.9, rtol=1e-6)
    np.testing.assert_allclose(g.nodes["lif2"].beta.value, 0.8, rtol=1e-6)
    # snnTorch's import_from_nir builds Leaky(beta, threshold, reset_mechanism="zero", reset_delay=False)
    lif1 = snn.Leaky(beta=torch.tensor(g.nodes["lif1"].beta.value), reset_mechanism="zero", reset_delay=False)
    lif2 = snn.Leaky(beta=torch.tensor(g.nodes["lif2"].beta.value), threshold=0.5, reset_mechanism="zero",
                     reset_delay=False)
    torch.manual_seed(0)
    xs = torch.rand(20, 4, 5) * 3
    mem1, mem2, spikes = lif1.init_leaky(), lif2.init_leaky(), []
    with torch.no_grad():
        for t in range(20):
            s1, mem1 = lif1(F.linear(xs[t], torch.tensor(w1), torch.tensor(b1)), mem1)
            s2, mem2 = lif2(F.linear(s1, torch.tensor(w2)), mem2)
            spikes.append(s2)
    out = run(g, xs)["output"]
    assert out.sum() > 0 and torch.equal(out, torch.stack(spikes))


def test_snntorch_synaptic_imports_with_unit_gain():
    graph = nir.NIRGraph(nodes={"input": nir.Input(np.array([4])), "fc": nir.Affine(weight=rng_weights(6, 4),
                                                                                      bias=np.zeros(6, np.float32)),
                                "syn": snntorch_cubalif(0.7, 0.85, 6), "output": nir.Output(np.array([6]))},
                         edges=[("input", "fc"), ("fc", "syn"), ("syn", "output")])
    with pytest.warns(UserWarning, match="'syn'"):
        g = sg.from_nir(graph, dt=SNNTORCH_DT)
    node = g.nodes["syn"]
    assert node.op == "synaptic" and "syn_in" not in g.nodes
    np.testing.assert_allclose(node.alpha.value, 0.7, rtol=1e-6)
    np.testing.assert_allclose(node.beta.value, 0.85, rtol=1e-6)


@pytest.mark.parametrize("diagonal", [False, True])
def test_snntorch_rleaky_subgraph_imports_as_rleaky(diagonal):
    n = 5
    w_rec = np.diag(np.linspace(-0.4, 0.4, n)).astype(np.float32) if diagonal else rng_weights(n, n, seed=3)
    rec = nir.Linear(weight=w_rec) if diagonal else nir.Affine(weight=w_rec, bias=rng_weights(n, seed=4))
    sub = nir.NIRGraph(nodes={"input": nir.Input(input_type=[n]), "lif": snntorch_lif(0.9, n), "w_rec": rec,
                              "output": nir.Output(output_type=[n])},
                       edges=[("input", "lif"), ("lif", "w_rec"), ("w_rec", "lif"), ("lif", "output")])
    w_in = rng_weights(n, 3, seed=5)
    graph = nir.NIRGraph(nodes={"input": nir.Input(np.array([3])), "fc": nir.Linear(weight=w_in), "rlif": sub,
                                "output": nir.Output(np.array([n]))},
                         edges=[("input", "fc"), ("fc", "rlif"), ("rlif", "output")])
    with pytest.warns(UserWarning):
        g = sg.from_nir(graph, dt=SNNTORCH_DT)
    node = g.nodes["rlif"]
    assert node.op == "rleaky" and node.all_to_all is not diagonal
    if diagonal:
        np.testing.assert_array_equal(node.V.value, np.diag(w_rec))
    else:
        np.testing.assert_array_equal(node.recurrent_weight.value, w_rec)
        np.testing.assert_array_equal(node.recurrent_bias.value, rec.bias)
    ref = snn.RLeaky(beta=torch.tensor(node.beta.value), all_to_all=not diagonal, linear_features=None if diagonal
                     else n, V=torch.tensor(np.diag(w_rec)) if diagonal else None, reset_mechanism="zero",
                     reset_delay=False)
    if not diagonal:
        ref.recurrent.weight.data, ref.recurrent.bias.data = torch.tensor(w_rec), torch.tensor(rec.bias)
    torch.manual_seed(2)
    xs = torch.rand(15, 2, 3) * 3
    spk, mem = ref.init_rleaky()
    outs = []
    with torch.no_grad():
        for t in range(15):
            spk, mem = ref(F.linear(xs[t], torch.tensor(w_in)), spk, mem)
            outs.append(spk)
    out = run(g, xs)["output"]
    assert out.sum() > 0 and torch.equal(out, torch.stack(outs))


def norse_reference(xs: np.ndarray, w: np.ndarray, tau_lif: float, w2: np.ndarray, tau_li: float, dt: float):
    """Norse's LIFBoxCell -> Linear -> LIBoxCell forward-Euler updates (v_leak = v_reset = 0, r = 1)."""
    v = np.zeros((xs.shape[1], w.shape[0]))
    u = np.zeros((xs.shape[1], w2.shape[0]))
    spikes, readout = [], []
    for x in xs:
        v = v + dt / tau_lif * (-v + x @ w.T)
        z = (v > 1.0).astype(np.float64)
        v = (1 - z) * v
        u = u + dt / tau_li * (-u + z @ w2.T)
        spikes.append(z)
        readout.append(u)
    return np.stack(spikes), np.stack(readout)


def test_norse_lif_box_and_li_box_import_with_gain_nodes():
    """Norse exports LIFBoxCell/LIBoxCell as LIF/LI with r = 1 and tau = 1 / tau_mem_inv."""
    dt, tau_lif, tau_li = 1e-3, 5e-3, 1e-2
    w, w2 = rng_weights(6, 4) * 8, rng_weights(2, 6, seed=1)
    graph = nir.NIRGraph(nodes={
        "input": nir.Input(np.array([4])), "fc": nir.Linear(weight=w),
        "lif": nir.LIF(tau=np.full(6, tau_lif), r=np.ones(6), v_leak=np.zeros(6), v_threshold=np.ones(6),
                       v_reset=np.zeros(6)),
        "fc2": nir.Linear(weight=w2), "li": nir.LI(tau=np.full(2, tau_li), r=np.ones(2), v_leak=np.zeros(2)),
        "output": nir.Output(np.array([2]))},
        edges=[("input", "fc"), ("fc", "lif"), ("lif", "fc2"), ("fc2", "li"), ("li", "output")])
    with pytest.warns(UserWarning, match="'lif', 'li'"):
        g = sg.from_nir(graph, dt=dt)
    np.testing.assert_array_equal(g.nodes["fc"].weight.value, w)
    np.testing.assert_allclose(g.nodes["lif"].beta.value, 1 - dt / tau_lif, rtol=1e-6)
    np.testing.assert_allclose(g.nodes["li"].beta.value, 1 - dt / tau_li, rtol=1e-6)
    np.testing.assert_allclose(g.nodes["lif_in"].factor.value, dt / tau_lif, rtol=1e-6)
    torch.manual_seed(0)
    xs = torch.rand(30, 3, 4)
    spikes, readout = norse_reference(xs.double().numpy(), w.astype(np.float64), tau_lif, w2, tau_li, dt)
    out = run(g, xs)["output"].double().numpy()
    assert spikes.sum() > 0
    np.testing.assert_allclose(out, readout, atol=1e-5)


def test_norse_cubalif_cubali_and_sumpool():
    dt, n = 1e-3, 4
    w = rng_weights(n, 2 * 2 * 2) * 40
    graph = nir.NIRGraph(nodes={
        "input": nir.Input(np.array([2, 4, 4])), "pool": nir.SumPool2d(kernel_size=np.array([2, 2]),
                                                                      stride=np.array([2, 2]),
                                                                      padding=np.array([0, 0])),
        "flat": nir.Flatten(input_type={"input": np.array([2, 2, 2])}, start_dim=0, end_dim=-1),
        "fc": nir.Linear(weight=w),
        "cuba": nir.CubaLIF(tau_syn=np.full(n, 5e-3), tau_mem=np.full(n, 1e-2), r=np.ones(n), v_leak=np.zeros(n),
                            v_threshold=np.full(n, 0.5), w_in=np.ones(n)),
        "readout": nir.CubaLI(tau_syn=np.full(n, 4e-3), tau_mem=np.full(n, 8e-3), r=np.ones(n), v_leak=np.zeros(n)),
        "output": nir.Output(np.array([n]))},
        edges=[("input", "pool"), ("pool", "flat"), ("flat", "fc"), ("fc", "cuba"), ("cuba", "readout"),
               ("readout", "output")])
    with pytest.warns(UserWarning):
        g = sg.from_nir(graph, dt=dt)
    assert g.nodes["cuba"].op == "synaptic" and g.nodes["readout_syn"].op == "leaky_integrator"
    np.testing.assert_allclose(g.nodes["cuba"].alpha.value, 0.8, rtol=1e-6)
    np.testing.assert_allclose(g.nodes["cuba_in"].factor.value, 0.2 * 0.1, rtol=1e-6)
    torch.manual_seed(0)
    xs = torch.rand(40, 2, 2, 4, 4)
    # reference: NIR's equations under forward Euler, the current updated before the membrane
    x = F.lp_pool2d(xs.flatten(0, 1).double(), 1, 2).reshape(40, 2, -1) @ torch.tensor(w).double().T
    i_syn = v = j = u = torch.zeros(2, n, dtype=torch.float64)
    spikes, ref = [], []
    for t in range(40):
        i_syn = i_syn + dt / 5e-3 * (-i_syn + x[t])
        v = v + dt / 1e-2 * (-v + i_syn)
        z = (v > 0.5).double()
        v = v * (1 - z)
        j = j + dt / 4e-3 * (-j + z)
        u = u + dt / 8e-3 * (-u + j)
        spikes.append(z)
        ref.append(u)
    assert torch.stack(spikes).sum() > 0
    np.testing.assert_allclose(run(g, xs)["output"].double().numpy(), torch.stack(ref).numpy(), atol=1e-6)


def test_generic_cycle_gets_a_one_step_delay_on_the_closing_edge():
    w_in, w_fb = rng_weights(3, 3) + 0.8, rng_weights(3, 3, seed=9)
    meta = {"reset_mechanism": "subtract", "reset_delay": True, "discretization": "euler"}
    lif = nir.LIF(tau=np.full(3, 10.0), r=np.full(3, 10.0), v_leak=np.zeros(3), v_threshold=np.ones(3),
                  metadata=meta)
    graph = nir.NIRGraph(nodes={"input": nir.Input(np.array([3])), "a": nir.Linear(weight=w_in), "lif": lif,
                                "b": nir.Affine(weight=w_fb, bias=np.zeros(3, np.float32)), "c": nir.Scale(
                                    scale=np.full(3, 0.5, np.float32)), "output": nir.Output(np.array([3]))},
                         edges=[("input", "a"), ("a", "lif"), ("lif", "b"), ("b", "c"), ("c", "a"),
                                ("lif", "output")], metadata={"dt": 1.0})
    g = sg.from_nir(graph)
    fb = [n for n in g.nodes.values() if n.op == "delay"]
    assert len(fb) == 1 and fb[0].inputs[0].node == "c" and fb[0].steps == 1
    torch.manual_seed(0)
    xs = torch.rand(20, 2, 3) * 2
    beta, mem, prev, outs = 0.9, torch.zeros(2, 3), torch.zeros(2, 3), []
    for t in range(20):
        cur = F.linear(xs[t] + 0.5 * F.linear(prev, torch.tensor(w_fb)), torch.tensor(w_in))
        reset = (mem > 1).float()
        mem = beta * mem + cur - reset
        prev = (mem > 1).float()
        outs.append(prev)
    out = run(g, xs)["output"]
    assert out.sum() > 0
    assert torch.equal(out, torch.stack(outs))


def test_v_leak_folds_into_the_feeding_affine_bias():
    w, b = rng_weights(3, 2), rng_weights(3, seed=1)
    graph = nir.NIRGraph(nodes={"input": nir.Input(np.array([2])), "fc": nir.Affine(weight=w, bias=b),
                                "li": nir.LI(tau=np.full(3, 4.0), r=np.full(3, 2.0), v_leak=np.full(3, 0.5),
                                             metadata={"discretization": "exp"}),
                                "output": nir.Output(np.array([3]))},
                         edges=[("input", "fc"), ("fc", "li"), ("li", "output")], metadata={"dt": 1.0})
    g = sg.from_nir(graph)
    beta = np.exp(-0.25)
    np.testing.assert_allclose(g.nodes["li"].beta.value, beta, rtol=1e-6)
    np.testing.assert_allclose(g.nodes["fc"].bias.value, (1 - beta) * (2 * b + 0.5), rtol=1e-5)
    xs = torch.rand(10, 1, 2)
    u, ref = np.zeros(3), []
    for x in xs[:, 0].double().numpy():
        u = beta * u + (1 - beta) * (2.0 * (w @ x + b) + 0.5)
        ref.append(u)
    np.testing.assert_allclose(run(g, xs)["output"][:, 0].double().numpy(), np.stack(ref), atol=1e-5)


def test_nested_graph_is_flattened_with_prefixed_names():
    w1, w2 = rng_weights(4, 3) + 0.5, rng_weights(2, 4, seed=1)
    block = nir.NIRGraph(nodes={"inp": nir.Input(np.array([3])), "fc": nir.Linear(weight=w1),
                                "lif": snntorch_lif(0.9, 4), "out": nir.Output(np.array([4]))},
                         edges=[("inp", "fc"), ("fc", "lif"), ("lif", "out")])
    graph = nir.NIRGraph(nodes={"input": nir.Input(np.array([3])), "block": block, "fc2": nir.Linear(weight=w2),
                                "lif2": snntorch_lif(0.8, 2), "output": nir.Output(np.array([2]))},
                         edges=[("input", "block"), ("block", "fc2"), ("fc2", "lif2"), ("lif2", "output")])
    with pytest.warns(UserWarning, match="block_lif"):
        g = sg.from_nir(graph, dt=SNNTORCH_DT)
    assert list(g.nodes) == ["input", "block_fc", "block_lif", "fc2", "lif2"]
    assert g.nodes["fc2"].inputs[0].node == "block_lif"
    np.testing.assert_array_equal(g.nodes["block_fc"].weight.value, w1)


def test_flat_snntorch_recurrent_pattern_becomes_rleaky():
    w_rec = rng_weights(4, 4, seed=7)
    graph = nir.NIRGraph(nodes={"input": nir.Input(np.array([4])), "lif": snntorch_lif(0.9, 4),
                                "w_rec": nir.Linear(weight=w_rec), "output": nir.Output(np.array([4]))},
                         edges=[("input", "lif"), ("lif", "w_rec"), ("w_rec", "lif"), ("lif", "output")])
    with pytest.warns(UserWarning):
        g = sg.from_nir(graph, dt=SNNTORCH_DT)
    node = g.nodes["lif"]
    assert [n.op for n in g.nodes.values()] == ["input", "rleaky"] and node.all_to_all
    np.testing.assert_array_equal(node.recurrent_weight.value, w_rec)
    np.testing.assert_array_equal(node.recurrent_bias.value, np.zeros(4, np.float32))


def test_norse_iaf_integrates_the_input_per_step():
    """Norse's IAFCell: v += I (no dt), reset to v_reset = 0 in the spiking step."""
    graph = nir.NIRGraph(nodes={"input": nir.Input(np.array([3])), "iaf": nir.IF(r=np.ones(3),
                                                                                 v_threshold=np.full(3, 2.0)),
                                "output": nir.Output(np.array([3]))},
                         edges=[("input", "iaf"), ("iaf", "output")])
    with pytest.warns(UserWarning, match="'iaf'"):
        g = sg.from_nir(graph, dt=1e-3)
    assert [n.op for n in g.nodes.values()] == ["input", "integrate_fire"]
    torch.manual_seed(0)
    xs = torch.rand(25, 2, 3)
    v, ref = torch.zeros(2, 3), []
    for x in xs:
        v = v + x
        z = (v > 2.0).float()
        v = (1 - z) * v
        ref.append(z)
    out = run(g, xs)["output"]
    assert out.sum() > 0 and torch.equal(out, torch.stack(ref))


def test_names_that_are_not_identifiers_are_sanitised():
    graph = nir.NIRGraph(nodes={"input": nir.Input(np.array([3])), "0": nir.Linear(weight=rng_weights(3, 3)),
                                "lif1.lif": snntorch_lif(0.9, 3), "lif1_lif": snntorch_lif(0.5, 3),
                                "output": nir.Output(np.array([3]))},
                         edges=[("input", "0"), ("0", "lif1.lif"), ("lif1.lif", "lif1_lif"), ("lif1_lif", "output")])
    with pytest.warns(UserWarning):
        g = sg.from_nir(graph, dt=SNNTORCH_DT)
    assert list(g.nodes) == ["input", "n_0", "lif1_lif_2", "lif1_lif"]
    assert g.nodes["lif1_lif"].inputs[0].node == "lif1_lif_2" and list(g.outputs) == ["output"]


def test_snntorch_export_to_nir_imports_with_weights_and_decays_intact():
    """snnTorch 1.0.0's own exporter (needs nirtorch; per-neuron parameters and ignore_dims=[0], without
    which it fails type inference with nir 1.0)."""
    pytest.importorskip("nirtorch")
    from snntorch.export_nir import export_to_nir

    torch.manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Linear(4, 6), snn.Leaky(beta=torch.full((6,), 0.9), threshold=torch.ones(6), init_hidden=True),
        torch.nn.Linear(6, 5), snn.RLeaky(beta=torch.full((5,), 0.8), threshold=torch.ones(5), linear_features=5,
                                          init_hidden=True),
        torch.nn.Linear(5, 2), snn.Synaptic(alpha=torch.full((2,), 0.7), beta=torch.full((2,), 0.85),
                                            threshold=torch.full((2,), 0.5), init_hidden=True, output=True))
    with warnings.catch_warnings():  # nirtorch deprecates the extract_nir_graph that snnTorch 1.0.0 calls
        warnings.simplefilter("ignore", DeprecationWarning)
        exported = export_to_nir(net, torch.rand(1, 4), ignore_dims=[0])
    with pytest.warns(UserWarning, match="reset_delay=False"):
        g = sg.from_nir(exported, dt=SNNTORCH_DT)
    assert [n.op for n in g.nodes.values()] == ["input", "linear", "leaky", "linear", "rleaky", "linear", "synaptic"]
    linears = [n for n in g.nodes.values() if n.op == "linear"]
    for node, layer in zip(linears, (net[0], net[2], net[4]), strict=True):
        np.testing.assert_array_equal(node.weight.value, layer.weight.detach().numpy())
        np.testing.assert_array_equal(node.bias.value, layer.bias.detach().numpy())
    rec = next(n for n in g.nodes.values() if n.op == "rleaky")
    np.testing.assert_array_equal(rec.recurrent_weight.value, net[3].recurrent.weight.detach().numpy())
    np.testing.assert_allclose(rec.beta.value, 0.8, rtol=1e-6)
    syn = next(n for n in g.nodes.values() if n.op == "synaptic")
    np.testing.assert_allclose(syn.alpha.value, 0.7, rtol=1e-6)
    np.testing.assert_allclose(syn.beta.value, 0.85, rtol=1e-6)
    np.testing.assert_array_equal(syn.threshold.value, 0.5)


def test_foreign_subtract_reset_without_delay_follows_nirs_equation():
    """A foreign graph's IF with a subtract reset in the spiking step imports as ``nir_lif`` (NIR's
    equation: it fires again while the reset membrane stays above threshold), not as snnTorch's
    ``reset_delay=False`` neuron, which would stay at 1.5 without firing (issue #19 item 18)."""
    meta = {"reset_mechanism": "subtract", "reset_delay": False}
    graph = nir.NIRGraph(nodes={"input": nir.Input(input_type=np.array([1])), "n": nir.IF(
        r=np.ones(1), v_threshold=np.ones(1), v_reset=np.zeros(1), metadata=meta),
        "output": nir.Output(output_type=np.array([1]))}, edges=[("input", "n"), ("n", "output")])
    g = sg.from_nir(graph, dt=1.0)
    assert g.nodes["n"].op == "nir_lif"
    net = sg.compile(g).eval()
    state, spikes, mems = net.init_state(1), [], []
    for i in (2.5, 0.0, 0.0, 0.0):
        out, state = net.step(torch.tensor([[i]]), state)
        spikes.append(out["output"].item())
        mems.append(state["n.mem"].item())
    v, nir_spikes, nir_mems = 0.0, [], []  # NIR's equation: fire on the value before the reset, then subtract
    for i in (2.5, 0.0, 0.0, 0.0):
        v += i
        nir_spikes.append(float(v > 1.0))
        v -= nir_spikes[-1]
        nir_mems.append(v)
    assert spikes == nir_spikes == [1.0, 1.0, 0.0, 0.0] and mems == nir_mems == [1.5, 0.5, 0.5, 0.5]
    back = sg.from_nir(sg.to_nir(g, dt=1.0), dt=1.0)  # nir_lif round-trips as itself
    assert back.nodes["n"].op == "nir_lif" and back.nodes["n"].reset_mechanism == "subtract"


def test_snngraphs_own_leaky_with_reset_delay_false_comes_back_as_leaky():
    g = sg.Graph("own")
    g.output("s", g.leaky(g.input("x", (3,)), beta=0.9, reset_delay=False, name="lif"))
    back = sg.from_nir(sg.to_nir(g, dt=1e-3), dt=1e-3)
    assert back.nodes["lif"].op == "leaky" and back.nodes["lif"].reset_delay is False
