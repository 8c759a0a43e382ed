import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from infra.core.storage import read_json
from tasks.tokenization.bpe import load_tokenizer, prepare_tokenizer, sample_texts
from tasks.tokenization.config import TokenizationConfig
from tasks.tokenization.manifest import build_manifest
from tasks.tokenization.reader import TokenRows, to_batch
from tasks.tokenization.shards import pack_rows, source_dir, token_dtype, tokenize_shard
from tasks.tokenization.split import split_of

TEXTS = [f"Document number {i} talks about rivers, hills and {i * 7} small boats." for i in range(60)]


@pytest.fixture()
def curated(tmp_path):
    path = tmp_path / "curated" / "part-00000.parquet"
    path.parent.mkdir()
    sources = ["web" if i % 3 else "books" for i in range(len(TEXTS))]
    pq.write_table(pa.table({"id": [f"d{i}" for i in range(len(TEXTS))], "text": TEXTS, "source": sources}), path)
    return path


def test_tokenizer_round_trips_text_and_has_the_special_tokens(curated, tmp_path):
    cfg = TokenizationConfig(vocab_size=300, seq_len=16, special_tokens=["<|pad|>", "<|user|>"])
    tok = prepare_tokenizer([curated], cfg, tmp_path / "tok" / "tokenizer.json")
    assert tok.get_vocab_size() <= 300
    assert [tok.token_to_id(t) for t in (cfg.eos_token, "<|pad|>", "<|user|>")] == [0, 1, 2]
    text = "Unseen words: café, ñandú, 🚀!"
    assert tok.decode(tok.encode(text).ids) == text  # byte-level: nothing is ever unknown


def test_tokenizer_sample_leaves_validation_documents_out(curated):
    sample = list(sample_texts([curated], 10**9, val_fraction=0.2))
    val = {t for i, t in enumerate(TEXTS) if split_of(f"d{i}", 0.2) == "val"}
    assert val and not val & set(sample)
    assert len(sample) == len(TEXTS) - len(val)


def test_an_existing_tokenizer_is_reused_and_checked(curated, tmp_path):
    cfg = TokenizationConfig(vocab_size=280, seq_len=16)
    prepare_tokenizer([curated], cfg, tmp_path / "a.json")
    reuse = TokenizationConfig(vocab_size=9999, seq_len=16, tokenizer_path=str(tmp_path / "a.json"))
    tok = prepare_tokenizer([curated], reuse, tmp_path / "run" / "tokenizer.json")
    assert (tmp_path / "run" / "tokenizer.json").read_bytes() == (tmp_path / "a.json").read_bytes()
    assert tok.get_vocab_size() <= 280  # the reused vocabulary, not the configured size
    wrong = TokenizationConfig(tokenizer_path=str(tmp_path / "a.json"), eos_token="</s>")
    with pytest.raises(ValueError, match=r"a.json has no token\(s\) \['</s>'\]"):
        prepare_tokenizer([curated], wrong, tmp_path / "run2" / "tokenizer.json")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(ValueError, match=r"bad\.json cannot be read"):
        load_tokenizer(tmp_path / "bad.json")


def test_packing_keeps_every_token_and_records_document_starts():
    docs = [np.array([5, 6, 7, 0], np.uint16), np.array([8, 0], np.uint16), np.array([9, 9, 9, 9, 9, 0], np.uint16)]
    lengths = np.array([len(d) for d in docs])
    table, counts = pack_rows(np.concatenate(docs), lengths, row_len=5, pad_id=0)
    assert counts == {"docs": 3, "tokens": 12, "rows": 3, "padding_tokens": 3, "dropped_eos": 0}
    rows = np.array(table.column("tokens").to_pylist())
    assert rows.ravel()[:12].tolist() == np.concatenate(docs).tolist()
    assert table.column("length").to_pylist() == [5, 5, 2]
    assert table.column("doc_starts").to_pylist() == [[0, 4], [1], []]
    # A lone trailing EOS is the only token ever left out, and it is counted.
    more = [*docs, np.array([3, 3, 3, 0], np.uint16)]
    _, counts = pack_rows(np.concatenate(more), np.array([len(d) for d in more]), row_len=5, pad_id=0)
    assert counts["dropped_eos"] == 1 and counts["tokens"] == 15 and counts["rows"] == 3


