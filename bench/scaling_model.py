#!/usr/bin/env python3
"""Data-parallel efficiency model of docs/SCALING.md: one step on N ranks costs its compute time plus a ring
allreduce of the flat gradient, which ifcn runs after the backward pass (no overlap):

    t_allreduce(N) = 2 (N - 1) / N * bytes / bandwidth + 2 (N - 1) * latency
    efficiency(N)  = t_compute / (t_compute + t_allreduce(N))

   bench/scaling_model.py [--gradient-floats F] [--compute-seconds T] [--json]

Defaults: the paper-size model's gradient (C=64, P=128: 2,439,170 floats) and 0.059 s of compute per step
(PyTorch's best C=64, P=128 step on an H200, docs/BENCHMARKS.md; ifcn's own GPU step at that size is not
measured yet). Links: bus bandwidth an allreduce reaches over each, and a per-hop latency."""
import argparse, json

LINKS = [  # name, bytes/s an allreduce reaches per rank (about 90% of the line rate), latency per hop (s)
    ("10 Gb/s Ethernet (TCP)", 10e9 / 8 * 0.9, 50e-6),
    ("100 Gb/s (InfiniBand EDR / RoCE)", 100e9 / 8 * 0.9, 5e-6),
    ("200 Gb/s (InfiniBand HDR)", 200e9 / 8 * 0.9, 5e-6),
    ("NVLink 4 (H100 SXM, within a node, NCCL bus bandwidth)", 360e9, 3e-6),
]
RANKS = [2, 4, 8, 16, 32, 64]

parser = argparse.ArgumentParser()
parser.add_argument("--gradient-floats", type=int, default=2_439_170)
parser.add_argument("--compute-seconds", type=float, default=0.059)
parser.add_argument("--json", action="store_true")
a = parser.parse_args()
size = 4 * a.gradient_floats
rows = []
for name, bandwidth, latency in LINKS:
    for n in RANKS:
        t = 2 * (n - 1) / n * size / bandwidth + 2 * (n - 1) * latency
        rows.append(dict(link=name, ranks=n, allreduce_ms=1e3 * t, efficiency=a.compute_seconds / (a.compute_seconds + t)))
if a.json:
    print(json.dumps(dict(gradient_bytes=size, compute_seconds=a.compute_seconds, rows=rows), indent=1))
else:
    print(f"gradient {size / 1e6:.2f} MB per step, compute {a.compute_seconds * 1e3:.0f} ms per step\n")
    print("| link | " + " | ".join(f"{n} ranks" for n in RANKS) + " |")
    print("| --- |" + " --- |" * len(RANKS))
    for name, _, _ in LINKS:
        cells = [r for r in rows if r["link"] == name]
        print(f"| {name} | " + " | ".join(f"{r['efficiency']:.0%} ({r['allreduce_ms']:.1f} ms)" for r in cells) + " |")
