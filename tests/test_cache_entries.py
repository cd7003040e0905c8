"""The cache-entry life cycle (``cache.load_or_compute``, ``cache.lookup``): computed once, read
after, a damaged entry moved aside and recomputed, a failure leaving no half entry."""

from __future__ import annotations

import json

import pytest

from layerscope import cache


@pytest.fixture(autouse=True)
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("LAYERSCOPE_HOME", str(tmp_path))
    return tmp_path


class Counter:
    """compute/write/read for a one-file entry, counting the computations."""

    def __init__(self, value="hello"):
        self.value, self.calls = value, 0

    def compute(self):
        self.calls += 1
        return self.value

    @staticmethod
    def write(tmp, value):
        (tmp / "sub").mkdir()
        (tmp / "sub" / "value.txt").write_text(value)
        return {"what": "test", "length": len(value)}

    @staticmethod
    def read(entry):
        return (entry.folder / "sub" / "value.txt").read_text(), entry


def _get(c: Counter, key="k1"):
    return cache.load_or_compute("test", key, compute=c.compute, write=c.write, read=c.read)


def _leftovers(home):
    """Everything in the kind's folder but finished entries: temporary and corrupt folders."""
    kind = home / "cache" / "test"
    return sorted(p.name for p in kind.iterdir() if p.name.startswith(".") or "corrupt" in p.name)


def test_fresh_entry_is_computed_once_and_recorded(home):
    c = Counter()
    value, entry = _get(c)
    assert value == "hello" and c.calls == 1 and entry.computed
    assert entry.folder == cache.entry_dir("test", "k1") == home / "cache" / "test" / "k1"
    meta = json.loads((entry.folder / "meta.json").read_text())
    assert meta == entry.meta
    assert meta["what"] == "test" and meta["length"] == 5 and "created" in meta
    assert meta["files"] == {"sub/value.txt": cache.file_sha256(entry.folder / "sub/value.txt")}
    assert cache.verify(entry.folder) == (True, "ok")
    assert _leftovers(home) == []


def test_second_call_reads_without_computing():
    c = Counter()
    _get(c)
    c.compute = lambda: pytest.fail("recomputed a cached entry")
    value, entry = _get(c)
    assert value == "hello" and not entry.computed and entry.meta["length"] == 5
    value2, _ = _get(Counter("other"), key="k2")  # another key is another entry
    assert value2 == "other"


@pytest.mark.parametrize("damage", ["change", "delete", "meta"])
def test_damaged_entry_is_moved_aside_and_recomputed(home, damage):
    c = Counter()
    _, entry = _get(c)
    target = entry.folder / "sub" / "value.txt"
    if damage == "change":
        target.write_text("hellp")
    elif damage == "delete":
        target.unlink()
    else:
        (entry.folder / "meta.json").write_text("{broken")
    value, again = _get(c)
    assert value == "hello" and c.calls == 2 and again.computed
    assert cache.verify(again.folder)[0]
    corrupt = list((home / "cache" / "test").glob("k1.corrupt-*"))
    assert len(corrupt) == 1, "the damaged entry is kept aside for inspection"


def test_failure_in_compute_leaves_no_half_entry(home):
    def boom():
        raise RuntimeError("compute failed")

    with pytest.raises(RuntimeError, match="compute failed"):
        cache.load_or_compute("test", "k1", compute=boom, write=Counter.write,
                              read=Counter.read)
    kind = home / "cache" / "test"
    assert not kind.exists() or list(kind.iterdir()) == []
    value, entry = _get(Counter())  # the next call computes it cleanly
    assert value == "hello" and entry.computed


def test_failure_in_write_leaves_no_half_entry(home):
    def half(tmp, value):
        (tmp / "part.txt").write_text(value)
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        cache.load_or_compute("test", "k1", compute=lambda: "x", write=half, read=Counter.read)
    assert list((home / "cache" / "test").iterdir()) == []
    assert cache.lookup(cache.entry_dir("test", "k1")) is None


def test_an_entry_finished_meanwhile_is_kept():
    """Another process (here: a nested call) finishes the entry during our compute: its entry
    stays, ours is dropped, and both callers read the same files."""
    inner = Counter("first")

    def compute():
        _get(inner)
        return "second"

    value, entry = cache.load_or_compute("test", "k1", compute=compute, write=Counter.write,
                                         read=Counter.read)
    assert value == "first" and inner.calls == 1 and entry.computed
    assert cache.verify(entry.folder)[0]


def test_lookup_keeps_unfinished_work_only_when_asked(home):
    """``keep_unfinished=True`` is for work built in place (a fine-tuning run resumes from the
    Trainer checkpoints in its entry folder); without it, an unfinished folder is damaged."""
    folder = cache.entry_dir("test", "run")
    (folder / "checkpoints").mkdir(parents=True)
    (folder / "checkpoints" / "state.bin").write_bytes(b"resume me")
    assert cache.lookup(folder, keep_unfinished=True) is None
    assert (folder / "checkpoints" / "state.bin").exists()
    cache.write_meta(folder, {"what": "run"}, cache.result_files(folder))
    assert cache.lookup(folder, keep_unfinished=True)["what"] == "run"
    (folder / "checkpoints" / "state.bin").write_bytes(b"damaged")  # finished, damaged since
    assert cache.lookup(folder, keep_unfinished=True) is None
    assert not folder.exists() and list(folder.parent.glob("run.corrupt-*"))
    other = cache.entry_dir("test", "other")
    (other / "x").mkdir(parents=True)  # unfinished, and the caller cannot resume
    assert cache.lookup(other) is None and not other.exists()
    assert cache.lookup(cache.entry_dir("test", "never")) is None


def test_result_files_lists_every_file_but_the_sidecar(tmp_path):
    (tmp_path / "b").mkdir()
    for rel in ("z.npy", "b/a.txt", "meta.json"):
        (tmp_path / rel).write_text("x")
    assert cache.result_files(tmp_path) == ["b/a.txt", "z.npy"]
