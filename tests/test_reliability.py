"""Nothing lost, nothing overwritten (issue 19): each fault injected on purpose — two sweeps at
once into one folder, an incomplete Trainer checkpoint, a damaged snapshot, names that escape
their folder, a write that fails with ENOSPC, read-only folders, bad inputs checked late — and
what the user is told, and that nothing that was there is lost."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

from layerscope import paths

REPO = Path(__file__).resolve().parents[1]
# two seeds of notebook 01 on the tiny BERT: the smallest sweep that fine-tunes twice
TWO_SEEDS = {"name": "twoseeds", "notebooks_dir": str(REPO / "notebooks"),
             "params": {"task": "tiny-sentiment", "model": "tiny-bert", "preset": "smoke",
                        "max_steps": 20},
             "notebooks": {"01_finetune": {"grid": {"seed": [0, 1]}}}}


def _fresh_home(tmp_path: Path) -> Path:
    """A layerscope home of its own (no cache), with the offline assets linked in."""
    home = tmp_path / "home"
    home.mkdir()
    (home / "assets").symlink_to(paths.assets_dir(), target_is_directory=True)
    return home


def _default_sigint() -> None:
    """Popen's preexec_fn for the Ctrl-C tests: a process started from a background job of a
    non-interactive shell inherits SIGINT ignored (POSIX), and Python then never raises
    KeyboardInterrupt; the command under test must see Ctrl-C as a terminal user's would."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _env(home: Path) -> dict[str, str]:
    return {**os.environ, "LAYERSCOPE_HOME": str(home), "OMP_NUM_THREADS": "1",
            "OMP_WAIT_POLICY": "passive", "PYTHONPATH": str(REPO / "lib")}


@pytest.mark.slow
def test_two_sweeps_at_once_into_one_folder_both_end_correct(tmp_path):
    """Two identical sweeps started 1 s apart, same home and --out: both exit 0, both report
    both runs ok, and results.csv says ok for both (before: a FileNotFoundError in one run's
    checkpoints, an ENOTEMPTY rename in the other, and exit codes 1 and 0)."""
    home, out = _fresh_home(tmp_path), tmp_path / "out"
    grid = tmp_path / "twoseeds.yaml"
    grid.write_text(yaml.safe_dump(TWO_SEEDS))
    cmd = [sys.executable, "-m", "layerscope.cli", "sweep", str(grid), "--out", str(out)]
    procs = []
    for i in range(2):
        procs.append(subprocess.Popen(cmd, env=_env(home), stdout=subprocess.PIPE,
                                      stderr=subprocess.STDOUT, text=True))
        if i == 0:
            time.sleep(1)
    outputs = [p.communicate(timeout=600)[0] for p in procs]
    for p, text in zip(procs, outputs, strict=True):
        assert p.returncode == 0, text[-3000:]
        assert "2 runs: 2 ok, 0 failed" in text, text[-3000:]
        assert "FAILED" not in text, text[-3000:]
    # each run ran once: the second sweep waited for it (saying so) and took it as it was
    executed = [int(text.rpartition("2 runs: 2 ok, 0 failed (")[2].split()[0])
                for text in outputs]
    assert sum(executed) == 2, outputs
    assert "waiting for run 01_finetune/seed=" in "".join(outputs)
    table = pd.read_csv(out / "results.csv")
    assert list(table["status"]) == ["ok", "ok"], table
    assert table["accuracy"].notna().all(), table
    for key in table["key"]:
        assert (out / "01_finetune" / f"{key}.ipynb").exists()
    assert not list(out.glob("01_finetune/*.partial*"))
    # one fine-tuned model per seed in the shared cache, each finished (meta.json) and intact
    from layerscope import cache

    entries = [p for p in (home / "cache" / "finetune").iterdir() if p.is_dir()]
    assert len(entries) == 2, entries
    for e in entries:
        assert cache.verify(e) == (True, "ok"), e
    assert not list((home / "cache").rglob("*.corrupt-*"))


