"""The test-time-scaling evaluator: benchmarks, thinking formats, budget-forced generation, grading, records.

Modules: ``benchmarks`` (registry and loaders), ``formats`` (thinking formats and prompts),
``generation`` (the transformers budget sweep), ``rows`` (its lockstep row batch: in-place KV buffers, forks,
compaction), ``attention`` (grouped-query attention without copies on CPU), ``vllm_backend`` (the same sweep on vLLM),
``extract`` (option letters, numbers, boxed and cued spans), ``grading`` (``grade_answer``: math-verify
in a time-limited ``sandbox`` worker process, numbers, letters; protocols ``kit`` and ``s1-harness``), ``harness``
(the paper's harness rules), ``judge`` (an OpenAI-compatible LLM judge), ``regrade`` (what each protocol reads,
regrading stored generations), ``results`` (append-only record store),
``stats`` (bootstrap CIs, paired tests), ``evaluation`` (``evaluate`` and the ``eval`` command).
"""
