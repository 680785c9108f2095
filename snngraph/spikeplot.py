"""Plots of spiking activity and of snngraph graphs (snnTorch 1.0.0 ``spikeplot`` names).

``raster``, ``spike_count``, ``traces`` and ``animator`` keep snnTorch's signatures and
drawings; ``graph`` draws a snngraph IR graph. matplotlib, celluloid and networkx are imported
when a function is called (``pip install snngraph[plot]``), so ``import snngraph`` never loads
them.

Differences from snnTorch 1.0.0 (bugs fixed):

* ``raster`` of data with more than one neuron dimension (``[T, 28, 28]``, snnTorch's own
  docstring example) passed the third index array to ``scatter`` as the marker *size*;
  here trailing dimensions are flattened into one neuron index.
* ``spike_count`` and ``animator`` drew on pyplot's *current* axes (``plt.hlines``,
  ``plt.axis("off")``...) instead of the ``ax`` given, and ``spike_count`` changed the global
  ``rcParams``; here everything is drawn on ``ax`` and no global setting changes.
* The last frame of the ``spike_count`` animation never counted the last time step; here
  frame ``i`` shows the spikes of steps ``[0, i / interpolate)`` and the last frame shows
  them all. pandas is no longer needed, and the background shading no longer adds one
  ``xlim_changed`` callback per frame.
* ``traces`` with fewer neurons than ``dim`` cells failed with an ``IndexError``; here a
  ``ValueError`` names the mismatch. ``spike_count`` and ``traces`` return the figure.
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

_STYLE = "#333F4B"
_BAR = "#007ACC"
FAMILY_COLOURS = {
    "input": "#8FD694",
    "synapse": "#7FB3E6",
    "neuron": "#F2A65A",
    "output": "#E76F6F",
}


def _require(module: str) -> Any:
    """Import an optional plotting dependency or explain how to install it."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ImportError(f"snngraph.spikeplot needs '{module.split('.')[0]}': pip install snngraph[plot]") from exc


def _as_tensor(data: Any, name: str) -> torch.Tensor:
    if isinstance(data, torch.Tensor):
        return data.detach().cpu()
    try:
        return torch.as_tensor(np.asarray(data))
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{name} must be a tensor or an array, got {type(data).__name__}") from exc


def _steps(num_steps: Any, available: int) -> int:
    """Resolve snnTorch's ``num_steps=False`` convention against the data length."""
    if num_steps is False or num_steps is None:
        return available
    if isinstance(num_steps, bool) or not isinstance(num_steps, (int, np.integer)) or num_steps < 1:
        raise ValueError(f"num_steps must be a positive int, got {num_steps!r}")
    if num_steps > available:
        raise ValueError(f"num_steps={num_steps} exceeds the {available} time steps in data")
    return int(num_steps)


def animator(data, fig, ax, num_steps=False, interval=40, cmap="plasma"):
    """Animate a sample over time, one frame per step (time is the first dimension).

    Args:
        data: tensor or array ``[num_steps, H, W]`` (or ``[num_steps, W]``) of one sample.
        fig: the matplotlib figure holding ``ax``.
        ax: the axes to draw on.
        num_steps: number of steps to show; ``False`` shows every step of ``data``.
        interval: delay between frames in milliseconds.
        cmap: matplotlib colour map.

    Returns:
        matplotlib.animation.ArtistAnimation: save it with ``anim.save("x.gif")``.
    """
    camera_cls = _require("celluloid").Camera
    data = _as_tensor(data, "data").float()
    if data.dim() < 2:
        raise ValueError(f"data must have a time dimension and a frame, got shape {tuple(data.shape)}")
    steps = _steps(num_steps, data.shape[0])
    vmin, vmax = float(data[:steps].min()), float(data[:steps].max())
    camera = camera_cls(fig)
    ax.axis("off")
    for step in range(steps):
        frame = data[step] if data.dim() > 2 else data[step].unsqueeze(0)
        ax.imshow(frame.numpy(), cmap=cmap, vmin=vmin, vmax=vmax)
        camera.snap()
    return camera.animate(interval=interval)


