"""One sweep run: papermill-execute a notebook with its parameters, atomically, with a marker.

Layout of a run under the sweep folder (``runs/<sweep>/``)::

    <notebook>/<key>.ipynb       the executed notebook (kept for failed runs: it shows the error)
    <notebook>/<key>/            the run folder, the notebook's ``out_dir`` (<study>.json, figures)
    <notebook>/<key>.run.json    the marker: status, error, duration, parameters, records
    <notebook>/<key>.log         the run's stdout and stderr

    <notebook>/<key>.lock        held while a process runs it (``cache.locked``)

A run is **finished** only when its marker says ``ok`` and its notebook exists. The notebook is
executed into a temporary name and its ``out_dir`` is a temporary attempt folder; only at the
end are both renamed into place and then the marker written (atomically), so a run killed at
any point leaves no marker and is redone. A run that failed is redone by the next sweep too.
A run stopped by Ctrl-C or SIGTERM (``kill_active``) writes no marker either: it is
"interrupted", not failed, and redone.

Two sweeps into one folder (or two Dask workers given the same run) take turns on a run: the
run's lock file is held from clearing the last attempt to writing the marker, so only the
process that holds it touches that run's files; the other waits, saying so, and then takes the
finished run as it is (``reused``) instead of running it again.

Figures that the notebook saves with ``StudyResult.save`` reference one copy of plotly.js in
the sweep folder (``$LAYERSCOPE_PLOTLYJS_DIR``, see ``plots.html``) by a relative path
(``../../plotly-<version>.min.js``), which the rename of the attempt folder keeps valid.

Each run is a child process (``python -m layerscope.batch.execute``) whose environment sets the
torch/BLAS threads (``OMP_NUM_THREADS``, ``MKL_NUM_THREADS``) and ``OMP_WAIT_POLICY=passive``:
torch's spinning threads slow each other down 10x or more when workers x threads exceed the
cores. The same ``execute`` serves the local backend (threads that wait on these
processes) and Dask (a task on a worker).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .. import paths
from ..cache import atomic_write_text, locked

OK, FAILED, PENDING = "ok", "failed", "pending"
INTERRUPTED = "interrupted"  # an outcome only, never a marker: the run is redone
PROGRESS_FILE_ENV = "LAYERSCOPE_PROGRESS_FILE"  # = layerscope.progress.FILE_ENV (torch-free here)
PLOTLYJS_DIR_ENV = "LAYERSCOPE_PLOTLYJS_DIR"  # = plots.html.PLOTLYJS_DIR_ENV (plotly-free here)
HOST_PID_ENV = "LAYERSCOPE_RUN_HOST_PID"  # pid of the process running execute() (tests use it)
_active: set[subprocess.Popen] = set()  # run processes, so an interrupted sweep can end them
_lock = threading.Lock()
_stopping = threading.Event()  # set by kill_active: runs not yet started stay unstarted


@dataclass(frozen=True)
class Run:
    """One notebook with one parameter set. Plain strings only: it travels to Dask workers.

    ``home`` is the layerscope home (cache) the run uses: on a cluster it must be the same
    shared folder on every worker, like ``sweep_dir``.
    """

    sweep: str
    notebook: str
    key: str
    params: dict[str, Any]
    notebook_path: str
    sweep_dir: str
    home: str
    has_out_dir: bool = True
    axes: tuple[str, ...] = field(default=())

    @property
    def folder(self) -> Path:
        return Path(self.sweep_dir) / self.notebook

    @property
    def output(self) -> Path:
        return self.folder / f"{self.key}.ipynb"

    @property
    def run_dir(self) -> Path:
        return self.folder / self.key

    @property
    def marker(self) -> Path:
        return self.folder / f"{self.key}.run.json"

    @property
    def lock(self) -> Path:
        """Held by the process running this run (``cache.locked``), so no other touches it."""
        return self.folder / f"{self.key}.lock"

    @property
    def log(self) -> Path:
        return self.folder / f"{self.key}.log"

    @property
    def progress(self) -> Path:
        """The latest progress line of the running notebook (``layerscope.progress``)."""
        return self.folder / f"{self.key}.progress"

    def label(self) -> str:
        return f"{self.notebook}/{self.key}"


def available_cores() -> int:
    """CPU cores this process may use (the affinity mask where the OS has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def threads_per_run(workers: int, cores: int | None = None) -> int:
    """Torch threads per run so that workers x threads <= cores (at least 1)."""
    return max(1, (cores or available_cores()) // max(1, workers))


def run_env(threads: int, home: str) -> dict[str, str]:
    """Environment of a run's process (and so of its kernel)."""
    env = dict(os.environ)
    env.update({"OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads),
                "OPENBLAS_NUM_THREADS": str(threads), "OMP_WAIT_POLICY": "passive",
                "TOKENIZERS_PARALLELISM": "false", "HF_HUB_DISABLE_PROGRESS_BARS": "1",
                "LAYERSCOPE_HOME": home, HOST_PID_ENV: str(os.getpid())})
    # the kernel must import this same layerscope, also from a checkout that is not installed
    if paths.repo_root() is not None:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(paths.PACKAGE_DIR.parent),
                                                          env.get("PYTHONPATH")]))
    # ... and run this Python: its kernelspec first, before a user-level "python3" that may
    # point at another interpreter (JUPYTER_PATH comes first in Jupyter's search)
    env["JUPYTER_PATH"] = os.pathsep.join(filter(None, [str(Path(sys.prefix) / "share" /
                                                            "jupyter"), env.get("JUPYTER_PATH")]))
    return env


