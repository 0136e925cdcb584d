"""MLflow's prompt registry: one registry version per distinct prompt text."""

from __future__ import annotations

import mlflow

from nova_mlflow.tracking.runs import tracking_uri


def ensure_registered(name: str, template: str, sha256: str, version_label: str,
                      description: str = "") -> str:
    """URI of a registry version holding exactly this text; registers one only if none does.

    Call it outside a run: loading versions inside a run would link every one of them.
    """
    tracking_uri()
    latest = mlflow.genai.load_prompt(f"prompts:/{name}@latest", allow_missing=True)
    if latest is not None:
        for v in range(int(latest.version), 0, -1):
            pv = latest if v == int(latest.version) else mlflow.genai.load_prompt(
                f"prompts:/{name}/{v}", allow_missing=True)
            if pv is not None and (pv.tags or {}).get("nova.sha256") == sha256:
                return f"prompts:/{name}/{pv.version}"
    pv = mlflow.genai.register_prompt(
        name=name, template=template,
        commit_message=f"{version_label}: {description}"[:500],
        tags={"nova.version": version_label, "nova.sha256": sha256})
    return f"prompts:/{name}/{pv.version}"
