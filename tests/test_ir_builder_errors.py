"""Every builder error of SPEC §2 raises ``sg.GraphError`` at the call that made it, naming the node,
and leaves the graph unchanged."""

import math

import numpy as np
import pytest
import torch

import snngraph as sg
from snngraph.ir import neurons as N
from snngraph.ir import synapses as S
from snngraph.ir.types import Param, Ref


def base():
    g = sg.Graph("g")
    x = g.input("x", (4,))
    img = g.input("img", (2, 6, 6))
    h = g.linear(x, 3, weight=np.ones((3, 4)), name="fc")
    s = g.leaky(h, 0.9, name="lif")
    fb = g.feedback((3,), name="fb")
    return g, {"x": x, "img": img, "h": h, "s": s, "fb": fb}


# Each case: (name the message must contain, the offending call).
CASES = {
    # shape mismatch
    "add_shapes": ("sum", lambda g, v: g.add(v["x"], v["h"], name="sum")),
    "concat_shapes": ("cat", lambda g, v: g.concat(v["x"], v["img"], name="cat")),
    "linear_weight_shape": ("fc2", lambda g, v: g.linear(v["x"], 3, weight=np.ones((4, 3)), name="fc2")),
    "linear_bias_shape": ("fc2", lambda g, v: g.linear(v["x"], 3, bias_value=np.ones(4), name="fc2")),
    "conv_on_vector": ("conv", lambda g, v: g.conv2d(v["x"], 2, 3, name="conv")),
    "conv_kernel_too_big": ("conv", lambda g, v: g.conv2d(v["img"], 2, 7, name="conv")),
    "conv_groups": ("conv", lambda g, v: g.conv2d(v["img"], 3, 3, groups=2, name="conv")),
    "pool_on_vector": ("pool", lambda g, v: g.max_pool2d(v["x"], 2, name="pool")),
    "batch_norm_stats_shape": ("bn", lambda g, v: g.batch_norm(v["x"], running_mean=np.zeros(3), name="bn")),
    "per_neuron_beta_shape": ("lif2", lambda g, v: g.leaky(v["x"], np.full(3, 0.5), name="lif2")),
    "per_neuron_threshold_shape": ("lif2", lambda g, v: g.leaky(v["img"], 0.5, threshold=np.ones(5), name="lif2")),
    "scale_factor_shape": ("gain", lambda g, v: g.scale(v["x"], np.ones(3), name="gain")),
    "recurrent_weight_shape": ("rl", lambda g, v: g.rleaky(v["x"], 0.9, recurrent_weight=np.ones((3, 3)),
                                                           name="rl")),
    "all_to_all_needs_vector": ("rl", lambda g, v: g.rleaky(v["img"], 0.9, name="rl")),
    "connect_shape": ("fb", lambda g, v: g.connect(v["fb"], v["x"])),
    "flatten_dims": ("flat", lambda g, v: g.flatten(v["img"], start_dim=2, end_dim=1, name="flat")),
    # unknown input
    "unknown_input_name": ("fc2", lambda g, v: g.linear("nope", 3, name="fc2")),
    "unknown_input_port": ("lif2", lambda g, v: g.leaky("lif.syn", 0.9, name="lif2")),
    "unknown_output_value": ("o", lambda g, v: g.output("o", "nope")),
    "handle_of_other_graph": ("fc2", lambda g, v: g.linear(sg.Graph("other").input("y", 4), 3, name="fc2")),
    "connect_non_feedback": ("connect", lambda g, v: g.connect(v["h"], v["h"])),
    # duplicate name
    "duplicate_node": ("fc", lambda g, v: g.linear(v["x"], 3, name="fc")),
    "duplicate_input": ("x", lambda g, v: g.input("x", (4,))),
    "duplicate_output": ("spk", lambda g, v: (g.output("spk", v["s"]), g.output("spk", v["h"]))),
    "output_named_as_input": ("x", lambda g, v: g.output("x", v["s"])),
    "invalid_name": ("1bad", lambda g, v: g.relu(v["x"], name="1bad")),
    # beta (and the other decays) outside [0, 1]
    "beta_above_one": ("lif2", lambda g, v: g.leaky(v["x"], 1.5, name="lif2")),
    "beta_negative": ("lif2", lambda g, v: g.leaky(v["x"], -0.1, name="lif2")),
    "beta_tensor_one_bad": ("lif2", lambda g, v: g.leaky(v["x"], torch.tensor([0.5, 0.5, 1.01, 0.5]), name="lif2")),
    "synaptic_alpha": ("syn", lambda g, v: g.synaptic(v["x"], 1.2, 0.5, name="syn")),
    "rleaky_beta": ("rl", lambda g, v: g.rleaky(v["x"], 2.0, name="rl")),
    "rsynaptic_alpha": ("rs", lambda g, v: g.rsynaptic(v["x"], -1.0, 0.5, name="rs")),
    "li_beta": ("li", lambda g, v: g.leaky_integrator(v["x"], 1.5, name="li")),
    "alif_rho": ("al", lambda g, v: g.adaptive_leaky(v["x"], 0.9, rho=1.5, name="al")),
    "alpha_not_greater_than_beta": ("a", lambda g, v: g.alpha(v["x"], 0.5, 0.9, name="a")),
    "lapicque_beta": ("lq", lambda g, v: g.lapicque(v["x"], beta=1.0, name="lq")),
    "dropout_p": ("drop", lambda g, v: g.dropout(v["x"], 1.5, name="drop")),
    "missing_beta": ("lif2", lambda g, v: g.leaky(v["x"], None, name="lif2")),
    # non-finite parameters
    "nan_weight": ("fc2", lambda g, v: g.linear(v["x"], 2, weight=np.full((2, 4), np.nan), name="fc2")),
    "inf_bias": ("fc2", lambda g, v: g.linear(v["x"], 2, bias_value=np.array([1.0, np.inf]), name="fc2")),
    "inf_threshold": ("lif2", lambda g, v: g.leaky(v["x"], 0.9, threshold=math.inf, name="lif2")),
    "nan_beta": ("lif2", lambda g, v: g.leaky(v["x"], math.nan, name="lif2")),
    "nan_scale": ("gain", lambda g, v: g.scale(v["x"], torch.tensor(float("nan")), name="gain")),
    "nan_conv_weight": ("conv", lambda g, v: g.conv2d(v["img"], 1, 1, weight=np.full((1, 2, 1, 1), np.nan),
                                                      name="conv")),
    "inf_running_var": ("bn", lambda g, v: g.batch_norm(v["x"], running_var=np.full(4, np.inf), name="bn")),
    "nan_graded": ("lif2", lambda g, v: g.leaky(v["x"], 0.9, graded_spikes_factor=np.nan, name="lif2")),
    "nan_recurrent": ("rl", lambda g, v: g.rleaky(v["x"], 0.9, V=np.nan, all_to_all=False, name="rl")),
    # other bad declarations
    "bad_reset": ("lif2", lambda g, v: g.leaky(v["x"], 0.9, reset_mechanism="soft", name="lif2")),
    "bad_out_features": ("fc2", lambda g, v: g.linear(v["x"], 0, name="fc2")),
    "bad_input_shape": ("y", lambda g, v: g.input("y", (0, 3))),
    "absurd_input_shape": ("y", lambda g, v: g.input("y", (2**20, 2**20))),
    "bad_input_dtype": ("y", lambda g, v: g.input("y", (3,), dtype="int8")),
    "bad_delay_steps": ("d", lambda g, v: g.delay(v["x"], steps=0, name="d")),
    "absurd_conv_output": ("conv", lambda g, v: g.conv2d(v["img"], 1, 1, padding=2**16, name="conv")),
    "absurd_delay": ("d", lambda g, v: g.delay(v["x"], steps=2**30, name="d")),
    "add_one_input": ("sum", lambda g, v: g.add(v["x"], name="sum")),
    "bad_spike_grad": ("lif2", lambda g, v: g.leaky(v["x"], 0.9, spike_grad="atan", name="lif2")),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_builder_error_names_node_and_leaves_graph_unchanged(case):
    name, call = CASES[case]
    g, values = base()
    g.output("spk", values["s"])
    before, nodes, outputs = g.to_text(), dict(g.nodes), g.outputs
    with pytest.raises(sg.GraphError) as info:
        call(g, values)
    assert name in str(info.value), str(info.value)
    assert g.to_text() == before
    assert dict(g.nodes) == nodes and g.outputs == outputs


def test_graph_error_is_a_value_error():
    assert issubclass(sg.GraphError, ValueError)


def test_failed_call_does_not_consume_an_automatic_name():
    g, v = base()
    with pytest.raises(sg.GraphError):
        g.linear(v["x"], 3, weight=np.ones((5, 5)))
    assert g.linear(v["x"], 3).name == "linear1"


def test_cycle_without_delay_is_rejected_naming_its_nodes():
    """The builder cannot close a cycle; a graph assembled from nodes can, and verify rejects it."""
    w = Param(np.eye(2, dtype=np.float32), True)
    nodes = [S.Input(name="x", shape=(2,)),
             S.Add(name="a", inputs=(Ref("x", "out"), Ref("b", "out"))),
             S.Linear(name="b", inputs=(Ref("a", "out"),), in_features=2, out_features=2, weight=w)]
    g = sg.Graph("cyc", nodes, {"o": Ref("b", "out")})
    with pytest.raises(sg.GraphError, match=r"cycle without a delay.*'a'.*'b'"):
        sg.verify(g)
    with pytest.raises(sg.GraphError, match="cycle without a delay"):
        sg.compile(g)
    text = "\n".join(["graph cyc", '  %x = input(shape=(2,), dtype="float32") : f32[2]',
                      "  %a = add(%x, %b) : f32[2]", "  %b = relu(%a) : f32[2]", "  output o = %b", "end"])
    with pytest.raises(sg.GraphError, match=r"line \d: cycle without a delay"):
        sg.parse(text)


def test_cycle_through_a_delay_is_legal():
    nodes = [S.Input(name="x", shape=(2,)),
             S.Add(name="a", inputs=(Ref("x", "out"), Ref("d", "out"))),
             N.Leaky(name="s", inputs=(Ref("a", "out"),), beta=Param(0.9), threshold=Param(1.0),
                     graded_spikes_factor=Param(1.0)),
             S.Delay(name="d", inputs=(Ref("s", "spk"),), shape=(2,))]
    g = sg.verify(sg.Graph("loop", nodes, {"o": Ref("s", "spk")}))
    assert set(g.topo_order()) == {"x", "a", "s", "d"}


def test_output_never_set_fails_verify_and_compile():
    g, _ = base()
    g.connect(g.nodes["fb"].name, g.nodes["lif"].name)
    with pytest.raises(sg.GraphError, match="no output"):
        sg.verify(g)
    with pytest.raises(sg.GraphError, match="no output"):
        sg.compile(g)
    with pytest.raises(sg.GraphError, match="no output"):
        sg.save(g, "never-written.sg")


def test_unconnected_feedback_fails_verify_naming_it():
    g, v = base()
    g.output("spk", v["s"])
    with pytest.raises(sg.GraphError, match="'fb'.*never connected"):
        sg.verify(g)
    g.connect(v["fb"], v["s"])
    sg.verify(g)
    with pytest.raises(sg.GraphError, match="fb"):
        g.connect(v["fb"], v["s"])


def test_handle_port_errors():
    g, v = base()
    assert v["s"].mem.ref == Ref("lif", "mem")
    with pytest.raises(AttributeError, match="'lif' has no output 'syn'"):
        v["s"].syn  # noqa: B018


def test_handle_of_another_graph_with_the_same_name_says_so():
    a, b = sg.Graph("g"), sg.Graph("g")
    x = a.input("x", (3,))
    b.input("x", (3,))
    with pytest.raises(sg.GraphError, match=r"linear 'fc': value 'x' belongs to another graph also named 'g', not "
                                            r"to graph 'g'"):
        b.linear(x, 2, name="fc")
    other = sg.Graph("h")
    with pytest.raises(sg.GraphError, match=r"belongs to graph 'g', not to graph 'h'"):
        other.output("o", x)


def test_neuron_flags_and_sizes_must_have_their_types():
    """``learn_*`` flags are bools (``"no"`` used to mean True) and ``linear_features`` an int."""
    g = sg.Graph("flags")
    x = g.input("x", shape=(3,))
    for kwargs, message in [({"learn_beta": "no"}, "learn_beta must be True or False"),
                            ({"learn_recurrent": 1}, "learn_recurrent must be True or False"),
                            ({"linear_features": "3"}, "linear_features must be an int, got '3'"),
                            ({"linear_features": 4}, "linear_features=4 does not match the input's 3 features"),
                            ({"reset_delay": "yes"}, "reset_delay must be one of")]:
        with pytest.raises(sg.GraphError, match=message):
            g.rleaky(x, beta=0.9, **kwargs)
    assert list(g.nodes) == ["x"]
