"""Tiled attention (online softmax) against torch's F.scaled_dot_product_attention: peak memory and time.

    .venv/bin/python benchmarks/tiled_attention.py [--lengths 1024,4096,16384] [--repeats 3] [--block 256]

One head of width 64 (query, key, value of shape (1, L, 64), float32, CPU), forward only,
side by side in one run. For each L: the largest difference between the two outputs; the peak
memory allocated during one call of each (torch's profiler, ``course_lib.efficient.peak_allocated_bytes``,
the measurement of notebooks 03 and 09: inputs not counted); then ``repeats`` interleaved timed calls
of each, reporting the median THREAD CPU time (``time.thread_time``) and the median wall time.

Torch runs on ONE intra-op thread here (``torch.set_num_threads(1)``), so the thread CPU time is
all the work of a call and is what other programs on a shared machine do not inflate; wall time is
printed beside it (on a busy machine it is larger, and noisy). Ratios are tiled / SDPA.
This is a benchmark to run and report, not a test.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from course_lib.efficient import peak_allocated_bytes, tiled_attention


def measure(L: int, dim: int, block: int, repeats: int, gen: torch.Generator) -> dict:
    q, k, v = (torch.randn(1, L, dim, generator=gen) for _ in range(3))
    ours = lambda: tiled_attention(q, k, v, block_size=block)
    theirs = lambda: F.scaled_dot_product_attention(q, k, v)
    row = {"L": L}
    with torch.inference_mode():
        row["max_error"] = (ours() - theirs()).abs().max().item()  # also the warm-up call of each
        row["tiled_bytes"], row["sdpa_bytes"] = peak_allocated_bytes(ours), peak_allocated_bytes(theirs)
        cpu = {"tiled": [], "sdpa": []}
        wall = {"tiled": [], "sdpa": []}
        for _ in range(repeats):  # interleaved: a change in the machine's load hits both alike
            for name, fn in (("tiled", ours), ("sdpa", theirs)):
                c0, w0 = time.thread_time(), time.perf_counter()
                fn()
                cpu[name].append(time.thread_time() - c0)
                wall[name].append(time.perf_counter() - w0)
    for name in ("tiled", "sdpa"):
        row[f"{name}_cpu"] = statistics.median(cpu[name])
        row[f"{name}_wall"] = statistics.median(wall[name])
    return row


def table(rows: list[dict]) -> str:
    mib = 2**20
    header = (f"{'L':>6} | {'tiled MiB':>9} {'SDPA MiB':>9} {'ratio':>6} | {'tiled cpu-s':>11} {'SDPA cpu-s':>10} "
              f"{'ratio':>6} | {'tiled wall-s':>12} {'SDPA wall-s':>11} {'ratio':>6} | {'max error':>9}")
    lines = [header]
    for r in rows:
        lines.append(
            f"{r['L']:>6} | {r['tiled_bytes'] / mib:9.2f} {r['sdpa_bytes'] / mib:9.2f} "
            f"{r['tiled_bytes'] / max(r['sdpa_bytes'], 1):6.2f} | {r['tiled_cpu']:11.3f} {r['sdpa_cpu']:10.3f} "
            f"{r['tiled_cpu'] / r['sdpa_cpu']:6.2f} | {r['tiled_wall']:12.3f} {r['sdpa_wall']:11.3f} "
            f"{r['tiled_wall'] / r['sdpa_wall']:6.2f} | {r['max_error']:9.1e}")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lengths", default="1024,4096,16384", help="comma-separated sequence lengths L")
    parser.add_argument("--dim", type=int, default=64, help="head width (default 64)")
    parser.add_argument("--block", type=int, default=256, help="key block size of tiled attention (default 256)")
    parser.add_argument("--repeats", type=int, default=3, help="timed calls of each per length (median)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    lengths = [int(x) for x in args.lengths.split(",") if x.strip()]
    torch.set_num_threads(1)
    gen = torch.Generator().manual_seed(args.seed)
    print(f"torch {torch.__version__}, 1 thread, one head of width {args.dim}, block {args.block}, "
          f"median of {args.repeats} interleaved calls; times: thread CPU time and wall time", flush=True)
    rows = []
    for L in lengths:
        rows.append(measure(L, args.dim, args.block, args.repeats, gen))
        print(f"  L = {L} done", flush=True)
    print(table(rows))
    try:
        with open("/proc/loadavg") as f:
            print(f"load average during the run (1, 5, 15 min): {' '.join(f.read().split()[:3])}")
    except OSError:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
