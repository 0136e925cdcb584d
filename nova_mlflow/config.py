"""Every option of every command, as pydantic models with extra="forbid" (a typo fails loudly).

The CLI turns flags into these objects and the Python API takes the same names as keyword
arguments, so both paths validate the same way. Nothing here does work: the pipeline reads
them. RunConfig stays flat because it is logged (config/run_config.json) and kept with a
run whose results wait for `sync`; older files must still load.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from nova_mlflow.schemas import ALL_TASKS, Frame, GenerationSettings, Task

DEFAULT_RESAMPLES = 2000
DEFAULT_SEED = 20250514  # NOVA's arXiv date; a fixed seed makes every figure reproducible


class RetryPolicy(BaseModel):
    """How often and how patiently a failed provider call is tried again."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    max_retries: int = Field(6, ge=0, le=50)
    base_delay: float = Field(1.0, ge=0.0)  # seconds; doubles each attempt
    max_delay: float = Field(60.0, ge=0.0)
    timeout: float = Field(120.0, gt=0.0)  # per attempt

    def delay(self, attempt: int, retry_after: float | None, rng: random.Random) -> float:
        """Full jitter (uniform 0..base*2^attempt), never less than the server's Retry-After."""
        backoff = rng.uniform(0, min(self.max_delay, self.base_delay * (2 ** attempt)))
        return min(self.max_delay, max(backoff, retry_after or 0.0))


class CallOptions(BaseModel):
    """How provider calls are made: in flight at once, retries, rate, cache, progress bar."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    concurrency: int = Field(8, ge=1, le=512)
    retry: RetryPolicy = RetryPolicy()
    rpm: float | None = Field(None, gt=0)
    refresh: bool = False  # ask again and overwrite cached answers
    progress: bool = True


class RunConfig(BaseModel):
    """The flags of `nova-mlflow run` (and of each child of a sweep)."""

    model_config = ConfigDict(extra="forbid")

    data: str = "demo"
    images: str | None = None
    model: str = "baseline"
    frame: Frame | None = None
    tasks: tuple[Task, ...] = ALL_TASKS
    prompts: dict[Task, str] = Field(default_factory=dict)
    limit: int | None = Field(None, gt=0)
    concurrency: int = Field(8, ge=1, le=512)
    judge: str = "none"
    experiment: str | None = None
    run_name: str | None = None
    settings: GenerationSettings = GenerationSettings()
    progress: bool = True
    base_url: str | None = None
    api_key_env: str | None = None  # the variable holding the key (its name, never its value)
    retry: RetryPolicy = RetryPolicy()
    rpm: float | None = Field(None, gt=0)
    use_cache: bool = True
    refresh: bool = False
    prices: str | None = None
    traces: bool = True  # one MLflow trace per call + per-case assessments

    def call_options(self) -> CallOptions:
        return CallOptions(concurrency=self.concurrency, retry=self.retry, rpm=self.rpm,
                           refresh=self.refresh, progress=self.progress)


class SweepConfig(BaseModel):
    """`nova-mlflow sweep`: the run flags shared by every child, the models, the prompt grid."""

    model_config = ConfigDict(extra="forbid")

    run: RunConfig = RunConfig()
    models: list[str] = Field(min_length=1)
    prompt_grid: dict[Task, list[str]] = Field(default_factory=dict)  # task -> versions to sweep


class EvaluateConfig(BaseModel):
    """`nova-mlflow evaluate`: answers produced elsewhere (a file or an earlier run)."""

    model_config = ConfigDict(extra="forbid")

    data: str
    outputs: Path | None = None
    from_run: str | None = None  # re-score the answers logged by this MLflow run
    images: str | None = None
    model: str | None = None
    frame: Frame | None = None
    judge: str = "none"
    experiment: str | None = None
    run_name: str | None = None
    traces: bool = True  # an MLflow trace per judge call (the only provider calls here)


class CompareConfig(BaseModel):
    """`nova-mlflow compare`: which runs, against which baseline, and the statistics."""

    model_config = ConfigDict(extra="forbid")

    experiment: str | None = None
    runs: list[str] = Field(default_factory=list)
    baseline: str | None = None
    metrics: list[str] = Field(default_factory=list)  # empty: every metric the tables allow
    log: bool = True
    resamples: int = Field(DEFAULT_RESAMPLES, ge=100, le=100_000)
    seed: int = DEFAULT_SEED
    adjust: Literal["holm", "bh", "none"] = "holm"  # over all metric x run tests
    alpha: float = Field(0.05, gt=0.0, lt=1.0)  # of the MDE (and of "significant" in plots)
    p_method: Literal["wald", "bootstrap"] = "wald"  # analysis/stats.py says why
    allow_mismatch: bool = False  # compare runs that differ in data, scorer or versions


class GateConfig(BaseModel):
    """`nova-mlflow gate`: the run to register and the evidence promotion needs."""

    model_config = ConfigDict(extra="forbid")

    run_id: str = Field(min_length=1)
    registered_model: str = Field(min_length=1)
    metrics: list[str] = Field(default_factory=list)
    min_delta: float = Field(0.0, ge=0.0)
    alpha: float = Field(0.05, gt=0.0, lt=1.0)
    resamples: int = Field(DEFAULT_RESAMPLES, ge=100, le=100_000)
    seed: int = DEFAULT_SEED
    adjust: Literal["holm", "bh", "none"] = "holm"  # over the gated metrics
    allow_mismatch: bool = False
    dry_run: bool = False  # decide and report; register, alias and tag nothing
