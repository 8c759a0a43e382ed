"""Train a byte-level BPE tokenizer (HF `tokenizers`) on a sample of the curated text."""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Iterable, Iterator

import pyarrow.parquet as pq
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

from infra.storage import atomic_path
from tasks.tokenization.config import TokenizationConfig

log = logging.getLogger(__name__)


def sample_texts(shards: list[Path], budget_bytes: int) -> Iterator[str]:
    """Documents taken round-robin across shards until `budget_bytes`, so every shard contributes."""
    readers = [pq.ParquetFile(p).iter_batches(batch_size=256, columns=["text"]) for p in shards]
    used = 0
    while readers and used < budget_bytes:
        for reader in list(readers):
            batch = next(reader, None)
            if batch is None:
                readers.remove(reader)
                continue
            for text in batch.column("text").to_pylist():
                used += len(text.encode("utf-8"))
                yield text
                if used >= budget_bytes:
                    return


def train_on_texts(texts: Iterable[str], cfg: TokenizationConfig) -> Tokenizer:
    """A byte-level BPE trained on `texts`, with the configured vocabulary and EOS token."""
    tok = Tokenizer(models.BPE())
    # Byte-level: every byte sequence is representable, so no <unk> is ever needed.
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=cfg.vocab_size,
        min_frequency=cfg.min_frequency,
        special_tokens=[cfg.eos_token],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=True,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    return tok


def train_tokenizer(shards: list[Path], cfg: TokenizationConfig, dest: Path) -> Tokenizer:
    """Train on curated shards and save `tokenizer.json` atomically."""
    tok = train_on_texts(sample_texts(shards, cfg.train_sample_bytes), cfg)
    with atomic_path(dest) as tmp:
        tok.save(str(tmp))
    log.info("trained a BPE tokenizer with %d tokens -> %s", tok.get_vocab_size(), dest)
    return tok


def load_tokenizer(path: Path) -> Tokenizer:
    if not path.is_file():
        raise FileNotFoundError(f"tokenizer {path} not found; run `crucible tokenize` for this run first")
    return Tokenizer.from_file(str(path))
