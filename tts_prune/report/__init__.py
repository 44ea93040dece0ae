"""The report library: what notebooks 04 and 05 compute and draw from a results store.

Modules: ``explorer`` (tidy runs, comparisons, the ipywidgets explorer), ``analysis`` (pruned-vs-dense
analyses beyond accuracy), ``plots`` and ``stat_plots`` (figures), ``claims`` (the claims table read first),
``reviewer`` (the reviewer's statistics on a store's records, ``tts-prune power``), ``transfer`` (held-out
choice across benchmarks), ``protocols`` (kit vs s1-harness grading) and ``provenance`` (the weights audit).
The study runner (``tts_prune.study``) executes notebooks; this package only reads what they wrote.
"""
