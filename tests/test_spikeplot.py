"""snngraph.spikeplot: snnTorch's plots (fixed) and drawings of IR graphs."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")
pytest.importorskip("celluloid")
pytest.importorskip("networkx")
PIL = pytest.importorskip("PIL.Image")

import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.animation import ArtistAnimation  # noqa: E402

import snngraph as sg  # noqa: E402
from snngraph import spikeplot  # noqa: E402


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def spikes(shape, p=0.3, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return (torch.rand(shape, generator=gen) < p).float()


def frames_of(anim: ArtistAnimation) -> int:
    return len(list(anim.new_frame_seq()))


def gif_frames(path) -> int:
    with PIL.open(path) as image:
        return image.n_frames


# --------------------------------------------------------------------------- raster


def test_raster_places_a_dot_per_spike_and_flattens_neurons():
    data = torch.zeros(4, 2, 3)
    data[1, 0, 2] = 1  # neuron 2
    data[3, 1, 0] = 1  # neuron 3
    fig, ax = plt.subplots()
    dots = spikeplot.raster(data, ax, s=4, c="black")
    assert sorted(map(tuple, dots.get_offsets().tolist())) == [(1.0, 2.0), (3.0, 3.0)]
    assert dots.get_sizes().tolist() == [4.0]  # the size is the one given, not a neuron index
    line = spikeplot.raster(torch.tensor([0.0, 1.0, 1.0]), ax)
    assert line.get_offsets().tolist() == [[1.0, 0.0], [2.0, 0.0]]


# --------------------------------------------------------------------------- spike_count


def test_spike_count_static_draws_on_given_axes_only(tmp_path):
    before = dict(matplotlib.rcParams)
    fig, (ax, other) = plt.subplots(1, 2)
    plt.sca(other)  # the current axes is not the one passed
    data = spikes((12, 4))
    out = spikeplot.spike_count(data, fig, ax, ["a", "b", "c", "d"], time_step=1e-3)
    assert out is fig
    assert len(ax.lines) == 1 and len(ax.collections) == 1 and not other.lines and not other.collections
    torch.testing.assert_close(torch.tensor(ax.lines[0].get_xdata()), data.sum(0), check_dtype=False)
    assert [t.get_text() for t in ax.get_yticklabels()] == ["a", "b", "c", "d"]
    assert ax.get_xlabel() == "Time [s]" and dict(matplotlib.rcParams) == before
    fig.savefig(tmp_path / "count.png")
    assert (tmp_path / "count.png").stat().st_size > 0


def test_spike_count_animation_gif_ends_with_full_count(tmp_path):
    fig, ax = plt.subplots()
    data = spikes((6, 3), p=0.5)
    anim = spikeplot.spike_count(data, fig, ax, ["0", "1", "2"], animate=True, interpolate=2, interval=10)
    assert isinstance(anim, ArtistAnimation) and frames_of(anim) == 6 * 2 + 1
    anim.save(tmp_path / "count.gif", writer="pillow")
    assert (tmp_path / "count.gif").stat().st_size > 0
    assert gif_frames(tmp_path / "count.gif") == 13
    last_counts = ax.lines[-2].get_xdata()  # the last frame's dots, then its time bar
    torch.testing.assert_close(torch.tensor(last_counts), data.sum(0), check_dtype=False)
    assert ax.lines[-1].get_xdata()[0] == 6.0


def test_spike_count_checks_its_arguments():
    fig, ax = plt.subplots()
    with pytest.raises(ValueError, match="labels has 2 entries"):
        spikeplot.spike_count(spikes((5, 3)), fig, ax, ["a", "b"])
    with pytest.raises(ValueError, match="num_steps=9 exceeds"):
        spikeplot.spike_count(spikes((5, 3)), fig, ax, ["a", "b", "c"], num_steps=9)
    with pytest.raises(ValueError, match="interpolate"):
        spikeplot.spike_count(spikes((5, 3)), fig, ax, ["a", "b", "c"], animate=True, interpolate=0)
    with pytest.raises(ValueError, match=r"\[num_steps, num_outputs\]"):
        spikeplot.spike_count(spikes((5,)), fig, ax, ["a"])


# --------------------------------------------------------------------------- animator, traces


def test_animator_gif_one_frame_per_step(tmp_path):
    fig, ax = plt.subplots()
    plt.figure()  # another current figure: the animation must still use fig / ax
    anim = spikeplot.animator(spikes((7, 10, 10)), fig, ax, num_steps=5, interval=20)
    assert frames_of(anim) == 5 and len(ax.images) == 5 and not ax.axison
    anim.save(tmp_path / "anim.gif", writer="pillow")
    assert (tmp_path / "anim.gif").stat().st_size > 0 and gif_frames(tmp_path / "anim.gif") == 5
    with pytest.raises(ValueError, match="time dimension"):
        spikeplot.animator(torch.zeros(3), fig, ax)


def test_traces_grid_with_spikes(tmp_path):
    plt.figure(figsize=(6, 6))
    mem, spk = torch.randn(30, 9), spikes((30, 9), p=0.1)
    fig = spikeplot.traces(mem, spk=spk, dim=(3, 3), titles=["n0", "n1"])
    assert len(fig.axes) == 9 and fig.axes[0].get_title() == "n0" and fig.axes[2].get_title() == ""
    torch.testing.assert_close(torch.tensor(fig.axes[4].lines[0].get_ydata()), (mem + 5 * spk)[:, 4], check_dtype=False)
    fig.savefig(tmp_path / "traces.png")
    assert (tmp_path / "traces.png").stat().st_size > 0
    with pytest.raises(ValueError, match="needs 9 neurons but data has 4"):
        spikeplot.traces(torch.randn(30, 4))
    with pytest.raises(ValueError, match="spk has shape"):
        spikeplot.traces(mem, spk=spk[:, :3])


# --------------------------------------------------------------------------- graph


def mlp():
    g = sg.Graph("mlp")
    x = g.input("x", shape=(784,))
    s1 = g.leaky(g.linear(x, 1000, name="fc1"), beta=0.95, name="lif1")
    o = g.leaky(g.linear(s1, 10, name="fc2"), beta=0.95, name="lif2")
    g.output("spk", o)
    g.output("mem", o.mem)
    return g


def texts(ax) -> set[str]:
    return {t.get_text() for t in ax.texts}


def test_graph_png_labels_nodes_edges_and_outputs(tmp_path):
    fig = spikeplot.graph(mlp(), path=tmp_path / "mlp.png")
    assert (tmp_path / "mlp.png").stat().st_size > 0
    ax = fig.axes[0]
    labels = texts(ax)
    assert {"x\ninput", "fc1\nlinear", "lif1\nleaky", "fc2\nlinear", "spk\noutput", "mem\noutput"} <= labels
    assert {"784", "1000", "10", "mem: 10"} <= labels
    nodes = ax.collections[0]
    colours = {tuple(c) for c in nodes.get_facecolors().round(3).tolist()}
    assert len(colours) == 4  # input, synapse, neuron, output
    assert ax.get_title() == "mlp"


def test_graph_conv_shapes_feedback_loop_and_given_axes(tmp_path):
    g = sg.Graph("loop")
    x = g.input("x", shape=(2, 34, 34))
    s = g.leaky(g.max_pool2d(g.conv2d(x, 16, 5, name="conv1"), 2, name="pool1"), beta=0.9, name="lif1")
    fb = g.feedback((100,), name="fb")
    h = g.add(g.linear(g.flatten(s, name="flat"), 100, name="fc1"), fb, name="res")
    s2 = g.leaky(h, beta=0.9, name="lif2")
    g.connect(fb, g.linear(s2, 100, name="rec"))
    g.output("spk", g.synaptic(g.linear(s2, 10, name="fc2"), alpha=0.8, beta=0.9, name="out"))
    fig, ax = plt.subplots()
    assert spikeplot.graph(g, ax=ax, path=tmp_path / "loop.png") is fig
    assert {"2x34x34", "16x30x30", "16x15x15", "3600", "fb\ndelay", "out\nsynaptic"} <= texts(ax)
    dashed = [p for p in ax.patches if p.get_linestyle() == "dashed"]
    assert len(dashed) == 1  # the rec -> fb edge closing the loop
    assert (tmp_path / "loop.png").stat().st_size > 0


def test_graph_rejects_non_graphs_and_missing_networkx(monkeypatch):
    with pytest.raises(TypeError, match="snngraph Graph"):
        spikeplot.graph(torch.nn.Linear(2, 2))
    monkeypatch.setitem(sys.modules, "networkx", None)
    with pytest.raises(ImportError, match=r"pip install snngraph\[plot\]"):
        spikeplot.graph(mlp())


def test_import_snngraph_loads_no_optional_dependency():
    code = (
        "import sys, snngraph, snngraph.train, snngraph.backprop, snngraph.datasets, snngraph.spikeplot\n"
        "print(sorted(m for m in ('matplotlib', 'celluloid', 'networkx', 'tonic') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
