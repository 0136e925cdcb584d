"""Orchestration of the commands: run, evaluate, sweep, sync, compare, gate.

Each module wires the layers below together (data, calls, scoring, report, analysis,
tracking) and holds no metric, parsing or MLflow logic of its own.
"""
