"""Benchmark splits: candidates, popularity-balanced sampling, invariant checks, atomic build.

Reusable pieces (``add-ontology`` builds on them):

- ``candidates.ontology_candidates(obo, annotated, aspect=None, secondary=None, within=None)
  -> Candidates``: live, unambiguous terms of an ``sources.obo.read_obo`` result as records, with
  popularity from ``annotated`` (term id -> set of annotated things; ``{}`` gives popularity 0
  everywhere), its tie-break from ``secondary``, only the ids in ``within`` (a subtree:
  ``hierarchy.descendants``).
- ``balance.balanced_sample(ids, popularity, bins, per_bin, seed, strata=None, secondary=None,
  include_unannotated=False, ranked=True)``: the sampler (its docstring says how bins respect ties).
- ``build.sample_terminology(spec, candidates, bins, per_bin, seed, strata, popularity, ...)
  -> BuiltTerminology``: sampler + records + leakage checks for one terminology.
- ``checks.check_split(key, train, val, gene=False, id_prefix=None)``: the invariants.
- ``build.write_build(out_dir, {key: BuiltTerminology}, parameters, sources, force)``: atomic write
  of the layout ``store`` reads; ``datacard.card_files(manifest)``: the card and its histogram.
"""
