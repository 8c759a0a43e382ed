"""Sizing and cost arithmetic: compute-optimal tokens, training FLOPs, GPU-hours, money, energy."""

from __future__ import annotations

import math
from dataclasses import dataclass

from models.config import ModelConfig
from models.flops import parameter_count, training_flops_per_token

TOKENS_PER_PARAMETER = 20  # Hoffmann et al. (2022), "Chinchilla"


@dataclass(frozen=True)
class Accelerator:
    name: str
    peak_flops: float  # dense bf16, per GPU
    watts: float  # board power at load


GPUS = (Accelerator("A100", 312e12, 400.0), Accelerator("H100", 989e12, 700.0))


@dataclass(frozen=True)
class Plan:
    parameters: int
    tokens: float
    flops_per_token: float
    training_flops: float
    exact: bool  # False when only a parameter count was given (6N per token, no attention)

    def gpu_hours(self, gpu: Accelerator, mfu: float) -> float:
        return self.training_flops / (gpu.peak_flops * mfu) / 3600

    def energy_mwh(self, gpu: Accelerator, mfu: float, pue: float) -> float:
        return self.gpu_hours(gpu, mfu) * gpu.watts * pue / 1e6


def plan_model(cfg: ModelConfig, vocab_size: int, seq_len: int, tokens: float | None = None) -> Plan:
    """Exact counts for a configured shape; tokens default to the compute-optimal 20 per parameter."""
    n = parameter_count(cfg, vocab_size, seq_len)
    tokens = float(tokens if tokens is not None else TOKENS_PER_PARAMETER * n)
    per_token = float(training_flops_per_token(cfg, vocab_size, seq_len))
    return Plan(n, tokens, per_token, per_token * tokens, exact=True)


def plan_parameters(parameters: float, tokens: float | None = None) -> Plan:
    """The 6N-per-token approximation, for a bare parameter count."""
    tokens = float(tokens if tokens is not None else TOKENS_PER_PARAMETER * parameters)
    return Plan(int(parameters), tokens, 6.0 * parameters, 6.0 * parameters * tokens, exact=False)


def plan_budget(flops: float) -> Plan:
    """Compute-optimal split of a FLOP budget: C = 6 N D with D = 20 N."""
    n = math.sqrt(flops / (6 * TOKENS_PER_PARAMETER))
    return plan_parameters(n, TOKENS_PER_PARAMETER * n)


def describe(plan: Plan, mfu: float, price_per_gpu_hour: float, price_per_mwh: float, pue: float) -> str:
    lines = [
        f"parameters:          {plan.parameters:,}",
        f"training tokens:     {plan.tokens:,.0f}",
        f"FLOPs per token:     {plan.flops_per_token:,.0f}"
        + ("" if plan.exact else "  (6N approximation: attention not counted)"),
        f"training FLOPs:      {plan.training_flops:.3e}",
        f"at {mfu:.0%} model-FLOPs utilisation, PUE {pue}:",
    ]
    for gpu in GPUS:
        hours = plan.gpu_hours(gpu, mfu)
        mwh = plan.energy_mwh(gpu, mfu, pue)
        lines.append(
            f"  {gpu.name}: {hours:,.0f} GPU-hours, ${hours * price_per_gpu_hour:,.0f} at "
            f"${price_per_gpu_hour}/GPU-hour, {mwh:,.1f} MWh (${mwh * price_per_mwh:,.0f} at ${price_per_mwh}/MWh)"
        )
    return "\n".join(lines)
