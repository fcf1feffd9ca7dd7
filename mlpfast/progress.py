"""Progress reporting for long fits (placeholder until the tqdm bar lands: reports nothing)."""

import contextlib


class _Silent:
    def update(self, epochs_done, losses):
        pass


@contextlib.contextmanager
def make_progress(total_epochs, n_samples, enabled, desc="mlpfast"):
    yield _Silent()
