"""conv_transpose2d, upsample (nearest, bilinear) and dropout2d: compiled graphs against the torch modules
stepped per time step (float64, forward and gradients), round trips, ONNX (sequence and step modes),
builder and parser errors, torch modules of the compiled net, dropout2d's mask, and sg.trace."""

from __future__ import annotations

import numpy as np
import pytest
import snntorch as snn
import torch
import torch.nn.functional as F
from layer_helpers import assert_round_trips, assert_trace_matches, one_node
from onnx_helpers import compare
from spatial_helpers import assert_matches_stepped, load_from
from torch import nn

import snngraph as sg
from snngraph.ir.types import Ref


@pytest.fixture(autouse=True)
def _seeded() -> None:
    torch.manual_seed(0)


# key -> (per-step input shape, ConvTranspose2d keyword arguments besides in/out channels and kernel)
DECONV = {
    "plain": ((2, 4, 5), dict(out_channels=3, kernel_size=3)),
    "stride2_pad1_outpad1": ((2, 4, 4), dict(out_channels=2, kernel_size=3, stride=2, padding=1, output_padding=1)),
    "rect_kernel_stride": ((1, 3, 5), dict(out_channels=2, kernel_size=(2, 3), stride=(2, 1), padding=(0, 1))),
    "groups_no_bias": ((4, 3, 3), dict(out_channels=6, kernel_size=2, groups=2, bias=False)),
    "dilation_outpad": ((2, 3, 4), dict(out_channels=2, kernel_size=3, stride=2, dilation=2, output_padding=1)),
    # output_padding >= stride (torch allows it below the dilation; onnxruntime's ConvTranspose does not):
    # exported as an asymmetric crop, or, beyond the padding, as bias-only end rows
    "outpad_ge_stride_cropped": ((2, 3, 4), dict(out_channels=2, kernel_size=3, dilation=2, padding=2,
                                                 output_padding=1)),
    "outpad_ge_stride_bias_rows": ((2, 3, 4), dict(out_channels=2, kernel_size=3, dilation=2, output_padding=1)),
    "outpad_ge_stride_mixed": ((1, 4, 3), dict(out_channels=3, kernel_size=2, stride=(2, 1), dilation=(1, 3),
                                               padding=(1, 0), output_padding=(1, 2))),
}


def _deconv_graph(shape, kw, name="g"):
    kw = dict(kw)
    return one_node((shape,), lambda g, x: g.conv_transpose2d(x, kw.pop("out_channels"), kw.pop("kernel_size"),
                                                              name="deconv", **kw), name=name)


@pytest.mark.parametrize("key", sorted(DECONV))
def test_conv_transpose2d_matches_torch_stepped(key):
    shape, kw = DECONV[key]
    g = _deconv_graph(shape, kw)
    ref = load_from(g, "deconv", nn.ConvTranspose2d(shape[0], **kw))
    assert_matches_stepped(g, ref, {f"deconv.{k}": p for k, p in ref.named_parameters()})


def test_conv_transpose2d_is_a_torch_module_with_torch_init():
    g = _deconv_graph((4, 3, 3), dict(out_channels=6, kernel_size=2, groups=2))
    net = sg.compile(g)
    deconv = net.get_submodule("deconv")
    assert type(deconv) is nn.ConvTranspose2d and deconv.weight.shape == (4, 3, 2, 2)
    assert {k for k, _ in net.named_parameters()} == {"deconv.weight", "deconv.bias"}
    bound = 1 / np.sqrt(3 * 2 * 2)  # torch's fan-in of the transposed layout: out/groups * k * k
    assert float(deconv.weight.detach().abs().max()) <= bound and float(deconv.bias.detach().abs().max()) <= bound


