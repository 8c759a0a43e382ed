"""The global dedup steps' work grows with the corpus, not faster (docs/scaling.md, 1.2).

One in-process run of the steps (filter pass, exact dedup, MinHash buckets, components,
finalize) at two corpus sizes, the second twice the first in shards, documents and key
ranges. Each counted quantity may at most double, with 10% slack:
- pairs whose Jaccard is computed (copies of one text used to be verified once per band);
- component files written per star step (one per writer and partition used to grow as
  the partitions squared);
- id rows finalize reads to name the kept document (whole id columns of earlier shards; now
  at most one per duplicate);
- key and shingle-set files the dedup tasks open (every task opened every shard's 15 files),
  and drop files the finalize tasks open (every shard's task opened every drop file). The
  tasks are as many as the cluster runs (TASKS), not as the key ranges or shards.
"""

from __future__ import annotations

import json
import os
import random
from dataclasses import dataclass
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from tasks.curation.config import CurationConfig
from tasks.curation.dedup import exact_ranges
from tasks.curation.filter_pass import filter_shard
from tasks.curation.finalize import drop_files, finalize_shard
from tasks.curation.keyed_files import KeyFiles, owned_ranges
from tasks.curation.near_dedup import bucket_ranges, verify_ranges
from tasks.curation.npy_reader import NpyReader
from tasks.curation.output_files import CurationPaths
from tasks.curation.ragged_files import RaggedFiles
from tests.tasks.curation.dedup_driver import converge, drops_after

TASKS = 2  # dedup tasks: the cluster's share, the same at both sizes
OFF = {"enabled": False}
CFG = CurationConfig(
    decontamination=OFF,
    quality_classifier=OFF,
    heuristics=dict.fromkeys(("gopher_quality", "gopher_repetition", "c4", "fineweb"), OFF),
)
VOCAB = [f"word{i}" for i in range(4000)]


@dataclass
class Corpus:
    files: list[Path]
    original_of: dict[str, str]  # planted copy's id -> the id of the document it copies
    exact: int  # planted exact copies
    near: int  # planted near copies (the last of 80 words changed)


