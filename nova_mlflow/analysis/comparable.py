"""Which runs may be compared: same data, same scorer, same definitions (pure, no MLflow).

Why: a paired comparison says "run B scores higher than run A on the same cases, by the same
rules". Runs on different data (dataset digests), diagnoses judged differently (the offline
matcher vs an LLM judge, or another judge model, prompt version or prompt text) or scored
under other record schemas or metric definitions measure different things, so `compare` and
`gate` refuse them unless told to go ahead (--allow-mismatch), and then say what differed.

What identifies a run (its params, else its tags, as pipeline/setup.py logs them):
- dataset: `full_dataset_digest` (the whole dataset, whatever --limit kept; runs logged
  before it existed: `dataset_digest`), so runs over different subsets of one dataset stay
  comparable on the cases they share;
- schema: `schema_version`; metric definitions: `metrics_version` (a run without one is
  version 1, schemas.METRICS_VERSION);
- diagnosis scorer, only when every run scored diagnosis: `judge` ("none": the offline
  matcher) with `judge_prompt.version` and `judge_prompt.sha256`.
"""

from __future__ import annotations

from collections.abc import Mapping

Identity = dict[str, str]  # aspect -> value

UNKNOWN = "unknown"


def _get(params: Mapping[str, str], tags: Mapping[str, str], *keys: str) -> str | None:
    for key in keys:
        for source, name in ((params, key), (tags, f"nova.{key}")):
            value = source.get(name)
            if value not in (None, "", "None"):
                return str(value)
    return None


def identity(params: Mapping[str, str], tags: Mapping[str, str], diagnosis: bool) -> Identity:
    """What must agree between compared runs (module docstring); `diagnosis`: check the
    diagnosis scorer too."""
    out = {"dataset digest": _get(params, tags, "full_dataset_digest", "dataset_digest")
           or UNKNOWN,
           "schema version": _get(params, tags, "schema_version") or UNKNOWN,
           "metric-definition version": _get(params, tags, "metrics_version") or "1"}
    if diagnosis:
        judge = _get(params, tags, "judge") or "none"
        out["diagnosis scorer"] = "offline matcher" if judge in ("none", "offline") else (
            f"judge {judge} (prompt {params.get('judge_prompt.version', '?')}, sha256 "
            f"{str(params.get('judge_prompt.sha256', '?'))[:12]})")
    return out


def mismatches(identities: Mapping[str, Identity]) -> list[str]:
    """One line per aspect on which the runs (label -> identity) differ; [] if none."""
    out = []
    aspects = dict.fromkeys(a for ident in identities.values() for a in ident)
    for aspect in aspects:
        values = {label: ident.get(aspect, UNKNOWN) for label, ident in identities.items()}
        if len(set(values.values())) > 1:
            out.append(f"{aspect} differs: " + ", ".join(f"{v} ({label})"
                                                        for label, v in values.items()))
    return out
