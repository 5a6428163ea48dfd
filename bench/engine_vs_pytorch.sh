#!/usr/bin/env bash
# Training-step and forward timings of ifcn and PyTorch on this machine, interleaved in rounds.
#   bench/engine_vs_pytorch.sh [STEPS] [CONFIGS...]
# CONFIGS as C:P (step and forward) or C:P:f (forward passes only, for sizes where a step takes
# minutes); default 16:64 32:64 64:64. Environment:
#   IFCN_BENCH_ROUNDS    rounds (default 1); each round runs every binary and PyTorch once per config
#   IFCN_BENCH_BINARIES  "label=path ..." (default "ifcn=.build/release/ifcn"): several ifcn builds
#                        (for example before/after a change) timed in the same rounds
#   IFCN_BENCH_THREADS   threads for every engine (default 2)
# Prints one JSON line per run (stdout; "label" and "round" added), then a summary on stderr: per
# config and engine the median over rounds, and each ifcn build's ratio to PyTorch. The CPU's SIMD
# flags come first, as a JSON line. Needs release builds (swift build -c release) and, for the
# PyTorch lines, torch (pip install torch).
set -euo pipefail
cd "$(dirname "$0")/.."
steps="${1:-5}"; shift || true
configs=("${@:-16:64 32:64 64:64}")
read -r -a configs <<< "${configs[*]}"
rounds="${IFCN_BENCH_ROUNDS:-1}"
threads="${IFCN_BENCH_THREADS:-2}"
read -r -a binaries <<< "${IFCN_BENCH_BINARIES:-ifcn=.build/release/ifcn}"
have_torch=0
python3 -c "import torch" 2>/dev/null && have_torch=1
log="$(mktemp)"
trap 'rm -f "$log"' EXIT

flags="$(grep -o -w 'avx[0-9a-z_]*\|fma\|amx[a-z_0-9]*' /proc/cpuinfo | sort -u | tr '\n' ' ' | sed 's/ $//')"
model="$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
printf '{"cpu": "%s", "cpu_flags": "%s", "threads": %s}\n' "$model" "$flags" "$threads" | tee -a "$log"

tag() { python3 -c 'import json,sys; d=json.loads(sys.stdin.read()); d.update(label=sys.argv[1], round=int(sys.argv[2])); print(json.dumps(d, sort_keys=True))' "$@"; }

for ((round = 1; round <= rounds; round++)); do
    for cp in "${configs[@]}"; do
        IFS=: read -r c p mode <<< "$cp"
        only=(); [[ "${mode:-}" == f ]] && only=(--forward-only)
        for b in "${binaries[@]}"; do
            "${b#*=}" bench --variant paper --channels "$c" --patch "$p" --steps "$steps" --threads "$threads" \
                "${only[@]}" --json 2>/dev/null | tag "${b%%=*}" "$round" | tee -a "$log"
        done
        if [[ $have_torch == 1 ]]; then
            python3 bench/pytorch_step.py --variant paper --channels "$c" --patch "$p" --steps "$steps" \
                --threads "$threads" "${only[@]}" --json 2>/dev/null | tag pytorch "$round" | tee -a "$log"
        fi
    done
done

python3 - "$log" >&2 <<'EOF'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if '"label"' in l]
print(f"\nsummary: median over rounds (every round in brackets), seconds")
keys = sorted({(r["channels"], r["patch"]) for r in rows})
labels = list(dict.fromkeys(r["label"] for r in rows))
for c, p in keys:
    med = {}
    for lab in labels:
        for kind in ("step_seconds_median", "forward_seconds_median"):
            v = [r[kind] for r in rows if (r["channels"], r["patch"], r["label"]) == (c, p, lab) and kind in r]
            if v:
                med[lab, kind] = statistics.median(v)
                ratio = ""
                if lab != "pytorch":
                    t = [r[kind] for r in rows if (r["channels"], r["patch"], r["label"]) == (c, p, "pytorch") and kind in r]
                    if t:
                        ratio = f"  = {med[lab, kind] / statistics.median(t):.2f}x PyTorch"
                rss = max(r["peak_rss_bytes"] for r in rows if (r["channels"], r["patch"], r["label"]) == (c, p, lab)) / 2**20
                name = kind.replace("_seconds_median", "")
                print(f"C={c} P={p} {lab:>10} {name:>7} {med[lab, kind]:8.3f} [{' '.join(f'{x:.3f}' for x in v)}]{ratio}  peak RSS {rss:.0f} MiB")
EOF
