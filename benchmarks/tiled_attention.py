"""Tiled attention (online softmax) against torch's F.scaled_dot_product_attention: peak memory and time.

    .venv/bin/python benchmarks/tiled_attention.py [--lengths 1024,4096,16384] [--repeats 3] [--block 256]

One head of width 64 (query, key, value of shape (1, L, 64), float32, CPU), forward only, side by
side in one run, by ``course_lib.efficient.tiled_benchmark``: for each L the largest difference
between the two outputs, the peak memory allocated during one call of each (torch's profiler, the
measurement of notebooks 03 and 09: inputs not counted), then ``repeats`` interleaved timed calls
of each, median CPU time and median wall time.

Torch runs on ONE intra-op thread, so the CPU time is all the work of a call and is what other
programs on a shared machine do not inflate; wall time is printed beside it (on a busy machine it
is larger, and noisy). Ratios are tiled / SDPA. A benchmark to run and report, not a test.
"""

from __future__ import annotations

import argparse
import sys

import torch

from course_lib.efficient import format_tiled_benchmark, tiled_benchmark


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lengths", default="1024,4096,16384", help="comma-separated sequence lengths L")
    parser.add_argument("--dim", type=int, default=64, help="head width (default 64)")
    parser.add_argument("--block", type=int, default=256, help="key block size of tiled attention (default 256)")
    parser.add_argument("--repeats", type=int, default=3, help="timed calls of each per length (median)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    lengths = [int(x) for x in args.lengths.split(",") if x.strip()]
    print(f"torch {torch.__version__}, 1 thread, one head of width {args.dim}, block {args.block}, "
          f"median of {args.repeats} interleaved calls", flush=True)
    rows = tiled_benchmark(lengths, dim=args.dim, block_size=args.block, repeats=args.repeats, threads=1,
                           seed=args.seed)
    print(format_tiled_benchmark(rows))
    try:
        with open("/proc/loadavg") as f:
            print(f"load average during the run (1, 5, 15 min): {' '.join(f.read().split()[:3])}")
    except OSError:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
