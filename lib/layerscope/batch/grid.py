"""Sweep grids: a YAML file of notebooks x parameters, checked before anything runs.

A grid file::

    name: smoke                    # the sweep's folder under runs/ (default: the file's stem)
    description: tiny models, seconds
    notebooks_dir: ../notebooks    # optional, relative to this file (default: <repo>/notebooks)
    params: {preset: smoke}        # fixed parameters of every notebook
    grid: {task: [tiny-sentiment]} # axes of every notebook (cartesian product)
    notebooks:
      01_finetune:
        params: {max_steps: 40}    # fixed parameters of this notebook (override the common ones)
        grid: {seed: [0, 1]}       # axes of this notebook (added to the common axes)
      02_similarity: {}
      02_similarity@rsa:           # the same notebook again, other parameters, own folder
        params: {measure: rsa}
      03_truncation:
        runs:                      # explicit parameter sets (each times the axes), e.g. runs
          - {seeds: [0]}           # that differ in more than one value at once
          - {seeds: [0], drop_top: [2, 4]}

Models fine-tuned elsewhere are the ``finetuned`` parameter of notebooks 02-05 (a list: one
checkpoint, local folder or hub id, per seed; ``model`` is the base they came from)::

    params: {task: movies, model: minilm-l6, preset: demo}
    notebooks:
      02_similarity:
        params: {seeds: [0, 1], finetuned: [/models/movies-a, /models/movies-b]}
      04_skipping:                 # an axis of lists: one run per checkpoint
        grid: {finetuned: [[/models/movies-a], [/models/movies-b]]}

Each notebook runs once per point of the product of its axes, with ``interactive=False`` and
``out_dir`` set by the runner. Names are checked against the notebook's ``parameters`` cell
(read with papermill's ``inspect_notebook``, no kernel): an unknown notebook or parameter, a
value of the wrong type (``seeds: [0, 1]`` as an axis gives ints to a list parameter) or a
parameter the runner sets is a ``ConfigError`` naming the valid choices.
"""

from __future__ import annotations

import itertools
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .. import paths
from ..cache import content_key
from ..errors import ConfigError, unknown

GRIDS_DIR = paths.RESOURCES / "grids"
RUNNER_PARAMS = ("interactive", "out_dir")  # set by the runner for every run, never by a grid
TOP_KEYS = ("name", "description", "notebooks_dir", "params", "grid", "notebooks")
NOTEBOOK_KEYS = ("params", "grid", "runs", "path")
# papermill's inferred type name -> the Python types a grid value may have
TYPES: dict[str, tuple[type, ...]] = {"str": (str,), "int": (int,), "float": (int, float),
                                      "bool": (bool,), "list": (list,), "dict": (dict,)}


@dataclass(frozen=True)
class NotebookGrid:
    """One notebook entry of a grid: fixed parameters, axes (name -> list of values) and
    explicit parameter sets (``runs``: each one combined with every point of the axes).

    ``name`` is the entry (and the runs' folder); ``NAME@variant`` runs notebook NAME with other
    parameters, e.g. ``02_similarity@pos`` with word pooling beside ``02_similarity``.
    """

    name: str
    path: Path
    params: dict[str, Any] = field(default_factory=dict)
    axes: dict[str, list] = field(default_factory=dict)
    runs: tuple[dict[str, Any], ...] = ({},)

    @property
    def varying(self) -> list[str]:
        """The parameters that tell runs apart: the axes, then the names the runs set."""
        names = list(self.axes)
        for r in self.runs:
            names += [k for k in r if k not in names]
        return names

    @property
    def notebook(self) -> str:
        """The notebook's file stem (an entry ``02_similarity@pos`` runs ``02_similarity``)."""
        return self.path.stem

    def points(self) -> list[dict[str, Any]]:
        """Every parameter set: fixed params + one value per axis (cartesian product)."""
        names = list(self.axes)
        return [{**self.params, **dict(zip(names, combo, strict=True)), **run}
                for combo in itertools.product(*(self.axes[n] for n in names))
                for run in self.runs]


