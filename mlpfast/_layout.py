"""Where everything lives in the flat buffers.

Parameters: for each layer k in order, W_k (n_in x n_out, C order) then b_k, in
one contiguous buffer; gradients and optimizer state use the same layout, so the
update is one sweep and save/load/checksums are one-liners.

Activations and deltas: for a workspace of ``capacity`` rows, layer k's output
block is ``capacity x n_out`` starting at ``capacity * (n_1 + ... + n_{k-1})``.
"""

from __future__ import annotations

import numpy as np

from ._kernels.dense import ACT_OFFSET, ACTIVATION, B_OFFSET, LAYOUT_COLUMNS, N_IN, N_OUT, W_OFFSET


class Layout:
    """Offsets of every layer's parameters and activation blocks."""

    def __init__(self, sizes: tuple[int, ...], codes: tuple[int, ...]):
        self.sizes = tuple(sizes)
        self.codes = tuple(codes)
        self.n_layers = len(sizes) - 1
        self.w_offsets, self.b_offsets = [], []
        offset = 0
        for n_in, n_out in zip(sizes[:-1], sizes[1:], strict=True):
            self.w_offsets.append(offset)
            offset += n_in * n_out
            self.b_offsets.append(offset)
            offset += n_out
        self.n_params = offset
        self.n_weights = sum(a * b for a, b in zip(sizes[:-1], sizes[1:], strict=True))
        self.act_width = sum(sizes[1:])  # floats per row of the activation workspace
        self._tables: dict[int, np.ndarray] = {}

    def table(self, capacity: int) -> np.ndarray:
        """The int64 (n_layers, 6) table the kernels read, for ``capacity`` rows."""
        table = self._tables.get(capacity)
        if table is None:
            table = np.zeros((self.n_layers, LAYOUT_COLUMNS), dtype=np.int64)
            act = 0
            for k in range(self.n_layers):
                table[k, N_IN] = self.sizes[k]
                table[k, N_OUT] = self.sizes[k + 1]
                table[k, W_OFFSET] = self.w_offsets[k]
                table[k, B_OFFSET] = self.b_offsets[k]
                table[k, ACTIVATION] = self.codes[k]
                table[k, ACT_OFFSET] = act
                act += capacity * self.sizes[k + 1]
            self._tables[capacity] = table
        return table

    def weight_views(self, flat: np.ndarray) -> list[np.ndarray]:
        return [
            flat[o : o + n_in * n_out].reshape(n_in, n_out)
            for o, n_in, n_out in zip(self.w_offsets, self.sizes[:-1], self.sizes[1:], strict=True)
        ]

    def bias_views(self, flat: np.ndarray) -> list[np.ndarray]:
        return [flat[o : o + n] for o, n in zip(self.b_offsets, self.sizes[1:], strict=True)]

    def weight_mask(self) -> np.ndarray:
        """True where the flat buffer holds a weight (not a bias)."""
        mask = np.zeros(self.n_params, dtype=bool)
        for o, n_in, n_out in zip(self.w_offsets, self.sizes[:-1], self.sizes[1:], strict=True):
            mask[o : o + n_in * n_out] = True
        return mask
