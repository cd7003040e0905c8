"""What two or more studies share, one floor below the studies: every study package may import
it; it imports no study (``tests/test_package.py`` checks both).

* ``evaluation``: the validation rows a fine-tuned model is evaluated on (the seeded
  subset of ``activations.task_inputs``, encoded as ``finetune.predictions`` encodes them), the
  surgery kernels run over them with the kind's head (the model itself, UNTUNED truncation at
  every depth, every span skipped) and the parity of the model itself with
  ``finetune.predictions``; studies 03 (truncation) and 04 (skipping).
* ``task_heads``: the fine-tuned head on layer k's states, one function per task kind (a
  sequence's first token, each choice, each labelled word, each word pair), the units they
  score and the features TUNED/TUNEDORIG heads read; studies 03 and 04.
* ``scoring``: ``Scorer``, a task's metric on many prediction rows at once, on all examples and
  on shared bootstrap resamples (paired intervals; token tasks resample sentences); studies 03
  and 04.
* ``intervals``: the percentile range of bootstrap replicates, and an effect's saved interval
  back into a ``base.Interval``; the studies' findings.
* ``layers``: the bottom and top thirds of the blocks that findings average over; studies 02
  and 05.
* ``records``: the record a result keeps of each fine-tuned model it used (cache key, never a
  path); studies 02-05.
* ``states``: ``State``, which weights of a model a representation set comes from (ORIG, FT of
  a seed, a snapshot at step k), keyed by the strings results save ("orig", "ft", "step-38");
  studies 02 and 05.

Elsewhere, below the studies: logits -> predictions (``metrics.predictions_from_logits``), rows
of two representation sets holding the same examples (``activations.aligned_rows``), block
structure of a layer x layer matrix (``measures.blocks.block_structure``).

May import: the plumbing and pure layers (``layerscope.*`` outside ``studies``, ``batch``,
``cli``, ``ui``) and ``studies.base`` (the result protocol). Never a study package
(``similarity``, ``truncation``, ``skipping``, ``geometry``), ``studies.training`` or
``studies.results``.
"""
