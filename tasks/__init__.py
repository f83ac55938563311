"""The termnorm task YAMLs for lm-evaluation-harness (installed as ``lm_eval.tasks.termnorm``).

A regular package so that the ``lm_eval.tasks`` entry point declared in pyproject.toml resolves to
a folder the harness can scan once it supports task plugins. Nothing is executed on import.
"""
