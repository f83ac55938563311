"""termnorm-eval: biomedical term normalization tasks for lm-evaluation-harness."""

__version__ = "0.1.0"
