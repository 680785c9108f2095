"""``sg.compile(g, kernels="triton")`` end to end in Triton's interpreter (CPU tensors): a training step
(forward, backward, Adam) of a net with every fusable model equals ``kernels="torch"``, and the Triton
custom ops compose with ``torch.compile``. Run with ``make test-triton``; skipped otherwise."""

import numpy as np
import pytest
import torch

import snngraph as sg
from snngraph.runtimes.torch.triton import available, interpreting

pytestmark = [
    pytest.mark.skipif(not available(), reason="triton is not installed (make test-triton installs it)"),
    pytest.mark.skipif(not interpreting(), reason="needs TRITON_INTERPRET=1 (make test-triton)"),
]


def every_fusable_model() -> sg.Graph:
    """Leaky (per-neuron learnt beta and threshold, zero reset now), IF, RLeaky, Synaptic and an LI readout."""
    g = sg.Graph("all")
    x = g.input("x", (6,))
    beta = np.linspace(0.6, 0.95, 8).astype(np.float32)
    h = g.leaky(g.linear(x, 8, name="fc1"), beta, learn_beta=True, learn_threshold=True, reset_mechanism="zero",
                reset_delay=False, name="lif")
    h = g.integrate_fire(g.linear(h, 8, name="fc2"), 1.2, name="if_")
    h = g.rleaky(g.linear(h, 8, name="fc3"), 0.9, learn_beta=True, name="rlif")
    h = g.synaptic(g.linear(h, 8, name="fc4"), 0.7, 0.85, learn_alpha=True, learn_threshold=True, name="syn")
    o = g.leaky_integrator(g.linear(h, 3, name="fc5"), 0.9, learn_beta=True, name="li")
    g.output("mem", o)
    g.output("spk", h)
    return g


def _step(kernels: str, x: torch.Tensor, target: torch.Tensor, compiled: bool = False):
    torch.manual_seed(0)
    net = sg.compile(every_fusable_model(), kernels=kernels)
    run = torch.compile(net, backend="aot_eager", fullgraph=True) if compiled else net
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    out = run(x)
    loss = torch.nn.functional.mse_loss(out["mem"], target) + out["spk"].mean()
    loss.backward()
    grads = {k: p.grad.clone() for k, p in net.named_parameters()}
    opt.step()
    return out, loss.detach(), grads, {k: p.detach().clone() for k, p in net.named_parameters()}


def _spy(monkeypatch) -> dict[str, int]:
    from snngraph.runtimes.torch.triton import leaky, recurrent, synaptic

    calls = {"leaky": 0, "recurrent": 0, "synaptic": 0}
    for name, module in (("leaky", leaky), ("recurrent", recurrent), ("synaptic", synaptic)):
        original = module.forward

        def counted(*args, _name=name, _original=original, **kwargs):
            calls[_name] += 1
            return _original(*args, **kwargs)

        monkeypatch.setattr(module, "forward", counted)
    return calls


