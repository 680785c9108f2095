"""Every built-in neuron model, driven by its declaration in the registry (``sg.neuron_models()``):
a newly declared model is covered without editing this file.

For each model a small graph is built generically from the declaration (required parameters from
their ranges, defaults for the rest), and checked for: every declared parameter and option
reaching the outputs; the torch scans equal to the derived step (forward bit for bit, gradients
within 1e-10); ONNX equal to torch in every export mode and option combination; text and file
round trips; and an unregistered model name in text or a file being an error naming it.
"""

from __future__ import annotations

import itertools
import json
import re

import numpy as np
import pytest
import torch
from model_cases import (
    BUILTIN,
    MODELS,
    NAME,
    B,
    assert_grads_close,
    base_values,
    build,
    candidates,
    combo_id,
    graph_inputs,
    inputs,
    learnable,
    option_combos,
    run_with_grads,
    scan_cases,
    variant_kw,
    variants,
)
from onnx_helpers import assert_close
from safetensors import safe_open
from safetensors.numpy import save_file

import snngraph as sg
from snngraph.ir.serialize import CHECKSUM_KEY, checksum
from snngraph.passes import default_pipeline
from snngraph.runtimes.onnx import Session

UNFUSED = [p for p in default_pipeline() if p.name != "fuse_state_updates"]  # the derived step kernels


def forward(g: sg.Graph, x: np.ndarray | None = None, passes=None) -> dict[str, torch.Tensor]:
    net = sg.compile(g, passes=passes).eval()
    with torch.no_grad():
        return net(torch.from_numpy(graph_inputs(g) if x is None else x))


