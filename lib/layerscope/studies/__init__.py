"""The studies: one package per notebook, on one shared floor; arrows point down only.

* ``base.py``: the result protocol every study's result follows (``figure``, ``findings``,
  ``verdict``, ``to_record``, ``save``), the verdict rule and the config checks every study
  shares (seeds, ``finetuned`` checkpoints).
* ``results.py``: reading saved results back (the registry of result classes by study name,
  packed arrays, ``read_folder``).
* ``common/``: what two or more studies share (evaluation rows and kernels, paired bootstrap
  scoring, intervals, layer thirds, fine-tuning run records); see its docstring.
* ``training.py``: notebook 01 (fine-tuning) as a result of the protocol, with its findings.
* ``similarity/`` notebook 02 (CKA/RSA between layers, Phang et al. 2021 §3),
  ``truncation/`` 03 (the head on intermediate layers, §4), ``skipping/`` 04 (spans of
  blocks skipped, §4.1), ``geometry/`` 05 (DirectProbe, probes, out-of-domain; Zhou &
  Srikumar 2022): each ``run.py`` (Config + ``run_*``), ``result.py``, ``findings.py``, and
  ``plots.py`` / ``ui.py`` where the study needs its own.

Who may import what (``tests/test_package.py`` checks it): a study package imports
``base``, ``results``, ``common`` and the floors below (plumbing, ``measures``, ``plots``,
``ui``), never another study package; ``common`` imports ``base`` and the floors below, never
a study; ``base`` and ``results`` import no study (``results`` finds the result classes by
module name at read time). Nothing below ``studies`` imports it; ``batch`` and ``cli`` sit on
top.
"""
