"""Lexicalization analysis: how close a term sits to its identifier in an embedding space.

The study explains why fine-tuning generalizes for genes but not for GO or HPO by
*lexicalization*: a gene symbol is a meaningful token close to its name, a GO/HPO identifier is
not. ``termnorm lexicalization`` measures that per mapping on the shipped splits, with a
sentence-transformers model or with the causal LM under study.
"""
