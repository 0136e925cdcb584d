"""The only package that imports mlflow: runs, traces, assessments, registries, the pyfunc.

Every MLflow internal it relies on lives in `_compat.py`, each with a public fallback. The
rest of the package calls the functions re-exported here (and the modules below by name).
"""

from nova_mlflow.tracking.prompts import ensure_registered
from nova_mlflow.tracking.runs import (
    RunLogger,
    answers_of_run,
    fail_orphaned_runs,
    get_run,
    is_unreachable,
    resume_run,
    run_ui_url,
    start_run,
    tracking_uri,
)

__all__ = ["RunLogger", "answers_of_run", "ensure_registered", "fail_orphaned_runs", "get_run",
           "is_unreachable", "resume_run", "run_ui_url", "start_run", "tracking_uri"]