def raster(data, ax, **kwargs):
    """Raster plot: a dot at (time step, neuron) for every nonzero entry of ``data``.

    Args:
        data: tensor ``[num_steps]`` or ``[num_steps, *neurons]``; neuron dimensions after
            the first are flattened (row-major) into one neuron index.
        ax: the axes to draw on.
        **kwargs: passed to ``ax.scatter`` (e.g. ``s=1.5, c="black"``).

    Returns:
        matplotlib.collections.PathCollection: the scatter plot.
    """
    data = _as_tensor(data, "data")
    if data.dim() == 0:
        raise ValueError("data must have a time dimension, got a scalar")
    data = data.reshape(data.shape[0], -1)
    steps, neurons = torch.where(data != 0)
    return ax.scatter(steps.numpy(), neurons.numpy(), **kwargs)


def _style_axes(ax) -> None:
    for side in ("top", "right"):
        ax.spines[side].set_color("none")
    for side in ("bottom", "left"):
        ax.spines[side].set_color(_STYLE)
        ax.spines[side].set_linewidth(0.8)
    ax.spines["bottom"].set_position(("axes", -0.04))
    ax.spines["left"].set_position(("axes", 0.0))
    ax.tick_params(axis="both", which="major", labelsize=12, colors=_STYLE)


def _draw_counts(data: torch.Tensor, labels: Sequence[str], ax, upto: int, time_step) -> None:
    """Draw the spike counts of steps ``[0, upto)`` as lollipop bars, one row per label."""
    counts = data[:upto].sum(dim=0).numpy() if upto > 0 else np.zeros(data.shape[1])
    rows = np.arange(1, len(labels) + 1)
    ax.hlines(y=rows, xmin=0, xmax=counts, color=_BAR, alpha=0.5, linewidth=8)
    ax.plot(counts, rows, "o", markersize=8, color=_BAR, alpha=0.6)
    font = {"fontsize": 15, "fontweight": "bold", "color": _STYLE}
    ax.set_xlabel("Time [s]" if time_step else "Time Step", **font)
    ax.set_ylabel("Labels", **font)
    ax.set_yticks(rows, [str(label) for label in labels])
    if time_step:
        locs = ax.get_xticks()
        ax.set_xticks(locs, [f"{loc * time_step:g}" for loc in locs])


def _shade(ax) -> None:
    """Shade every other interval between x ticks (snnTorch's ``_GridShader``, no callbacks)."""
    ax.autoscale(False, axis="x")
    lo, hi = ax.get_xlim()
    ticks = ax.get_xticks()
    ticks = ticks[(ticks > lo) & (ticks < hi)]
    locs = np.concatenate(([lo], ticks, [hi]))
    for start, end in zip(locs[1::2], locs[2::2], strict=False):
        ax.axvspan(start, end, zorder=0, facecolor="lightgrey", alpha=0.7)


def spike_count(
    data,
    fig,
    ax,
    labels,
    num_steps=False,
    animate=False,
    interpolate=1,
    gridshader=True,
    interval=25,
    time_step=False,
):
    """Horizontal bar plot of the spike count of each output, optionally animated.

    Args:
        data: spikes of one sample ``[num_steps, num_outputs]``.
        fig: the matplotlib figure holding ``ax``.
        ax: the axes to draw on.
        labels: one name per output, e.g. ``["0", ..., "9"]``.
        num_steps: number of steps to count; ``False`` uses every step of ``data``.
        animate: if ``True``, return an animation scanning across time.
        interpolate: frames per time step of the animation (smooths the time bar).
        gridshader: shade alternate x-tick intervals.
        interval: delay between animation frames in milliseconds.
        time_step: seconds per step; if set, the x axis is labelled in seconds.

    Returns:
        ArtistAnimation when ``animate`` is true (save with ``anim.save("x.gif")``),
        otherwise the figure.
    """
    data = _as_tensor(data, "data").float()
    if data.dim() != 2:
        raise ValueError(f"data must be [num_steps, num_outputs], got shape {tuple(data.shape)}")
    labels = list(labels)
    if len(labels) != data.shape[1]:
        raise ValueError(f"labels has {len(labels)} entries but data has {data.shape[1]} outputs")
    if isinstance(interpolate, bool) or not isinstance(interpolate, int) or interpolate < 1:
        raise ValueError(f"interpolate must be a positive int, got {interpolate!r}")
    xrange = _steps(num_steps, data.shape[0])
    _style_axes(ax)
    ax.set_xlim([0, xrange])
    if not animate:
        _draw_counts(data, labels, ax, xrange, time_step)
        if gridshader:
            _shade(ax)
        return fig
    camera = _require("celluloid").Camera(fig)
    for i in range(xrange * interpolate + 1):
        _draw_counts(data, labels, ax, math.floor(i / interpolate), time_step)
        if gridshader:
            _shade(ax)
        ax.axvline(x=i / interpolate, color="tab:orange", linewidth=3)
        camera.snap()
    return camera.animate(interval=interval)


