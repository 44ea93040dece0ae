"""An LLM judge behind any OpenAI-compatible chat-completions endpoint, for the ``s1-harness`` protocol.

The harness arXiv 2604.25098 graded with (s1's lm-evaluation-harness fork, ``tasks/openai_math/utils.py``,
``tasks/gpqa/openai/utils.py``) asks gpt-4o-mini, at temperature 0.5 and at most 1024 tokens, which option an
extracted answer matches. Here the judge is whatever the user names: ``JudgeConfig(base_url, model,
api_key_env)``, e.g. OpenAI's ``https://api.openai.com/v1`` with ``gpt-4o-mini`` as the paper, or a local
``vllm serve`` at ``http://127.0.0.1:8000/v1``. The prompts are theirs, verbatim, in ``judge_prompts.json``
(each with the repository, commit and file it was copied from).

Differences from their sampler, on purpose: theirs retries every error forever with exponential back-off
(a missing API key hangs the evaluation); this one makes ``retries`` more attempts with a ``timeout_s``
limit each, then raises ``JudgeError`` naming the endpoint; a named ``api_key_env`` that is not set fails
before any request. Like theirs, an HTTP 400 (bad request) answers "" instead of raising. Every answer is
cached on disk, one small JSON file per (model, temperature, max_tokens, seed, prompt) under
``cache_dir``, written atomically, so a rerun or a second grading process asks nothing twice; at
temperature 0.5 the cache is also what makes a regraded record reproducible.
"""
from __future__ import annotations

import hashlib
import json
import os
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from .. import paths

PROMPTS_FILE = Path(__file__).with_name("judge_prompts.json")


class JudgeError(RuntimeError):
    """The judge cannot answer: no API key, unreachable endpoint, or a malformed reply."""


@lru_cache(maxsize=1)
def judge_prompts() -> dict:
    """The harness's judge prompts by name (math, aime, amc, gpqa, gpqa_question, gpqa_prompt): {task, source, template}."""
    return {k: v for k, v in json.loads(PROMPTS_FILE.read_text(encoding="utf-8")).items() if not k.startswith("_")}


