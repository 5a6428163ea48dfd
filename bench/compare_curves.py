#!/usr/bin/env python3
"""Does a training curve match the reference's within run-to-run noise? (issue 10: the GPU's speed settings
against fp32 math on the same data.)

    bench/compare_curves.py --reference fp32=RUN --noise fp32-seed2=RUN --noise fp32-seed3=RUN \
        --candidate tf32=RUN [--candidate ...] [--json OUT]

Each RUN is a training output folder (its metrics.jsonl, one line per epoch). The reference and each candidate
share the seed; the noise runs differ from the reference only in the seed, so their distance from it is what the
seed alone changes. A candidate matches when, on the last three epochs' mean training loss and mean validation
Dice, it lies no further from the reference than the furthest noise run. Prints a table per epoch and the verdict;
exits 1 when a candidate does not match, 2 on unusable input."""
import argparse, json, os, sys

LAST = 3  # epochs averaged for the final figures


def load(spec):
    name, _, run = spec.partition("=")
    if not run:
        sys.exit(f"compare_curves: '{spec}' is not NAME=RUN")
    path = os.path.join(run, "metrics.jsonl")
    try:
        rows = [json.loads(l) for l in open(path) if l.strip()]
    except (OSError, ValueError) as e:
        print(f"compare_curves: {path}: {e}", file=sys.stderr)
        sys.exit(2)
    rows = [r for r in rows if "epoch" in r]
    if len(rows) < LAST or any(r.get("val_dice") is None for r in rows):
        print(f"compare_curves: {path}: needs at least {LAST} epochs, each with val_dice", file=sys.stderr)
        sys.exit(2)
    return name, rows


def final(rows, key):
    tail = rows[-LAST:]
    return sum(r[key] for r in tail) / len(tail)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--reference", required=True)
    ap.add_argument("--noise", action="append", required=True)
    ap.add_argument("--candidate", action="append", required=True)
    ap.add_argument("--json")
    a = ap.parse_args()
    ref_name, ref = load(a.reference)
    noise = [load(s) for s in a.noise]
    cands = [load(s) for s in a.candidate]
    epochs = len(ref)
    for name, rows in noise + cands:
        if len(rows) != epochs or [r["iteration"] for r in rows] != [r["iteration"] for r in ref]:
            print(f"compare_curves: {name} has other epochs than {ref_name}", file=sys.stderr)
            sys.exit(2)
    keys = {"loss": "train_loss", "dice": "val_dice"}
    ref_final = {k: final(ref, v) for k, v in keys.items()}
    noise_span = {k: max(abs(final(rows, v) - ref_final[k]) for _, rows in noise) for k, v in keys.items()}
    runs = [(ref_name, ref)] + noise + cands
    print("| iteration | " + " | ".join(f"{n} loss | {n} val Dice" for n, _ in runs) + " |")
    print("| --- |" + " --- | --- |" * len(runs))
    for i in range(epochs):
        print(f"| {ref[i]['iteration']} | " + " | ".join(f"{rows[i]['train_loss']:.1f} | {rows[i]['val_dice']:.3f}"
                                                        for _, rows in runs) + " |")
    result = {"reference": ref_name, "epochs_averaged": LAST,
              "reference_final": ref_final, "noise_span": noise_span, "candidates": {}}
    for name, rows in noise:
        result.setdefault("noise", {})[name] = {k: final(rows, v) for k, v in keys.items()}
    print(f"last {LAST} epochs: {ref_name} loss {ref_final['loss']:.1f}, val Dice {ref_final['dice']:.3f}; "
          f"seed-to-seed span: loss {noise_span['loss']:.1f}, val Dice {noise_span['dice']:.3f}")
    ok_all = True
    for name, rows in cands:
        f = {k: final(rows, v) for k, v in keys.items()}
        dist = {k: abs(f[k] - ref_final[k]) for k in keys}
        ok = all(dist[k] <= noise_span[k] for k in keys)
        ok_all &= ok
        result["candidates"][name] = {"final": f, "distance": dist, "within_noise": ok}
        print(f"{name}: loss {f['loss']:.1f} (off by {dist['loss']:.1f}), val Dice {f['dice']:.3f} "
              f"(off by {dist['dice']:.3f}): {'within' if ok else 'OUTSIDE'} run-to-run noise")
    if a.json:
        with open(a.json, "w") as fh:
            json.dump(result, fh, indent=1, sort_keys=True)
    sys.exit(0 if ok_all else 1)


if __name__ == "__main__":
    main()
