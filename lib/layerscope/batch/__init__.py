"""Sweeps: grids of notebooks x parameters run with papermill, results table, gallery.

The top floor of the package (README: Layout): it may import the studies, nothing imports it.

* ``grid`` — YAML grid files -> notebooks x parameter sets, validated against each notebook's
  ``parameters`` cell before anything runs; run keys;
* ``runner`` — one run: papermill in a child process, atomic finish, marker, threads per run;
* ``sweep`` — plan, skip finished runs, run the rest (local workers), table and gallery;
* ``dask_backend`` — the same runs on ``dask.distributed`` (LocalCluster or a scheduler);
* ``table`` — one row per run (CSV, Parquet); ``gallery`` (+ ``gallery_page``, the Jinja2
  templates in ``resources/templates``) — static HTML with one local plotly.js per sweep;
* ``command`` — ``layerscope sweep`` / ``gallery`` / ``main`` (``--dry-run``: what would run),
  light to import; ``execute`` — a run's process.

A run is named by its notebook (entry) *and* its key: two notebooks run with the same
parameters have the same key (``runner.Run.label()``: ``<notebook>/<key>``).

Light on purpose (no imports here): a run's child process imports ``batch.execute`` only.
"""


def main(argv: list[str] | None = None) -> int:
    """``python -m layerscope.batch sweep|gallery ...`` (see ``batch.command``)."""
    from .command import main as command_main

    return command_main(argv)
