"""The byte-level BPE tokenizer (HF `tokenizers`): trained on curated text, or reused."""

from __future__ import annotations

import logging
import shutil
from collections.abc import Iterable, Iterator
from pathlib import Path

import pyarrow.parquet as pq
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

from infra.core.storage import atomic_path
from tasks.tokenization.config import TokenizationConfig
from tasks.tokenization.split import split_of

log = logging.getLogger(__name__)


def sample_texts(shards: list[Path], budget_bytes: int, val_fraction: float) -> Iterator[str]:
    """Training-split documents taken round-robin across shards until `budget_bytes`, so every
    shard contributes and the validation documents stay unseen (bytes per token is measured on them)."""
    readers = [pq.ParquetFile(p).iter_batches(batch_size=256, columns=["id", "text"]) for p in shards]
    used = 0
    while readers and used < budget_bytes:
        for reader in list(readers):
            batch = next(reader, None)
            if batch is None:
                readers.remove(reader)
                continue
            for doc_id, text in zip(batch.column("id").to_pylist(), batch.column("text").to_pylist()):
                if split_of(doc_id, val_fraction) != "train":
                    continue
                used += len(text.encode("utf-8"))
                yield text
                if used >= budget_bytes:
                    return


def train_on_texts(texts: Iterable[str], cfg: TokenizationConfig) -> Tokenizer:
    """A byte-level BPE trained on `texts`, with the configured vocabulary and special tokens."""
    tok = Tokenizer(models.BPE())
    # Byte-level: every byte sequence is representable, so no <unk> is ever needed.
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=cfg.vocab_size,
        min_frequency=cfg.min_frequency,
        special_tokens=[cfg.eos_token, *cfg.special_tokens],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    return tok


def check_tokenizer(tok: Tokenizer, cfg: TokenizationConfig, path: Path) -> None:
    """Refuse a tokenizer that lacks the special tokens the shards and the model rely on."""
    missing = [t for t in (cfg.eos_token, *cfg.special_tokens) if tok.token_to_id(t) is None]
    if missing:
        raise ValueError(
            f"tokenizer {path} has no token(s) {missing}; set tokenization.eos_token / "
            f"special_tokens to tokens it has, or leave tokenization.tokenizer_path unset to train one"
        )


def prepare_tokenizer(shards: list[Path], cfg: TokenizationConfig, dest: Path) -> Tokenizer:
    """Copy the configured tokenizer into the run, or train one on curated shards; saved atomically."""
    if cfg.tokenizer_path:
        src = Path(cfg.tokenizer_path)
        tok = load_tokenizer(src)
        check_tokenizer(tok, cfg, src)
        with atomic_path(dest) as tmp:
            shutil.copyfile(src, tmp)
        log.info("reusing tokenizer %s (%d tokens)", src, tok.get_vocab_size())
        return tok
    tok = train_on_texts(sample_texts(shards, cfg.train_sample_bytes, cfg.val_fraction), cfg)
    with atomic_path(dest) as tmp:
        tok.save(str(tmp))
    log.info("trained a BPE tokenizer with %d tokens -> %s", tok.get_vocab_size(), dest)
    return tok


def check_vocab(path: Path, vocab_size: int) -> None:
    """The tokenizer at `path` reads and has the vocabulary a model was trained with."""
    have = load_tokenizer(path).get_vocab_size()
    if have != vocab_size:
        raise ValueError(
            f"tokenizer {path} has a vocabulary of {have}, the model was trained with {vocab_size}: it is "
            f"not the run's tokenizer; restore it, or re-run `crucible tokenize` and `crucible train`"
        )


def load_tokenizer(path: Path) -> Tokenizer:
    if not path.is_file():
        raise FileNotFoundError(f"tokenizer {path} not found; run `crucible tokenize` for this run first")
    try:
        return Tokenizer.from_file(str(path))
    except Exception as exc:  # tokenizers raises a bare Exception for unparsable JSON
        raise ValueError(
            f"tokenizer {path} cannot be read ({str(exc)[:200]}); it is not a HF tokenizer.json: "
            f"if it is a run's own, re-run `crucible tokenize` for that run; else point "
            f"tokenization.tokenizer_path at one"
        ) from None
