"""A batch of decoding rows in lockstep, in preallocated buffers: rows can be forked and dropped cheaply.

Every row advances one token per forward call, so all rows share one column count and each row's
keys/values, attention-mask entry and position live in slot ``i`` of buffers shaped
``(row capacity, heads, column capacity, head_dim)``. Buffers grow by doubling, so appending a token
writes in place (transformers' ``DynamicCache`` concatenates, copying the whole cache at every step),
``fork`` copies chosen rows into new slots (an answer branched off at a thinking budget is a fork, not a
deep copy of the whole cache) and ``keep`` compacts the batch when rows finish, so finished rows stop
being fed. Attention layers of any family store their states through ``update``; a sliding-window
layer keeps its full history here and the model's sliding mask hides what lies outside the window.
"""
from __future__ import annotations

import inspect

import torch
from transformers.cache_utils import Cache, DynamicLayer


def _grown(buffer: torch.Tensor, rows: int, columns: int, used_rows: int, used_columns: int) -> torch.Tensor:
    """``buffer`` with room for (rows, columns); doubles the short dimension; the used part is copied."""
    cap_rows, cap_columns = buffer.shape[0], buffer.shape[2]
    if rows <= cap_rows and columns <= cap_columns:
        return buffer
    shape = list(buffer.shape)
    shape[0] = max(rows, 2 * cap_rows) if rows > cap_rows else cap_rows
    shape[2] = max(columns, 2 * cap_columns) if columns > cap_columns else cap_columns
    bigger = buffer.new_empty(shape)
    bigger[:used_rows, :, :used_columns] = buffer[:used_rows, :, :used_columns]
    return bigger


class SlotLayer(DynamicLayer):
    """One attention layer's keys and values in growable (rows, heads, columns, dim) buffers, written in place."""

    def __init__(self, columns_hint: int = 0):
        super().__init__()
        self.columns_hint = columns_hint
        self.rows = 0
        self.length = 0

    def lazy_initialization(self, key_states: torch.Tensor, value_states: torch.Tensor) -> None:
        self.dtype, self.device = key_states.dtype, key_states.device
        rows, heads, _, _ = key_states.shape
        columns = max(self.columns_hint, key_states.shape[-2])
        self._keys = key_states.new_empty((rows, heads, columns, key_states.shape[-1]))
        self._values = value_states.new_empty((rows, value_states.shape[1], columns, value_states.shape[-1]))
        self.rows = rows
        self.is_initialized = True

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args, **kwargs):
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
        if key_states.shape[0] != self.rows:
            raise ValueError(f"{key_states.shape[0]} rows fed to a cache of {self.rows} rows; fork/keep first")
        end = self.length + key_states.shape[-2]
        self._keys = _grown(self._keys, self.rows, end, self.rows, self.length)
        self._values = _grown(self._values, self.rows, end, self.rows, self.length)
        self._keys[:self.rows, :, self.length:end] = key_states
        self._values[:self.rows, :, self.length:end] = value_states
        self.length = end
        self.keys, self.values = self._keys[:self.rows, :, :end], self._values[:self.rows, :, :end]
        return self.keys, self.values

    def get_seq_length(self) -> int:
        return self.length

    def fork(self, parents: torch.Tensor) -> None:
        """Append copies of rows ``parents`` (1-D long tensor) after the current rows."""
        total = self.rows + len(parents)
        self._keys = _grown(self._keys, total, self.length, self.rows, self.length)
        self._values = _grown(self._values, total, self.length, self.rows, self.length)
        self._keys[self.rows:total, :, :self.length] = self._keys[parents, :, :self.length]
        self._values[self.rows:total, :, :self.length] = self._values[parents, :, :self.length]
        self.rows = total

    def keep(self, rows: torch.Tensor) -> None:
        """Keep only ``rows`` (1-D long tensor, increasing), moved to the front in that order."""
        self._keys[:len(rows), :, :self.length] = self._keys[rows, :, :self.length]
        self._values[:len(rows), :, :self.length] = self._values[rows, :, :self.length]
        self.rows = len(rows)

    def crop(self, tokens_to_remove: int) -> None:
        raise NotImplementedError("rows of a RowBatch advance in lockstep; drop rows with keep() instead of cropping")

    def batch_select_indices(self, indices: torch.Tensor) -> None:
        self.keep(indices)


