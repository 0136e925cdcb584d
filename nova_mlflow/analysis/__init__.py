"""Statistics for comparing runs and gating promotion, from per-case tables (pure, no MLflow).

- stats.py: case-clustered paired bootstrap draws, CR1 / bootstrap SEs, percentile intervals,
  the t test on the paired cluster-robust SE (default) or the bootstrap p, Holm / BH
  adjustment, minimum detectable difference.
- metric_specs.py: every Table 1-3 metric as a function of case weights over the per-case
  tables' columns; `SKIPPED` lists what is not resampled and why.
- coco_resample.py: pycocotools' AP accumulation on many weighted resamples at once.
- comparison.py: `compare_tables` (what `compare --json` reports).
- gate.py: `gate` / `gate_decision` (the promotion rule).
- comparable.py: which runs may be compared (dataset, diagnosis scorer, versions).
"""

from nova_mlflow.analysis.comparison import Comparison, StatsConfig, compare_tables
from nova_mlflow.analysis.gate import GateDecision, gate, gate_decision

__all__ = ["Comparison", "GateDecision", "StatsConfig", "compare_tables", "gate", "gate_decision"]