@pytest.mark.parametrize("compiled", [False, True], ids=["eager", "torch.compile"])
def test_training_step_equals_torch_kernels(monkeypatch, compiled):
    torch.manual_seed(1)
    x, target = torch.rand(9, 4, 6) * 2, torch.rand(9, 4, 3)
    out_t, loss_t, grads_t, params_t = _step("torch", x, target)
    calls = _spy(monkeypatch)
    out, loss, grads, params = _step("triton", x, target, compiled)
    assert calls == {"leaky": 3, "recurrent": 1, "synaptic": 1}  # lif, if_, li; rlif; syn ran as Triton kernels
    assert torch.equal(out["spk"], out_t["spk"]) and out_t["spk"].count_nonzero() > 0
    torch.testing.assert_close(out["mem"], out_t["mem"], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(loss, loss_t, rtol=1e-5, atol=1e-7)
    for name, g in grads_t.items():
        assert g.abs().sum() > 0 or name.endswith("threshold"), name
        torch.testing.assert_close(grads[name], g, rtol=1e-5, atol=1e-5 * max(g.abs().max().item(), 1e-3),
                                   msg=lambda m, n=name: f"{n}: {m}")
    for name, p in params_t.items():
        torch.testing.assert_close(params[name], p, rtol=1e-5, atol=1e-6)


def test_auto_on_cpu_does_not_use_triton(monkeypatch):
    calls = _spy(monkeypatch)
    net = sg.compile(every_fusable_model())
    net(torch.rand(3, 2, 6))
    assert calls == {"leaky": 0, "recurrent": 0, "synaptic": 0}


def assert_func_grads_match(graph, x: torch.Tensor, port: str) -> torch.nn.Module:
    """``torch.func.functional_call`` + ``torch.func.grad`` (SPEC §11) of ``(out[port]^2).sum() + out["spk"].sum()``
    through the Triton custom ops equals the torch kernels'; returns the Triton net."""
    grads = {}
    for kernels in ("torch", "triton"):
        torch.manual_seed(0)
        net = sg.compile(graph(), kernels=kernels)
        params = {n: p.detach() for n, p in net.named_parameters()}

        def loss(p, net=net):
            out = torch.func.functional_call(net, p, (x,))
            return out[port].square().sum() + out["spk"].sum()

        grads[kernels] = torch.func.grad(loss)(params)
    for name, g in grads["torch"].items():
        torch.testing.assert_close(grads["triton"][name], g, rtol=1e-5, atol=1e-5 * max(g.abs().max().item(), 1e-3),
                                   msg=lambda m, n=name: f"{n}: {m}")
    return net


def test_torch_func_grad_equals_torch_kernels():
    assert_func_grads_match(every_fusable_model, torch.rand(5, 3, 6) * 2, "mem")


def test_autocast_bfloat16_training_step():
    """Under CPU ``torch.autocast`` (bfloat16) neurons accumulate in float32 with autocast off (``lower.
    neuron_precision``): the Triton kernels then train exactly like the torch scans."""
    x = torch.rand(8, 16, 6) * 2
    results = {}
    for kernels in ("torch", "triton"):
        torch.manual_seed(0)
        net = sg.compile(every_fusable_model(), kernels=kernels)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = net(x)
            loss = out["mem"].float().square().mean() + out["spk"].float().mean()
        loss.backward()
        results[kernels] = out, {n: p.grad for n, p in net.named_parameters()}
    (out_t, grads_t), (out, grads) = results["torch"], results["triton"]
    assert torch.equal(out["spk"], out_t["spk"])
    torch.testing.assert_close(out["mem"], out_t["mem"], rtol=1e-5, atol=1e-6)
    for name, g in grads_t.items():
        assert grads[name].dtype == g.dtype == torch.float32, name
        torch.testing.assert_close(grads[name], g, rtol=1e-5, atol=1e-5 * max(g.abs().max().item(), 1e-3),
                                   msg=lambda m, n=name: f"{n}: {m}")


def test_torch_export_with_dynamic_time_and_batch():
    """``torch.export`` keeps the Triton scans as custom ops with T and B symbolic."""
    torch.manual_seed(0)
    net = sg.compile(every_fusable_model(), kernels="triton")
    dims = {0: torch.export.Dim("T", min=2), 1: torch.export.Dim("B", min=2)}
    program = torch.export.export(net, (torch.rand(5, 3, 6) * 2,), dynamic_shapes=((dims,),))
    ops = {str(n.target) for n in program.graph.nodes if n.op == "call_function"}
    assert {"snngraph.triton_leaky_scan.default", "snngraph.triton_recurrent_leaky_scan.default",
            "snngraph.triton_synaptic_scan.default"} <= ops
    x = torch.rand(7, 4, 6) * 2
    torch.testing.assert_close(program.module()(x)["mem"], net(x)["mem"])


HIDDEN = {"leaky": lambda g, c: g.leaky(c, 0.9, name="hid"),
          "rleaky": lambda g, c: g.rleaky(c, 0.9, name="hid"),
          "rleaky_one_to_one": lambda g, c: g.rleaky(c, 0.9, all_to_all=False, V=0.3, name="hid"),
          "synaptic": lambda g, c: g.synaptic(c, 0.7, 0.9, name="hid")}


@pytest.mark.parametrize("hidden", sorted(HIDDEN))
@pytest.mark.parametrize("compiled", [False, True], ids=["eager", "torch.compile"])
def test_scratch_scan_writes_over_its_current_and_membranes(monkeypatch, compiled, hidden):
    """A hidden Leaky / RLeaky / Synaptic with a private current (``lower.scratch_inputs``) and fixed
    parameters: the Triton forward writes its state over the current and (Leaky, RLeaky) the backward writes
    the input gradient over the membranes (``out=``, Synaptic's ``syn_out=``), as the torch scans do; values
    and gradients equal ``kernels="torch"``."""
    from snngraph.runtimes.torch.triton import leaky, recurrent, synaptic

    def net(kernels):
        torch.manual_seed(0)
        g = sg.Graph("scratch")
        h = HIDDEN[hidden](g, g.linear(g.input("x", (6,)), 8, name="fc1"))
        o = g.leaky(g.linear(h, 3, name="fc2"), 0.8, name="out")
        g.output("spk", o)
        g.output("mem", o.mem)
        return sg.compile(g, kernels=kernels)

    def step(module, run):
        out = run(x)
        (out["mem"].square().sum() + out["spk"].sum()).backward()
        return out, {k: p.grad for k, p in module.named_parameters()}

    outs = []
    for label, module in (("leaky", leaky), ("recurrent", recurrent), ("synaptic", synaptic)):
        for name in ("forward", "backward"):
            original, tag = getattr(module, name), f"{label}.{name}"

            def spied(*args, _original=original, _tag=tag, **kwargs):
                outs.append((_tag, kwargs.get("out", kwargs.get("syn_out")) is not None))
                return _original(*args, **kwargs)

            monkeypatch.setattr(module, name, spied)
    x = torch.rand(9, 4, 6) * 2
    want_net, got_net = net("torch"), net("triton")
    want = step(want_net, want_net)
    got = step(got_net, torch.compile(got_net, backend="aot_eager", fullgraph=True) if compiled else got_net)
    kind = {"leaky": "leaky", "synaptic": "synaptic"}.get(hidden, "recurrent")
    # hid's forward, out's forward, out's backward, hid's backward: only the hidden scan writes over buffers
    assert outs == [(f"{kind}.forward", True), ("leaky.forward", False), ("leaky.backward", False),
                    (f"{kind}.backward", kind != "synaptic")]
    assert torch.equal(got[0]["spk"], want[0]["spk"]) and want[0]["spk"].count_nonzero() > 0
    torch.testing.assert_close(got[0]["mem"], want[0]["mem"], rtol=1e-5, atol=1e-6)
    for name, g in want[1].items():
        torch.testing.assert_close(got[1][name], g, rtol=1e-5, atol=1e-5 * max(g.abs().max().item(), 1e-3))


def spikingjelly_net() -> sg.Graph:
    """SpikingJelly's LIF (per-neuron tau; hidden, so its current is scratch) and IF (soft reset, detached,
    both ports read) as Triton kernels."""
    g = sg.Graph("sj")
    x = g.input("x", (6,))
    h = g.sj_lif(g.linear(x, 8, name="fc1"), np.linspace(1.5, 4.0, 8).astype(np.float32), 0.8, 0.1,
                 spike_grad=sg.surrogate.sigmoid(4.0), name="lif")
    o = g.sj_if(g.linear(h, 3, name="fc2"), 1.0, reset="soft", detach_reset=True, name="if_")
    g.output("spk", o)
    g.output("v", o.v)
    return g


def lstm_net() -> sg.Graph:
    """A hidden SLSTM (subtract reset, learnt threshold; its projection is scratch) and a Leaky readout, as
    Triton kernels."""
    g = sg.Graph("lstm")
    h = g.slstm(g.input("x", (6,)), 0.1, hidden_size=8, reset_mechanism="subtract", learn_threshold=True,
                name="lstm")
    o = g.leaky(g.linear(h, 3, name="fc"), 0.8, threshold=0.1, name="out")
    g.output("spk", o)
    g.output("mem", o.mem)
    return g


def norse_net() -> sg.Graph:
    """Every Norse model: LIFCell (per-neuron learnt tau_mem_inv, v_leak, v_th), LIFRecurrentCell dense (learnt
    tau_syn_inv, recurrence) and diagonal, LIFBoxCell (subtract) and an LICell read-out."""
    g = sg.Graph("norse")
    x = g.input("x", (6,))
    common = dict(dt=0.002, v_leak=0.05, v_reset=-0.05)
    h = g.neuron("norse_lif", g.linear(x, 8, name="fc1"), name="lif", learn=("tau_mem_inv", "v_leak", "v_th"),
                 tau_mem_inv=np.linspace(80, 120, 8).astype(np.float32), v_th=0.3, **common)
    h = g.neuron("norse_lif_recurrent", g.linear(h, 8, name="fc2"), name="rec", learn=("tau_syn_inv",), v_th=0.05,
                 **common)
    h = g.neuron("norse_lif_recurrent", g.linear(h, 8, name="fc3"), name="diag", all_to_all=False, V=0.3, v_th=0.2,
                 **common)
    h = g.neuron("norse_lif_box", g.linear(h, 8, name="fc4"), name="box", reset_method="subtract", v_th=0.1,
                 learn=("v_th",), dt=0.002)
    o = g.neuron("norse_li", g.linear(h, 3, name="fc5"), name="li", learn=("tau_mem_inv",), dt=0.002)
    g.output("v", o.v)
    g.output("spk", h)
    return g


# graph, its Triton module, its state port, the input's scale, the (function, out= given) calls of that module in
# a training step
NETS = {
    # lif's forward (over its current), if_'s forward, if_'s backward, lif's backward (over its membranes)
    "spikingjelly": (spikingjelly_net, "spikingjelly", "v", 2.0,
                     [("forward", True), ("forward", False), ("backward", False), ("backward", True)]),
    # the gates over the projection, the projection's gradient over the gates
    "lstm": (lstm_net, "lstm", "mem", 2.0, [("forward", True), ("backward", True)]),
    # five forwards (norse.forward takes scratch as an argument, not out=); the scratch populations' (lif, rec,
    # diag) backwards write the input gradient over their currents
    "norse": (norse_net, "norse", "v", 4.0, [("forward", False)] * 5 + [("backward", False)] * 2
              + [("backward", True)] * 3),
}


@pytest.mark.parametrize("name", sorted(NETS))
@pytest.mark.parametrize("compiled", [False, True], ids=["eager", "torch.compile"])
def test_training_step_of_more_models_equals_torch_kernels(monkeypatch, compiled, name):
    """A training step with ``kernels="triton"`` equals ``"torch"``; the hidden scan writes over its private
    input and its input gradient over what it saved (``out=``)."""
    import importlib

    graph, module_name, port, scale, expected = NETS[name]
    module = importlib.import_module(f"snngraph.runtimes.torch.triton.{module_name}")
    calls = []
    for function in ("forward", "backward"):
        original = getattr(module, function)

        def spied(*args, _original=original, _name=function, **kwargs):
            calls.append((_name, kwargs.get("out") is not None))
            return _original(*args, **kwargs)

        monkeypatch.setattr(module, function, spied)
    torch.manual_seed(1)
    x = torch.rand(9, 4, 6) * scale
    results = {}
    for kernels in ("torch", "triton"):
        torch.manual_seed(0)
        net = sg.compile(graph(), kernels=kernels)
        run = torch.compile(net, backend="aot_eager", fullgraph=True) if compiled and kernels == "triton" else net
        opt = torch.optim.Adam(net.parameters(), lr=1e-2)
        out = run(x)
        (out[port].square().mean() + out["spk"].mean()).backward()
        grads = {k: p.grad.clone() for k, p in net.named_parameters()}
        opt.step()
        results[kernels] = out, grads, {k: p.detach().clone() for k, p in net.named_parameters()}
    assert calls == expected
    (out_t, grads_t, params_t), (out, grads, params) = results["torch"], results["triton"]
    assert torch.equal(out["spk"], out_t["spk"]) and 0 < out_t["spk"].count_nonzero() < out_t["spk"].numel()
    torch.testing.assert_close(out[port], out_t[port], rtol=1e-5, atol=1e-6)
    for key, g in grads_t.items():
        assert g.abs().sum() > 0, key
        torch.testing.assert_close(grads[key], g, rtol=1e-5, atol=1e-5 * max(g.abs().max().item(), 1e-3),
                                   msg=lambda m, n=key: f"{n}: {m}")
    for key, p in params_t.items():
        torch.testing.assert_close(params[key], p, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", sorted(NETS))
def test_more_models_under_torch_func_and_export(name):
    """``torch.func.grad`` through ``snngraph::triton_sj_scan`` / ``_lstm_scan`` / ``_norse_lif_scan`` equals the
    torch kernels';
    ``torch.export`` keeps the op with T symbolic."""
    graph, module_name, port, scale, _ = NETS[name]
    x = torch.rand(5, 3, 6) * scale
    net = assert_func_grads_match(graph, x, port)
    program = torch.export.export(net, (x,), dynamic_shapes=(({0: torch.export.Dim("T", min=2)},),))
    op = {"spikingjelly": "triton_sj_scan", "lstm": "triton_lstm_scan", "norse": "triton_norse_lif_scan"}[name]
    assert f"snngraph.{op}.default" in {str(n.target) for n in program.graph.nodes}
    longer = torch.rand(8, 3, 6) * scale
    torch.testing.assert_close(program.module()(longer)[port], net(longer)[port])