class RowBatch:
    """Rows decoded in lockstep: ``prefill`` left-padded prompts, then ``step`` one token per row.

    Holds the cache (one ``SlotLayer`` per attention layer), each row's attention-mask row and next
    position; ``fork`` and ``keep`` act on all three. Logits are computed for the last position only.
    """

    def __init__(self, model, columns_hint: int = 0):
        self.model = model
        self.cache = Cache(layer_class_to_replicate=lambda: SlotLayer(columns_hint))
        self.device = next(model.parameters()).device
        self._mask = torch.zeros((0, max(columns_hint, 1)), dtype=torch.long, device=self.device)
        self._next = torch.zeros(0, dtype=torch.long, device=self.device)  # next position of each row
        self.rows = 0
        self.length = 0
        self._last_only = "logits_to_keep" in inspect.signature(model.forward).parameters

    def _layers(self) -> list[SlotLayer]:
        return [layer for layer in self.cache.layers if isinstance(layer, SlotLayer)]

    def _reserve_mask(self, rows: int, columns: int) -> None:
        cap_rows, cap_columns = self._mask.shape
        if rows > cap_rows or columns > cap_columns:
            bigger = self._mask.new_zeros((max(rows, 2 * cap_rows), max(columns, 2 * cap_columns)))
            bigger[:self.rows, :self.length] = self._mask[:self.rows, :self.length]
            self._mask = bigger
            nxt = self._next.new_zeros(bigger.shape[0])
            nxt[:self.rows] = self._next[:self.rows]
            self._next = nxt

    def _forward(self, ids: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        mask = self._mask[:self.rows, :self.length]
        kwargs = {"logits_to_keep": 1} if self._last_only else {}
        out = self.model(input_ids=ids, attention_mask=mask, position_ids=positions, past_key_values=self.cache,
                         use_cache=True, **kwargs)
        return out.logits[:, -1, :]

    def prefill(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Left-padded prompts ``ids`` (R, P) with their 0/1 ``mask``: the logits (R, V) of each row's next token."""
        if self.rows:
            raise ValueError("prefill once, on an empty RowBatch")
        self._reserve_mask(ids.shape[0], ids.shape[1])
        self.rows, self.length = ids.shape
        self._mask[:self.rows, :self.length] = mask
        # Left padding: positions count real tokens only, so each row sees the positions of an unpadded run.
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        self._next[:self.rows] = mask.sum(-1)
        return self._forward(ids, positions)

    def step(self, tokens: torch.Tensor) -> torch.Tensor:
        """Feed one token per row (R,); the logits (R, V) of the next."""
        self._reserve_mask(self.rows, self.length + 1)
        self._mask[:self.rows, self.length] = 1
        self.length += 1
        positions = self._next[:self.rows, None].clone()
        self._next[:self.rows] += 1
        return self._forward(tokens[:, None], positions)

    def fork(self, parents: list[int]) -> list[int]:
        """Copy rows ``parents`` into new rows (their cache, mask and position); the new rows' indices."""
        if not parents:
            return []
        index = torch.tensor(parents, dtype=torch.long, device=self.device)
        for layer in self._layers():
            layer.fork(index)
        total = self.rows + len(parents)
        self._reserve_mask(total, self.length)
        self._mask[self.rows:total, :self.length] = self._mask[index, :self.length]
        self._next[self.rows:total] = self._next[index]
        new = list(range(self.rows, total))
        self.rows = total
        return new

    def keep(self, rows: list[int]) -> None:
        """Drop every row not in ``rows`` (increasing); the kept rows become 0..len(rows)-1 in order."""
        index = torch.tensor(rows, dtype=torch.long, device=self.device)
        for layer in self._layers():
            layer.keep(index)
        self._mask[:len(rows), :self.length] = self._mask[index, :self.length]
        self._next[:len(rows)] = self._next[index]
        self.rows = len(rows)