def test_two_processes_fine_tuning_one_config_train_it_once(tmp_path):
    """The fine-tuning lock: two processes asking for the same model at once (two sweeps into
    different folders, two Dask workers) — one trains, the other waits and loads it."""
    home = _fresh_home(tmp_path)
    code = ("import sys; from layerscope.finetune import FinetuneConfig, load_or_train\n"
            "r = load_or_train(FinetuneConfig(task='tiny-sentiment', model='tiny-bert', "
            "preset='smoke', seed=3, max_steps=30), verbose=False)\n"
            "print('CACHED' if r.cached else 'TRAINED', r.metrics['accuracy'])")
    procs = [subprocess.Popen([sys.executable, "-c", code], env=_env(home), text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)
             for _ in range(2)]
    outs = [p.communicate(timeout=300) for p in procs]
    for p, (_out, err) in zip(procs, outs, strict=True):
        assert p.returncode == 0, err[-3000:]
    said = sorted(out.split()[0] for out, _ in outs)
    assert said == ["CACHED", "TRAINED"], outs
    assert len({out.split()[1] for out, _ in outs}) == 1  # the same model, the same score
    assert "waiting for fine-tuning tiny-bert on tiny-sentiment, seed 3" in "".join(
        err for _, err in outs)


SMOKE = dict(task="tiny-sentiment", model="tiny-bert", preset="smoke")


class _StopAt(__import__("transformers").TrainerCallback):
    """Stop training like Ctrl-C does, at one step."""

    def __init__(self, step: int):
        self.step = step

    def on_step_end(self, args, state, control, **kw):
        if state.global_step == self.step:
            raise KeyboardInterrupt


def test_an_incomplete_trainer_checkpoint_is_removed_and_the_run_resumes(tmp_path,
                                                                        monkeypatch, capsys):
    """A kill (or a full disk) while checkpoint-40 was saved leaves it without its optimizer,
    scheduler and trainer_state.json: the rerun says so, removes it and resumes from the
    complete checkpoint-20 (before: a raw FileNotFoundError on every later run)."""
    import shutil

    from layerscope import cache
    from layerscope.finetune import FinetuneConfig, cache_key, load_or_train

    monkeypatch.setenv("LAYERSCOPE_HOME", str(tmp_path))
    cfg = FinetuneConfig(**SMOKE, seed=4, max_steps=50)
    with pytest.raises(KeyboardInterrupt):
        load_or_train(cfg, callbacks=[_StopAt(30)], verbose=False)
    ckpts = cache.entry_dir("finetune", cache_key(cfg)) / "checkpoints"
    assert [p.name for p in ckpts.iterdir()] == ["checkpoint-20"]
    half = ckpts / "checkpoint-40"  # what a save cut short leaves: the weights only
    half.mkdir()
    shutil.copy(ckpts / "checkpoint-20" / "model.safetensors", half / "model.safetensors")
    resumed = load_or_train(cfg, verbose=True)
    err = capsys.readouterr().err
    assert f"removing incomplete Trainer checkpoint {half} (optimizer.pt, scheduler.pt, " \
           "trainer_state.json missing)" in err, err
    assert "resuming from checkpoint-20" in err
    assert resumed.meta["resumed"] and resumed.meta["global_step"] == 50
    assert cache.verify(resumed.path) == (True, "ok")

    # only an incomplete one: removed, training starts over
    cfg2 = FinetuneConfig(**SMOKE, seed=5, max_steps=10)
    ck = cache.entry_dir("finetune", cache_key(cfg2)) / "checkpoints" / "checkpoint-5"
    ck.mkdir(parents=True)
    (ck / "trainer_state.json").write_text('{"global_st')  # cut short by a full disk
    fresh = load_or_train(cfg2, verbose=True)
    err = capsys.readouterr().err
    assert "no complete checkpoint left: training from the start" in err, err
    assert not fresh.meta["resumed"] and fresh.meta["global_step"] == 10


