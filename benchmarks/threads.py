"""Which thread settings keep a training fast alone and fair beside a busy neighbour?

    .venv/bin/python benchmarks/threads.py [--repeats 3] [--workloads rnn,tagger,gpt]

Times a few training steps of three workloads of the course in a fresh process
each (the environment has to be set before torch loads OpenMP), under three
settings: 1 thread; 2 threads with OpenMP's default wait policy (what torch does
when nothing is set: threads spin for a while before sleeping); 2 threads with
OMP_WAIT_POLICY=PASSIVE (threads sleep at once); and the course's policy for a
training loop that opts in: 1 thread at startup, then one or two per step as
course_lib.threads.AdaptiveThreads decides. Each is measured alone and beside
one competing CPU-bound process (a pure Python busy loop: one core's worth of
"something else running"). Settings are alternated inside each repeat so that
drift in the machine's load hits them alike; medians are printed.

Workloads (steps after 3 warm-up steps):
  rnn     notebook 02's GRU encoder-decoder with additive attention, REVERSAL sizes, batch 64
  tagger  notebook 04's AttentionTagger, width 32, 2 heads, batch 64
  gpt     a GPT-sized stack (notebooks 07-08): 4 causal AttentionLayers, width 128, 4 heads,
          d_ff 512, batch 32 x 128 tokens
  gpt07   notebook 07's GPT itself (4 layers, width 64, context 128), batch 8 x 128 characters
          of its corpus: the one training of the course that cannot be split over processes
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

SETTINGS = {
    "1 thread": {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"},
    "2 threads": {"OMP_NUM_THREADS": "2", "MKL_NUM_THREADS": "2"},
    "2 threads PASSIVE": {"OMP_NUM_THREADS": "2", "MKL_NUM_THREADS": "2", "OMP_WAIT_POLICY": "PASSIVE"},
    "adaptive (course)": {"OMP_NUM_THREADS": "1", "BENCH_ADAPTIVE": "1"},  # the policy: MKL follows OpenMP
}
STEPS = {"rnn": 40, "tagger": 150, "gpt": 8, "gpt07": 300}

WORKER = r"""
import sys, time, torch
from torch import nn
kind, steps = sys.argv[1], int(sys.argv[2])
torch.manual_seed(0)
g = torch.Generator().manual_seed(0)
if kind == "rnn":
    from course_lib.data import SequenceTask
    from course_lib.rnn import Seq2Seq, seq2seq_loss
    task = SequenceTask("reverse", 10, 4, 23)  # the REVERSAL experiment's sizes (notebooks 01, 02)
    v = task.vocab
    model = Seq2Seq(len(v), len(v), 32, 64, True, 32, v.pad_id, v.sos_id, v.eos_id)
    batch = lambda: task.batch(64, g)
    loss_fn = seq2seq_loss
elif kind == "gpt07":
    from course_lib.experiments.gpt import GPT_RUN, pydoc_corpus
    from course_lib.gpt import GPT, next_token_loss
    corpus = pydoc_corpus()
    model = GPT(GPT_RUN.model.replace(vocab_size=corpus.vocab_size))
    batch = lambda: corpus.get_batch("train", GPT_RUN.batch_size, GPT_RUN.model.block_size, g)[0]
    loss_fn = lambda m, x: next_token_loss(m(x), x)
else:
    from course_lib.transformer import AttentionTagger
    if kind == "tagger":
        model = AttentionTagger(13, 13, d_model=32, num_heads=2, num_layers=1, d_ff=64, max_len=12, num_outputs=2)
        shape, target_shape, classes = (64, 12), (64, 12, 2), 13
    else:
        model = AttentionTagger(96, 96, d_model=128, num_heads=4, num_layers=4, d_ff=512, max_len=128, causal=True)
        shape, target_shape, classes = (32, 128), (32, 128), 96
    batch = lambda: (torch.randint(0, classes, shape, generator=g),
                     torch.randint(0, classes, target_shape, generator=g))
    loss_fn = lambda m, b: nn.functional.cross_entropy(m(b[0]).reshape(-1, classes), b[1].reshape(-1))
opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
def step():
    loss = loss_fn(model, batch())
    opt.zero_grad(); loss.backward(); opt.step()
for _ in range(3):
    step()
import contextlib, os
from course_lib.threads import AdaptiveThreads
governor = AdaptiveThreads() if os.environ.get("BENCH_ADAPTIVE") else None
start, cpu = time.perf_counter(), time.process_time()
with governor or contextlib.nullcontext():
    for _ in range(steps):
        began = time.perf_counter()
        step()
        if governor is not None:
            governor.step_done(time.perf_counter() - began)
print(time.perf_counter() - start, time.process_time() - cpu, torch.get_num_threads(),
      governor.steps_at.get(2, 0) if governor else "-")
"""


NICE = 0  # --nice: the niceness of the measured processes (negative needs root; see main)


def _niced():
    if NICE:
        os.setpriority(os.PRIO_PROCESS, 0, NICE)


def run_once(kind: str, env_extra: dict, steps: int, limit: float = 1800) -> tuple[float, float]:
    """(wall s, CPU s) of `steps` training steps in a fresh process; (limit, nan) if it ran past `limit`."""
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS",
                                                             "OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
    env.update(env_extra)
    env["COURSE_THREADS"] = "off"  # measure the raw settings, not the course's policy on top
    try:
        proc = subprocess.run([sys.executable, "-c", WORKER, kind, str(steps)], env=env, cwd=ROOT,
                              capture_output=True, text=True, timeout=limit, preexec_fn=_niced)
    except subprocess.TimeoutExpired:
        return limit, float("nan")
    if proc.returncode:
        raise RuntimeError(f"the {kind} worker failed:\n{proc.stderr}")
    out = proc.stdout.split()
    return float(out[0]), float(out[1])  # (out[3]: steps on two threads, for the adaptive setting)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--workloads", default="rnn,tagger,gpt,gpt07")
    parser.add_argument("--limit", type=float, default=90, help="stop a run after this many seconds (shown as >)")
    parser.add_argument("--json", help="also write the raw times to this file")
    parser.add_argument("--nice", type=int, default=0,
                        help="run the measured processes and the competitor at this niceness; -20 (as root) shields "
                             "them from other users' load, emulating an otherwise idle machine, while keeping "
                             "the kernel's fair scheduling between them")
    args = parser.parse_args()
    global NICE
    NICE = args.nice
    kinds = args.workloads.split(",")
    raw: dict[str, list] = {}
    for repeat in range(args.repeats):
        for contended in (False, True):
            competitor = (subprocess.Popen([sys.executable, "-c", "while True: pass"], preexec_fn=_niced)
                          if contended else None)
            try:
                time.sleep(0.5 if contended else 0)
                for kind in kinds:
                    for name, env in SETTINGS.items():
                        wall, cpu = run_once(kind, env, STEPS[kind], args.limit)
                        key = f"{kind}|{name}|{'contended' if contended else 'alone'}"
                        raw.setdefault(key, []).append((wall, cpu))
                        print(f"repeat {repeat}: {key:<40} wall {wall:7.2f} s  cpu {cpu:7.2f} s  "
                              f"load {os.getloadavg()[0]:.1f}", flush=True)
            finally:
                if competitor is not None:
                    competitor.kill()
                    competitor.wait()
    print(f"\nmedians of {args.repeats} (wall s / CPU s of the training process), steps {STEPS}")
    print(f"{'workload':<8} {'setting':<19} {'alone':>14} {'contended':>14} {'ratio':>6}")
    for kind in kinds:
        for name in SETTINGS:
            alone = [statistics.median(x) for x in zip(*raw[f"{kind}|{name}|alone"])]
            busy = [statistics.median(x) for x in zip(*raw[f"{kind}|{name}|contended"])]
            print(f"{kind:<8} {name:<19} {alone[0]:6.2f} /{alone[1]:6.2f} {busy[0]:6.2f} /{busy[1]:6.2f} "
                  f"{busy[0] / alone[0]:6.2f}")
    print(f"(a run stopped at --limit {args.limit:g} s counts as {args.limit:g} s with CPU nan)")
    if args.json:
        Path(args.json).write_text(json.dumps(raw, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
