#!/usr/bin/env python3
"""Turns logs of bench/dnnl_conv/run.sh into markdown tables.

Usage: summarize.py LOG [LOG ...]
Logs of the same configuration (C, P, threads, wait policy, forward-only or not) are merged: their rounds
are pooled. Every figure is the fastest execution of a round in ms (see dnnl_conv_bench.c); a cell shows
the median over rounds and then every round.
"""
import re
import statistics
import sys
from collections import defaultdict

METHODS = ["blk", "plain", "ro", "ifcn"]
# rows of the per-shape table: (row name, {method: op names that fill it})
ROWS = [
    ("fwd", {"blk": ["fwd_train", "fwd_inf"], "plain": ["fwd_train", "fwd_inf"], "ro": ["fwd_train", "fwd_inf"],
             "ifcn": ["fwd"]}),
    ("fwd_inf (prop inference)", {"blk": ["fwd_inf!"]}),
    ("fwd_inf + bias + ReLU post-op", {"blk": ["fwd_inf_relu"]}),
    ("bwd_data", {m: ["bwd_data"] for m in METHODS}),
    ("bwd_weights", {m: ["bwd_weights"] for m in METHODS}),
    ("bwd_weights incl. reorders from fwd layouts", {"blk": ["bwd_weights_ro!"], "ifcn": ["bwd_weights_ro!"]}),
]


def parse(paths):
    configs = {}
    for path in paths:
        header, threads, policy, shapes, impls, checks, loads = None, None, None, {}, {}, [], []
        rounds = defaultdict(dict)  # round -> (shape, method, op) -> ms
        for line in open(path):
            line = line.rstrip("\n")
            if line.startswith("# oneDNN"):
                header = line
            elif line.startswith("# OMP_NUM_THREADS="):
                m = re.match(r"# OMP_NUM_THREADS=(\d+) OMP_WAIT_POLICY=(\S+)", line)
                threads, policy = m.group(1), m.group(2)
            elif line.startswith("S "):
                f = line.split()
                kv = dict(x.split("=") for x in f[2:7])
                shapes[int(f[1])] = (int(kv["cin"]), int(kv["cout"]), int(kv["extent"]), int(kv["mult"]),
                                     int(kv["bwd_data"]), f[7])
            elif line.startswith("I "):
                f = line.split()
                if len(f) >= 5 and f[4].startswith("impl="):
                    impls[(int(f[1]), f[2], f[3])] = " ".join(x.split("=", 1)[1] for x in f[4:])
            elif line.startswith("C "):
                checks.append(float(line.split("maxrel=")[1]))
            elif line.startswith("L "):
                loads.append(" ".join(line.split()[3:6]))
            elif line.startswith("R "):
                f = line.split()
                rounds[int(f[1])][(int(f[2]), f[7], f[8])] = float(f[10])
        if header is None:
            sys.exit(f"{path}: no '# oneDNN' header line: not a run.sh log")
        m = re.search(r"C=(\d+) P=(\d+) (\S+)", header)
        key = (int(m.group(1)), int(m.group(2)), m.group(3), threads, policy)
        c = configs.setdefault(key, {"shapes": shapes, "impls": {}, "checks": [], "rounds": [], "loads": [],
                                     "header": header, "files": []})
        c["impls"].update(impls)
        c["checks"] += checks
        c["loads"] += loads
        c["files"].append(path)
        c["rounds"] += [rounds[r] for r in sorted(rounds)]
    return configs


def values(c, shape, method, ops):
    exact = [o[:-1] for o in ops if o.endswith("!")]
    for op in exact or ops:
        v = [r[(shape, method, op)] for r in c["rounds"] if (shape, method, op) in r]
        if v:
            return v
    return []


def cell(v):
    if not v:
        return ""
    med = statistics.median(v)
    return f"**{med:.3g}** ({' / '.join(f'{x:.3g}' for x in v)})"


