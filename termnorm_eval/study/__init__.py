"""``termnorm study``: the 2025 study's whole design as one resumable command.

``config`` declares every setting (``StudyConfig``), ``steps`` builds the list of steps from it
(base evaluation, one LoRA per terminology, adapter evaluations, the epoch sweep, the
lexicalization analysis, the report), ``records`` decides which steps are finished (each step's
folder carries a record of its inputs), ``pipeline`` runs them in order under the study folder's
lock (under a launcher: the first process decides, all train; ``termnorm_eval.processes``), and
``report`` writes report.md with the accuracy-vs-epochs memorization curve.
"""
