"""A user's own mentions as tasks (``termnorm add-mentions``), also usable from Python::

    from termnorm_eval.user_mentions.add import add_mentions

    result = add_mentions("corpus.tsv", "hpo", name="mycorpus", out="out/mycorpus")
    result.outcomes       # {'scored': 26, 'unknown': 1, 'obsolete': 1, 'duplicate': 2, ...}
    result.tasks          # ['termnorm_mycorpus_mention2id_test']

``table`` reads the file (its shape and bounds), ``resolve`` checks every row against the
terminology's release index (the outcomes, notes and forms counted), ``add`` writes the folder.
"""
