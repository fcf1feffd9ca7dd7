#!/usr/bin/env bash
# Benchmark two commits in the current environment and fail on regressions.
#
#   asv_bench/compare.sh BASE HEAD [FACTOR]
#
# BASE and HEAD are any git revisions (main, HEAD~3, a hash); FACTOR (default 1.10)
# is how much worse a result may get before it counts: the ratio HEAD/BASE of times,
# peak memory and tracked losses, and of the test error rate (1 - accuracy) for
# track_*accuracy* results.
# Extra `asv run` arguments go in ASV_ARGS, e.g.
#
#   ASV_ARGS="-b Workloads -b kernels.Forward" asv_bench/compare.sh main HEAD 1.2
#   ASV_ARGS="--quick" asv_bench/compare.sh main HEAD 1.5    # a fast, rough look
#
# How: each commit is checked out into a temporary git worktree and benchmarked
# with `asv run --python=same --set-commit-hash <commit>`, with the worktree put
# first on the benchmark processes' import path (ASV_PYTHONPATH): mlpfast is pure
# Python, so this measures the commit's own code without touching the installed
# package.  Dependencies are the current environment's for both commits.  The
# benchmark suite is this checkout's.  Results go to asv_bench/results (browse them
# with `asv publish` + `asv preview`); the comparison is printed, and the exit
# status is 1 when anything got worse beyond FACTOR or started failing.
set -euo pipefail

if [[ $# -lt 2 || $# -gt 3 ]]; then
    awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"
    exit 2
fi
factor=${3:-1.10}
here=$(cd "$(dirname "$0")" && pwd)
repo=$(git -C "$here" rev-parse --show-toplevel)
base=$(git -C "$repo" rev-parse --verify "$1^{commit}")
head=$(git -C "$repo" rev-parse --verify "$2^{commit}")
python=$(command -v python)

scratch=$(mktemp -d "${TMPDIR:-/tmp}/mlpfast-compare-XXXXXX")
cleanup() {
    for tree in "$scratch"/tree-*; do
        if [[ -d $tree ]]; then
            git -C "$repo" worktree remove --force "$tree" >/dev/null 2>&1 || true
        fi
    done
    git -C "$repo" worktree prune || true
    rm -rf "$scratch"
}
trap cleanup EXIT

cd "$here"
asv machine --yes >/dev/null
for commit in "$base" "$head"; do
    tree="$scratch/tree-${commit:0:12}"
    [[ -d $tree ]] && continue  # BASE == HEAD
    git -C "$repo" worktree add --detach --quiet "$tree" "$commit"
    # The worktree's package must be the one imported.
    found=$(PYTHONPATH="$tree" "$python" -c "import mlpfast; print(mlpfast.__file__)")
    if [[ $found != "$tree"/* ]]; then
        echo "compare.sh: $commit imports mlpfast from $found, not from $tree" >&2
        exit 2
    fi
    # Each commit's kernels are compiled once, into a cache kept for later
    # comparisons (mlpfast uses $NUMBA_CACHE_DIR/mlpfast), before any benchmark's
    # setup runs: a cold compile takes minutes.
    export NUMBA_CACHE_DIR="$here/.asv/kernel-cache/$commit"
    echo "== ${commit:0:12}: compiling kernels (or loading them from $NUMBA_CACHE_DIR)" >&2
    PYTHONPATH="$tree" "$python" -m mlpfast warmup >/dev/null 2>&1 || true
    echo "== ${commit:0:12}: benchmarking" >&2
    # A benchmark that fails here shows up in the comparison (as "!" when only
    # HEAD fails), so asv's own exit status is not needed.
    ASV_PYTHONPATH="$tree" asv run --python=same --set-commit-hash "$commit" \
        ${ASV_ARGS:-} || true
done

table="$scratch/compare.txt"
asv compare --factor "$factor" --split "$base" "$head" | tee "$table"

# asv compare exits 0 whatever it finds: read its rows.  Column 1 is the mark:
# "+" worse (higher), "!" HEAD fails where BASE did not.  Accuracy is the one
# result where higher is better, and a ratio of accuracies hides real losses
# (0.97 -> 0.82 is "0.85"): for it the test *error* rates are compared instead.
regressions=$(awk -F'|' -v factor="$factor" '
    NF >= 6 {
        mark = $2; gsub(/ /, "", mark)
        if ($6 ~ /accuracy/) {
            before = $3 + 0; after = $4 + 0
            worse = (1 - before > 0) ? (1 - after) / (1 - before) > factor : after < before
            if (mark == "!" || (mark != "x" && $3 ~ /[0-9]/ && $4 ~ /[0-9]/ && worse)) print
        } else if (mark == "!" || mark == "+") {
            print
        }
    }' "$table")
if [[ -n $regressions ]]; then
    echo
    echo "compare.sh: worse beyond a factor of $factor (or newly failing) in ${head:0:12}:"
    echo "$regressions"
    exit 1
fi
echo
echo "compare.sh: nothing worse beyond a factor of $factor in ${head:0:12}."
