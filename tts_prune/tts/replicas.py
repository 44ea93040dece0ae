"""Data-parallel vLLM: ``replicas`` engine processes on disjoint GPU sets, driven as one step engine.

vLLM's ``LLM(data_parallel_size>1)`` refuses to run in one process (it points to a multi-process example), so
``vllm_backend.VLLMBackend(data_parallel_size=N)`` runs N replicas here, each stepping its own engine
continuously; a job's requests follow its first one to its replica, where its thinking prefix is cached.
"""
from __future__ import annotations

from .stream import Request, as_step_engine, run_to_completion


def _serve(conn, factory, path: str, devices: str | None) -> None:
    """One data-parallel replica: its own process and GPUs, stepping its engine while it has work.

    Messages: ``("add", request_id, prompt_ids, request)``, ``("abort", request_ids)``, ``None`` (stop). Between
    steps the replica reads every message waiting (without blocking); with nothing to do it blocks on the pipe.
    Each step that finishes requests sends ``[(request_id, token_ids), ...]`` back."""
    import os

    if devices is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = devices
    engine = as_step_engine(factory(path))
    context = getattr(engine, "max_model_len", None)
    conn.send(("ready", context))
    while True:
        while not engine.has_unfinished() or conn.poll():
            message = conn.recv()
            if message is None:
                engine.close()
                return
            kind, *args = message
            if kind == "add":
                engine.add(*args)
            else:
                engine.abort(*args)
        try:
            done = engine.step()
        except Exception as error:  # sent back and raised in the parent, with the replica's message
            conn.send(RuntimeError(f"data-parallel replica on devices {devices}: {error!r}"))
            while conn.recv() is not None:  # broken: ignore further requests until told to stop
                pass
            return
        if done:
            conn.send(done)


class DataParallelEngine:
    """``replicas`` engines, one process each, on disjoint GPU sets of ``gpus_per_replica``, as one step engine.

    vLLM's ``LLM(data_parallel_size>1)`` refuses to run in one process (it points to a multi-process example),
    so the replicas are separate processes here. Each runs its engine continuously (``_serve``); a job's first
    request goes to the replica with the fewest unfinished requests and the job's later requests (its "Wait"
    rounds and answers) follow it there, where its thinking prefix is cached.
    """

    def __init__(self, path: str, replicas: int, factory, gpus_per_replica: int = 1):
        import multiprocessing
        import os

        import torch

        visible = os.environ.get("CUDA_VISIBLE_DEVICES")
        gpus = visible.split(",") if visible else [str(i) for i in range(torch.cuda.device_count())]
        if gpus and len(gpus) < replicas * gpus_per_replica:
            raise ValueError(f"data_parallel_size={replicas} x tensor_parallel_size={gpus_per_replica} needs "
                             f"{replicas * gpus_per_replica} GPUs, {len(gpus)} are visible; lower one of them")
        context = multiprocessing.get_context("spawn")
        self.workers = []
        for i in range(replicas):
            devices = ",".join(gpus[i * gpus_per_replica:(i + 1) * gpus_per_replica]) if gpus else None
            parent, child = context.Pipe()
            process = context.Process(target=_serve, args=(child, factory, path, devices), daemon=True)
            process.start()
            self.workers.append((process, parent))
        self.max_model_len = min((self._receive(conn)[1] or 0 for _, conn in self.workers), default=0) or None
        self.owner: dict[str, int] = {}      # request id -> replica
        self.home: dict[int, int] = {}       # group -> replica
        self.load = [0] * replicas           # unfinished requests per replica

    @staticmethod
    def _receive(conn):
        answer = conn.recv()
        if isinstance(answer, BaseException):
            raise answer
        return answer

    def add(self, request_id: str, prompt_ids: list[int], request: Request, group: int = 0) -> None:
        replica = self.home.setdefault(group, min(range(len(self.workers)), key=self.load.__getitem__))
        self.workers[replica][1].send(("add", request_id, list(prompt_ids), request))
        self.owner[request_id] = replica
        self.load[replica] += 1

    def step(self) -> list[tuple[str, list[int]]]:
        """Wait until some replica finished requests; every finished request that has arrived."""
        from multiprocessing.connection import wait

        if not self.owner:
            return []
        done = []
        for conn in wait([conn for _, conn in self.workers]):
            while conn.poll():
                for request_id, ids in self._receive(conn):
                    replica = self.owner.pop(request_id, None)
                    if replica is not None:  # else aborted while it finished: nobody waits for it
                        self.load[replica] -= 1
                        done.append((request_id, ids))
        return done

    def has_unfinished(self) -> bool:
        return bool(self.owner)

    def abort(self, request_ids) -> None:
        by_replica: dict[int, list[str]] = {}
        for request_id in request_ids:
            if request_id in self.owner:
                replica = self.owner.pop(request_id)
                self.load[replica] -= 1
                by_replica.setdefault(replica, []).append(request_id)
        for replica, ids in by_replica.items():
            self.workers[replica][1].send(("abort", ids))

    def generate(self, prompts_ids: list[list[int]], requests: list[Request]) -> list[list[int]]:
        return run_to_completion(self, prompts_ids, requests)

    def close(self, timeout_s: float = 120) -> None:
        """Stop every replica: each closes its engine and exits; one that has not exited after ``timeout_s``
        (hung, or already dead) is terminated, so no replica process keeps its GPUs after the cell."""
        workers, self.workers = self.workers, []
        for _, conn in workers:
            try:
                conn.send(None)
            except (BrokenPipeError, OSError):  # the replica is gone already
                pass
        for process, conn in workers:
            process.join(timeout=timeout_s)
            if process.is_alive():
                process.terminate()
                process.join(timeout=10)
            conn.close()