# key -> (per-step input shape, upsample keyword arguments)
UPSAMPLE = {
    "nearest_scale2_1d": ((2, 5), dict(scale_factor=2)),
    "nearest_scale_2d": ((2, 3, 4), dict(scale_factor=(2, 3))),
    "nearest_fractional_scale": ((1, 4, 5), dict(scale_factor=1.5)),
    "nearest_size": ((2, 3, 5), dict(size=(7, 8))),
    "nearest_size_down": ((1, 6, 6), dict(size=4)),
    "bilinear_scale": ((2, 3, 4), dict(scale_factor=2, mode="bilinear")),
    "bilinear_fractional_scale": ((1, 4, 5), dict(scale_factor=(1.5, 2.5), mode="bilinear")),
    "bilinear_size": ((2, 3, 4), dict(size=(5, 7), mode="bilinear")),
    "bilinear_down_to_one": ((1, 4, 5), dict(size=(1, 3), mode="bilinear")),
    "bilinear_half": ((2, 4, 6), dict(scale_factor=0.5, mode="bilinear")),
    "bilinear_corners_scale": ((2, 3, 4), dict(scale_factor=2, mode="bilinear", align_corners=True)),
    "bilinear_corners_size": ((1, 4, 3), dict(size=(6, 1), mode="bilinear", align_corners=True)),
}


@pytest.mark.parametrize("key", sorted(UPSAMPLE))
def test_upsample_matches_torch_stepped(key):
    shape, kw = UPSAMPLE[key]
    g = one_node((shape,), lambda g, x: g.upsample(x, name="up", **kw))
    assert_matches_stepped(g, nn.Upsample(**kw))
    assert isinstance(sg.compile(g).get_submodule("up"), nn.Upsample)


def test_upsample_nearest_keeps_spikes():
    g = one_node(((2, 3, 3),), lambda g, x: g.leaky(g.upsample(g.leaky(x, 0.9), scale_factor=2), 0.9))
    types = g.types()
    assert [types[Ref(n, "out")].spike for n in g.nodes if n.startswith("upsample")] == [True]
    g = one_node(((2, 3, 3),), lambda g, x: g.upsample(g.leaky(x, 0.9), scale_factor=2, mode="bilinear"))
    assert not g.type_of(g.outputs["out"]).spike


DROPOUT = lambda g, x: g.dropout2d(x, 0.25, name="drop")  # noqa: E731


def test_dropout2d_is_identity_in_eval():
    g = one_node(((3, 4, 4),), DROPOUT)
    assert_matches_stepped(g, lambda x: x)
    assert isinstance(sg.compile(g).get_submodule("drop"), nn.Dropout2d)


def test_dropout2d_drops_whole_channels_afresh_each_step():
    p, steps, batch, channels = 0.25, 40, 16, 8
    g = one_node(((channels, 3, 5),), lambda g, x: g.dropout2d(x, p, name="drop"))
    net = sg.compile(g).train()
    out = net(x0=torch.ones(steps, batch, channels, 3, 5))["out"]
    kept = out != 0
    # every (step, sample, channel) map is all kept (scaled by 1/(1-p)) or all zero
    assert torch.equal(kept.all(dim=(-1, -2)), kept.any(dim=(-1, -2)))
    assert torch.allclose(out[kept], torch.full_like(out[kept], 1 / (1 - p)))
    rate = 1 - kept[..., 0, 0].double().mean().item()
    assert abs(rate - p) < 0.05  # 5120 Bernoulli(p) draws: the standard deviation is 0.006
    masks = kept[..., 0, 0]  # (T, B, C): the masks of different steps differ (a fresh mask per step)
    assert not all(torch.equal(masks[0], masks[t]) for t in range(1, steps))
    assert torch.equal(net.eval()(x0=torch.ones(2, 1, channels, 3, 5))["out"], torch.ones(2, 1, channels, 3, 5))


def test_dropout2d_trains_through_the_mask():
    g = one_node(((2, 3, 3),), lambda g, x: g.dropout2d(x, 0.5))
    x = torch.randn(4, 5, 2, 3, 3, requires_grad=True)
    out = sg.compile(g).train()(x0=x)["out"]
    (grad,) = torch.autograd.grad(out.sum(), x)
    torch.testing.assert_close(grad, (out != 0).to(grad.dtype) * 2.0)


ALL = {**{f"deconv_{k}": (lambda s=s, kw=kw, k=k: _deconv_graph(s, kw, f"deconv_{k}"))
          for k, (s, kw) in DECONV.items()},
       **{f"up_{k}": (lambda s=s, kw=kw, k=k: one_node((s,), lambda g, x: g.upsample(x, **kw), name=f"up_{k}"))
          for k, (s, kw) in UPSAMPLE.items()},
       "dropout2d": lambda: one_node(((3, 4, 4),), DROPOUT, name="dropout2d")}


@pytest.mark.parametrize("key", sorted(ALL))
def test_round_trips(key, tmp_path):
    assert_round_trips(ALL[key](), tmp_path)


