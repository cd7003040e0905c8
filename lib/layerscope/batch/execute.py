"""Child process of one sweep run: ``python -m layerscope.batch.execute '<spec json>'``.

Executes the notebook with papermill and, when it fails, writes the exception (name, message,
cell) to ``spec["error_file"]`` for the marker. Kept free of torch and of the rest of
layerscope so that it starts fast; the notebook's kernel imports what it needs.

On Linux the process asks to be killed when its parent dies (``PR_SET_PDEATHSIG``): a Dask
worker that dies must not leave its run going on unseen (the kernel then exits too, as ipykernel
does when its parent goes), since the retried run would race with it.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import sys


def die_with_parent(parent: int) -> None:
    """Linux: SIGKILL this process when the parent dies; exit now if it already has."""
    if sys.platform.startswith("linux"):
        import ctypes

        pr_set_pdeathsig = 1
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(pr_set_pdeathsig, signal.SIGKILL)
    if os.getppid() != parent:
        sys.exit(3)


def main(argv: list[str]) -> int:
    spec = json.loads(argv[0])
    die_with_parent(int(spec["parent"]))
    # papermill logs each cell and, with log_output, its output: the run's .log file
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    import papermill

    try:
        papermill.execute_notebook(spec["input"], spec["output"], parameters=spec["params"],
                                   cwd=spec["cwd"], progress_bar=False, log_output=True)
        return 0
    except papermill.PapermillExecutionError as e:
        err = {"ename": e.ename, "evalue": e.evalue, "cell": e.exec_count}
    except Exception as e:  # a kernel that died, a bad notebook file, ...: recorded, not raised
        err = {"ename": type(e).__name__, "evalue": str(e), "cell": None}
    with open(spec["error_file"], "w") as f:
        json.dump(err, f)
    return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