def report(key, c):
    C, P, mode, threads, policy = key
    out = [f"### C = {C}, P = {P}, {mode}, {threads} thread(s), OMP_WAIT_POLICY={policy}", ""]
    out.append(f"Logs: {', '.join(c['files'])}; {len(c['rounds'])} round(s); load average (1/5/15 min) at the "
               f"start of each round: {'; '.join(c['loads'])}. " +
               (f"Largest relative difference of any oneDNN result from the ifcn path: {max(c['checks']):.1e}."
                if c['checks'] else "No correctness checks in these logs (-k)."))
    out.append("")
    out.append("Implementations and layouts oneDNN chose (src / weights / dst):")
    out.append("")
    out.append("| shape (cin->cout @ extent^3) | x | blk fwd | blk bwd_data | blk bwd_weights | plain (all passes) |")
    out.append("|---|---|---|---|---|---|")
    for s, (cin, cout, e, mult, bd, name) in sorted(c["shapes"].items()):
        fwd = c["impls"].get((s, "blk", "fwd_train")) or c["impls"].get((s, "blk", "fwd_inf"), "")
        pl = sorted({v for (s2, m, _), v in c["impls"].items() if s2 == s and m == "plain"})
        out.append(f"| {cin}->{cout} @ {e} ({name}) | {mult} | {fwd} | {c['impls'].get((s, 'blk', 'bwd_data'), '')} | "
                   f"{c['impls'].get((s, 'blk', 'bwd_weights'), '')} | {'; '.join(pl)} |")
    out.append("")
    out.append("Per shape, ms (fastest execution per round; median **bold**, then every round):")
    out.append("")
    out.append("| shape | pass | oneDNN blocked (blk) | oneDNN ncdhw (plain) | blocked + reorders (ro) | ifcn im2col |")
    out.append("|---|---|---|---|---|---|")
    for s, (cin, cout, e, mult, bd, name) in sorted(c["shapes"].items()):
        for row, spec in ROWS:
            if mode == "forward-only" and row.startswith("fwd_inf ("):
                continue  # the forward-only runs time the inference prop kind as "fwd" already
            cells = [cell(values(c, s, m, spec.get(m, []))) for m in METHODS]
            if any(cells):
                out.append(f"| {cin}->{cout} @ {e} | {row} | " + " | ".join(cells) + " |")
    out.append("")
    # network sums: every 3x3x3 conv of the paper network, with multiplicities
    fallbacks = set()

    def total(method, row):
        spec = dict(ROWS)[row]
        t = 0.0
        for s, (cin, cout, e, mult, bd, name) in c["shapes"].items():
            if row == "bwd_data" and not bd:
                continue
            ops = spec.get(method, [])
            if ops == ["bwd_weights_ro!"]:  # shapes whose layouts need no reorder have no separate figure
                ops = ["bwd_weights_ro", "bwd_weights"]
            v = values(c, s, method, ops)
            if method == "ifcn" and ops[:1] == ["bwd_weights_ro"] and \
                    not values(c, s, "ifcn", ["bwd_weights_ro"]) and values(c, s, "blk", ["bwd_weights_ro"]):
                fallbacks.add(method)
            if not v:
                return None
            t += mult * statistics.median(v)
        return t
    passes = ["fwd", "fwd_inf + bias + ReLU post-op", "bwd_data", "bwd_weights",
              "bwd_weights incl. reorders from fwd layouts"]
    out.append("Whole network (sum over its 3x3x3 convolutions, multiplicity x, medians), ms:")
    out.append("")
    out.append("| method | " + " | ".join(passes) + " | fwd + bwd_data + bwd_weights |")
    out.append("|---|" + "---|" * (len(passes) + 1))
    hybrid = {p: (total("blk", p) if p != "bwd_weights incl. reorders from fwd layouts" else total("ifcn", p))
              for p in passes}
    for m in METHODS + ["hybrid"]:
        t = hybrid if m == "hybrid" else {p: total(m, p) for p in passes}
        if m == "hybrid":
            t["bwd_weights"] = None
            if None in (t["fwd"], t["bwd_data"], t["bwd_weights incl. reorders from fwd layouts"]):
                continue
        if all(v is None for v in t.values()):
            continue
        bw = t["bwd_weights incl. reorders from fwd layouts"] if m in ("blk", "hybrid") and t.get(
            "bwd_weights incl. reorders from fwd layouts") is not None else t["bwd_weights"]
        step = None if mode == "forward-only" or None in (t["fwd"], t["bwd_data"], bw) else t["fwd"] + t["bwd_data"] + bw
        out.append(f"| {m} | " + " | ".join("" if t[p] is None else f"{t[p]:.1f}" for p in passes) +
                   f" | {'' if step is None else f'{step:.1f}'} |")
    if fallbacks:
        out.append("")
        out.append("(this log has no ifcn bwd_weights_ro figure: hybrid's backward weights here is ifcn's "
                   "bwd_weights without the reorders from the blocked layouts, an underestimate)")
    if mode != "forward-only":
        out.append("")
        out.append("hybrid: oneDNN blocked forward and backward data, ifcn's backward weights fed by reordering src "
                   "and diff_dst from the blocked layouts (ifcn bwd_weights_ro). blk's and hybrid's last column uses "
                   "the backward weights including those reorders.")
    out.append("")
    return "\n".join(out)


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    configs = parse(sys.argv[1:])
    for key in sorted(configs, key=lambda k: (k[3], k[0] * k[1] ** 3, k[2])):
        print(report(key, configs[key]))


if __name__ == "__main__":
    main()