def _with_neuron(g: sg.Graph) -> sg.Graph:
    """``g`` with a leaky neuron reading its output (spikes and membrane as outputs)."""
    out = g.outputs["out"]
    g = g.with_outputs({})
    s = g.leaky(out, 0.8, threshold=0.3137, name="lif")  # no exact ties with the inputs' multiples of 1/8
    g.output("spk", s)
    g.output("mem", s.mem)
    return g


@pytest.mark.parametrize("key", sorted(ALL))
def test_onnx_matches_compiled_sequence_and_step(key, tmp_path):
    g = _with_neuron(ALL[key]())
    compare(g, tmp_path, ((1, 1), (5, 3)))
    compare(g, tmp_path, ((4, 2),), mode="step")


def test_onnx_refuses_a_scale_factor_that_float32_rounds_to_another_size(tmp_path):
    g = one_node(((1, 3, 10),), lambda g, x: g.upsample(x, scale_factor=(1.0, 0.7), name="up"))
    assert g.type_of(g.outputs["out"]).shape == (1, 3, 7)  # floor(10 * 0.7) = 7 in float64, 6 in float32
    with pytest.raises(sg.GraphError, match=r"upsample 'up': ONNX export: scale_factor \[1.0, 0.7\] in float32"):
        sg.export_onnx(g, tmp_path / "m.onnx")


@pytest.mark.parametrize("call, message", [
    (lambda g, v: g.conv_transpose2d(v["v"], 2, 3, name="d"), r"conv_transpose2d 'd': expects \(C, H, W\)"),
    (lambda g, v: g.conv_transpose2d(v["m"], 0, 3, name="d"), r"conv_transpose2d 'd': out_channels must be a pos"),
    (lambda g, v: g.conv_transpose2d(v["m"], 3, 3, groups=2, name="d"), r"conv_transpose2d 'd': groups=2 must"),
    (lambda g, v: g.conv_transpose2d(v["m"], 2, 3, stride=2, output_padding=2, name="d"),
     r"conv_transpose2d 'd': output_padding \(2, 2\) must be smaller than either stride"),
    (lambda g, v: g.conv_transpose2d(v["m"], 2, 1, padding=2, name="d"),
     r"conv_transpose2d 'd': padding \(2, 2\) leaves no output"),
    (lambda g, v: g.conv_transpose2d(v["m"], 2, 3, weight=np.ones((2, 2, 2, 2)), name="d"),
     r"conv_transpose2d 'd' weight"),
    (lambda g, v: g.conv_transpose2d(v["m"], 2, (3, 3, 3), name="d"), r"conv_transpose2d 'd' kernel_size"),
    (lambda g, v: g.upsample(v["m"], name="u"), r"upsample 'u': give exactly one of size and scale_factor"),
    (lambda g, v: g.upsample(v["m"], 3, 2, name="u"), r"upsample 'u': give exactly one"),
    (lambda g, v: g.upsample(v["m"], scale_factor=2, mode="bicubic", name="u"), r"upsample 'u': mode must be"),
    (lambda g, v: g.upsample(v["l"], scale_factor=2, mode="bilinear", name="u"),
     r"upsample 'u': mode 'bilinear' expects \(C, H, W\)"),
    (lambda g, v: g.upsample(v["v"], scale_factor=2, name="u"), r"upsample 'u': mode 'nearest' expects \(C, L\)"),
    (lambda g, v: g.upsample(v["m"], scale_factor=2, align_corners=True, name="u"),
     r"upsample 'u': align_corners only applies to mode 'bilinear'"),
    (lambda g, v: g.upsample(v["m"], scale_factor=-1, name="u"), r"upsample 'u': scale_factor must be positive"),
    (lambda g, v: g.upsample(v["m"], scale_factor=(2, 2, 2), name="u"), r"upsample 'u': scale_factor must be a"),
    (lambda g, v: g.upsample(v["m"], scale_factor=float("inf"), name="u"), r"upsample 'u': scale_factor must be "
                                                                           "finite"),
    (lambda g, v: g.upsample(v["m"], scale_factor=0.1, name="u"), r"upsample 'u': scale_factor \[0.1, 0.1\] leaves"),
    (lambda g, v: g.upsample(v["m"], size=(2, 0), name="u"), r"upsample 'u' size"),
    (lambda g, v: g.upsample(v["m"], size=(2, 2), mode="bilinear", align_corners="yes", name="u"),
     r"upsample 'u': align_corners must be True or False"),
    (lambda g, v: g.dropout2d(v["v"], name="dr"), r"dropout2d 'dr': expects \(C, H, W\) per step"),
    (lambda g, v: g.dropout2d(v["m"], 1.5, name="dr"), r"dropout2d 'dr': p must lie in \[0, 1\]"),
    (lambda g, v: g.dropout2d(v["m"], "half", name="dr"), r"dropout2d 'dr': p must lie"),
])
def test_builder_errors_name_the_node(call, message):
    g = sg.Graph()
    v = {"v": g.input("v", (5,)), "l": g.input("l", (2, 6)), "m": g.input("m", (2, 3, 4))}
    before = set(g.nodes)
    with pytest.raises(sg.GraphError, match=message):
        call(g, v)
    assert set(g.nodes) == before


