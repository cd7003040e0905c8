"""Extractive question answering (SQuAD; Rajpurkar et al. 2016): the official v1.1 metrics, a
reader of SQuAD-format JSON, and the windowing of long contexts with the mapping of answers to
tokens and back. Pure: strings and arrays in, strings and arrays out; no model is loaded here."""
