"""``python -m mlpfast``: demo, bench, warmup, info."""

from __future__ import annotations

import argparse
import sys


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m mlpfast",
        description="Fast MLP training on CPUs. Subcommands: demo, bench, warmup, info.",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    demo = sub.add_parser("demo", help="train on built-in data; compare with the reference")
    demo.add_argument("--quick", action="store_true", help="fewer epochs (used by the tests)")

    bench = sub.add_parser("bench", help="side-by-side comparison with peer libraries")
    bench.add_argument(
        "--workloads",
        default="tutorial,moons,wide,estimators",
        help="comma-separated: tutorial, moons, wide (BENCHMARKS.md), and estimators "
        "(digits-adam, synthetic-adam: MLPClassifier against scikit-learn's)",
    )
    bench.add_argument(
        "--peers",
        default="all",
        help="comma-separated: mlpfast, dropin, reference, torch, sklearn, jax-step, "
        "jax-scan (default: all that are installed)",
    )
    bench.add_argument(
        "--dtype",
        choices=["float32", "float64", "both", "default"],
        default="default",
        help="default: each workload's own dtype",
    )
    bench.add_argument(
        "--threads", type=int, default=None, help="threads for every library (default: all cores)"
    )
    bench.add_argument("--repeats", type=int, default=5, help="timed repeats (median)")
    bench.add_argument(
        "--scale",
        type=float,
        default=1.0,
        help="fraction of each workload's rows (for quick checks)",
    )

    warm = sub.add_parser("warmup", help="compile (or load from cache) every kernel")
    warm.add_argument("--dtype", choices=["float32", "float64", "both"], default="both")

    sub.add_parser("info", help="versions, threading layer, BLAS, threads, cache location")

    args = parser.parse_args(argv)
    if args.command == "demo":
        from .demo import run_demo

        return run_demo(quick=args.quick)
    if args.command == "bench":
        from .bench import run_from_args

        return run_from_args(args)
    if args.command == "warmup":
        from .demo import warmup

        return warmup(args.dtype)
    from .demo import info

    return info()


if __name__ == "__main__":
    sys.exit(main())
