#!/usr/bin/env bash
# CI's benchmark gate: `asv check`, then every benchmark once (--quick, results not
# saved).  Exits non-zero when a benchmark cannot be imported, errors or times out
# (asv run exits 2 when any benchmark, or any parameter set of one, failed).
# Run it after the test suite, which leaves the kernels compiled in the cache.
#
#   asv_bench/ci_quick.sh [extra asv run arguments, e.g. -b Workloads]
#
# Uses the asv and python of the active environment (asv's --python=same).
set -euo pipefail
cd "$(dirname "$0")"
asv machine --yes >/dev/null  # asv refuses to run without a machine description
asv check --python=same
# The cold-start benchmark compiles every kernel a tutorial fit needs (about 15 s on
# 2 cores); MLPFAST_ASV_SKIP_COLD=1 in the environment skips it.
started=$SECONDS
status=0
asv run --python=same --quick --dry-run --show-stderr "$@" || status=$?
echo "asv quick run: $((SECONDS - started)) s, exit status $status"
exit "$status"
