#!/bin/sh
# Builds bench/dnnl_conv/dnnl_conv_bench.c (needs libdnnl-dev, libopenblas-dev) and runs it with 2 threads.
# Usage: [THREADS=2] [OMP_WAIT_POLICY=PASSIVE] bench/dnnl_conv/run.sh -C 16 -P 32 [-r 3] [-f] [-m blk,plain,ro,ifcn] [-s seconds]
# THREADS sets both oneDNN's OpenMP threads and the threads of the ifcn im2col path. OMP_WAIT_POLICY defaults to
# PASSIVE: with libgomp's default spinning, 2 threads on a busy 2-core machine stall for a scheduler time slice
# at every barrier (see docs/ONEDNN.md); OMP_WAIT_POLICY=unset leaves libgomp's default.
# The raw lines go to stdout; bench/dnnl_conv/summarize.py turns one or more such logs into tables.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
bin=${DNNL_BENCH_BIN:-/tmp/dnnl_conv_bench}
cc -O2 -fopenmp -Wall -Wextra -o "$bin" "$here/dnnl_conv_bench.c" -ldnnl -lopenblas -lm
echo "# cpu flags: $(grep -o 'avx[0-9a-z_]*\|fma' /proc/cpuinfo | sort -u | tr '\n' ' ')"
echo "# cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'), $(nproc) cores; load: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "# started $(date -u +%Y-%m-%dT%H:%M:%SZ)"
threads=${THREADS:-2}
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-PASSIVE}
echo "# OMP_NUM_THREADS=$threads OMP_WAIT_POLICY=$OMP_WAIT_POLICY"
[ "$OMP_WAIT_POLICY" = unset ] && unset OMP_WAIT_POLICY  # libgomp's own default
OMP_NUM_THREADS=$threads "$bin" -t "$threads" "$@"
echo "# finished $(date -u +%Y-%m-%dT%H:%M:%SZ)"
