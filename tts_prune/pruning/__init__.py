"""Pruning: the calibration data and loop, the kernels, layer-wise allocation, ShortGPT, the driver, perplexity.

Modules: ``windows`` (calibration sources and token windows), ``calibration`` (the ONE loop that walks any
decoder block by block), ``kernels`` (pure functions ``weight, stats, sparsity -> mask``: magnitude, Wanda,
SparseGPT, N:M), ``declare`` (how methods and allocations describe themselves), ``methods`` (the method
registry ``PRUNERS``), ``allocation`` (Uniform, OWL, AlphaPruning, LayerIF; the registry ``ALLOCATORS``),
``shortgpt`` (Block Influence, block removal), ``config`` (PruneConfig), ``recipe`` (Recipe: what a pruned
model is), ``driver`` (prune), ``save`` (save_pruned), ``cli`` (the ``prune`` command), ``ppl`` (perplexity).
"""