def differs(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return any(not torch.equal(a[k], b[k]) for k in a)


# 1. every declared field reaches the outputs of the derived step (unfused: no hand-written scan in between)

FIELDS = [(m, k) for m in BUILTIN for k in MODELS[m].params]
OPTIONS = [(m, k) for m in BUILTIN for k in MODELS[m].options]


@pytest.mark.parametrize("model_name", BUILTIN)
def test_base_graph_spikes_and_resets(model_name):
    model = MODELS[model_name]
    g = build(model_name)
    if model.spiking and not g.nodes[NAME].emits_spikes:  # a readout of the spikes (associative_leaky's to_q):
        g = next(h for h in (build(model_name, **o) for o in option_combos(model)) if h.nodes[NAME].emits_spikes)
    out = forward(g, passes=UNFUSED)
    if model.spiking:
        spk = out["spk"]
        assert 0 < int((spk != 0).sum()) < spk.numel(), "the base input must make some, not all, neurons spike"
        assert bool(((spk[:-1] != 0) & (spk[1:] == 0)).any()), "a spike followed by silence (resets matter)"
    for port in model.ports:
        assert torch.isfinite(out[port]).all(), port


@pytest.mark.parametrize(("model_name", "param"), FIELDS, ids=[f"{m}-{k}" for m, k in FIELDS])
def test_every_parameter_changes_the_outputs(model_name, param):
    base = base_values(model_name)
    want = forward(build(model_name), passes=UNFUSED)
    tried = []
    for value in candidates(MODELS[model_name].params[param]):
        if value == base[param]:
            continue
        try:
            g = build(model_name, base | {param: value})
        except sg.GraphError:  # a model invariant (alpha > beta)
            continue
        tried.append(value)
        if differs(forward(g, passes=UNFUSED), want):
            return
    raise AssertionError(f"{model_name}: {param} = {tried} (other than {base[param]}) changes no output: "
                         "the declared parameter is not used")


@pytest.mark.parametrize(("model_name", "option"), OPTIONS, ids=[f"{m}-{k}" for m, k in OPTIONS])
def test_every_option_choice_changes_the_outputs(model_name, option):
    choices = MODELS[model_name].options[option].choices
    outs = {c: forward(build(model_name, **{option: c}), passes=UNFUSED) for c in choices}
    for a, b in itertools.combinations(outs, 2):
        if not differs(outs[a], outs[b]):  # an option of the backward pass only (SpikingJelly's detach_reset)
            grads = [input_grads(build(model_name, **{option: c})) for c in (a, b)]
            assert differs(*grads), f"{model_name}: {option}={a!r} and {option}={b!r} give the same outputs " \
                                    "and gradients"


def input_grads(g: sg.Graph) -> dict[str, torch.Tensor]:
    """The gradient of a fixed weighting of every output with respect to the input."""
    net = sg.compile(g, passes=UNFUSED).double()
    x = torch.from_numpy(inputs()).double().requires_grad_(True)
    out = net(x)
    gen = torch.Generator().manual_seed(0)
    loss = sum((v * torch.randn(v.shape, generator=gen, dtype=v.dtype)).sum() for v in out.values())
    loss.backward()
    return {"x": x.grad}


# 2. the torch scans equal the derived step kernel

@pytest.mark.parametrize(("model_name", "options", "variant"), scan_cases())
def test_scan_equals_derived_step(model_name, options, variant):
    model = MODELS[model_name]
    g = build(model_name, learn=learnable(model), **variant_kw(variant), **options)
    fused = sg.compile(g).double()
    unfused = sg.compile(g, passes=UNFUSED).double()
    assert fused.graph.nodes[NAME].fused and not unfused.graph.nodes[NAME].fused
    names = {k for k, _ in fused.named_parameters()}
    assert {f"{NAME}.{k}" for k in learnable(model)} <= names
    x = torch.from_numpy(graph_inputs(g)).double()
    out_a, grads_a = run_with_grads(unfused, x)
    out_b, grads_b = run_with_grads(fused, x)
    if model.spiking:
        assert out_a["spk"].sum() > 0
    assert out_a.keys() == out_b.keys()
    for key in out_a:
        assert torch.equal(out_a[key], out_b[key]), f"forward output {key}"
    assert_grads_close(grads_b, grads_a)


# 3. ONNX vs torch, every export mode and every option combination

MODES = ("sequence", "step", "unrolled")
ONNX_CASES = [pytest.param(m, o, "scalar", mode, id=f"{m}-{combo_id(o)}-{mode}")
              for m in BUILTIN for o in option_combos(MODELS[m]) for mode in MODES]
ONNX_CASES += [pytest.param(m, {}, v, mode, id=f"{m}-{v}-{mode}")
               for m in BUILTIN for v in variants(m)[1:] for mode in MODES]


@pytest.mark.parametrize(("model_name", "options", "variant", "mode"), ONNX_CASES)
def test_onnx_matches_torch(model_name, options, variant, mode, tmp_path):
    model = MODELS[model_name]
    g = build(model_name, **variant_kw(variant), **options)
    steps = 8
    xs = graph_inputs(g, steps, B, seed=1)
    net = sg.compile(g).eval()
    with torch.no_grad():
        want = {k: v.numpy() for k, v in net(torch.from_numpy(xs)).items()}
    spikes = {k: g.type_of(r).spike for k, r in g.outputs.items()}
    path = tmp_path / "m.onnx"
    if mode == "step":
        sg.export_onnx(g, path, mode="step")
        sess = Session(path)
        state, eager_state, outs = sess.init_state(B), net.init_state(B), []
        assert list(state) == list(eager_state)
        for t in range(steps):
            out, state = sess.step(xs[t], state)
            with torch.no_grad():
                _, eager_state = net.step(torch.from_numpy(xs[t]), eager_state)
            for key, value in eager_state.items():
                assert_close(f"state {key} at t={t}", state[key], value.numpy(), spike=key.endswith(".spk"))
            outs.append(out)
        got = {k: np.stack([o[k] for o in outs]) for k in want}
    else:
        sg.export_onnx(g, path, mode="sequence", **(dict(num_steps=steps, unroll=True) if mode == "unrolled" else {}))
        got = Session(path).run(xs)
    assert set(got) == set(want)
    for key in want:
        assert_close(key, got[key], want[key], spikes[key])
    if model.spiking:
        assert want["spk"].sum() > 0


# 4. text and file round trips

def round_trip_graphs(model_name: str) -> dict[str, sg.Graph]:
    model = MODELS[model_name]
    last = {k: o.choices[-1] for k, o in model.options.items()}
    plain = build(model_name)
    learnt = build(model_name, per_neuron=True, one_to_one=model.recurrent, learn=learnable(model), **last)
    return {"defaults": plain, "per_neuron_learnt": learnt, "compiled": sg.compile(plain).graph}


@pytest.mark.parametrize("model_name", BUILTIN)
def test_text_and_file_round_trips(model_name, tmp_path):
    for variant, g in round_trip_graphs(model_name).items():
        x = graph_inputs(g)
        path = tmp_path / f"{variant}.sg"
        sg.save(g, path)
        want = forward(g, x)
        for how, back in (("text", sg.parse(g.to_text(with_params=True))), ("file", sg.load(path))):
            assert back.nodes == g.nodes, f"{variant} via {how}"
            assert back.outputs == g.outputs, f"{variant} via {how}"
            got = forward(back, x)
            assert not differs(got, want), f"{variant} via {how}: compiled outputs differ"


# 5. an unregistered model name is an error naming it

UNKNOWN = "not_a_registered_model_q7"


@pytest.mark.parametrize("model_name", BUILTIN)
def test_unregistered_model_in_text(model_name):
    text = build(model_name).to_text(with_params=True)
    edited = re.sub(rf"= {model_name}\(", f"= {UNKNOWN}(", text)
    assert edited != text
    with pytest.raises(sg.GraphError, match=UNKNOWN):
        sg.parse(edited)


@pytest.mark.parametrize("model_name", BUILTIN)
def test_unregistered_model_in_file(model_name, tmp_path):
    path = tmp_path / "g.sg"
    sg.save(build(model_name), path)
    with safe_open(str(path), framework="numpy") as f:
        meta = f.metadata()
        tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118
    structure = json.loads(meta["snngraph"])
    [entry] = [e for e in structure["nodes"] if e["name"] == NAME]
    assert entry["op"] == model_name
    entry["op"] = UNKNOWN
    text = json.dumps(structure)
    save_file(tensors, str(path), metadata={"snngraph": text, CHECKSUM_KEY: checksum(text, tensors)})
    with pytest.raises(sg.GraphError, match=UNKNOWN):
        sg.load(path)
