"""`python -m nova_mlflow` and the `nova-mlflow` command: the CLI, then a quick exit."""

import gc
import logging
import sys

from nova_mlflow.cli import main


#: (generation 0 allocations, generation 1 and 2 collections) between collections; Python's
#: defaults are (700, 10, 10)
COMMAND_GC_THRESHOLDS = (50_000, 20, 10)


def entry() -> None:
    """The `nova-mlflow` command (and `python -m nova_mlflow`): `main`, then a quick exit.

    A finished command's process still pays for tearing the interpreter down: every module
    and object freed one by one, ~0.7 s for a process that imported MLflow and more for a
    run's heap. So, once the command has returned or exited, the exit handlers run (MLflow's
    and ours flush what is left to write, temporary files are removed, logs are flushed) and
    the process ends there (`os._exit`), skipping only that teardown. An exception that
    escapes the command takes Python's normal path (traceback, exit code 1).

    The garbage collector runs less often in the command (not in the Python API: a library
    leaves its host's collector alone): with Python's default thresholds a 906-case
    `evaluate` spent 1.5 s of 11 s in ~1,300 collections, the full ones rescanning the
    objects MLflow, pandas and matplotlib keep alive; with a young generation of 50,000
    allocations it spends 0.5 s and peaks no higher (BENCHMARKS.md, "garbage collector").
    """
    gc.set_threshold(*COMMAND_GC_THRESHOLDS)
    try:
        main()
        code = 0
    except SystemExit as exc:
        if exc.code is None or isinstance(exc.code, int):
            code = exc.code or 0
        else:  # sys.exit("message"): printed, exit code 1, as Python does
            print(exc.code, file=sys.stderr)
            code = 1
    _leave(code)


def _leave(code: int) -> None:
    import atexit
    import os

    run_exit_handlers = getattr(atexit, "_run_exitfuncs", None)  # CPython's, since 3.0
    if run_exit_handlers is None:
        sys.exit(code)
    run_exit_handlers()
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(code)


if __name__ == "__main__":
    entry()
