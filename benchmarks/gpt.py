"""Notebook 07's GPT on this CPU: training throughput against matmul, time to a validation loss, generation speed.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/gpt.py [--steps N] [--n-embd E] [--batch B] [--lr LR]
                                                          [--target 1.45] [--skip-generation]

A benchmark, not a test: it prints numbers to report, it asserts nothing.

1. Training (course_lib.gpt.bench.training_benchmark): the run of
   ``experiments.run("gpt")`` (sizes, batch and schedule overridable), timed
   step by step in process CPU seconds at the current torch threads (one
   thread: CPU seconds = wall seconds on an idle machine, whatever else runs
   now). Prints the float32 matmul throughput of this process measured in the
   same run, the throughput training achieves (6 FLOP per weight and token plus
   attention), their ratio, the validation curve and the CPU seconds until the
   validation loss first reaches --target (None if the run ends first).
2. Generation (course_lib.gpt.bench.cache_speedup) on the trained model of
   ``experiments.run("gpt")`` (trained or loaded from the course's cache):
   characters per CPU second with and without the KV cache, greedy, one
   sequence, at several lengths up to the context length, fastest of 5 runs
   measured in alternation with and without the cache.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from course_lib import experiments  # noqa: E402
from course_lib.experiments.gpt import GPT_RUN, pydoc_corpus  # noqa: E402
from course_lib.gpt.bench import cache_speedup, training_benchmark  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=GPT_RUN.steps)
    parser.add_argument("--n-embd", type=int, default=GPT_RUN.model.n_embd)
    parser.add_argument("--batch", type=int, default=GPT_RUN.batch_size)
    parser.add_argument("--lr", type=float, default=GPT_RUN.lr)
    parser.add_argument("--target", type=float, default=1.45)
    parser.add_argument("--eval-every", type=int, default=50)
    parser.add_argument("--skip-generation", action="store_true")
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), OMP_NUM_THREADS="
          f"{os.environ.get('OMP_NUM_THREADS')}, load {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")

    run = dataclasses.replace(GPT_RUN, steps=args.steps, batch_size=args.batch, lr=args.lr,
                              model=GPT_RUN.model.replace(n_embd=args.n_embd))
    result = training_benchmark(run, target=args.target, eval_every=args.eval_every, progress=True)
    tokens = run.steps * run.batch_size * run.model.block_size
    print(json.dumps({"run": dataclasses.asdict(run), "parameters": result["parameters"],
                      "matmul_GFLOPs": round(result["matmul_flops"] / 1e9, 1),
                      "train_GFLOPs": round(result["train_flops"] / 1e9, 1),
                      "fraction_of_matmul": round(result["fraction"], 3),
                      "tokens_per_cpu_second": round(tokens / result["seconds"]),
                      "cpu_seconds": round(result["seconds"], 1),
                      f"cpu_seconds_to_val_{args.target}": result["seconds_to_target"],
                      "final_val": round(result["curve"][-1][1], 3)}, indent=1))
    print("curve (CPU s, val loss):", [(round(s, 1), round(v, 3)) for s, v in result["curve"]])

    if args.skip_generation:
        return
    model = experiments.run("gpt").model.eval()
    corpus = pydoc_corpus()
    lengths = [8, 16, 32, 64, model.config.block_size - 1]
    prompt = corpus.encode("\n")[None]  # (1, 1)
    cached, plain = cache_speedup(model, prompt, lengths, repeats=5)
    print("generation, greedy, 1 sequence, fastest of 5 alternated runs, characters per CPU second:")
    for n, a, b in zip(lengths, cached, plain):
        print(f"  {n:4d} characters: {a:7.0f} with the KV cache, {b:7.0f} without, speed-up {a / b:.2f}x")


if __name__ == "__main__":
    main()
