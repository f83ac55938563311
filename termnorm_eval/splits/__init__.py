"""Benchmark splits: candidates, popularity-balanced sampling, invariant checks, atomic build.

Reusable pieces (``add-ontology`` builds on them):

- ``candidates.ontology_candidates(obo, annotated, aspect=None) -> Candidates``: live, unambiguous
  terms of an ``sources.obo.read_obo`` result as records, with popularity from ``annotated``
  (term id -> set of annotated things; ``{}`` gives popularity 0 everywhere).
- ``balance.balanced_sample(ids, popularity, bins, per_bin, seed, strata=None)``: the sampler.
- ``build.sample_terminology(spec, candidates, bins, per_bin, seed, strata, popularity)
  -> BuiltTerminology``: sampler + records + leakage checks for one terminology.
- ``checks.check_split(key, train, val, gene=False, id_prefix=None)``: the invariants.
- ``build.write_build(out_dir, {key: BuiltTerminology}, parameters, sources, force)``: atomic write
  of the layout ``store`` reads.
"""