def traces(data, spk=None, dim=(3, 3), spk_height=5, titles=None):
    """Plot one trace per neuron (e.g. membrane potential) on a grid of subplots.

    Drawn into pyplot's current figure, like snnTorch. ``traces`` was originally written by
    Friedemann Zenke.

    Args:
        data: traces ``[num_steps, num_neurons]``.
        spk: optional spikes of the same shape, drawn riding on the traces.
        dim: grid of subplots ``(rows, columns)``; needs ``rows * columns`` neurons.
        spk_height: height of a drawn spike.
        titles: optional subplot titles.

    Returns:
        matplotlib.figure.Figure: the figure drawn on.
    """
    plt = _require("matplotlib.pyplot")
    gridspec = _require("matplotlib.gridspec")
    data = _as_tensor(data, "data").float()
    if data.dim() != 2:
        raise ValueError(f"data must be [num_steps, num_neurons], got shape {tuple(data.shape)}")
    cells = int(np.prod(dim))
    if cells > data.shape[1]:
        raise ValueError(f"dim={tuple(dim)} needs {cells} neurons but data has {data.shape[1]}")
    if spk is not None:
        spk = _as_tensor(spk, "spk").float()
        if spk.shape != data.shape:
            raise ValueError(f"spk has shape {tuple(spk.shape)}, data has {tuple(data.shape)}")
        data = data + spk_height * spk
    values = data.numpy()
    fig = plt.gcf()
    grid = gridspec.GridSpec(*dim, figure=fig)
    first = None
    for i in range(cells):
        ax = fig.add_subplot(grid[i], sharey=first)
        if first is None:
            first = ax
        if titles is not None and i < len(titles):
            ax.set_title(titles[i])
        ax.plot(values[:, i])
        ax.axis("off")
    return fig


def _shape_text(shape: Sequence[int]) -> str:
    return "x".join(str(int(d)) for d in shape) if len(shape) else "scalar"


def _graph_layout(nxg) -> dict:
    """Left-to-right layers by longest path from the inputs, ignoring feedback edges."""
    nx = _require("networkx")
    dag = nx.DiGraph()
    dag.add_nodes_from(nxg)
    dag.add_edges_from((u, v) for u, v, fb in nxg.edges(data="feedback") if not fb)
    for layer, nodes in enumerate(nx.topological_generations(dag)):
        for node in nodes:
            nxg.nodes[node]["layer"] = layer
    for node in nxg:  # a feedback delay sits just before its first reader, not with the inputs
        if nxg.nodes[node]["family"] != "input" and dag.in_degree(node) == 0 and dag.out_degree(node):
            nxg.nodes[node]["layer"] = min(nxg.nodes[v]["layer"] for v in dag.successors(node)) - 1
    return nx.multipartite_layout(nxg, subset_key="layer")


def _to_networkx(g):
    """A networkx DiGraph of ``g``: one vertex per node and per graph output.

    Edges into ``delay`` nodes that close a loop are flagged ``feedback``.
    """
    nx = _require("networkx")
    nxg = nx.DiGraph()
    for name, node in g.nodes.items():
        nxg.add_node(name, family=node.family, label=f"{name}\n{node.op}")
    edges: dict[tuple[str, str], list[str]] = {}

    def add_edge(ref, dst: str) -> None:
        text = _shape_text(g.type_of(ref).shape)
        default = getattr(g.nodes[ref.node], "default_port", ref.port)
        if ref.port != default:
            text = f"{ref.port}: {text}"
        edges.setdefault((ref.node, dst), []).append(text)

    for name, node in g.nodes.items():
        for ref in node.inputs:
            add_edge(ref, name)
    for out_name, ref in g.outputs.items():
        vertex = f"output:{out_name}"
        nxg.add_node(vertex, family="output", label=f"{out_name}\noutput")
        add_edge(ref, vertex)
    into_delay = {key for key in edges if key[1] in g.nodes and g.nodes[key[1]].op == "delay"}
    for (src, dst), texts in edges.items():
        if (src, dst) not in into_delay:
            nxg.add_edge(src, dst, label=", ".join(dict.fromkeys(texts)), feedback=False)
    for src, dst in into_delay:
        loop = nxg.has_node(dst) and nx.has_path(nxg, dst, src)
        nxg.add_edge(src, dst, label=", ".join(dict.fromkeys(edges[(src, dst)])), feedback=loop)
    return nxg