def test_a_damaged_snapshot_is_not_approved_again(tmp_path, monkeypatch, capsys):
    """meta.json emptied and a snapshot's weights cut short: the rerun retrains, and instead of
    recording the damaged file's sha256 (before: every later load_finetuned(step=10) failed
    while the cache "verified"), it removes that snapshot, saying so, and saves it again."""
    import json

    from layerscope import cache
    from layerscope.finetune import FinetuneConfig, load_finetuned, load_or_train

    monkeypatch.setenv("LAYERSCOPE_HOME", str(tmp_path))
    cfg = FinetuneConfig(**SMOKE, seed=6, max_steps=10, save_steps=(0, 10))
    first = load_or_train(cfg, verbose=False)
    snap = first.snapshot_dir(10) / "model.safetensors"
    good = snap.read_bytes()
    (first.path / "meta.json").write_text("")
    snap.write_bytes(good[: len(good) // 2])
    again = load_or_train(cfg, verbose=True)
    err = capsys.readouterr().err
    assert f"removing snapshot {snap.parent} (model.safetensors does not match the sha256 " \
           "recorded when it was saved)" in err, err
    assert not again.cached and again.meta["saved_steps"] == [0, 10]
    assert cache.verify(again.path) == (True, "ok")
    recorded = json.loads((again.path / "meta.json").read_text())["files"]
    assert recorded["steps/step-10/model.safetensors"] == cache.file_sha256(snap)
    assert snap.read_bytes() == good  # the same seeded run saves the same snapshot
    load_finetuned(again, step=10)  # loads (before: SafetensorError)


ECHO = {"notebooks_dir": str(REPO / "tests" / "batch" / "notebooks"),
        "notebooks": {"echo": {"params": {"label": "hi"}, "grid": {"x": [1]}}}}


def _grid(tmp_path: Path, name: str, **extra) -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump({"name": name, **ECHO, **extra}))
    return path


def test_a_sweep_writes_only_inside_its_folder_and_keeps_the_users_files(tmp_path):
    """index.html goes into --out, not the folder above it, and a user's index.html there is
    not replaced (before: it was lost); an --out holding other things is refused before
    anything runs."""
    from layerscope.batch.grid import load_grid
    from layerscope.batch.sweep import run_sweep
    from layerscope.errors import ConfigError

    mine = tmp_path / "index.html"
    mine.write_text("<html>my own page</html>")
    out = tmp_path / "sweep"
    report = run_sweep(load_grid(_grid(tmp_path, "echoes")), out=out, progress=False)
    assert report.files["index"] == out / "index.html" and (out / "gallery.html").is_file()
    assert 'href="gallery.html"' in (out / "index.html").read_text()
    assert mine.read_text() == "<html>my own page</html>"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["echoes.yaml", "index.html", "sweep"]
    # a rerun may replace its own pages ...
    run_sweep(load_grid(_grid(tmp_path, "echoes")), out=out, progress=False)
    # ... never a user's: refused before anything runs
    other = tmp_path / "other"
    other.mkdir()
    (other / "index.html").write_text("notes")
    (other / "sweep.json").write_text('{"name": "x", "runs": []}')
    with pytest.raises(ConfigError, match=r"index.html exists and was not written by layerscope"):
        run_sweep(load_grid(_grid(tmp_path, "echoes")), out=other, progress=False)
    assert (other / "index.html").read_text() == "notes" and not (other / "echo").exists()
    (other / "sweep.json").unlink()
    with pytest.raises(ConfigError, match=r"already holds other files and is not a sweep folder"):
        run_sweep(load_grid(_grid(tmp_path, "echoes")), out=other, progress=False)
    assert sorted(p.name for p in other.iterdir()) == ["index.html"]


@pytest.mark.parametrize("where", ["name", "entry"])
def test_grid_names_that_leave_the_runs_folder_are_refused(tmp_path, where):
    """``name: ../../escape`` (before: results.csv, results.parquet and sweep.json were written
    two folders up) and a notebook entry with a separator are refused, naming the file."""
    from layerscope.batch.grid import load_grid
    from layerscope.errors import ConfigError

    path = tmp_path / "g.yaml"
    data = {"name": "../../escape" if where == "name" else "fine", **ECHO}
    if where == "entry":
        data["notebooks"] = {"echo/../../x": {}}
    path.write_text(yaml.safe_dump(data))
    bad = "'../../escape'" if where == "name" else "'echo/../../x'"
    with pytest.raises(ConfigError, match=rf"{path}: .*{bad} is not a plain folder name"):
        load_grid(path)


def _enospc(*_a, **_k):
    raise OSError(28, "No space left on device")


def test_a_full_disk_leaves_the_old_file_and_no_temp_file(tmp_path, monkeypatch):
    """A write that fails with ENOSPC half-way (monkeypatched) keeps what the file held and
    leaves no ``.<name>.xxxx`` behind (before: temp files of results and pages stayed)."""
    import pandas

    from layerscope import cache
    from layerscope.batch import table

    (tmp_path / "results.csv").write_text("old\n")

    def half_then_full(self, path, **kw):
        Path(path).write_text("sweep,notebook\nhalf a ro")
        _enospc()

    monkeypatch.setattr(pandas.DataFrame, "to_csv", half_then_full)
    with pytest.raises(OSError, match="No space left"):
        table.write_table([{"sweep": "s", "notebook": "n", "key": "k", "status": "ok"}], tmp_path)
    assert (tmp_path / "results.csv").read_text() == "old\n"
    monkeypatch.setattr(Path, "write_bytes", _enospc)
    with pytest.raises(OSError, match="No space left"):
        cache.atomic_write_text(tmp_path / "gallery.html", "<html>")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results.csv"]


def test_files_honour_the_umask_for_a_shared_cache(tmp_path, monkeypatch, tiny_sentiment_ft):
    """results.csv/.parquet and every cached file (model.safetensors, which transformers saves
    0600) get 0666/0777 less the umask, as a plain open() would (before: 0600)."""
    from layerscope import cache
    from layerscope.batch import table

    old = os.umask(0o002)
    try:
        table.write_table([{"sweep": "s", "notebook": "n", "key": "k", "status": "ok"}], tmp_path)
        with cache.atomic_dir(tmp_path / "entry") as tmp:
            (tmp / "sub").mkdir()
            fd = os.open(tmp / "sub" / "w.bin", os.O_CREAT | os.O_WRONLY, 0o600)
            os.close(fd)
    finally:
        os.umask(old)
    for name in ("results.csv", "results.parquet", "entry/sub/w.bin"):
        assert (tmp_path / name).stat().st_mode & 0o777 == 0o664, name
    assert (tmp_path / "entry" / "sub").stat().st_mode & 0o777 == 0o775
    model = tiny_sentiment_ft.model_dir / "model.safetensors"  # trained under umask 022
    assert model.stat().st_mode & 0o777 == 0o644


def test_cache_command_lists_and_cleans_corrupt_entries(tmp_path, monkeypatch, capsys):
    """``layerscope cache`` lists sizes per kind and the entries moved aside; ``--clean``
    removes those (and old leftovers of interrupted writes), keeping the good entries."""
    from layerscope import cache, cli

    monkeypatch.setenv("LAYERSCOPE_HOME", str(tmp_path))
    for key in ("good", "bad"):
        with cache.atomic_dir(cache.entry_dir("activations", key)) as tmp:
            (tmp / "x.npy").write_bytes(b"0" * 2048)
            cache.write_meta(tmp, {}, cache.result_files(tmp))
    bad = cache.entry_dir("activations", "bad")
    (bad / "x.npy").write_bytes(b"1")
    assert cache.lookup(bad) is None  # moved aside
    leftover = cache.entry_dir("activations", ".old.tmpabc")
    leftover.mkdir()
    os.utime(leftover, (time.time() - 2 * cache.LEFTOVER_AGE_S,) * 2)
    assert cli.main(["cache"]) == 0
    out = capsys.readouterr().out
    assert "activations      1 entries" in out and "corrupt (moved aside, never used): 1" in out
    assert "bad.corrupt-" in out and "leftovers of interrupted writes: 1" in out
    assert "`layerscope cache --clean` removes" in out
    assert cli.main(["cache", "--clean"]) == 0
    assert "removed 2 corrupt entries and leftovers" in capsys.readouterr().out
    assert sorted(p.name for p in (tmp_path / "cache" / "activations").iterdir()) == ["good"]
    assert cache.lookup(cache.entry_dir("activations", "good")) is not None


def _error_line(capsys) -> str:
    """The command's ``error:`` line: the last on stderr (after any progress bar), the only
    one, and no traceback."""
    err = capsys.readouterr().err.strip()
    last = err.splitlines()[-1] if err else ""
    assert last.startswith("error: ") and err.count("error: ") == 1, err
    assert "Traceback" not in err, err
    return last


def test_bad_output_folders_and_grids_give_one_error_line(tmp_path, capsys, monkeypatch):
    """--out that is a file or under a file, a read-only folder, a grid path that is a folder,
    a non-UTF-8 grid, an empty sweep.json, --timeout 0: one ``error:`` line naming the path and
    the cause, a non-zero exit (before: tracebacks, or messages naming no file)."""
    from layerscope import cli

    grid = _grid(tmp_path, "echoes")
    a_file = tmp_path / "a-file"
    a_file.write_text("x")
    for out in (a_file, a_file / "sub"):
        assert cli.main(["sweep", str(grid), "--out", str(out)]) == 2
        assert f"{a_file} is a file, not a folder" in _error_line(capsys)
    assert a_file.read_text() == "x"
    for bad in ("0", "-1"):
        assert cli.main(["sweep", str(grid), "--out", str(tmp_path / "o"), "--timeout", bad]) == 2
        assert "more than 0" in _error_line(capsys)
    assert cli.main(["sweep", str(tmp_path), "--out", str(tmp_path / "o")]) == 2
    assert f"grid {tmp_path} is a folder" in _error_line(capsys)
    latin = tmp_path / "latin.yaml"
    latin.write_bytes("name: caf\xe9\n".encode("latin-1"))
    assert cli.main(["sweep", str(latin), "--out", str(tmp_path / "o")]) == 2
    assert f"grid file {latin} is not UTF-8 text" in _error_line(capsys)
    empty = tmp_path / "emptysweep"
    empty.mkdir()
    (empty / "sweep.json").write_text("")
    assert cli.main(["gallery", str(empty)]) == 2
    assert f"{empty / 'sweep.json'} is damaged" in _error_line(capsys)
    # a read-only folder (as root, chmod would not stop us: the refusal is injected)
    real_mkdir = Path.mkdir
    ro = tmp_path / "ro" / "out"

    def refuse(self, *a, **k):
        if self == ro:
            raise PermissionError(13, "Permission denied", str(self))
        return real_mkdir(self, *a, **k)

    monkeypatch.setattr(Path, "mkdir", refuse)
    assert cli.main(["sweep", str(grid), "--out", str(ro)]) == 1
    line = _error_line(capsys)
    assert f"{ro}: Permission denied; no permission to write there" in line, line


def test_a_full_disk_during_a_sweep_is_one_error_line(tmp_path, capsys, monkeypatch):
    from layerscope import cache, cli

    real = cache.atomic_write

    def full(path, write):
        if Path(path).name == "results.csv":
            raise OSError(28, "No space left on device", str(path))
        return real(path, write)

    monkeypatch.setattr(cache, "atomic_write", full)
    monkeypatch.setattr("layerscope.batch.table.atomic_write", full)
    out = tmp_path / "out"
    assert cli.main(["sweep", str(_grid(tmp_path, "echoes")), "--out", str(out)]) == 1
    line = _error_line(capsys)
    assert f"{out / 'results.csv'}: No space left on device; the disk is full" in line, line
    assert not list(out.glob(".results.csv*"))


def test_an_unreachable_dask_scheduler_is_one_error_line(tmp_path, capsys):
    import dask

    from layerscope import cli

    with dask.config.set({"distributed.comm.timeouts.connect": "2s"}):
        code = cli.main(["sweep", str(_grid(tmp_path, "echoes")), "--out",
                         str(tmp_path / "o"), "--scheduler", "tcp://127.0.0.1:9"])
    assert code == 2
    assert "cannot reach the Dask scheduler at 'tcp://127.0.0.1:9'" in _error_line(capsys)


def test_finetune_command_waits_passively(monkeypatch):
    """``layerscope finetune`` sets OMP_WAIT_POLICY=passive before torch loads, as sweeps do."""
    from layerscope import cli

    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    seen = []
    monkeypatch.setattr(cli, "_finetune_all",
                        lambda *a: seen.append(os.environ.get("OMP_WAIT_POLICY")) or [])
    assert cli.main(["finetune", "--task", "tiny-sentiment", "--model", "tiny-bert"]) == 0
    assert seen == ["passive"]


def test_ctrl_c_during_finetune_is_one_line_and_keeps_the_checkpoint(tmp_path):
    """SIGINT while the command trains: "interrupted: ..." and exit 130, no traceback; the
    Trainer checkpoint stays for the rerun to resume from (resuming: test_finetune.py)."""
    import signal

    home = _fresh_home(tmp_path)
    cmd = [sys.executable, "-m", "layerscope.cli", "finetune", "--task", "tiny-sentiment",
           "--model", "tiny-bert", "--preset", "smoke", "--max-steps", "3000"]
    proc = subprocess.Popen(cmd, env=_env(home), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, preexec_fn=_default_sigint)
    deadline = time.time() + 120
    while not list(home.glob("cache/finetune/*/checkpoints/checkpoint-*/trainer_state.json")):
        assert proc.poll() is None and time.time() < deadline, proc.communicate()
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err[-3000:]
    assert "Traceback" not in err, err[-3000:]
    assert err.strip().splitlines()[-1].startswith("interrupted: the fine-tuning run keeps its "
                                                   "last Trainer checkpoint"), err[-3000:]
    assert list(home.glob("cache/finetune/*/checkpoints/checkpoint-*/trainer_state.json"))


def test_a_run_of_fewer_than_ten_steps_logs_its_loss(tmp_path, monkeypatch):
    """max_steps 1-9 logged no loss (logging_steps was 10), so notebook 01's check failed."""
    from layerscope.finetune import FinetuneConfig, load_or_train

    monkeypatch.setenv("LAYERSCOPE_HOME", str(tmp_path))
    for steps in (1, 7):
        curve = load_or_train(FinetuneConfig(**SMOKE, seed=7, max_steps=steps),
                              verbose=False).learning_curve()
        assert curve["train_loss"] and curve["train_step"][-1] <= steps, curve


def test_an_interrupted_sweep_says_interrupted_and_writes_no_failed_marker(tmp_path):
    """SIGINT to a sweep while its run works: "interrupted", exit 130, no marker (before: the
    run was recorded as failed, "killed by signal 9"); the next sweep runs it."""
    import signal

    home = _fresh_home(tmp_path)
    grid = tmp_path / "slow.yaml"
    grid.write_text(yaml.safe_dump({"name": "slow", **ECHO, "notebooks": {
        "echo": {"params": {"label": "hi", "sleep": 60.0}, "grid": {"x": [1]}}}}))
    out = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, "-m", "layerscope.cli", "sweep", str(grid),
                             "--out", str(out)], env=_env(home), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, preexec_fn=_default_sigint)
    deadline = time.time() + 120
    while not list(out.glob("echo/*.log")) or "Executing" not in next(
            out.glob("echo/*.log")).read_text():
        assert proc.poll() is None and time.time() < deadline, proc.communicate()
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    stdout, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err[-3000:]
    assert "interrupted: unfinished runs left no marker" in err
    assert "killed" not in err and "FAILED" not in err and "Traceback" not in err, err
    assert not list(out.glob("echo/*.run.json")) and not list(out.glob("echo/*.partial*"))


