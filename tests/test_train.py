"""snngraph.train.fit and snngraph.backprop on tiny hand-written spiking models."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import snngraph as sg
from snngraph import backprop, train

# --------------------------------------------------------------------------- models


class Spike(torch.autograd.Function):
    """Heaviside forward, fast-sigmoid surrogate backward."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return (x > 0).to(x.dtype)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return grad / (1 + 10 * x.abs()) ** 2


def leaky_step(cur, mem, beta=0.8):
    """Hand-written leaky neuron, reset by subtraction: returns (spk, mem)."""
    mem = beta * mem + cur
    spk = Spike.apply(mem - 1.0)
    return spk, mem - spk


class FakeCompiled(nn.Module):
    """Looks like a compiled snngraph net: dict outputs, init_state / step, forward over time."""

    def __init__(self, n_in=6, n_out=2):
        super().__init__()
        self.fc = nn.Linear(n_in, n_out)

    def init_state(self, batch_size):
        return {"mem": torch.zeros(batch_size, self.fc.out_features)}

    def step(self, x_t, state):
        spk, mem = leaky_step(self.fc(x_t), state["mem"])
        return {"spk": spk, "mem": mem}, {"mem": mem}

    def forward(self, x):
        state, outs = self.init_state(x.shape[1]), []
        for x_t in x:
            out, state = self.step(x_t, state)
            outs.append(out)
        return {k: torch.stack([o[k] for o in outs]) for k in outs[0]}


class HiddenLeaky(nn.Module):
    """A per-step neuron keeping its membrane inside (snnTorch's init_hidden style)."""

    def __init__(self, output=False):
        super().__init__()
        self.init_hidden, self.output = True, output
        self.register_buffer("mem", torch.zeros(0), persistent=False)

    def forward(self, cur):
        if self.mem.shape != cur.shape:
            self.mem = torch.zeros_like(cur)
        spk, self.mem = leaky_step(cur, self.mem)
        return (spk, self.mem) if self.output else spk


def hidden_net():
    return nn.Sequential(nn.Linear(6, 8), HiddenLeaky(), nn.Linear(8, 2), HiddenLeaky(output=True))


# --------------------------------------------------------------------------- data


def toy_data(n=48, steps=8, seed=0):
    """Two classes of Poisson spike trains: class 0 fires on inputs 0-2, class 1 on 3-5."""
    gen = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 2
    rates = torch.full((n, 6), 0.05)
    rates[y == 0, :3] = 0.7
    rates[y == 1, 3:] = 0.7
    x = (torch.rand(steps, n, 6, generator=gen) < rates).float()
    return x, y


def time_first_loader(x, y, batch_size=12, shuffle=False):
    def collate(batch):
        return torch.stack([s[0] for s in batch], 1), torch.stack([s[1] for s in batch])

    dataset = torch.utils.data.TensorDataset(x.transpose(0, 1), y)
    return torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, collate_fn=collate)


def mem_ce(mem, y):
    return F.cross_entropy(mem.sum(0), y)


def quiet_fit(net, data, opt, **kwargs):
    return train.fit(net, data, mem_ce, opt, progress=False, **kwargs)


# --------------------------------------------------------------------------- fit


def test_full_bptt_learns_and_records_metrics():
    torch.manual_seed(0)
    x, y = toy_data()
    net = FakeCompiled()
    opt = torch.optim.Adam(net.parameters(), lr=0.05)
    history = quiet_fit(
        net, time_first_loader(x, y), opt, epochs=5, output="mem", val_loader=time_first_loader(*toy_data(seed=1))
    )
    assert [row["epoch"] for row in history] == list(range(1, 6))
    assert set(history[0]) == {"epoch", "loss", "accuracy", "val_loss", "val_accuracy"}
    assert history[-1]["loss"] < 0.5 * history[0]["loss"]
    assert history[-1]["accuracy"] >= 0.9 and history[-1]["val_accuracy"] >= 0.9


def test_stepnet_hidden_state_module_learns_batch_first():
    torch.manual_seed(0)
    x, y = toy_data()
    dataset = torch.utils.data.TensorDataset(x.transpose(0, 1), y)  # (N, T, 6): batch-first
    net = train.StepNet(hidden_net())
    opt = torch.optim.Adam(net.parameters(), lr=0.05)
    loader = torch.utils.data.DataLoader(dataset, batch_size=12)
    history = quiet_fit(net, loader, opt, epochs=5, output=1, time_first=False)
    assert history[-1]["loss"] < history[0]["loss"] and history[-1]["accuracy"] >= 0.9


