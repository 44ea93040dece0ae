"""A data-parallel replica engine whose close never returns (a wedged vLLM), in a module light enough for a
spawned replica process to import quickly."""
import time


class HangingEngine:
    def __init__(self, path):
        self.path = path

    def generate(self, prompts_ids, requests):
        return [[1] for _ in prompts_ids]

    def close(self):
        time.sleep(600)