def prompts_hash() -> str:
    """A short hash of every judge template: part of the record key, so an edited prompt regrades."""
    text = json.dumps({k: v["template"] for k, v in judge_prompts().items()}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


@dataclass(frozen=True)
class JudgeConfig:
    """Where and how to ask the judge. ``temperature`` 0.5 and ``max_tokens`` 1024 are the harness's values."""

    base_url: str
    model: str
    api_key_env: str | None = None  # name of the environment variable holding the key (None: no key, a local server)
    temperature: float = 0.5
    max_tokens: int = 1024
    seed: int | None = None         # sent as the request's ``seed`` when given (the harness sends none)
    timeout_s: float = 60.0         # per attempt
    retries: int = 2                # further attempts after a failed one (connection errors, 429, 5xx)
    cache_dir: str | None = None    # default: paths.RESULTS_DIR / "judge-cache"

    def __post_init__(self) -> None:
        checks = [
            (str(self.base_url).startswith(("http://", "https://")),
             f"base_url={self.base_url!r} must be an http(s) URL ending before /chat/completions, e.g. "
             "'https://api.openai.com/v1' or 'http://127.0.0.1:8000/v1'"),
            (bool(str(self.model).strip()), "model is empty; name the judge model, e.g. 'gpt-4o-mini'"),
            (0 <= self.temperature <= 2, f"temperature={self.temperature} must be in [0, 2] (the harness uses 0.5)"),
            (self.max_tokens >= 1, f"max_tokens={self.max_tokens} must be >= 1 (the harness uses 1024)"),
            (self.timeout_s > 0, f"timeout_s={self.timeout_s} must be > 0 seconds"),
            (0 <= self.retries <= 10, f"retries={self.retries} must be in 0..10 (a bounded number of retries)"),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(f"JudgeConfig: {message}")

    @classmethod
    def from_dict(cls, raw: dict | JudgeConfig | None) -> JudgeConfig | None:
        """A config from a study's / notebook's ``judge`` mapping; None or {} means no judge."""
        if raw is None or isinstance(raw, JudgeConfig):
            return raw
        if not isinstance(raw, dict):
            raise ValueError(f"judge={raw!r} must be a mapping like {{base_url: ..., model: ..., api_key_env: ...}}")
        if not raw:
            return None
        allowed = {f for f in cls.__dataclass_fields__}
        unknown = sorted(set(raw) - allowed)
        if unknown or "base_url" not in raw or "model" not in raw:
            raise ValueError(f"judge keys {sorted(raw)}: unknown {unknown}, base_url and model required; "
                             f"allowed: {sorted(allowed)}")
        return cls(**raw)

    def describe(self) -> dict:
        """What changes a judge's answers (for the record key): never the key itself, nor timeouts."""
        return {"base_url": self.base_url.rstrip("/"), "model": self.model, "temperature": self.temperature,
                "max_tokens": self.max_tokens, "seed": self.seed, "prompts": prompts_hash()}

    # ---------------------------------------------------------------------------------------- requests
    def _headers(self) -> dict:
        headers = {"Content-Type": "application/json"}
        if self.api_key_env:
            key = os.environ.get(self.api_key_env)
            if not key:
                raise JudgeError(f"the judge's API key variable {self.api_key_env} is not set; export it, or set "
                                 "judge.api_key_env to null for a server without keys (a local vllm serve)")
            headers["Authorization"] = f"Bearer {key}"
        return headers

    def _url(self, path: str) -> str:
        return self.base_url.rstrip("/") + path

    def check(self) -> None:
        """Fail fast before a sweep: the key is set and ``GET {base_url}/models`` answers within ``timeout_s``."""
        request = urllib.request.Request(self._url("/models"), headers=self._headers())
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as reply:
                reply.read()
        except (urllib.error.URLError, OSError) as error:
            raise JudgeError(f"judge endpoint {self.base_url} does not answer ({error}); start the server or fix "
                             "judge.base_url, or drop `judge` to grade s1-harness with the offline fallback") from None

    def _cache_path(self, prompt: str) -> Path:
        identity = json.dumps({"model": self.model, "temperature": self.temperature, "max_tokens": self.max_tokens,
                               "seed": self.seed, "prompt": prompt}, sort_keys=True)
        digest = hashlib.sha256(identity.encode()).hexdigest()
        root = Path(self.cache_dir) if self.cache_dir else paths.RESULTS_DIR / "judge-cache"
        return root / digest[:2] / f"{digest}.json"

    def ask(self, prompt: str) -> str:
        """The judge's reply to one user message (cached), exactly as returned (the harness does not strip it)."""
        cached = self._cache_path(prompt)
        if cached.is_file():
            return json.loads(cached.read_text(encoding="utf-8"))["reply"]
        reply = self._post(prompt)
        cached.parent.mkdir(parents=True, exist_ok=True)
        tmp = cached.with_suffix(f".{os.getpid()}.tmp")
        # The prompt is not stored: a GPQA prompt holds the question, which must never sit in plain text.
        tmp.write_text(json.dumps({"model": self.model, "reply": reply}), encoding="utf-8")
        os.replace(tmp, cached)
        return reply

    def _post(self, prompt: str) -> str:
        body = {"model": self.model, "messages": [{"role": "user", "content": prompt}],
                "temperature": self.temperature, "max_tokens": self.max_tokens}
        if self.seed is not None:
            body["seed"] = self.seed
        request = urllib.request.Request(self._url("/chat/completions"), data=json.dumps(body).encode(),
                                         headers=self._headers(), method="POST")
        last = None
        for attempt in range(self.retries + 1):
            if attempt:
                time.sleep(min(2.0 ** (attempt - 1), 8.0))
            try:
                with urllib.request.urlopen(request, timeout=self.timeout_s) as reply:
                    payload = json.loads(reply.read().decode("utf-8"))
                return _content(payload, self.base_url)
            except urllib.error.HTTPError as error:
                if error.code == 400:  # the harness answers "" to a bad request and moves on
                    return ""
                if error.code in (401, 403, 404):
                    raise JudgeError(f"judge endpoint {self.base_url} refused the request (HTTP {error.code}: "
                                     f"{error.reason}); check judge.model={self.model!r} and the API key") from None
                last = f"HTTP {error.code} {error.reason}"
            except (urllib.error.URLError, OSError, ValueError) as error:
                last = str(error)
        raise JudgeError(f"judge endpoint {self.base_url} failed {self.retries + 1} time(s), last: {last}; start the "
                         "server or fix judge.base_url, or drop `judge` to grade with the offline fallback")


def _content(payload: dict, where: str) -> str:
    try:
        content = payload["choices"][0]["message"]["content"]
    except (KeyError, IndexError, TypeError):
        raise JudgeError(f"judge endpoint {where} answered without choices[0].message.content: "
                         f"{str(payload)[:200]}; is it a chat-completions endpoint?") from None
    return "" if content is None else str(content)
