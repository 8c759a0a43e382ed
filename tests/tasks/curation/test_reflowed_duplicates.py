"""An article and the same article reflowed onto one line are near-duplicates after the rules.

C4's line rules drop an article's short heading lines, but cannot drop them from a copy whose
lines were joined (what extracting the same article from two sites' HTML gives). Keys taken
from the edited texts drifted apart; keys are taken from the text before those edits."""

from __future__ import annotations

import json
import random

import numpy as np
import pyarrow.parquet as pq

from tasks.curation.config import CurationConfig
from tasks.curation.filter_pass import filter_shard
from tasks.curation.keyed_files import doc_id
from tasks.curation.minhash import MinHasher
from tasks.curation.output_files import CurationPaths
from tasks.curation.ragged_files import RaggedFiles
from tasks.curation.shingles import normalized_words
from tasks.curation.similarity import jaccard_sorted

WORDS = [
    "river",
    "mill",
    "town",
    "bridge",
    "field",
    "farmer",
    "school",
    "market",
    "church",
    "tower",
    "street",
    "teacher",
    "record",
    "flood",
    "season",
    "village",
    "harbour",
    "road",
    "garden",
    "library",
    "crosses",
    "keeps",
    "follows",
    "reaches",
    "protects",
    "shows",
    "names",
    "feeds",
    "joins",
    "holds",
    "old",
    "narrow",
    "quiet",
    "busy",
    "northern",
    "wooden",
    "famous",
    "small",
    "green",
    "early",
    "the",
    "the",
    "the",
    "and",
    "and",
    "of",
    "of",
    "to",
    "to",
    "with",
    "that",
    "in",
    "on",
    "for",
    "from",
    "water",
    "stone",
    "winter",
    "summer",
    "bread",
    "music",
    "evening",
    "morning",
    "lamp",
    "window",
    "door",
    "hill",
    "valley",
    "station",
    "letter",
    "story",
    "song",
    "painter",
    "baker",
    "sailor",
    "doctor",
]


def article(seed: int) -> tuple[str, str]:
    """(original with a two-word heading over each paragraph, the same words on one line)."""
    rnd = random.Random(seed)
    lines = []
    for _ in range(24):
        lines.append(f"{rnd.choice(WORDS).title()} {rnd.choice(WORDS)}")
        lines.append(" ".join(" ".join(rnd.choice(WORDS) for _ in range(9)).capitalize() + "." for _ in range(2)))
    return "\n".join(lines), " ".join(lines)


def test_a_reflowed_copy_keeps_the_keys_of_its_original(tmp_path):
    original, reflowed = article(1)
    src = tmp_path / "in.jsonl"
    src.write_text("".join(json.dumps({"id": i, "text": t}) + "\n" for i, t in [("a", original), ("b", reflowed)]))
    cfg = CurationConfig(decontamination={"enabled": False})
    result = filter_shard(src, 0, cfg, tmp_path / "curated")
    assert result["kept"] == 2
    paths = CurationPaths(tmp_path / "curated")
    kept = {r["id"]: r["text"] for r in pq.read_table(paths.filtered(0)).to_pylist()}
    assert len(kept["a"]) < len(original) and kept["b"] == reflowed  # the rules edited only the original
    hasher = MinHasher(cfg.minhash.shingle_size, cfg.minhash.bands, cfg.minhash.rows, cfg.minhash.seed)
    edited = [np.unique(hasher.shingle_hashes(normalized_words(kept[k]))) for k in ("a", "b")]
    # Keys of the edited texts would fall below the duplicate threshold...
    assert jaccard_sorted(*edited) < cfg.minhash.min_similarity
    # ...the stored ones, taken before the edits, are the same set.
    sets = RaggedFiles(paths.shingle_sets)
    assert jaccard_sorted(sets.get(doc_id(0, 0)), sets.get(doc_id(0, 1))) == 1.0
