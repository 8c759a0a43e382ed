"""Bad token shards, manifests and tokenizers are refused with the file named and the fix given."""

import json

import numpy as np
import pytest

from infra.core.storage import read_json, write_json
from tasks.tokenization.bpe import train_on_texts
from tasks.tokenization.config import TokenizationConfig
from tasks.tokenization.reader import ShardError, TokenRows, check_tokenizer_matches, read_manifest


@pytest.fixture()
def shards(make_token_shards):
    out = make_token_shards({"web": 60}, files=1)
    entry = next(e for e in read_json(out / "manifest.json")["shards"] if e["split"] == "train")
    return out, out / entry["file"]


def test_intact_shards_open_with_a_full_check(shards):
    out, _ = shards
    rows = TokenRows.open(out, "train", verify="full")
    assert len(rows) == read_json(out / "manifest.json")["splits"]["train"]["rows"]


def test_truncated_shard(shards):
    out, shard = shards
    shard.write_bytes(shard.read_bytes()[:-100])
    with pytest.raises(
        ShardError, match=rf"{shard.name} is \d+ bytes, the manifest says \d+ \(truncated.*crucible tokenize"
    ):
        TokenRows.open(out, "train")


def test_corrupt_shard_of_the_right_size(shards):
    out, shard = shards
    data = bytearray(shard.read_bytes())
    data[-20:] = b"\xff" * 20  # the footer: Arrow cannot find the schema
    shard.write_bytes(bytes(data))
    with pytest.raises(ShardError, match=f"{shard.name}: checksum differs from the manifest; re-run"):
        TokenRows.open(out, "train", verify="full")
    with pytest.raises(ShardError, match=f"{shard.name} is not a readable Arrow file"):
        TokenRows.open(out, "train", verify="size")


def test_flipped_token_is_caught_by_the_checksum(shards):
    out, shard = shards
    data = bytearray(shard.read_bytes())
    data[len(data) // 2] ^= 0x01
    shard.write_bytes(bytes(data))
    with pytest.raises(ShardError, match="checksum differs"):
        TokenRows.open(out, "train", verify="full")


def test_missing_shard_and_missing_manifest(shards):
    out, shard = shards
    shard.unlink()
    with pytest.raises(ShardError, match=f"{shard.name} is missing; re-run `crucible tokenize`"):
        TokenRows.open(out, "train")
    (out / "manifest.json").unlink()
    with pytest.raises(FileNotFoundError, match="run `crucible tokenize` for this run first"):
        read_manifest(out)


def test_manifest_from_an_older_version(shards):
    out, _ = shards
    manifest = read_json(out / "manifest.json")
    del manifest["schema"]
    write_json(out / "manifest.json", manifest)
    with pytest.raises(ShardError, match="older version of Crucible"):
        read_manifest(out)


def test_manifest_row_count_mismatch(shards):
    out, shard = shards
    manifest = read_json(out / "manifest.json")
    entry = next(e for e in manifest["shards"] if out / e["file"] == shard)
    entry["rows"] += 1
    with pytest.raises(ShardError, match=f"{shard.name} does not hold the {entry['rows']} rows"):
        TokenRows.open(out, "train", manifest=manifest)


def test_tokenizer_that_does_not_match_the_shards(shards):
    out, _ = shards
    tok_path = out.parent / "tokenizer" / "tokenizer.json"
    check_tokenizer_matches(read_manifest(out), tok_path, out)
    other = train_on_texts(["completely different text " * 50], TokenizationConfig(vocab_size=270))
    other.save(str(tok_path))
    with pytest.raises(
        ShardError,
        match=r"tokenizer .*tokenizer.json \(vocabulary \d+\) is not the one the "
        r"shards .* were made with \(vocabulary 300\)",
    ):
        check_tokenizer_matches(read_manifest(out), tok_path, out)


def test_shard_made_with_another_tokenizer(make_token_shards):
    a = make_token_shards({"web": 60}, files=1, name="a")
    b = make_token_shards({"web": 60}, files=1, name="b", vocab_size=290)
    manifest = read_json(a / "manifest.json")
    entry = next(e for e in manifest["shards"] if e["split"] == "train")
    other = next(e for e in read_json(b / "manifest.json")["shards"] if e["split"] == "train")
    (a / entry["file"]).write_bytes((b / other["file"]).read_bytes())
    entry["bytes"] = other["bytes"]
    with pytest.raises(ShardError, match="made with another tokenizer"):
        TokenRows.open(a, "train", manifest=manifest)


def test_rows_out_of_range(shards):
    out, _ = shards
    rows = TokenRows.open(out, "train")
    with pytest.raises(IndexError):
        rows.rows(np.array([len(rows)]))
    assert json.dumps(rows.rows(np.array([0]))[1].tolist())