def build(folder: Path, shards: int, per_shard: int, near: bool = True) -> Corpus:
    """Each shard: 60% fresh documents, then 40% copies of fresh documents of this or any
    earlier shard (so duplicates point at many earlier shards, the case that made finalize
    read them whole). The mix is the same in every shard, so twice the shards is twice the
    corpus in every respect."""
    rng = random.Random(shards)
    folder.mkdir(parents=True)
    pool: list[tuple[str, str]] = []  # (id, text) of every fresh document so far
    files, original_of, exact, near_copies = [], {}, 0, 0
    for s in range(shards):
        docs = [(f"s{s}-{i}", " ".join(rng.choice(VOCAB) for _ in range(80))) for i in range(per_shard * 3 // 5)]
        pool += docs
        while len(docs) < per_shard:
            source_id, source = rng.choice(pool)
            copy_id = f"s{s}-{len(docs)}"
            if rng.random() < 0.5 or not near:
                docs.append((copy_id, source.upper()))  # an exact copy: case and spacing are not compared
                exact += 1
            else:
                words = source.split()  # the last word changed: Jaccard 75/77, in a shared bucket almost surely
                words[-1] = f"changed{near_copies}"
                docs.append((copy_id, " ".join(words)))
                near_copies += 1
            original_of[copy_id] = source_id
        path = folder / f"part-{s:03d}.jsonl"
        path.write_text("".join(json.dumps({"id": i, "text": t}) + "\n" for i, t in docs))
        files.append(path)
    return Corpus(files, original_of, exact, near_copies)


@dataclass
class Work:
    checked_pairs: int
    component_files_per_step: float
    id_rows_read: int
    dedup_files_opened: int
    finalize_files_opened: int
    removed: dict[str, int]


def run_steps(corpus: Corpus, curated: Path, monkeypatch: pytest.MonkeyPatch) -> Work:
    paths, shards = CurationPaths(curated), len(corpus.files)
    for i, f in enumerate(corpus.files):
        filter_shard(f, i, CFG, curated)
    parts = shards  # key ranges: as many as partition_docs makes of shards of equal size
    opened: list[str] = []
    real_init = NpyReader.__init__

    def counting_init(self, path):  # every open of a dedup input, by any step
        opened.append(str(path))
        real_init(self, path)

    monkeypatch.setattr(NpyReader, "__init__", counting_init)
    for t in range(TASKS):
        ranges = owned_ranges(t, TASKS, parts)
        exact_ranges(KeyFiles([paths.keys(i) for i in range(shards)]), ranges, parts, paths.exact_drops)
    for t in range(TASKS):
        bucket_ranges(paths, shards, owned_ranges(t, TASKS, parts), parts, CFG.minhash, True)
    verified = [verify_ranges(paths, owned_ranges(t, TASKS, parts), parts, CFG.minhash) for t in range(TASKS)]
    dedup_opens = sum(1 for f in opened if "/keys/" in f or "/shingles/" in f)
    rnd = converge(paths.components, parts)
    files = sum(1 for f in paths.components.rglob("*.npy"))
    drops_after(paths.components, rnd, parts, paths.minhash_drops)
    finals = []
    descriptors = len(os.listdir("/proc/self/fd"))
    for t in range(TASKS):  # as the flow's finalize tasks: each owns every TASKS-th shard
        drops, ids = drop_files(paths, parts, parts), RaggedFiles(paths.doc_ids)
        finals += [finalize_shard(i, CFG, curated, drops, ids=ids) for i in range(shards)[t::TASKS]]
        del drops, ids
    # A worker finalizes hundreds of shards: what each shard opened must be closed again.
    assert len(os.listdir("/proc/self/fd")) == descriptors
    finalize_opens = sum(1 for f in opened if "-drops/" in f or "/ids/" in f)
    removed: dict[str, int] = {}
    for i in range(shards):
        for row in pq.read_table(paths.removed_dedup(i)).to_pylist():
            removed[row["reason"]] = removed.get(row["reason"], 0) + 1
            assert row["detail"] == f"duplicate of {corpus.original_of[row['id']]}"  # the kept one, by its id
    return Work(
        checked_pairs=sum(r["checked_pairs"] for r in verified),
        component_files_per_step=files / (rnd + 1),
        id_rows_read=sum(f["id_rows_read"] for f in finals),
        dedup_files_opened=dedup_opens,
        finalize_files_opened=finalize_opens,
        removed=removed,
    )


@pytest.fixture(scope="module")
def two_sizes(tmp_path_factory: pytest.TempPathFactory) -> tuple[Work, Work, Corpus, Corpus]:
    with pytest.MonkeyPatch.context() as mp:
        root = tmp_path_factory.mktemp("linear")
        small, large = build(root / "in-3", 3, 150), build(root / "in-6", 6, 150)
        return run_steps(small, root / "out-3", mp), run_steps(large, root / "out-6", mp), small, large


def test_every_planted_duplicate_is_removed_for_its_reason(two_sizes):
    for work, corpus in ((two_sizes[0], two_sizes[2]), (two_sizes[1], two_sizes[3])):
        assert work.removed.get("exact_duplicate", 0) == corpus.exact
        assert work.removed.get("minhash_duplicate", 0) == corpus.near


@pytest.mark.parametrize(
    "count", ["checked_pairs", "component_files_per_step", "dedup_files_opened", "finalize_files_opened"]
)
def test_work_at_most_doubles_with_the_corpus(two_sizes, count):
    small, large = getattr(two_sizes[0], count), getattr(two_sizes[1], count)
    assert small > 0
    assert large <= 2.2 * small, f"{count}: {small} -> {large} for twice the corpus"


def test_copies_of_a_text_are_not_verified(tmp_path, monkeypatch):
    corpus = build(tmp_path / "in", 3, 150, near=False)
    work = run_steps(corpus, tmp_path / "out", monkeypatch)
    assert corpus.exact > 30 and work.removed == {"exact_duplicate": corpus.exact}
    # Each copy shares all 14 buckets with its original; not one pair needed a Jaccard.
    assert work.checked_pairs == 0


def test_finalize_reads_one_id_per_duplicate_at_most(two_sizes):
    # Distinct kept documents named per shard rise a little with the corpus (fewer repeats
    # among more originals), so the linear bound is the duplicates, not a doubling.
    for work in two_sizes[:2]:
        assert 0 < work.id_rows_read <= sum(work.removed.values())
