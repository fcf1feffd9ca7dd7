"""Compiled kernels: one small module per concern.

- ``activations``: the activation table (name -> integer code) and the fused
  bias + activation pass; derivatives are computed from a layer's *output*, so the
  training kernels keep one buffer per layer.
- ``losses``: the loss table and the fused output layer (loss value and output
  delta, numerically stable from the logits).
- ``dense``: the dense-layer matmuls (BLAS or small hand loops), the delta
  recursion and the weight gradients.
- ``optimizers``: the optimizer table and in-place updates over flat buffers.
- ``shuffle``: counter-based permutations, reproducible per (seed, epoch).
- ``train``: the whole-epoch training kernels (serial, and one parallel region per
  epoch) and the full-batch gradient kernels.
- ``predict``: the forward pass for inference.
- ``reference_ops``: fused kernels used by the drop-in ``mlpfast.reference.mlp``.
- ``atomics``: atomic load, add and compare-and-swap (LLVM instructions), with which
  the threads of one parallel training region hand work over.
- ``memory``: prefetch hints (LLVM's ``llvm.prefetch``) for gathered rows.
- ``unrolled``: generated straight-line gradient kernels for small networks.

Conventions (CONTRIBUTING.md): kernels write into buffers they are given and
allocate nothing per minibatch; they trust their inputs (shapes are validated in
Python, at the public boundary); float32 and float64 share one source; the Numba
flags come from ``mlpfast._config``.
"""
