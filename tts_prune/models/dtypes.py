"""The one table of dtype names the kit accepts (model loading, pruning, evaluation)."""
from __future__ import annotations

import torch

# "auto" is resolved by the caller: fp32 on CPU, bf16 on GPUs when loading; the model's own when pruning.
DTYPES: dict[str, torch.dtype] = {"float32": torch.float32, "fp32": torch.float32, "bfloat16": torch.bfloat16,
                                  "bf16": torch.bfloat16, "float16": torch.float16, "fp16": torch.float16}
