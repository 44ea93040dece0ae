"""Models: loading any causal LM, the embedded offline models, the layer walker, the toy reasoner and its task.

Modules: ``loading`` (load_model, model_fingerprint), ``embedded`` (registry, checksummed cache,
``train-toy``), ``gguf`` (dequantized GGUF loading), ``dtypes`` (the one dtype table), ``layers``
(decoder blocks and their linears for any family), ``runtime`` (use_threads: torch's CPU threads),
``toy`` / ``toy_task`` (the toy reasoner), ``info``.
Nothing is imported here, so ``import tts_prune.models`` stays free of torch.
"""
