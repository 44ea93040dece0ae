"""One engine per model variant: ``open_engine`` opens a backend once, ``evaluate`` reuses it, ``close`` ends it.

A 04-tts-scaling cell evaluates one model variant on every benchmark of the study. Opening the backend inside
each ``evaluate`` call loads the model (and, for vLLM, saves or resolves its artifact and starts an engine) once
per benchmark: on ``paper.yaml`` that was 120 engine starts where 30 suffice. An ``Engine`` holds one open
backend; ``tts_prune.evaluate(engine, benchmark, ...)`` evaluates on it without opening or closing anything,
and the ``with`` block closes it exactly once, also when an evaluation fails::

    with tts_prune.open_engine((net, tokenizer), backend="vllm") as engine:
        for benchmark in ("math500", "aime24"):
            tts_prune.evaluate(engine, benchmark, [512, 1024], out="results/records")

A record does not depend on the engine it came from: its key and content are those of a separate ``evaluate``
call on the same weights, because neither backend keeps state between sweeps that changes an output (the
transformers loop starts every sweep from fresh caches; vLLM's prefix cache reuses exact KV blocks, and its
batch composition already differs between calls of one evaluation). vLLM starts at the first sweep, so an
engine whose every record is already stored starts nothing.
"""
from __future__ import annotations

from .backends import Backend, open_backend, pick_backend

# The arguments that open a backend, with ``evaluate``'s defaults: an open engine fixes them.
OPEN_OPTIONS = {"backend": "auto", "batch_size": 8, "tensor_parallel_size": 1, "data_parallel_size": 1,
                "model_dir": None, "vllm_options": None}


def model_label(model_or_path, model_name: str | None = None) -> str:
    """The ``model`` field of the records: ``model_name``, else a loaded model's ``_name_or_path``, else the reference."""
    if model_name:
        return model_name
    if isinstance(model_or_path, (tuple, list)):
        model = model_or_path[0]
        return getattr(model.config, "_name_or_path", "") or type(model).__name__
    return str(model_or_path)


class Engine:
    """An open backend that serves many ``evaluate`` calls; a context manager that closes it once.

    ``backend``: the open ``Backend``; ``name``: the records' default ``model``; ``model_config``: the HF config
    of an in-memory model (format detection, context check), None for a reference; ``options``: the
    ``OPEN_OPTIONS`` it was opened with.
    """

    def __init__(self, backend: Backend, name: str, model_config=None, options: dict | None = None):
        self.backend, self.name, self.model_config = backend, name, model_config
        self.options = {**OPEN_OPTIONS, **(options or {})}
        self.closed = False

    def check(self, **requested) -> Backend:
        """The backend, after checking that ``evaluate``'s backend arguments (``OPEN_OPTIONS``) do not ask for
        another one: each must be left at its default or equal what this engine was opened with."""
        if self.closed:
            raise RuntimeError(f"the engine of {self.name!r} is closed; open another with tts_prune.open_engine "
                               "(or pass the model itself to evaluate)")
        for key, value in requested.items():
            if key not in OPEN_OPTIONS:
                raise TypeError(f"Engine.check: {key!r} is not an engine option; options: {sorted(OPEN_OPTIONS)}")
            same = value == self.options[key] or (key == "backend" and pick_backend(value) == self.backend.name)
            if value != OPEN_OPTIONS[key] and not same:
                raise ValueError(f"evaluate(engine, {key}={value!r}): this engine was opened with "
                                 f"{key}={self.options[key]!r}; leave {key} out, or open another engine with "
                                 f"tts_prune.open_engine(..., {key}={value!r})")
        return self.backend

    def close(self) -> None:
        """Shut the backend down (vLLM: its engine and GPU memory); a second call does nothing."""
        if not self.closed:
            self.closed = True
            self.backend.close()

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self.closed else "open"
        return f"Engine({self.name!r}, backend={self.backend.name!r}, {state})"


def open_engine(model_or_path, backend: str = "auto", batch_size: int = 8, tensor_parallel_size: int = 1,
                data_parallel_size: int = 1, model_dir=None, vllm_options: dict | None = None,
                model_name: str | None = None) -> Engine:
    """An ``Engine`` for ``model_or_path`` (a loaded ``(model, tokenizer)`` pair or a reference for ``load_model``).

    The arguments are ``evaluate``'s: ``backend`` (auto, transformers, vllm), ``batch_size`` (transformers rows
    per chunk), ``tensor_parallel_size`` / ``data_parallel_size`` / ``model_dir`` (03-pruning's directory to reuse)
    and ``vllm_options`` (``vllm.LLM`` keywords) for vLLM. Use it in a ``with`` block, or call ``close()``.
    """
    options = {"batch_size": batch_size}
    if pick_backend(backend) == "vllm":
        options.update(tensor_parallel_size=tensor_parallel_size, data_parallel_size=data_parallel_size,
                       model_dir=model_dir, **(vllm_options or {}))
    opened = open_backend(backend, model_or_path, **options)
    model_config = getattr(model_or_path[0], "config", None) if isinstance(model_or_path, (tuple, list)) else None
    return Engine(opened, model_label(model_or_path, model_name), model_config,
                  dict(backend=backend, batch_size=batch_size, tensor_parallel_size=tensor_parallel_size,
                       data_parallel_size=data_parallel_size, model_dir=model_dir, vllm_options=vllm_options))
