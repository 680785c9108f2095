"""A traced net of snnTorch's whole-sequence neurons has the model's ``state_dict`` keys, including the
buffers snnTorch keeps but never reads (``StateLeaky``'s ``beta``, ``reset_mechanism_val``) and the
fused linears' (``LinearLeaky.linear``, ``LeakyParallel.rnn``): ``load_state_dict`` works strictly both
ways and the outputs then agree. (A diagonal ``LeakyParallel``, snnTorch's default, holds its hidden
matrix as the vector ``V``, saved and loaded as snnTorch's diagonal ``rnn.weight_hh_l0``.)"""

import pytest
import snntorch as snn
import torch
from torch import nn

import snngraph as sg


class _Net(nn.Module):
    def __init__(self, make):
        super().__init__()
        self.lif = make()

    def forward(self, x):
        out = self.lif(x)
        return out[0] if isinstance(out, tuple) else out


MAKERS = {
    "StateLeaky": lambda: snn.StateLeaky(beta=torch.tensor([0.5, 0.7, 0.9]), channels=3, learn_beta=True),
    "LinearLeaky": lambda: snn.LinearLeaky(beta=0.8, in_features=3, out_features=4),
    "AssociativeLeaky": lambda: snn.AssociativeLeaky(in_dim=3, d_value=2, d_key=3, num_spiking_neurons=6),
    "LeakyParallel": lambda: snn.LeakyParallel(input_size=3, hidden_size=4, weight_hh_enable=True),
    "LeakyParallel_diagonal": lambda: snn.LeakyParallel(input_size=3, hidden_size=4),
}


@pytest.mark.parametrize("kind", sorted(MAKERS))
def test_traced_sequence_neuron_loads_state_dicts_both_ways(kind):
    torch.manual_seed(0)
    model, other = _Net(MAKERS[kind]), _Net(MAKERS[kind])  # (snnTorch's AssociativeLeaky fails in float64)
    with torch.no_grad():
        for p in other.parameters():
            p.add_(0.1 * torch.randn_like(p))
    if kind == "LeakyParallel_diagonal":
        other.lif.weight_hh_enable()  # snnTorch's own mask back to the diagonal (its training keeps it so)
    x = torch.rand(7, 2, 3) * 2
    net = sg.compile(sg.trace(model, x))
    assert set(net.state_dict()) == set(model.state_dict())
    for key, value in model.state_dict().items():
        torch.testing.assert_close(net.state_dict()[key].to(value.dtype), value, rtol=1e-6, atol=1e-9, msg=key)
    net.load_state_dict(other.state_dict())  # strict
    with torch.no_grad():
        want = other(x)
        got = next(iter(net(x).values()))
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
    model.load_state_dict(net.state_dict())  # strict, the other way
    for key, value in other.state_dict().items():
        torch.testing.assert_close(model.state_dict()[key], value, rtol=0, atol=0, msg=key)


def test_a_diagonal_leaky_parallel_refuses_a_dense_hidden_matrix():
    torch.manual_seed(0)
    model = _Net(MAKERS["LeakyParallel_diagonal"])
    net = sg.compile(sg.trace(model, torch.rand(5, 2, 3)))
    state = model.state_dict()
    state["lif.rnn.weight_hh_l0"] = torch.ones(4, 4)
    with pytest.raises(sg.GraphError, match="lif.rnn.weight_hh_l0.*off-diagonal"):
        net.load_state_dict(state)
