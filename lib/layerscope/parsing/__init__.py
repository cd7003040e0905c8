"""Dependency parsing (Dozat & Manning 2017, as Merchant et al. 2020 fine-tune it): tree
decoders (Chu-Liu/Edmonds, Eisner), UAS/LAS and the biaffine arc and label scorer.

Heads convention everywhere: a sentence of n words is a heads array [n] of ints where
heads[i - 1] is the head of word i (1-based, as in CoNLL-U) and 0 is the artificial ROOT. Score
matrices are [n + 1, n + 1] indexed [dependent, head], row/column 0 being ROOT (as SuPar and
the biaffine scorer lay them out)."""