def test_a_folder_that_is_not_a_model_and_a_missing_path_are_said_so(tmp_path, monkeypatch):
    """A folder without config.json or weights names what is missing (before: a tokenizer
    message about sentencepiece); a relative path that does not exist is called a missing
    folder, not looked up on the hub."""
    from layerscope import models
    from layerscope.errors import ConfigError

    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "readme.txt").write_text("not a model")
    with pytest.raises(ConfigError, match=r"is not a saved model: config.json, weights "
                                          r"\(model.safetensors or pytorch_model.bin\), "
                                          r"tokenizer files \(tokenizer.json, vocab.txt, ...\) "
                                          r"missing; save one there"):
        models.check_model_name(str(notes))
    monkeypatch.chdir(tmp_path)
    for missing in ("./mine", "notes/mine", "a/b/c"):
        with pytest.raises(ConfigError, match=rf"model '{missing}': no such folder"):
            models.check_model_name(missing)
    assert models.check_model_name("org/name") == "org/name"  # still a hub id


@pytest.mark.parametrize("params, match", [
    ({"task": "nope"}, r"run \{'seed': 1\}: unknown task 'nope'"),
    ({"model": "nope"}, r"run \{'seed': 1\}: unknown model 'nope'"),
    ({"max_steps": -3}, r"run \{'seed': 1\}: max_steps=-3 must be >= 1"),
])
def test_dry_run_builds_every_runs_config(tmp_path, capsys, params, match):
    """An unknown task or model, or max_steps -3, is refused by --dry-run and before a sweep
    runs anything (before: they passed and failed ~10 s into a kernel)."""
    import re

    from layerscope import cli

    grid = tmp_path / "bad.yaml"
    grid.write_text(yaml.safe_dump({
        "name": "bad", "notebooks_dir": str(REPO / "notebooks"),
        "params": {"task": "tiny-sentiment", "model": "tiny-bert", "preset": "smoke"},
        "notebooks": {"01_finetune": {"grid": {"seed": [1]}, "params": params}}}))
    for extra in (["--dry-run"], []):
        assert cli.main(["sweep", str(grid), "--out", str(tmp_path / "o"), *extra]) == 2
        line = _error_line(capsys)
        assert re.search(r"error: notebook '01_finetune', " + match, line), line
    assert not (tmp_path / "o").exists()
