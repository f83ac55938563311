"""Benchmark tasks for any OBO ontology (``termnorm add-ontology``), also usable from Python::

    from termnorm_eval.ontology import add_ontology

    result = add_ontology("cl.obo", name="cl", out="out/cl")          # uniform sample, no annotations
    result.tasks          # ['termnorm_cl_term2id_train', 'termnorm_cl_term2id_val', ...]
    result.problems       # {'ambiguous_name': 2, 'obsolete': 99, ...}
    result.lm_eval_command("HuggingFaceTB/SmolLM2-135M-Instruct")

See ``add_ontology`` for every parameter and ``add`` for the output layout.
"""

from __future__ import annotations

from termnorm_eval.ontology.add import PROBLEM_TEXT, UNIFORM, AddOntologyResult, add_ontology
from termnorm_eval.ontology.annotations import FORMATS as ANNOTATION_FORMATS

__all__ = ["ANNOTATION_FORMATS", "PROBLEM_TEXT", "UNIFORM", "AddOntologyResult", "add_ontology"]
