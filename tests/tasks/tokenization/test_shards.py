import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from infra.storage import write_json
from tasks.tokenization.bpe import load_tokenizer, train_tokenizer
from tasks.tokenization.config import TokenizationConfig
from tasks.tokenization.shards import (TokenShards, build_manifest, split_of, token_dtype,
                                       tokenize_shard)

TEXTS = [f"Document number {i} talks about rivers, hills and {i * 7} small boats." for i in range(60)]


@pytest.fixture()
def curated(tmp_path):
    path = tmp_path / "curated" / "part-00000.parquet"
    path.parent.mkdir()
    pq.write_table(pa.table({"id": [f"d{i}" for i in range(len(TEXTS))], "text": TEXTS}), path)
    return path


def test_tokenizer_round_trips_text(curated, tmp_path):
    cfg = TokenizationConfig(vocab_size=300, seq_len=16)
    tok = train_tokenizer([curated], cfg, tmp_path / "tok" / "tokenizer.json")
    assert tok.get_vocab_size() <= 300 and tok.token_to_id(cfg.eos_token) is not None
    text = "Unseen words: café, ñandú, 🚀!"
    assert tok.decode(tok.encode(text).ids) == text  # byte-level: nothing is ever unknown


def test_shards_pack_every_token_and_account_for_the_tail(curated, tmp_path):
    cfg = TokenizationConfig(vocab_size=300, seq_len=16, val_fraction=0.2)
    tok_path = tmp_path / "tokenizer.json"
    tok = train_tokenizer([curated], cfg, tok_path)
    out = tmp_path / "shards"
    entries = tokenize_shard(curated, 0, tok_path, cfg, out)
    by_split = {e["split"]: e for e in entries}
    assert by_split["train"]["docs"] + by_split["val"]["docs"] == len(TEXTS)
    eos = tok.token_to_id(cfg.eos_token)
    expected = {s: sum(len(tok.encode(t).ids) + 1 for i, t in enumerate(TEXTS) if split_of(f"d{i}", 0.2) == s)
                for s in ("train", "val")}
    for split, e in by_split.items():
        assert e["tokens"] == expected[split]
        assert e["rows"] * 17 + e["tail_tokens_dropped"] == e["tokens"] and e["tail_tokens_dropped"] < 17
    manifest = build_manifest(entries, tok_path, cfg)
    write_json(out / "manifest.json", manifest)
    assert manifest["dtype"] == "uint16" and manifest["row_len"] == 17
    train = TokenShards.open(out, "train", verify=True)
    assert len(train) == by_split["train"]["rows"]
    first = train.rows(np.array([0]))[0]
    # The first row starts with the first training document, followed by EOS.
    first_doc = next(t for i, t in enumerate(TEXTS) if split_of(f"d{i}", 0.2) == "train")
    ids = tok.encode(first_doc).ids
    assert list(first[: len(ids)]) == ids and first[len(ids)] == eos


def test_checksum_mismatch_is_reported(curated, tmp_path):
    cfg = TokenizationConfig(vocab_size=300, seq_len=16, val_fraction=0.2)
    train_tokenizer([curated], cfg, tmp_path / "tokenizer.json")
    out = tmp_path / "shards"
    entries = tokenize_shard(curated, 0, tmp_path / "tokenizer.json", cfg, out)
    write_json(out / "manifest.json", build_manifest(entries, tmp_path / "tokenizer.json", cfg))
    shard = out / "train" / "part-00000.arrow"
    shard.write_bytes(shard.read_bytes()[:-1] + b"\x00")
    with pytest.raises(ValueError, match="checksum differs"):
        TokenShards.open(out, "train", verify=True)


def test_empty_split_is_a_clear_error(curated, tmp_path):
    cfg = TokenizationConfig(vocab_size=300, seq_len=4000, val_fraction=0.2)
    train_tokenizer([curated], cfg, tmp_path / "tokenizer.json")
    entries = tokenize_shard(curated, 0, tmp_path / "tokenizer.json", cfg, tmp_path / "shards")
    with pytest.raises(ValueError, match="no full sequence.*lower tokenization.seq_len"):
        build_manifest(entries, tmp_path / "tokenizer.json", cfg)


def test_split_is_deterministic_and_near_the_fraction():
    ids = [f"doc-{i}" for i in range(5000)]
    val = [i for i in ids if split_of(i, 0.1) == "val"]
    assert val == [i for i in ids if split_of(i, 0.1) == "val"]
    assert 400 < len(val) < 600


def test_token_dtype():
    assert token_dtype(65536) == np.uint16 and token_dtype(65537) == np.uint32


def test_missing_tokenizer_names_the_fix(tmp_path):
    with pytest.raises(FileNotFoundError, match="crucible tokenize"):
        load_tokenizer(tmp_path / "tokenizer.json")