@pytest.mark.parametrize("node, message", [
    ("upsample(%x, mode=\"nearest\", size=(4, 8), scale_factor=(2.0, 3.0))",
     r"upsample 'n': size \[4, 8\] is not floor\(input \[2, 3\] \* scale_factor"),
    ("upsample(%x, mode=\"area\", size=(4, 6))", "upsample 'n': mode must be one of"),
    ("upsample(%x, size=(4, 6), align_corners=true)", "upsample 'n': align_corners applies to bilinear mode only"),
    ("upsample(%x, size=(4, 6), scale_factor=(2.0,))", "upsample 'n': scale_factor must be 2 positive"),
    ("upsample(%x, size=(4, 6), scale_factor=(\"a\", 2.0))", "upsample 'n' field scale_factor: expected"),
    ("upsample(%x, size=(4,))", r"upsample 'n': size \[4\] must have one entry per spatial dim"),
    ("dropout2d(%x, p=2.0)", r"dropout2d 'n': p must lie in \[0.0, 1.0\]"),
    ("conv_transpose2d(%x, in_channels=1, out_channels=1, kernel_size=(1, 1), stride=(1, 1), padding=(0, 0), "
     "output_padding=(1, 1), dilation=(1, 1), weight=param<f32[1,1,1,1]>)",
     "conv_transpose2d 'n': output_padding"),
    ("conv_transpose2d(%x, in_channels=2, out_channels=1, kernel_size=(1, 1), stride=(1, 1), padding=(0, 0), "
     "output_padding=(0, 0), dilation=(1, 1), weight=param<f32[1,1,1,1]>)",
     r"conv_transpose2d 'n': expects input of shape \[2, H, W\]"),
])
def test_parsed_nodes_are_checked(node, message):
    src = f"graph g\n  %x = input(shape=(1, 2, 3)) : f32[1,2,3]\n  %n = {node} : f32[1,2,3]\n  output out = %n\nend\n"
    with pytest.raises(sg.GraphError, match=message):
        sg.parse(src)


def lif():
    return snn.Leaky(beta=0.8, init_hidden=True)


class Decoder(nn.Module):
    """A U-Net-style decoder step: conv, ConvTranspose2d, Upsample/F.interpolate, Dropout2d, skip concat."""

    def __init__(self):
        super().__init__()
        self.down = nn.Conv2d(1, 4, 3, stride=2, padding=1)
        self.lif1 = lif()
        self.up = nn.ConvTranspose2d(4, 2, 3, stride=2, padding=1, output_padding=1)
        self.drop = nn.Dropout2d(0.3)
        self.near = nn.Upsample(scale_factor=2)
        self.lif2 = lif()

    def forward(self, x):
        s = self.lif1(self.down(x))
        h = torch.cat([self.drop(self.up(s)), x], dim=1)
        h = self.near(h) + F.interpolate(h, size=(12, 16), mode="bilinear", align_corners=False)
        return self.lif2(h)


TRACE = {
    "decoder": (Decoder, (1, 6, 8)),
    "upsampling_modules": (lambda: nn.Sequential(nn.UpsamplingNearest2d(scale_factor=2), nn.Conv2d(2, 2, 3),
                                                 nn.UpsamplingBilinear2d(size=(5, 7)), lif()), (2, 3, 4)),
    "interpolate_recompute": (lambda: nn.Sequential(nn.Upsample(scale_factor=1.7, mode="bilinear",
                                                                recompute_scale_factor=True), lif()), (1, 3, 5)),
    "deconv_groups_dilation": (lambda: nn.Sequential(nn.ConvTranspose2d(2, 4, 2, groups=2, dilation=2, bias=False),
                                                     lif()), (2, 3, 3)),
}