@dataclass(frozen=True)
class Grid:
    """A parsed grid file (``load_grid``); ``validate`` checks it against the notebooks."""

    name: str
    description: str
    source: str
    notebooks: tuple[NotebookGrid, ...]

    def with_params(self, params: dict[str, Any]) -> Grid:
        """The grid with ``params`` fixed in every notebook (over the grid's own values; e.g.
        ``device`` from the command line). ``validate`` checks them like any grid value."""
        if not params:
            return self
        return Grid(self.name, self.description, self.source, tuple(
            NotebookGrid(nb.name, nb.path, {**nb.params, **params},
                         {k: v for k, v in nb.axes.items() if k not in params},
                         tuple({k: v for k, v in r.items() if k not in params}
                               for r in nb.runs))
            for nb in self.notebooks))

    def only(self, names: list[str] | None) -> Grid:
        """The grid restricted to ``names``: entries (``02_similarity@pos``) or notebooks
        (``02_similarity``: all its entries); each must be in the grid."""
        if not names:
            return self
        have = [nb.name for nb in self.notebooks]
        for n in names:
            if n not in have and n not in {nb.notebook for nb in self.notebooks}:
                raise unknown("notebook", n, have, f"the notebooks of grid {self.name!r}")
        return Grid(self.name, self.description, self.source,
                    tuple(nb for nb in self.notebooks if {nb.name, nb.notebook} & set(names)))


def shipped_grids() -> dict[str, Path]:
    """Grid name -> file for the grids that ship in ``resources/grids``."""
    return {p.stem: p for p in sorted(GRIDS_DIR.glob("*.yaml"))}


def default_notebooks_dir() -> Path | None:
    root = paths.repo_root()
    return None if root is None else root / "notebooks"


def load_grid(name_or_path: str | Path, *, notebooks_dir: str | Path | None = None) -> Grid:
    """Parse a grid file, or a shipped grid by name (``demo``, ``smoke``, ...)."""
    path = Path(name_or_path)
    if not path.exists():
        shipped = shipped_grids()
        if str(name_or_path) not in shipped:
            raise unknown("grid", str(name_or_path), shipped,
                          "or give the path of a grid YAML file")
        path = shipped[str(name_or_path)]
    if path.is_dir():
        raise ConfigError(f"grid {path} is a folder: give a grid YAML file (or a shipped grid: "
                          f"{', '.join(shipped_grids())})")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except UnicodeDecodeError as e:
        raise ConfigError(f"grid file {path} is not UTF-8 text ({e}); save it as UTF-8") from e
    except yaml.YAMLError as e:
        raise ConfigError(f"grid file {path} is not valid YAML: {e}") from e
    return parse_grid(data, path, notebooks_dir=notebooks_dir)


def _mapping(value, what: str) -> dict:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ConfigError(f"{what} must be a mapping of name: value, not {value!r}")
    return dict(value)


def _axes(value, what: str) -> dict[str, list]:
    axes = _mapping(value, what)
    for k, v in axes.items():
        if not isinstance(v, list) or not v:
            raise ConfigError(f"{what}.{k} must be a non-empty list of values, not {v!r} "
                              f"(a single value goes under params)")
    return axes


def _runs(value, what: str) -> tuple[dict, ...]:
    if value is None:
        return ({},)
    if not isinstance(value, list) or not value:
        raise ConfigError(f"{what} must be a non-empty list of parameter sets, not {value!r}")
    return tuple(_mapping(v, f"{what}[{i}]") for i, v in enumerate(value))


def _check_keys(data: dict, valid: tuple[str, ...], what: str) -> None:
    for k in data:
        if k not in valid:
            raise unknown(f"key in {what}", k, valid)


# a grid's name and its notebook entries name folders: one plain folder name each
FOLDER_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.@+=,-]*")


def check_folder_name(name: str, what: str, source: Path) -> str:
    """``name`` when it is a plain folder name, else a ``ConfigError``: a name with ``..``,
    a path separator or other characters would put the sweep's files outside its folder."""
    if not FOLDER_NAME.fullmatch(name) or ".." in name:
        raise ConfigError(f"grid file {source}: {what} {name!r} is not a plain folder name "
                          "(it names a folder of the sweep: letters, digits and _ . @ + = , - "
                          "only, no '..' or '/'); rename it")
    return name


# parameters that name tasks: a value that is a path (a data file, a saved dataset folder or a
# task card) is read relative to the grid file, like notebooks_dir and path
TASK_PARAMS = ("task", "cross_task", "out_of_domain", "tasks", "probe")
DATA_SUFFIXES = (".csv", ".tsv", ".jsonl", ".json", ".parquet", ".conllu", ".conllulex",
                 ".yaml", ".yml")