class RecordingSGD(torch.optim.SGD):
    """SGD that keeps a copy of the gradients at every step."""

    def __init__(self, params, lr):
        super().__init__(params, lr=lr)
        self.grads = []

    def step(self, closure=None):
        self.grads.append([p.grad.clone() for g in self.param_groups for p in g["params"]])
        return super().step(closure)


def explicit_chunked(net, x, y, k, lr, init, step, detach):
    """Reference TBPTT: chunks of k steps, SGD after each, state detached between chunks."""
    grads, state = [], init(net, x.shape[1])
    for start in range(0, x.shape[0], k):
        net.zero_grad()
        mems = []
        for t in range(start, min(start + k, x.shape[0])):
            mem, state = step(net, x[t], state)
            mems.append(mem)
        mem_ce(torch.stack(mems), y).backward()
        grads.append([p.grad.clone() for p in net.parameters()])
        with torch.no_grad():
            for p in net.parameters():
                p.add_(p.grad, alpha=-lr)
        state = detach(net, state)
    return grads


def assert_grads_equal(got_steps, want_steps):
    assert len(got_steps) == len(want_steps)
    for got, want in zip(got_steps, want_steps, strict=True):
        for g, w in zip(got, want, strict=True):
            torch.testing.assert_close(g, w, rtol=0, atol=0)


def fake_step(net, x_t, state):
    out, state = net.step(x_t, state)
    return out["mem"], state