def read_outcome(run: Run) -> dict | None:
    """The run's marker, or None (never run, killed before the end, or unreadable)."""
    try:
        return json.loads(run.marker.read_text())
    except (OSError, ValueError):
        return None


def is_finished(run: Run) -> bool:
    """True only for a run whose marker says ok, whose executed notebook exists and whose saved
    results can be read (``unreadable_results``): a result file cut short, or one written by a
    layerscope that did not save all that this one reads, makes the run run again instead of
    being skipped and then drawn as damaged for good."""
    out = read_outcome(run)
    return (bool(out) and out.get("status") == OK and run.output.exists()
            and not unreadable_results(run))


def unreadable_results(run: Run) -> list[str]:
    """"<file>: why" for each saved result of ``run`` that cannot be read at all. A result that
    reads but fails its ``check()`` is not listed: running it again would give the same."""
    if not run.run_dir.is_dir():
        return []
    return [f.damage() for f in saved_results(run.run_dir, checked=False) if f.result is None]


def clear(run: Run) -> None:
    """Remove what an earlier attempt left (marker first: a crash here leaves no marker)."""
    run.marker.unlink(missing_ok=True)
    run.output.unlink(missing_ok=True)
    run.progress.unlink(missing_ok=True)
    for p in run.folder.glob(f"{run.key}.*.partial*"):
        shutil.rmtree(p, ignore_errors=True) if p.is_dir() else p.unlink(missing_ok=True)
    if run.run_dir.exists():
        shutil.rmtree(run.run_dir)


def saved_results(folder: Path, *, checked: bool = True) -> list:
    """Every result ``StudyResult.save`` wrote in ``folder``, read by its study's class
    (``studies.results.read_folder``: each with its problems unless not ``checked``; damaged
    files included)."""
    from ..studies import results  # light; a study's classes only when its file is read

    return results.read_folder(folder, checked=checked)


def collect_records(folder: Path) -> tuple[list[dict], list[str]]:
    """``to_record()`` of every result saved in ``folder`` that could be read, and one line
    per damaged or inconsistent file ("<file>: what is wrong")."""
    saved = saved_results(folder)
    return ([s.result.to_record() for s in saved if s.result is not None],
            [s.damage() for s in saved if s.problems])


def _outcome(run: Run, status: str, *, error: str | None, started: float, records=(),
             threads: int | None = None, note: str = "") -> dict:
    return {"status": status, "sweep": run.sweep, "notebook": run.notebook, "key": run.key,
            "params": run.params, "error": error, "note": note,
            "duration_s": round(time.time() - started, 2),
            "started": time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(started)),
            "host": socket.gethostname(), "threads": threads, "records": list(records),
            "run": asdict(run)}


def record_failure(run: Run, error: str, *, started: float | None = None) -> dict:
    """Write a failed marker for a run whose process was lost (a Dask worker that died, a disk
    error under ``execute``), under the run's lock; a run that another process finished in the
    meantime keeps its marker (returned)."""
    run.folder.mkdir(parents=True, exist_ok=True)
    with locked(run.lock, f"run {run.label()}"):
        if is_finished(run):
            return {**read_outcome(run), "reused": True}
        out = _outcome(run, FAILED, error=error, started=started or time.time())
        atomic_write_text(run.marker, json.dumps(out, indent=1, default=str))
    return out


def interrupted(run: Run, *, started: float, why: str = "interrupted") -> dict:
    """The outcome of a run stopped by this sweep's Ctrl-C/SIGTERM: no marker is written (a
    marker belongs to a run that ended), so the next sweep runs it again."""
    return _outcome(run, INTERRUPTED, error=why, started=started)


