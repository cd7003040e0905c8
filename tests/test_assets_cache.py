import json
import sys

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