def local_task(value: Any, base: Path) -> Any:
    """``value`` with a relative path of a task's data (it has a ``/`` or a data file's
    suffix, and exists relative to ``base``) made absolute; registry names, hub ids and
    anything else as they are. Lists: each item."""
    if isinstance(value, list):
        return [local_task(v, base) for v in value]
    if not isinstance(value, str) or Path(value).is_absolute():
        return value
    looks_like_path = "/" in value or value.lower().endswith(DATA_SUFFIXES)
    if looks_like_path and (base / value).exists():
        return str((base / value).resolve())
    return value


def _local_tasks(values: dict[str, Any], base: Path, *, axes: bool = False) -> dict[str, Any]:
    return {k: ([local_task(v, base) for v in vs] if axes else local_task(vs, base))
            if k in TASK_PARAMS else vs for k, vs in values.items()}


def parse_grid(data: dict, source: Path, *, notebooks_dir: str | Path | None = None) -> Grid:
    """A ``Grid`` from the loaded YAML ``data`` of file ``source`` (structure checks only)."""
    if not isinstance(data, dict):
        raise ConfigError(f"grid file {source} must hold a mapping (name, notebooks, ...)")
    _check_keys(data, TOP_KEYS, f"grid file {source.name}")
    if notebooks_dir is not None:
        nb_dir = Path(notebooks_dir)
    elif data.get("notebooks_dir"):
        nb_dir = (source.parent / data["notebooks_dir"]).resolve()
    else:
        nb_dir = default_notebooks_dir()
    common = _mapping(data.get("params"), "params")
    common_axes = _axes(data.get("grid"), "grid")
    entries = data.get("notebooks")
    if isinstance(entries, list):
        entries = {n: {} for n in entries}
    entries = _mapping(entries, "notebooks")
    if not entries:
        raise ConfigError(f"grid file {source} lists no notebooks: add notebooks: {{...}}")
    notebooks = []
    for name, spec in entries.items():
        check_folder_name(str(name), "notebook entry", source)
        spec = _mapping(spec, f"notebooks.{name}")
        _check_keys(spec, NOTEBOOK_KEYS, f"notebooks.{name}")
        if spec.get("path"):
            path = (source.parent / spec["path"]).resolve()
        elif nb_dir is None:
            raise ConfigError(f"notebook {name!r}: no notebooks folder (not running from a "
                              "clone); set notebooks_dir in the grid or pass --notebooks DIR")
        else:  # "02_similarity@pos": notebook 02_similarity, runs under 02_similarity@pos/
            path = nb_dir / f"{str(name).partition('@')[0]}.ipynb"
        axes = {**common_axes, **_axes(spec.get("grid"), f"notebooks.{name}.grid")}
        runs = _runs(spec.get("runs"), f"notebooks.{name}.runs")
        for k in sorted({k for r in runs for k in r} & set(axes)):
            raise ConfigError(f"notebooks.{name}: {k!r} is both an axis and set by runs; "
                              "keep it in one of them")
        # fixed values stay as defaults of the runs that do not set them
        params = {k: v for k, v in {**common, **_mapping(spec.get("params"),
                                                         f"notebooks.{name}.params")}.items()
                  if k not in axes}
        base = source.parent
        notebooks.append(NotebookGrid(str(name), path, _local_tasks(params, base),
                                      _local_tasks(axes, base, axes=True),
                                      tuple(_local_tasks(r, base) for r in runs)))
    name = check_folder_name(str(data.get("name") or source.stem), "name", source)
    return Grid(name, str(data.get("description") or ""), str(source), tuple(notebooks))


def notebook_parameters(path: Path) -> dict[str, dict]:
    """The notebook's parameters cell: name -> {inferred_type_name, default, help}."""
    import papermill  # imported here: a few seconds, and only validation needs it

    return papermill.inspect_notebook(str(path))


def available_notebooks(folder: Path) -> list[str]:
    return sorted(p.stem for p in folder.glob("*.ipynb")) if folder.is_dir() else []


# notebook -> the config its parameters cell builds ("module:class"): validation builds it for
# every run, so a bad value (an unknown task or model, max_steps -3) is refused before anything
# runs instead of ~10 s into a kernel. Notebooks not listed (a user's own) get the name and
# type checks only.
NOTEBOOK_CONFIGS = {
    "01_finetune": "layerscope.finetune:FinetuneConfig",
    "02_similarity": "layerscope.studies.similarity:SimilarityConfig",
    "03_truncation": "layerscope.studies.truncation:TruncationConfig",
    "04_skipping": "layerscope.studies.skipping:SkippingConfig",
    "05_geometry": "layerscope.studies.geometry:GeometryConfig",
    "06_tasks": "layerscope.studies.tasks:TasksConfig",
}


