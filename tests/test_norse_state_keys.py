"""A traced Norse ``LIFRecurrentCell`` keeps Norse's state_dict keys (``<cell>.input_weights``,
``<cell>.recurrent_weights``): loading works both ways and the loaded net computes what Norse does, in
``SequentialState`` and in a user's module; the keys survive sg.save/sg.load and copying the net.
Float64, T=12: spikes exact, states 1e-9."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

import snngraph as sg

norse = pytest.importorskip("norse.torch")

T, B, D = 12, 3, torch.float64


def _params(v_th: float = 0.7) -> norse.LIFParameters:
    f = lambda v: torch.tensor(v, dtype=D)  # noqa: E731
    return norse.LIFParameters(tau_syn_inv=f(200.0), tau_mem_inv=f(100.0), v_leak=f(0.0), v_th=f(v_th),
                               v_reset=f(0.0))


def _sequential(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return norse.SequentialState(nn.Linear(4, 6), norse.LIFCell(_params()), nn.Linear(6, 5),
                                 norse.LIFRecurrentCell(5, 5, _params()), nn.Linear(5, 3)).double()


class Net(nn.Module):
    """A user's module around the cell, with its state passed explicitly."""

    def __init__(self, seed: int):
        super().__init__()
        torch.manual_seed(seed)
        self.fc = nn.Linear(4, 6)
        self.cell = norse.LIFRecurrentCell(6, 6, _params(0.5))
        self.out = nn.Linear(6, 2)

    def forward(self, x, state=None):
        z, state = self.cell(self.fc(x), state)
        return self.out(z), state


def _run_norse(model: nn.Module, xs: torch.Tensor) -> list[torch.Tensor]:
    """Norse stepping ``model``: each step's output and the recurrent cell's ``z``, ``v``, ``i``."""
    state, steps = None, []
    for t in range(T):
        out, state = model(xs[t], state)
        s = [s for s in state if s is not None][-1] if isinstance(state, list) else state
        steps.append((out, s.z, s.v, s.i))
    return [torch.stack(k) for k in zip(*steps, strict=True)]


def _inputs() -> torch.Tensor:
    return torch.rand(T, B, 4, dtype=D, generator=torch.Generator().manual_seed(7)) * 12


@pytest.mark.parametrize("build, cell", [(_sequential, "3"), (Net, "cell")])
def test_norse_keys_load_both_ways(build, cell):
    model, other = build(0).double(), build(1).double()
    assert {f"{cell}.input_weights", f"{cell}.recurrent_weights"} <= set(model.state_dict())
    net = sg.compile(sg.trace(model, torch.zeros(B, 4, dtype=D)))
    assert set(net.state_dict()) == set(model.state_dict())
    net.load_state_dict(other.state_dict())  # strict
    for key, value in other.state_dict().items():
        assert torch.equal(net.state_dict()[key], value), key
    xs = _inputs()
    want = _run_norse(other, xs)
    got = list(net(xs).values())
    out, z, v, i = got[0], *got[-3:]
    assert 0 < want[1].sum() < want[1].numel()
    assert torch.equal(z, want[1])
    for a, b in ((out, want[0]), (v, want[2]), (i, want[3])):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-9)
    with torch.no_grad():
        net.get_submodule(f"{cell}_input" if cell == "cell" else f"_{cell}_input").weight.mul_(0.5)
    model.load_state_dict(net.state_dict())
    torch.testing.assert_close(model.state_dict()[f"{cell}.input_weights"], other.state_dict()[f"{cell}.input_weights"]
                               * 0.5, rtol=0, atol=0)
    torch.testing.assert_close(_run_norse(model, xs)[0], list(net(xs).values())[0], rtol=1e-9, atol=1e-9)


def test_norse_keys_survive_saving_and_copying(tmp_path):
    model = Net(2).double()
    g = sg.trace(model, torch.zeros(B, 4, dtype=D))
    assert g.module_paths["cell_input.weight"] == "cell.input_weights"
    sg.save(g, tmp_path / "net.sg")
    loaded = sg.load(tmp_path / "net.sg")
    assert loaded.module_paths == g.module_paths
    for net in (sg.compile(loaded), copy.deepcopy(sg.compile(g)), sg.compile(sg.compile(g).to_graph())):
        assert set(net.state_dict()) == set(model.state_dict())
        net.load_state_dict(model.state_dict())