@pytest.mark.parametrize("case", sorted(TRACE))
def test_trace_matches_model_stepped(case):
    build, shape = TRACE[case]
    model = build().eval()
    g = assert_trace_matches(model, *shape)
    assert {"conv_transpose2d", "upsample"} & {n.op for n in g.nodes.values()}


def test_trace_decoder_maps_to_the_node_kinds_and_keeps_paths():
    g = sg.trace(Decoder(), torch.zeros(2, 1, 6, 8))
    ops = [n.op for n in g.nodes.values()]
    assert ops.count("upsample") == 2 and "conv_transpose2d" in ops and "dropout2d" in ops
    assert {"up.weight", "up.bias"} <= set(sg.compile(g).state_dict())


def test_trace_dropout2d_functional_and_float64():
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.ConvTranspose2d(1, 2, 2, stride=2)
            self.lif = lif()

        def forward(self, x):
            return self.lif(F.dropout2d(self.conv(x), 0.2, training=self.training))

    model = Net().double().eval()
    x = torch.rand(5, 2, 1, 3, 3, dtype=torch.float64) * 2
    g = sg.trace(model, x[0])
    assert [n.op for n in g.nodes.values()] == ["input", "conv_transpose2d", "dropout2d", "leaky"]
    net = sg.compile(g).eval()
    sg.utils.reset(model)
    want = torch.stack([model(x[t]) for t in range(5)])
    torch.testing.assert_close(net(x)["spk"], want.double(), atol=0, rtol=0)  # snnTorch's spikes are float32


@pytest.mark.parametrize("module, message", [
    (nn.Upsample(scale_factor=2, mode="bicubic"), r"module '0' \(Upsample\): mode 'bicubic' is not supported"),
    (nn.Upsample(scale_factor=2, mode="nearest-exact"), "mode 'nearest-exact' is not supported"),
    (nn.ConvTranspose2d(2, 2, 3, padding_mode="zeros", padding=1).requires_grad_(False), None),
])
def test_trace_unsupported_upsampling_names_the_module(module, message):
    model = nn.Sequential(module, lif())
    if message is None:
        sg.trace(model, torch.zeros(2, 2, 4, 4))
        return
    with pytest.raises(sg.GraphError, match=message):
        sg.trace(model, torch.zeros(2, 2, 4, 4))


def test_trace_interpolate_antialias_names_the_line():
    class Net(nn.Module):
        def forward(self, x):
            return F.interpolate(x, scale_factor=2, mode="bilinear", antialias=True)

    with pytest.raises(sg.GraphError, match=r"F\.interpolate.*test_layers_spatial\.py.*antialias=True"):
        sg.trace(Net(), torch.zeros(2, 1, 3, 3))


def test_decoder_chain_runs_in_blocks_of_rows_like_torch_stepped(monkeypatch):
    import snngraph.runtimes.torch.module as module
    from snngraph.runtimes.torch.lower import spatial_chains

    def build(g, x):
        c = g.conv2d(x, 3, 3, stride=2, padding=1, name="conv")
        d = g.conv_transpose2d(c, 2, 3, stride=2, padding=1, output_padding=1, name="deconv")
        return g.upsample(d, scale_factor=2, mode="bilinear", name="up")

    g = one_node(((2, 6, 6),), build)
    assert spatial_chains(sg.compile(g).graph) == {"conv": ("conv", "deconv", "up")}
    monkeypatch.setattr(module, "ROW_BLOCK_ELEMENTS", 2 * 12 * 12 * 4)  # blocks of 4 of the T*B = 18 rows
    conv = load_from(g, "conv", nn.Conv2d(2, 3, 3, stride=2, padding=1))
    deconv = load_from(g, "deconv", nn.ConvTranspose2d(3, 2, 3, stride=2, padding=1, output_padding=1))
    ref = nn.Sequential(conv, deconv, nn.Upsample(scale_factor=2, mode="bilinear"))
    assert_matches_stepped(g, ref, {f"{m}.{k}": p for m, mod in (("conv", conv), ("deconv", deconv))
                                    for k, p in mod.named_parameters()})