def _edge_kind(nxg, u: str, v: str) -> str:
    if nxg.edges[u, v]["feedback"]:
        return "feedback"
    return "skip" if abs(nxg.nodes[v]["layer"] - nxg.nodes[u]["layer"]) > 1 else "plain"


# edge kind -> (line style, connection style): skip connections and loops bend around nodes
_EDGE_STYLES = {"plain": ("solid", "arc3"), "skip": ("solid", "arc3,rad=-0.3"), "feedback": ("dashed", "arc3,rad=-0.4")}


def _draw_edges(nx, nxg, pos, ax) -> None:
    for kind, (line, connection) in _EDGE_STYLES.items():
        edges = [(u, v) for u, v in nxg.edges if _edge_kind(nxg, u, v) == kind]
        if not edges:
            continue
        nx.draw_networkx_edges(
            nxg,
            pos,
            edgelist=edges,
            ax=ax,
            arrows=True,
            arrowsize=14,
            node_size=2600,
            style=line,
            connectionstyle=connection,
        )
        labels = {(u, v): nxg.edges[u, v]["label"] for u, v in edges}
        nx.draw_networkx_edge_labels(nxg, pos, edge_labels=labels, ax=ax, font_size=7, connectionstyle=connection)


def graph(g, ax=None, path=None):
    """Draw a snngraph IR graph: inputs, synapses, neurons and outputs, left to right.

    Vertices are coloured by kind (:data:`FAMILY_COLOURS`) and labelled with the node name and
    op; edges are labelled with the per-step shape of the value they carry (``1000``,
    ``16x14x14``), prefixed by the port when it is not the node's main output (``mem: 10``).
    Skip connections bend around the nodes they skip; edges closing a loop through a delay
    (``g.feedback`` / ``g.connect``) are dashed arcs.

    Args:
        g: a :class:`snngraph.Graph`.
        ax: axes to draw on; a new figure is made when ``None``.
        path: if given, the figure is saved there (format from the suffix, e.g. ``.png``).

    Returns:
        matplotlib.figure.Figure: the figure drawn on.
    """
    for attr in ("nodes", "outputs", "type_of"):
        if not hasattr(g, attr):
            raise TypeError(f"g must be a snngraph Graph, got {type(g).__name__}")
    nx = _require("networkx")
    plt = _require("matplotlib.pyplot")
    nxg = _to_networkx(g)
    pos = _graph_layout(nxg)
    if ax is None:
        layers = [layer for _, layer in nxg.nodes(data="layer")]
        tallest = max(layers.count(layer) for layer in set(layers))
        fig, ax = plt.subplots(figsize=(max(6.0, 2.2 * len(set(layers)) + 2.0), max(4.5, 1.6 * tallest)))
    else:
        fig = ax.figure
    colours = [FAMILY_COLOURS.get(fam, "#CCCCCC") for _, fam in nxg.nodes(data="family")]
    nx.draw_networkx_nodes(nxg, pos, ax=ax, node_color=colours, node_size=2600, edgecolors=_STYLE)
    nx.draw_networkx_labels(nxg, pos, labels=dict(nxg.nodes(data="label")), ax=ax, font_size=8)
    _draw_edges(nx, nxg, pos, ax)
    handles = [
        plt.Line2D([], [], marker="o", linestyle="", markersize=10, color=colour, label=family)
        for family, colour in FAMILY_COLOURS.items()
    ]
    ax.legend(handles=handles, loc="upper left", fontsize=8, frameon=False)
    ax.set_title(getattr(g, "name", "") or "graph")
    ax.margins(x=0.08, y=0.3)
    ax.axis("off")
    if path is not None:
        fig.savefig(path, bbox_inches="tight")
    return fig
