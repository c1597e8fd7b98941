"""The merge planner's cost model: pure arithmetic on module shapes (no torch, no model).

See :mod:`clm.core.merge` for the rule it implements and for the merge itself.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

Mode = Literal["fused", "merged"]
#: Rough machine balance in FLOPs per weight read (fp32): a few CPU cores do ~20, a datacenter
#: GPU ~100 (fp32) to ~500 (bf16 tensor cores). Only the order of magnitude matters here.
BALANCE = {"cpu": 20.0, "cuda": 200.0}


@dataclass(frozen=True)
class Plan:
    """What :func:`plan` decided, with the two costs it compared (in weight-read units)."""

    mode: Mode
    fused_cost: float
    merge_cost: float
    reason: str


def plan(
    shapes: Sequence[tuple[int, int, int]],
    *,
    settings: int,
    rows: int,
    prompt_tokens: int,
    new_tokens: int,
    quantized: bool = False,
    balance: float = BALANCE["cpu"],
) -> Plan:
    """Choose the fused path or a merge for one generation job.

    Args:
        shapes: (d_in, d_out, R live rank components) per adapted module.
        settings: number of distinct settings among the rows (merging needs exactly 1).
        rows: batch rows; prompt_tokens: prompt length; new_tokens: tokens to generate.
        quantized: the base is 4-bit (never merged).
        balance: β, FLOPs per weight read in the same time (see :data:`BALANCE`).

    Returns:
        A :class:`Plan`: ``"merged"`` iff one shared setting, a float base, and merging is cheaper.
    """
    steps = [rows * prompt_tokens] + [rows] * new_tokens  # tokens per forward step: prefill, decode
    fused = sum(max(2 * n * r * (i + o) / balance, r * (i + o)) for i, o, r in shapes for n in steps)
    merge = sum(max(2 * i * o * r / balance, 4 * i * o) for i, o, r in shapes if r)
    if quantized:
        return Plan("fused", fused, merge, "4-bit base: cannot merge in place and restore bit-exactly")
    if settings != 1:
        return Plan("fused", fused, merge, f"{settings} distinct settings in the batch; a merge serves one")
    if fused == 0:
        return Plan("fused", fused, merge, "every coefficient is 0: nothing to merge")
    if merge < fused:
        return Plan("merged", fused, merge, f"merging costs {merge / fused:.2f}x the fused path's extra work")
    return Plan("fused", fused, merge, f"merging would cost {merge / fused:.2f}x the fused path's extra work")
