"""AdaLoRA's rank allocator: EMA importance scores and the cubic budget schedule."""

from __future__ import annotations

import mlx.core as mx

from .config import AdaLoRAConfig
from .layers import SVDLinear

PARTS = ("lora_A", "lora_E", "lora_B")


class RankAllocator:
    """Reallocates the global rank budget across :class:`SVDLinear` modules.

    Importance of a parameter is ``|w * grad|`` (sensitivity), smoothed by an EMA
    (``beta1``) and multiplied by the EMA of its deviation (uncertainty, ``beta2``). A
    triplet's score is its singular value's score plus the mean scores of its row of A
    and its column of B; the lowest-scoring triplets have their singular value zeroed.

    Args:
        config: The AdaLoRA config (``total_step`` must be set).
        modules: ``{module path: SVDLinear}`` in a fixed order.

    Example:
        >>> from metapeft_optuna.peft.adalora import AdaLoRAConfig
        >>> config = AdaLoRAConfig(init_r=8, target_r=2, tinit=2, tfinal=2, total_step=12)
        >>> RankAllocator(config, {"a": None}).budget_schedule(12)
        (2, True)
    """

    def __init__(self, config: AdaLoRAConfig, modules: dict[str, SVDLinear]):
        self.config = config
        self.modules = modules
        self.init_budget = config.init_r * len(modules)
        self.target_budget = config.target_r * len(modules)
        self.exp_avg_ipt: dict[str, mx.array] = {}
        self.exp_avg_unc: dict[str, mx.array] = {}
        self.rank_pattern: dict[str, mx.array] | None = None

    def budget_schedule(self, step: int) -> tuple[int, bool]:
        """``(budget, reallocate now)`` after ``step`` optimizer steps (cubic decay)."""
        cfg = self.config
        if step <= cfg.tinit:
            return self.init_budget, False
        if step > cfg.total_step - cfg.tfinal:
            return self.target_budget, True
        progress = (step - cfg.tinit) / (cfg.total_step - cfg.tfinal - cfg.tinit)
        budget = int(
            (self.init_budget - self.target_budget) * (1 - progress) ** 3 + self.target_budget
        )
        return budget, step % cfg.delta_t == 0

    def update_importance(self, gradients: dict[str, mx.array]) -> None:
        """Update the smoothed sensitivity and uncertainty from one step's gradients."""
        beta1, beta2 = self.config.beta1, self.config.beta2
        for path, module in self.modules.items():
            for part in PARTS:
                key = f"{path}.{part}"
                ipt = mx.abs(module[part] * gradients[key])
                avg = self.exp_avg_ipt.get(key, mx.zeros_like(ipt))
                unc = self.exp_avg_unc.get(key, mx.zeros_like(ipt))
                avg = beta1 * avg + (1 - beta1) * ipt
                self.exp_avg_ipt[key] = avg
                self.exp_avg_unc[key] = beta2 * unc + (1 - beta2) * mx.abs(ipt - avg)

    def triplet_scores(self) -> dict[str, mx.array]:
        """Per module, one score per rank-one triplet (shape ``(r,)``)."""

        def score(key: str) -> mx.array:
            return self.exp_avg_ipt[key] * self.exp_avg_unc[key]

        return {
            path: (
                score(f"{path}.lora_E").reshape(-1)
                + score(f"{path}.lora_A").mean(axis=1)
                + score(f"{path}.lora_B").mean(axis=0)
            )
            for path in self.modules
        }

    def mask_to_budget(self, budget: int) -> dict[str, mx.array]:
        """Zero the singular values of all but the ``budget`` best triplets."""
        scores = self.triplet_scores()
        n_drop = self.init_budget - budget
        if n_drop <= 0:
            pattern = {p: mx.ones(s.shape, dtype=mx.bool_) for p, s in scores.items()}
        else:
            threshold = mx.sort(mx.concatenate(list(scores.values())))[n_drop - 1]
            pattern = {p: s > threshold for p, s in scores.items()}
        self.apply_pattern(pattern)
        return pattern

    def apply_pattern(self, pattern: dict[str, mx.array]) -> None:
        for path, keep in pattern.items():
            module = self.modules[path]
            module.lora_E = mx.where(keep[:, None], module.lora_E, 0.0)

    def step(self, step: int, gradients: dict[str, mx.array]) -> int:
        """Run AdaLoRA's per-step update (HF's ``update_and_allocate``); returns the budget."""
        final_start = self.config.total_step - self.config.tfinal
        if step < final_start:
            self.update_importance(gradients)
            budget, reallocate = self.budget_schedule(step)
            if reallocate:
                self.rank_pattern = self.mask_to_budget(budget)
            return budget
        if step == final_start or self.rank_pattern is None:
            self.update_importance(gradients)
            self.rank_pattern = self.mask_to_budget(self.target_budget)
            self.exp_avg_ipt.clear()
            self.exp_avg_unc.clear()
        else:
            self.apply_pattern(self.rank_pattern)
        return self.target_budget
