"""mlpfast side by side with its peers on the BENCHMARKS.md workloads.

Run:  env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python examples/peer_comparison.py
      python examples/peer_comparison.py --quick          # seconds, a smoke test

This is ``python -m mlpfast bench`` (see ``python -m mlpfast bench --help``):
every installed peer (reference numpy trainer, PyTorch, scikit-learn, JAX) trains
the same network on the same data in this one process, and the table gives each
one's time as a multiple of mlpfast's.  Peers that are not installed are skipped.
Unset the OpenBLAS tuning variables, as above, to measure as users run.
"""

import argparse
import sys

from mlpfast.__main__ import main as mlpfast_main


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick",
        action="store_true",
        help="the tutorial at 5 %% of its rows against the reference, one repeat on one thread",
    )
    parser.add_argument("--workloads", default="tutorial,moons,wide")
    parser.add_argument("--peers", default="all")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--scale", type=float, default=1.0, help="fraction of each workload's rows")
    args = parser.parse_args(argv)
    if args.quick:
        flags = [
            "--workloads",
            "tutorial",
            "--peers",
            "mlpfast,reference",
            "--repeats",
            "1",
            "--scale",
            "0.05",
            "--threads",
            "1",
        ]
    else:
        flags = [
            "--workloads",
            args.workloads,
            "--peers",
            args.peers,
            "--repeats",
            str(args.repeats),
            "--scale",
            str(args.scale),
        ]
    return mlpfast_main(["bench", *flags])


if __name__ == "__main__":
    sys.exit(main())