def build_config(notebook: str, params: dict[str, Any]):
    """The config that notebook ``notebook`` builds from ``params`` (its fields among them;
    the cells' empty values as ``StudyConfig.from_params`` reads them), or None for a notebook
    not in ``NOTEBOOK_CONFIGS``. Raises what the config's checks raise."""
    import dataclasses
    import importlib

    target = NOTEBOOK_CONFIGS.get(notebook)
    if target is None:
        return None
    module, _, name = target.partition(":")
    cls = getattr(importlib.import_module(module), name)
    fields = {f.name for f in dataclasses.fields(cls)}
    values = {k: v for k, v in params.items() if k in fields}
    if hasattr(cls, "from_params"):
        return cls.from_params(values)
    return cls(**{k: None if (k == "max_steps" and v == 0) else
                  tuple(v) if isinstance(v, list) else v for k, v in values.items()})


def check_configs(nb: NotebookGrid) -> None:
    """``build_config`` for every run of ``nb``; the first failure as a ``ConfigError`` that
    names the notebook entry and the run."""
    for point in nb.points():
        try:
            build_config(nb.notebook, point)
        except (ValueError, TypeError, KeyError) as e:
            varying = {k: point[k] for k in nb.varying if k in point}
            raise ConfigError(f"notebook {nb.name!r}" + (f", run {varying}" if varying else "")
                              + f": {e}") from e


def _type_ok(value, type_name: str) -> bool:
    ok = TYPES.get(type_name)
    if ok is None or value is None:  # unknown annotation or an explicit None: papermill decides
        return True
    return isinstance(value, ok) and not (isinstance(value, bool) and bool not in ok)


def validate(grid: Grid) -> dict[str, dict[str, dict]]:
    """Check every notebook and parameter name and value type; returns each notebook's
    parameters (``notebook_parameters``). Raises ``ConfigError`` before anything runs."""
    found = {}
    for nb in grid.notebooks:
        if not nb.path.exists():
            raise unknown("notebook", nb.notebook, available_notebooks(nb.path.parent),
                          f"notebooks in {nb.path.parent}")
        params = notebook_parameters(nb.path)
        if not params:
            raise ConfigError(f"notebook {nb.name!r} has no cell tagged 'parameters'")
        valid = [p for p in params if p not in RUNNER_PARAMS]
        run_values: dict[str, list] = {}
        for r in nb.runs:
            for k, v in r.items():
                run_values.setdefault(k, []).append(v)
        for k in [*nb.params, *nb.axes, *run_values]:
            if k in RUNNER_PARAMS:
                raise ConfigError(f"notebook {nb.name!r}: parameter {k!r} is set by the sweep "
                                  f"runner (interactive=False, out_dir=<run folder>); remove it")
            if k not in params:
                raise unknown(f"parameter of notebook {nb.name!r}", k, valid)
        for k, values in [*((k, [v]) for k, v in nb.params.items()), *nb.axes.items(),
                          *run_values.items()]:
            want = params[k]["inferred_type_name"]
            bad = [v for v in values if not _type_ok(v, want)]
            if bad:
                hint = (f"; an axis of lists is a list of lists: {k}: [{json.dumps(values)}]"
                        if want == "list" and k in nb.axes else "")
                raise ConfigError(f"notebook {nb.name!r}: parameter {k!r} is a {want} "
                                  f"(default {params[k]['default']}), got {bad[0]!r}{hint}")
        check_configs(nb)
        found[nb.name] = params
    return found


def _slug(v) -> str:
    text = ",".join(map(str, v)) if isinstance(v, list) else str(v)
    return re.sub(r"[^A-Za-z0-9.,=+-]+", "-", text).strip("-") or "x"


def run_key(params: dict[str, Any], axes: list[str]) -> str:
    """Folder-safe run name: the axis values, readable, + a short hash of all parameters
    (fixed ones too, so changing a fixed value makes new runs instead of reusing old ones)."""
    readable = "_".join(f"{k}={_slug(params[k])}" for k in axes if k in params) or "default"
    return f"{readable[:80]}-{content_key(params, length=8)}"
