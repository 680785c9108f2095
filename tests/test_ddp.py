"""A compiled snngraph network under DistributedDataParallel: 2 CPU processes (gloo) average
their gradients to exactly what one process computes on the full batch."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

import snngraph as sg

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
BATCH, STEPS = 8, 12


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _net() -> torch.nn.Module:
    """A recurrent network (linear, leaky with learnable beta, rleaky, synaptic readout), seeded."""
    torch.manual_seed(0)
    g = sg.Graph("ddp")
    x = g.input("x", shape=(10,))
    h = g.leaky(g.linear(x, 16, name="fc1"), beta=0.85, learn_beta=True, name="lif1")
    r = g.rleaky(g.linear(h, 12, name="fc2"), beta=0.9, name="rlif")
    o = g.synaptic(g.linear(r, 4, name="fc3"), alpha=0.8, beta=0.9, name="out")
    g.output("spk", o)
    g.output("mem", o.mem)
    return sg.compile(g)


def _batch() -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(1)
    xs = torch.bernoulli(torch.full((STEPS, BATCH, 10), 0.4), generator=gen)
    return xs, torch.randint(0, 4, (BATCH,), generator=gen)


def _loss(out: dict[str, torch.Tensor], y: torch.Tensor) -> torch.Tensor:
    return sg.functional.ce_rate_loss()(out["spk"], y) + 0.1 * out["mem"].square().mean()


def _worker(rank: int, world_size: int, port: int, result_file: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world_size)
    try:
        model = torch.nn.parallel.DistributedDataParallel(_net())
        xs, y = _batch()
        rows = slice(rank * BATCH // world_size, (rank + 1) * BATCH // world_size)
        _loss(model(xs[:, rows]), y[rows]).backward()  # DDP averages the gradients across processes
        if rank == 0:
            torch.save({k: p.grad for k, p in model.module.named_parameters()}, result_file)
        dist.barrier()
    finally:
        dist.destroy_process_group()


def test_two_process_gradients_equal_full_batch(tmp_path):
    result_file = str(tmp_path / "grads.pt")
    mp.spawn(_worker, args=(2, _free_port(), result_file), nprocs=2, join=True)
    ddp_grads = torch.load(result_file)

    net = _net()
    xs, y = _batch()
    _loss(net(xs), y).backward()
    single = {k: p.grad for k, p in net.named_parameters()}
    assert sorted(ddp_grads) == sorted(single)
    assert "lif1.beta" in single and "rlif.recurrent.weight" in single
    for key, grad in single.items():
        assert grad is not None and grad.abs().sum() > 0, key
        torch.testing.assert_close(ddp_grads[key], grad, rtol=0, atol=1e-6, msg=lambda m, k=key: f"{k}: {m}")


def test_torchrun_example_two_processes(tmp_path):
    """``torchrun --nproc_per_node=2 examples/train_ddp.py --quick``: trains, weights stay in sync."""
    torchrun = Path(sys.executable).parent / "torchrun"
    if not torchrun.exists():
        pytest.skip("torchrun not installed next to this interpreter")
    out = tmp_path / "trained.sg"
    for _ in range(2):  # a second try only if another process took the free port in between
        cmd = [str(torchrun), "--nproc_per_node=2", "--master_addr=127.0.0.1", f"--master_port={_free_port()}",
               str(EXAMPLES / "train_ddp.py"), "--quick", "--out", str(out)]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=300,
                              env={**os.environ, "OMP_NUM_THREADS": "1"})
        if done.returncode == 0 or "address already in use" not in done.stderr.lower():
            break
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    assert "2 process(es), cpu" in done.stdout and "weights in sync on all processes: True" in done.stdout
    assert sorted(sg.load(out).outputs) == ["hidden", "mem", "spk"]
