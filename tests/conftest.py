"""Shared test set-up: the repository root as working directory, so preset paths resolve."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures"


@pytest.fixture(autouse=True)
def _repo_root_cwd(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")


def _doc_texts(source: str, n: int) -> list[str]:
    """Distinct documents of varied length, so rows pack several of them and split some."""
    return [
        f"{source} document {i}: " + " ".join(f"{source[:3]}{(i * 7 + j) % 53}" for j in range(5 + (i * 13) % 40))
        for i in range(n)
    ]


def build_token_run(root: Path, docs_per_source: dict[str, int], files: int = 2, **cfg_kw) -> Path:
    """Curated Parquet shards with the given documents per source, a BPE and token shards,
    laid out as a run directory (`root/curated`, `root/tokenizer`, `root/shards`)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from infra.core.storage import write_json
    from tasks.tokenization.bpe import prepare_tokenizer
    from tasks.tokenization.config import TokenizationConfig
    from tasks.tokenization.manifest import build_manifest
    from tasks.tokenization.shards import tokenize_shard

    cfg = TokenizationConfig(**{"vocab_size": 300, "seq_len": 16, "val_fraction": 0.2, **cfg_kw})
    rows = [
        {"id": f"{s}-{i}", "text": t, "source": s}
        for s, n in docs_per_source.items()
        for i, t in enumerate(_doc_texts(s, n))
    ]
    curated = []
    for f in range(files):
        path = root / "curated" / f"part-{f:05d}.parquet"
        path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(pa.Table.from_pylist(rows[f::files]), path)
        curated.append(path)
    tok_path = root / "tokenizer" / "tokenizer.json"
    prepare_tokenizer(curated, cfg, tok_path)
    out = root / "shards"
    entries = [e for i, p in enumerate(curated) for e in tokenize_shard(p, i, tok_path, cfg, out)]
    write_json(out / "manifest.json", build_manifest(entries, tok_path, cfg))
    return out


@pytest.fixture()
def make_token_shards(tmp_path: Path):
    """Build curated Parquet shards with the given documents per source, a BPE and token shards."""

    def make(docs_per_source: dict[str, int], files: int = 2, name: str = "run", **cfg_kw):
        return build_token_run(tmp_path / name, docs_per_source, files, **cfg_kw)

    return make
