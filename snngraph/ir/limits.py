"""Resource limits: how much a graph, a text, a file or a model may make snngraph allocate.

Each limit is a module constant read when its check runs, so a program that needs more raises it
once, before building or loading::

    import snngraph as sg
    sg.limits.MAX_RUNTIME_BYTES = 32 * 2**30   # a large network on a large GPU

Every refusal is a ``GraphError`` raised before the allocation, naming what was too large and the
limit. ``docs/robustness.md`` lists these and the per-file limits (``sg.load``, NIR files).
"""

from __future__ import annotations

MAX_PARAM_ELEMENTS = 2**28
"""Elements of one parameter that the builder initialises (``g.linear``, ``g.conv2d``, ...), and of all
the parameters a text declares without values (``param<f32[...]>``): 1 GiB of float32."""

MAX_RUNTIME_BYTES = 4 * 2**30
"""Bytes of a compiled net's parameters plus twice its state (the state a step reads and the new state it
writes), checked by ``CompiledNet.init_state`` (hence by ``net(x)`` on graphs with loops and by
``net.step``); for ``sg.runtimes.onnx.Session``, twice the state of ``init_state`` / ``step``."""

MAX_UNROLL_STEPS = 4096
"""Time steps ``unroll_time(g, steps=T)``, ``export_onnx(num_steps=T, unroll=True)`` and
``snngraph export --num-steps T --unroll`` may unroll."""

MAX_UNROLLED_NODES = 2**16
"""Nodes of a fully unrolled graph (the graph's nodes times ``T``): ``unroll_time(g, steps=T)`` and the
unrolled export (about 20 s and 1 GiB at this limit)."""