def test_shards_are_split_by_source_and_account_for_every_document(curated, tmp_path):
    cfg = TokenizationConfig(vocab_size=300, seq_len=16, val_fraction=0.2)
    tok_path = tmp_path / "tokenizer.json"
    tok = prepare_tokenizer([curated], cfg, tok_path)
    out = tmp_path / "shards"
    entries = tokenize_shard(curated, 0, tok_path, cfg, out)
    assert {(e["split"], e["source"]) for e in entries} == {
        (s, src) for s in ("train", "val") for src in ("web", "books")
    }
    assert sum(e["docs"] for e in entries) == len(TEXTS)
    manifest = build_manifest(entries, tok_path, cfg)
    eos = tok.token_to_id(cfg.eos_token)
    for e in entries:
        expected = [
            t
            for i, text in enumerate(TEXTS)
            if split_of(f"d{i}", 0.2) == e["split"] and ("web" if i % 3 else "books") == e["source"]
            for t in [*tok.encode(text).ids, eos]
        ]
        if len(expected) % 17 == 1:
            expected = expected[:-1]
        rows = TokenRows.open(out, e["split"], e["source"], verify="full", manifest=manifest)
        tokens, lengths = rows.rows(np.arange(len(rows)))
        served = np.concatenate([t[:n] for t, n in zip(tokens, lengths)]).tolist()
        assert served == expected and e["tokens"] == len(expected)
    assert manifest["dtype"] == "uint16" and manifest["row_len"] == 17
    val = manifest["splits"]["val"]
    assert manifest["tokenizer"]["val_bytes_per_token"] == pytest.approx(
        val["text_bytes"] / (val["tokens"] + val["dropped_eos"] - val["docs"])
    )
    assert (
        manifest["sources"]["train"]["books"]["docs"] + manifest["sources"]["train"]["web"]["docs"]
        == manifest["splits"]["train"]["docs"]
    )


def test_padding_targets_are_ignored_by_the_batch():
    tokens = np.array([[1, 2, 3, 4, 5], [6, 7, 0, 0, 0]], dtype=np.int64)
    x, y = to_batch(tokens, np.array([5, 2]))
    assert y.tolist() == [[2, 3, 4, 5], [7, -100, -100, -100]]
    assert x.tolist() == [[1, 2, 3, 4], [6, 7, 0, 0]]


def test_segments_follow_document_starts(make_token_shards):
    out = make_token_shards({"web": 60}, files=1)
    rows = TokenRows.open(out, "train", "web")
    tokens, _ = rows.rows(np.arange(len(rows)))
    seg = rows.segments(np.arange(len(rows)))
    eos = read_json(out / "manifest.json")["eos_id"]
    for t, s in zip(tokens, seg):
        # A new segment begins right after each EOS inside the row.
        after_eos = np.flatnonzero(t[:-1] == eos) + 1
        assert set(np.flatnonzero(np.diff(s)) + 1) == set(after_eos)


def test_empty_split_is_a_clear_error(curated, tmp_path):
    cfg = TokenizationConfig(vocab_size=300, seq_len=4000, val_fraction=0.2)
    prepare_tokenizer([curated], cfg, tmp_path / "tokenizer.json")
    entries = tokenize_shard(curated, 0, tmp_path / "tokenizer.json", cfg, tmp_path / "shards")
    with pytest.raises(ValueError, match=r"less than one sequence.*lower tokenization\.seq_len"):
        build_manifest(entries, tmp_path / "tokenizer.json", cfg)


def test_split_is_deterministic_and_near_the_fraction():
    ids = [f"doc-{i}" for i in range(5000)]
    val = [i for i in ids if split_of(i, 0.1) == "val"]
    assert val == [i for i in ids if split_of(i, 0.1) == "val"]
    assert 400 < len(val) < 600


def test_token_dtype_and_source_folders():
    assert token_dtype(65536) == np.uint16 and token_dtype(65537) == np.uint32
    assert source_dir("web") == "web"
    assert source_dir("a/b") != source_dir("a_b") and "/" not in source_dir("a/b")
    assert not source_dir("..").startswith(".")


def test_missing_tokenizer_names_the_fix(tmp_path):
    with pytest.raises(FileNotFoundError, match="crucible tokenize"):
        load_tokenizer(tmp_path / "tokenizer.json")