@pytest.mark.parametrize("k", [3, 7, None])  # None: full BPTT, one chunk of all 7 steps
def test_tbptt_gradient_equals_explicit_chunks_with_state_api(k):
    torch.manual_seed(1)
    x, y = toy_data(n=3, steps=7)
    net = FakeCompiled()
    ref = copy.deepcopy(net)
    opt = RecordingSGD(net.parameters(), lr=0.1)
    quiet_fit(net, [(x, y)], opt, tbptt_steps=k, output="mem")
    detach = lambda n, s: {"mem": s["mem"].detach()}  # noqa: E731
    expected = explicit_chunked(ref, x, y, k or 7, 0.1, lambda n, b: n.init_state(b), fake_step, detach)
    assert len(opt.grads) == -(-7 // (k or 7))
    assert_grads_equal(opt.grads, expected)
    for p, q in zip(net.parameters(), ref.parameters(), strict=True):
        torch.testing.assert_close(p, q, rtol=0, atol=0)


def test_tbptt_detaches_hidden_state_of_per_step_modules():
    torch.manual_seed(3)
    x, y = toy_data(n=3, steps=7)
    inner = hidden_net()
    ref = copy.deepcopy(inner)
    opt = RecordingSGD(inner.parameters(), lr=0.1)
    quiet_fit(train.StepNet(inner), [(x, y)], opt, tbptt_steps=3, output=1)

    def detach(net, state):
        for m in (net[1], net[3]):
            m.mem = m.mem.detach()

    init = lambda n, b: train.reset_hidden(n)  # noqa: E731
    expected = explicit_chunked(ref, x, y, 3, 0.1, init, lambda n, x_t, s: (n(x_t)[1], s), detach)
    assert_grads_equal(opt.grads, expected)
    assert inner[1].mem.grad_fn is None and inner[3].mem.grad_fn is None


def compiled_mlp(seed):
    torch.manual_seed(seed)
    g = sg.Graph("mlp")
    h = g.leaky(g.linear(g.input("x", shape=(6,)), 8, name="fc1"), beta=0.8, name="lif1")
    out = g.leaky(g.linear(h, 2, name="fc2"), beta=0.8, name="lif2")
    g.output("spk", out)
    g.output("mem", out.mem)
    return sg.compile(g)


def test_tbptt_compiled_net_equals_explicit_chunks():
    x, y = toy_data(n=3, steps=7)
    net, ref = compiled_mlp(seed=4), compiled_mlp(seed=5)
    ref.load_state_dict(net.state_dict())
    opt = RecordingSGD(net.parameters(), lr=0.1)
    quiet_fit(net, [(x, y)], opt, tbptt_steps=3, output="mem")
    detach = lambda n, s: {k: v.detach() for k, v in s.items()}  # noqa: E731
    expected = explicit_chunked(ref, x, y, 3, 0.1, lambda n, b: n.init_state(batch_size=b), fake_step, detach)
    assert_grads_equal(opt.grads, expected)


def test_stepnet_with_snngraph_neurons_tbptt_equals_explicit_chunks():
    torch.manual_seed(5)
    x, y = toy_data(n=3, steps=7)
    inner = nn.Sequential(
        nn.Linear(6, 8), sg.nn.Leaky(beta=0.8, init_hidden=True),
        nn.Linear(8, 2), sg.nn.Leaky(beta=0.8, init_hidden=True, output=True),
    )  # fmt: skip
    ref = copy.deepcopy(inner)
    opt = RecordingSGD(inner.parameters(), lr=0.1)
    quiet_fit(train.StepNet(inner), [(x, y)], opt, tbptt_steps=3, output=1)

    def detach(net, state):
        net[1].detach_hidden()
        net[3].detach_hidden()

    init = lambda n, b: sg.utils.reset(n)  # noqa: E731
    expected = explicit_chunked(ref, x, y, 3, 0.1, init, lambda n, x_t, s: (n(x_t)[1], s), detach)
    assert_grads_equal(opt.grads, expected)


def test_checkpoint_resume_restores_exactly(tmp_path):
    x, y = toy_data()

    def run(epochs, path, resume, seed):
        torch.manual_seed(seed)
        net = FakeCompiled()
        opt = torch.optim.Adam(net.parameters(), lr=0.02)
        loader = time_first_loader(x, y, shuffle=True)
        history = quiet_fit(net, loader, opt, epochs=epochs, output="mem", checkpoint=path, resume=resume)
        return net, history

    full_net, full_history = run(3, tmp_path / "a.pt", False, seed=0)
    run(1, tmp_path / "b.pt", False, seed=0)
    resumed_net, resumed_history = run(3, tmp_path / "b.pt", True, seed=123)  # other init, same result
    assert resumed_history == full_history
    for p, q in zip(full_net.state_dict().values(), resumed_net.state_dict().values(), strict=True):
        torch.testing.assert_close(p, q, rtol=0, atol=0)
    payload = torch.load(tmp_path / "b.pt", weights_only=True)
    assert payload["epoch"] == 3 and set(payload["model"]) == {"fc.weight", "fc.bias"}


def test_progress_bar_on_and_off(capsys):
    x, y = toy_data(n=8)
    net = FakeCompiled()
    opt = torch.optim.SGD(net.parameters(), lr=0.01)
    quiet_fit(net, time_first_loader(x, y, 4), opt, epochs=2, output="mem")
    assert capsys.readouterr().err == ""
    train.fit(net, time_first_loader(x, y, 4), mem_ce, opt, epochs=2, output="mem", progress=True)
    err = capsys.readouterr().err
    assert "epoch 1/2" in err and "epoch 2/2" in err and "loss=" in err


def test_static_input_num_steps_and_custom_metrics():
    x, y = toy_data(n=8)
    seen = []
    metrics = {"steps": lambda out, _: seen.append(out.shape) or out.shape[0]}
    net = FakeCompiled()
    opt = torch.optim.SGD(net.parameters(), lr=0.01)
    history = quiet_fit(net, [(x[0], y)], opt, num_steps=5, metrics=metrics, output=lambda o: o["mem"])
    assert seen == [torch.Size([5, 8, 2])] and history[0]["steps"] == 5 and "accuracy" not in history[0]


def test_select_output_and_accuracy():
    out = {"spk": torch.zeros(2, 3, 4), "mem": torch.ones(2, 3, 4)}
    assert train.select_output(out) is out["spk"]
    assert train.select_output((out["mem"], out["spk"])) is out["mem"]
    assert train.select_output(out, "mem") is out["mem"]
    with pytest.raises(KeyError, match="output='syn'.*spk"):
        train.select_output(out, "syn")
    counts = torch.tensor([[[0.0, 1.0], [1.0, 0.0], [1.0, 0.0]]] * 3)
    assert train.accuracy(counts, torch.tensor([1, 0, 1])) == pytest.approx(2 / 3)


def test_bad_arguments_raise_clear_errors(tmp_path):
    net = FakeCompiled()
    opt = torch.optim.SGD(net.parameters(), lr=0.01)
    data = [toy_data(n=2)]
    with pytest.raises(ValueError, match="epochs"):
        train.fit(net, data, mem_ce, opt, epochs=0)
    with pytest.raises(ValueError, match="tbptt_steps"):
        train.fit(net, data, mem_ce, opt, tbptt_steps=-2)
    with pytest.raises(TypeError, match="StepNet"):
        train.fit(nn.Linear(6, 2), data, mem_ce, opt, tbptt_steps=2)
    with pytest.raises(ValueError, match="checkpoint="):
        train.fit(net, data, mem_ce, opt, resume=True)
    with pytest.raises(FileNotFoundError, match="missing.pt"):
        train.fit(net, data, mem_ce, opt, resume=True, checkpoint=tmp_path / "missing.pt")
    torch.save({"weights": torch.zeros(1)}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="not written by"):
        train.fit(net, data, mem_ce, opt, resume=True, checkpoint=tmp_path / "other.pt")
    with pytest.raises(ValueError, match="no batches"):
        quiet_fit(net, [], opt)
    with pytest.raises(TypeError, match=r"\(x, y\)"):
        quiet_fit(net, [torch.zeros(2, 2, 6)], opt)


# --------------------------------------------------------------------------- backprop


def spike_count_ce(spk, y):
    return F.cross_entropy(spk.sum(0), y)


def test_bptt_returns_average_loss_and_learns():
    torch.manual_seed(0)
    x, y = toy_data()
    net = hidden_net()
    frozen = torch.optim.SGD(net.parameters(), lr=0.0)
    loader = time_first_loader(x, y)
    avg = backprop.BPTT(net, loader, frozen, spike_count_ce)
    expected = []
    with torch.no_grad():
        for xb, yb in loader:
            train.reset_hidden(net)
            spk = torch.stack([net(x_t)[0] for x_t in xb])
            expected.append(float(spike_count_ce(spk, yb)))
    assert avg.shape == () and avg.grad_fn is None
    assert float(avg) == pytest.approx(sum(expected) / len(expected))
    opt = torch.optim.Adam(net.parameters(), lr=0.05)
    losses = [float(backprop.BPTT(net, loader, opt, mem_ce)) for _ in range(5)]
    assert losses[-1] < losses[0]


def test_tbptt_time_varying_with_mixed_snntorch_neurons():
    snn = pytest.importorskip("snntorch")
    sf = pytest.importorskip("snntorch.functional")
    torch.manual_seed(0)
    x, y = toy_data()
    net = nn.Sequential(
        nn.Linear(6, 8),
        snn.Leaky(beta=0.8, init_hidden=True),
        nn.Linear(8, 2),
        snn.Synaptic(alpha=0.7, beta=0.8, init_hidden=True, output=True),
    )
    opt = torch.optim.Adam(net.parameters(), lr=0.05)
    losses = [float(backprop.TBPTT(net, time_first_loader(x, y), opt, sf.ce_rate_loss(), K=3)) for _ in range(4)]
    assert all(torch.isfinite(torch.tensor(losses))) and losses[-1] < losses[0]


class MembraneTargets:
    """A membrane loss with time-varying targets, named like snnTorch's."""

    __name__ = "mse_membrane_loss"
    time_var_targets = True

    def __call__(self, mem, targets):
        assert mem.shape == targets.shape  # test-internal check: the chunk's targets came along
        return F.mse_loss(mem, targets)


def test_membrane_loss_uses_membrane_and_time_varying_targets_are_chunked():
    torch.manual_seed(0)
    x, _ = toy_data(n=4, steps=5)
    targets = torch.rand(5, 4, 2)
    net = FakeCompiled()
    frozen = torch.optim.SGD(net.parameters(), lr=0.0)
    criterion = MembraneTargets()
    avg = backprop.TBPTT(net, [(x, targets)], frozen, criterion, K=2)
    with torch.no_grad():
        mem = net(x)["mem"]
    chunks = [(0, 2), (2, 4), (4, 5)]
    expected = sum(float(criterion(mem[a:b], targets[a:b])) * (b - a) / 5 for a, b in chunks)
    assert float(avg) == pytest.approx(expected, rel=1e-6)


def test_bptt_time_static_input_and_regularization():
    x, y = toy_data(n=8)
    net = hidden_net()
    frozen = torch.optim.SGD(net.parameters(), lr=0.0)
    reg = lambda spk: 0.5 * spk.sum()  # noqa: E731
    avg = backprop.BPTT(net, [(x[0], y)], frozen, spike_count_ce, num_steps=4, time_var=False, regularization=reg)
    train.reset_hidden(net)
    with torch.no_grad():
        spk = torch.stack([net(x[0])[0] for _ in range(4)])
    assert float(avg) == pytest.approx(float(spike_count_ce(spk, y) + reg(spk)), rel=1e-6)


def test_backprop_argument_checks():
    net, data = hidden_net(), [toy_data(n=2)]
    opt = torch.optim.SGD(net.parameters(), lr=0.0)
    with pytest.raises(ValueError, match="num_steps should not"):
        backprop.BPTT(net, data, opt, spike_count_ce, num_steps=5)
    with pytest.raises(ValueError, match="num_steps must"):
        backprop.BPTT(net, data, opt, spike_count_ce, time_var=False)
    with pytest.raises(ValueError, match="time_first"):
        backprop.BPTT(net, data, opt, spike_count_ce, num_steps=5, time_var=False, time_first=False)
    with pytest.raises(ValueError, match="K must be"):
        backprop.TBPTT(net, data, opt, spike_count_ce, num_steps=3, time_var=False, K=4)
    with pytest.raises(ValueError, match="K must be a positive"):
        backprop.TBPTT(net, data, opt, spike_count_ce, K=0)