def _error_text(path: Path, proc_rc: int | None) -> str:
    try:
        err = json.loads(path.read_text())
        return f"{err['ename']}: {err['evalue']}" + (
            f" (cell {err['cell']})" if err.get("cell") is not None else "")
    except (OSError, ValueError, KeyError):
        pass
    if proc_rc is None:
        return "timed out: the run was stopped"
    if proc_rc < 0:
        try:
            name = signal.Signals(-proc_rc).name
        except ValueError:
            name = f"signal {-proc_rc}"
        return (f"the run's process was killed from outside by {name} (e.g. out of memory, or "
                "a batch system's limit); see the .log file")
    return f"the run's process exited with code {proc_rc} (see the .log file)"


def execute(run: Run, threads: int, *, timeout: float | None = None) -> dict:
    """Execute ``run`` (after clearing earlier attempts); write and return its marker.

    Holds the run's lock throughout (see the module docstring): a run that another process
    finished while this one waited is returned as it is, with ``"reused": True``. A notebook
    that raises gives a ``failed`` marker with the exception; a run stopped by ``kill_active``
    gives an ``interrupted`` outcome and no marker; this function raises only when the disk
    itself fails. ``timeout``: seconds for the whole run (None: no limit).
    """
    started = time.time()
    if _stopping.is_set():
        return interrupted(run, started=started, why="interrupted before it started")
    run.folder.mkdir(parents=True, exist_ok=True)
    try:
        with locked(run.lock, f"run {run.label()}", stop=_stopping.is_set):
            if is_finished(run):  # another sweep ran it while this one waited
                return {**read_outcome(run), "reused": True}
            return _execute_locked(run, threads, timeout=timeout, started=started)
    except InterruptedError:
        return interrupted(run, started=started, why="interrupted before it started")


def _execute_locked(run: Run, threads: int, *, timeout: float | None, started: float) -> dict:
    clear(run)
    attempt = f"{run.key}.{uuid.uuid4().hex[:8]}"
    partial = run.folder / f"{attempt}.partial.ipynb"
    out_dir = run.folder / f"{attempt}.partial"  # promoted to run_dir at the end
    err_file = run.folder / f"{attempt}.partial-error.json"
    out_dir.mkdir()
    params = {**run.params, "interactive": False}
    if run.has_out_dir:
        params["out_dir"] = str(out_dir)
    spec = {"input": run.notebook_path, "output": str(partial), "params": params,
            "cwd": str(Path(run.notebook_path).parent), "error_file": str(err_file),
            "parent": os.getpid()}
    with open(run.log, "w") as log:
        # figures saved in the run folder load the sweep folder's one copy of plotly.js
        env = {**run_env(threads, run.home), PROGRESS_FILE_ENV: str(run.progress),
               PLOTLYJS_DIR_ENV: str(run.sweep_dir)}
        proc = subprocess.Popen([sys.executable, "-m", "layerscope.batch.execute",
                                 json.dumps(spec)], env=env,
                                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        with _lock:
            _active.add(proc)
        try:
            rc: int | None = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            rc = None
        finally:
            with _lock:
                _active.discard(proc)
    if rc != 0 and _stopping.is_set():  # our own Ctrl-C/SIGTERM ended it: redo it next time
        for p in (partial, err_file, run.progress):
            p.unlink(missing_ok=True)
        shutil.rmtree(out_dir, ignore_errors=True)
        return interrupted(run, started=started)
    records, damaged = collect_records(out_dir)
    status = OK if rc == 0 else FAILED
    error = None if status == OK else _error_text(err_file, rc)
    note = ""
    if status == OK and not run.has_out_dir:
        note = "the notebook has no out_dir parameter: no record collected"
    elif status == OK and not records and not damaged:
        note = "the notebook wrote no <study>.json into out_dir: no record collected"
    if damaged:
        note = "; ".join(filter(None, [note, "damaged result " + " | ".join(damaged)]))
    os.replace(out_dir, run.run_dir)
    if partial.exists():
        os.replace(partial, run.output)
    err_file.unlink(missing_ok=True)
    run.progress.unlink(missing_ok=True)
    out = _outcome(run, status, error=error, started=started, records=records,
                   threads=threads, note=note)
    atomic_write_text(run.marker, json.dumps(out, indent=1, default=str))  # last: "finished"
    return out


def allow_runs() -> None:
    """Let ``execute`` start runs again (after ``kill_active``; a new sweep calls it)."""
    _stopping.clear()


def kill_active() -> int:
    """Kill every run process this process started and that still runs (on Ctrl-C), and keep
    runs that were about to start from starting."""
    _stopping.set()
    with _lock:
        procs = list(_active)
    for p in procs:
        if p.poll() is None:
            p.kill()
    return len(procs)
