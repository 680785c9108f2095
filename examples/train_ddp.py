"""Data-parallel training of a compiled snngraph network with DistributedDataParallel.

``sg.compile`` returns an ordinary ``torch.nn.Module``, so ``torch.nn.parallel.DistributedDataParallel``
wraps it as it wraps any model: every process trains on its shard of each batch and DDP averages
the gradients across processes before the optimiser step, so all processes keep identical weights.
The data is scikit-learn's bundled 8x8 digits, rate-encoded into spike trains (no download).

Run it with torchrun (gloo on CPU, NCCL when every process has a GPU)::

    torchrun --nproc_per_node=2 examples/train_ddp.py                  # 2 processes on this machine
    torchrun --nproc_per_node=2 examples/train_ddp.py --quick          # a few seconds
    torchrun --nnodes=2 --nproc_per_node=8 --rdzv_backend=c10d \\
             --rdzv_endpoint=HOST:29500 examples/train_ddp.py           # on each of 2 machines
    python examples/train_ddp.py --quick                               # a single process

The global batch (``--batch-size``) is split evenly across the processes, so the training
trajectory does not depend on how many processes run it (up to the rounding of float sums).
"""

from __future__ import annotations

import argparse
import os
import socket
import time
from pathlib import Path

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

import snngraph as sg
from snngraph import demo


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now (for single-machine rendezvous)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def init_distributed() -> tuple[int, int, torch.device]:
    """Join the process group torchrun describes in the environment (``RANK``, ``WORLD_SIZE``,
    ``LOCAL_RANK``, ``MASTER_ADDR``/``MASTER_PORT``); without torchrun, a group of one.

    Returns:
        ``(rank, world_size, device)``: NCCL and ``cuda:LOCAL_RANK`` when CUDA is available,
        gloo and the CPU otherwise.
    """
    if "RANK" not in os.environ:
        os.environ.update(RANK="0", WORLD_SIZE="1", LOCAL_RANK="0", MASTER_ADDR="127.0.0.1",
                          MASTER_PORT=str(free_port()))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if torch.cuda.is_available():
        torch.cuda.set_device(local_rank)
        device, backend = torch.device("cuda", local_rank), "nccl"
    else:
        device, backend = torch.device("cpu"), "gloo"
    dist.init_process_group(backend=backend)
    return dist.get_rank(), dist.get_world_size(), device


def shard(n: int, rank: int, world_size: int) -> slice:
    """The rows of a batch of ``n`` that process ``rank`` of ``world_size`` trains on."""
    if n % world_size:
        raise ValueError(f"batch size {n} is not divisible by the number of processes {world_size}")
    per = n // world_size
    return slice(rank * per, (rank + 1) * per)


def train(args: argparse.Namespace, rank: int, world_size: int, device: torch.device) -> dict:
    """Train the demo network with DDP; rank 0 reports and evaluates."""
    torch.manual_seed(args.seed)  # same initial weights everywhere (DDP also broadcasts rank 0's)
    data = demo.load_digits(args.seed)
    if args.quick:
        data.x_train, data.y_train = data.x_train[:256], data.y_train[:256]
    model = DistributedDataParallel(sg.compile(demo.build_graph()).to(device),
                                    device_ids=[device.index] if device.type == "cuda" else None)
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    loss_fn = sg.functional.ce_rate_loss()
    order = torch.Generator().manual_seed(args.seed)  # the same batch order on every process
    start, steps = time.perf_counter(), 0
    for epoch in range(args.epochs):
        perm = torch.randperm(len(data.x_train), generator=order)
        usable = len(perm) - len(perm) % args.batch_size
        for first in range(0, usable, args.batch_size):
            idx = perm[first:first + args.batch_size][shard(args.batch_size, rank, world_size)]
            torch.manual_seed(args.seed + 1 + steps * world_size + rank)  # different spike noise per process
            xs = demo.encode(data.x_train[idx], args.num_steps).to(device)
            loss = loss_fn(model(xs)["spk"], data.y_train[idx].to(device))
            opt.zero_grad()
            loss.backward()  # DDP all-reduces (averages) the gradients here
            opt.step()
            steps += 1
        if rank == 0:
            print(f"epoch {epoch + 1}/{args.epochs}: last loss {loss.item():.3f}", flush=True)
    seconds = time.perf_counter() - start
    checksum = torch.stack([p.detach().double().sum() for p in model.parameters()]).sum()
    sums = [torch.zeros_like(checksum) for _ in range(world_size)]
    dist.all_gather(sums, checksum)  # every process must hold the same weights
    result = {"rank": rank, "world_size": world_size, "steps": steps, "seconds": seconds,
              "in_sync": all(bool(s == sums[0]) for s in sums)}
    if rank == 0:
        result.update(evaluate(model.module, data, args, device))
        print(f"{world_size} process(es), {device.type}: {steps} steps in {seconds:.1f} s; weights in sync on all "
              f"processes: {result['in_sync']}; held-out accuracy {result['accuracy']:.4f}", flush=True)
    dist.barrier()  # nobody tears the group down while rank 0 still evaluates
    return result


def evaluate(net: torch.nn.Module, data: demo.Digits, args: argparse.Namespace, device: torch.device) -> dict:
    """Held-out accuracy of the trained module; saves the trained graph when ``--out`` is given."""
    net.eval()
    torch.manual_seed(args.seed + 1)
    with torch.no_grad():
        spk = net(demo.encode(data.x_test, args.num_steps).to(device))["spk"].cpu()
    result = {"accuracy": sg.functional.accuracy_rate(spk, data.y_test)}
    if args.out:
        path = Path(args.out)
        path.parent.mkdir(parents=True, exist_ok=True)
        sg.save(net.to_graph(), path)
        print(f"trained graph saved to {path}")
        result["saved"] = str(path)
    return result


def main(argv: list[str] | None = None) -> dict:
    """Run the example with command-line ``argv``; returns what it measured (also printed)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one epoch on a subset (for tests)")
    parser.add_argument("--epochs", type=int, default=None, help="default 10 (1 with --quick)")
    parser.add_argument("--batch-size", type=int, default=64, help="global batch, split across processes")
    parser.add_argument("--num-steps", type=int, default=demo.NUM_STEPS)
    parser.add_argument("--lr", type=float, default=demo.LEARNING_RATE)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=None, help="save the trained graph here (sg.save) from rank 0")
    args = parser.parse_args(argv)
    if args.epochs is None:
        args.epochs = 1 if args.quick else 10
    rank, world_size, device = init_distributed()
    try:
        return train(args, rank, world_size, device)
    finally:
        dist.destroy_process_group()


if __name__ == "__main__":
    main()
