"""Parameters are checked before they are allocated: a short text declaring a huge parameter, or a builder
call with huge sizes, raises ``GraphError`` at once instead of allocating gigabytes first (or escaping as
torch's ``RuntimeError`` under a memory limit)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from limited import run_limited

import snngraph as sg

HUGE_TEXT = """graph g
  %x = input(shape=(2,), dtype="float32") : f32[2]
  %fc = linear(%x, in_features=2, out_features=2, weight=param<f64[16384,16384]>, bias=none) : f32[2]
  output y = %fc
end
"""


def test_short_text_with_a_misfit_huge_parameter_fails_fast_under_a_memory_limit():
    """Before: 15 s and 3.2 GiB (the 2**28-element weight drawn, then found to be the wrong shape)."""
    out = run_limited(f"""
        import time, snngraph as sg
        start = time.monotonic()
        try:
            sg.parse({HUGE_TEXT!r})
        except sg.GraphError as err:
            print("GraphError:", err)
        print("seconds", time.monotonic() - start)
        """, gib=2.0, timeout=120)
    assert "GraphError: line 3: linear 'fc': weight must have shape [2, 2], got [16384, 16384]" in out
    assert float(out.split("seconds")[1]) < 5.0


BUILDER_CASES = """
import snngraph as sg
g = sg.Graph("g")
x = g.input("x", (64,))
img = g.input("img", (3, 8, 8))
cases = {
    "linear": lambda: g.linear(x, 2**30, name="fc"),
    "linear 8 GiB": lambda: g.linear(x, 2**25, name="fc"),
    "conv2d": lambda: g.conv2d(img, 2**22, kernel_size=8, name="conv"),
    "conv1d": lambda: g.conv1d(g.flatten(img, 1, name="flat"), 2**24, kernel_size=64, name="c1"),
    "rleaky": lambda: g.rleaky(g.input("wide", (2**16,)), beta=0.9, name="rec"),
}
for case, build in cases.items():
    before = dict(g.nodes)
    try:
        build()
        print(case, "built")
    except sg.GraphError as err:
        print(case, "GraphError:", err)
    except Exception as err:
        print(case, "escaped:", type(err).__name__)
    print(case, "unchanged" if set(g.nodes) - set(before) <= {"flat", "wide"} else "changed")
"""


def test_oversized_builder_weights_are_refused_before_allocating():
    out = run_limited(BUILDER_CASES, gib=2.0, timeout=120)
    lines = {line.split(" GraphError: ")[0]: line for line in out.splitlines() if " GraphError: " in line}
    for case, culprit in (("linear", "linear 'fc'"), ("linear 8 GiB", "linear 'fc' weight"),
                          ("conv2d", "conv2d 'conv' weight"), ("conv1d", "conv1d 'c1'"),
                          ("rleaky", "rleaky 'rec' recurrent.weight")):
        # the builder's 2**31-element shape check or, under it, the MAX_PARAM_ELEMENTS allocation check
        assert culprit in lines.get(case, "") and ("too large" in lines[case] or "MAX_PARAM_ELEMENTS" in lines[case])
        assert f"{case} unchanged" in out, out
    assert "MAX_PARAM_ELEMENTS" in out, out


def test_the_limit_is_overridable(monkeypatch):
    g = sg.Graph("g")
    x = g.input("x", (4,))
    monkeypatch.setattr(sg.limits, "MAX_PARAM_ELEMENTS", 15)
    with pytest.raises(sg.GraphError, match=r"linear 'fc' weight: a parameter of shape \[4, 4\]"):
        g.linear(x, 4, name="fc")
    g.linear(x, 3, name="fc")
    with pytest.raises(sg.GraphError, match="parameters exceed 15 elements"):
        sg.parse(HUGE_TEXT.replace("16384,16384", "4,4"))
    monkeypatch.setattr(sg.limits, "MAX_PARAM_ELEMENTS", 2**28)
    assert len(g.nodes) == 2


def _graph() -> sg.Graph:
    g = sg.Graph("g")
    x = g.input("x", (5,))
    s = g.rleaky(g.linear(x, 6, name="fc"), beta=np.full(6, 0.8, np.float32), learn_beta=True, name="rec")
    g.output("spk", g.leaky(g.linear(s, 8, name="fc2"), beta=0.9, name="lif"))
    return g


def test_parameters_without_values_are_drawn_after_the_checks_as_before():
    """The text's value-less parameters get torch's default initialisation, in the text's order: the same
    values for the same seed, dense writable-free arrays, and a graph that compiles and runs."""
    g = _graph()
    text = str(g)
    assert "param<f32[6,5]>" in text and "(" not in text.split("weight=param<f32[6,5]>")[1][:1]
    torch.manual_seed(3)
    a = sg.parse(text)
    torch.manual_seed(3)
    b = sg.parse(text)
    assert a == b and a != g
    for p in a.params().values():
        assert all(p.value.strides) or p.value.ndim == 0
        assert not p.value.flags.writeable
    torch.manual_seed(3)
    w = torch.empty(6, 5)
    torch.nn.init.kaiming_uniform_(w, a=5**0.5)
    assert np.array_equal(a.params()["fc.weight"].value, w.numpy())
    assert np.array_equal(a.params()["rec.beta"].value, np.zeros(6))  # beta left out: zeros, as before
    out = sg.compile(a)(torch.rand(3, 2, 5))
    assert out["spk"].shape == (3, 2, 8)
