"""Pruning: the calibration data and loop, the kernels, layer-wise allocation, ShortGPT, the driver, perplexity.

Modules: ``windows`` (calibration sources and token windows), ``calibration`` (the ONE loop that walks any
decoder block by block), ``kernels`` (pure functions ``weight, stats, sparsity -> mask``: magnitude, Wanda,
SparseGPT, N:M), ``allocation`` (Uniform, OWL, AlphaPruning, an approximation of LayerIF), ``shortgpt``
(Block Influence, block removal), ``driver`` (PruneConfig, prune, save_pruned, the ``prune`` command),
``ppl`` (perplexity).
"""
