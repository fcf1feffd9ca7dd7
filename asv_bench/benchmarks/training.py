"""The BENCHMARKS.md workloads through ``Network.fit``: time, peak memory, final loss.

``scale`` is the fraction of each workload's rows (the tutorial always uses its
1000): 0.1 keeps the quick CI run short, 1.0 is the workload as BENCHMARKS.md
defines it.  Per-epoch time is linear in the rows, so both catch the same
regressions; compare ratios, not absolute times, on shared machines.
"""

from .common import FULL_ROWS, fit_workload, threads_param, warm_up, workload_data, workload_network


class Workloads:
    """One timed call: the tutorial's 150 full-batch iterations, one epoch otherwise."""

    params = (["tutorial", "moons", "wide"], [0.1, 1.0])
    param_names = ["workload", "scale"]
    timeout = 300

    def setup(self, workload, scale):
        if workload == "tutorial" and scale != 1.0:
            raise NotImplementedError("the tutorial has a fixed size")
        self.X, self.y = workload_data(workload, scale)
        self.net = workload_network(workload)
        warm_up(self.net, workload, self.X, self.y)

    def time_fit(self, workload, scale):
        fit_workload(self.net, workload, self.X, self.y)

    def peakmem_fit(self, workload, scale):
        # Peak RSS of the whole process (data included): the fit itself must not
        # copy X (C-contiguous, right dtype) nor allocate per minibatch.
        fit_workload(self.net, workload, self.X, self.y)


class FinalLoss:
    """Mean training loss after a fixed run from a fixed seed, on one thread
    (the summation order, hence the last bits, depends on the thread count)."""

    params = (["tutorial", "moons", "wide"],)
    param_names = ["workload"]
    unit = "mean loss"
    timeout = 300
    # moons and wide at 10 % of their rows, so the quick CI run stays short.
    runs = {"tutorial": (1.0, 150), "moons": (0.1, 3), "wide": (0.1, 2)}

    def setup(self, workload):
        scale, _ = self.runs[workload]
        self.X, self.y = workload_data(workload, scale)
        self.net = workload_network(workload, n_threads=1)
        warm_up(self.net, workload, self.X, self.y)

    def track_final_loss(self, workload):
        _, epochs = self.runs[workload]
        self.net.initialize(0)
        return float(fit_workload(self.net, workload, self.X, self.y, epochs=epochs)[-1])


class Train:
    """One epoch of the moons network over batch sizes and thread counts: where
    splitting a minibatch across threads starts to pay (``MIN_BLOCK_ROWS`` and the
    cost model in ``Network._parallel_plan``; with 2 threads 128 and 512 rows take
    the GRADIENT_SUM split, 32 rows stay serial: 4.4k parameters would cross
    between cores each step for ~11 us of arithmetic saved)."""

    params = ([32, 128, 512], [1, "all"])
    param_names = ["batch_size", "n_threads"]
    rows = 20_000

    def setup(self, batch_size, n_threads):
        X, y = workload_data("moons", self.rows / FULL_ROWS["moons"])
        self.X, self.y = X, y
        self.net = workload_network("moons", n_threads=threads_param(n_threads))
        self.net.fit(
            X[: 2 * batch_size],
            y[: 2 * batch_size],
            epochs=1,
            batch_size=batch_size,
            lr=0.05,
            verbose=False,
        )

    def time_epoch(self, batch_size, n_threads):
        self.net.fit(self.X, self.y, epochs=1, batch_size=batch_size, lr=0.05, verbose=False)


class Threads:
    """One epoch of the wide workload (25 % of its rows) on 1 thread and on all
    of them: the target is 2 threads >= 1.7x faster than 1."""

    params = ([1, "all"],)
    param_names = ["n_threads"]
    timeout = 300

    def setup(self, n_threads):
        self.X, self.y = workload_data("wide", 0.25)
        self.net = workload_network("wide", n_threads=threads_param(n_threads))
        warm_up(self.net, "wide", self.X, self.y)

    def time_epoch(self, n_threads):
        fit_workload(self.net, "wide", self.X, self.y)
