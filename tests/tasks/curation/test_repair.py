"""Text repair: damaged copies of a text get the dedup keys of the original, and the kept
text is mended without changing what a reader sees."""

from __future__ import annotations

import html
import json
import random

import ftfy.bad_codecs  # noqa: F401  (registers the sloppy-windows-1252 codec)
import numpy as np
import pyarrow.parquet as pq
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from tasks.curation.config import CurationConfig
from tasks.curation.filter_pass import filter_shard
from tasks.curation.filters.chain import DocumentFilter
from tasks.curation.keyed_files import EXACT_BAND
from tasks.curation.output_files import CurationPaths
from tasks.curation.repair import key_text, repair_text

ARTICLE = (
    "Le café “Chez Zoë” opened in 1921 beside the old mill, and the town’s bakers met there each morning. "
    "Its owner, Renée Müller, kept a ledger of every loaf that crossed the counter; the ledger survives in "
    "the municipal archive, where historians of the region still read it. During the long winter of 1929 "
    "the café fed the families of the flooded valley, and the mayor’s letter of thanks hangs by its door. "
    "Today the building holds a small museum of bread, with ovens, scales and the naïve paintings that the "
    "bakers’ children made for the walls. Visitors who come in spring can watch the old recipes baked again."
)


def _exact_keys(paths: CurationPaths, shard: int) -> list[int]:
    keys = np.load(paths.keys(shard), allow_pickle=False)
    return keys[keys["band"] == EXACT_BAND]["aux"].tolist()


def mojibake(text: str) -> str:
    # What a browser does with UTF-8 read as windows-1252: its five undefined bytes become
    # C1 controls (the WHATWG mapping), which ftfy's "sloppy" codec reproduces.
    return text.encode("utf-8").decode("sloppy-windows-1252")


def latin1_mojibake(text: str) -> str:
    return text.encode("utf-8").decode("latin-1")


def entities(text: str) -> str:
    return html.escape(text).encode("ascii", "xmlcharrefreplace").decode()


def full_width(text: str) -> str:
    return "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in text)


def invisibles(text: str, seed: int = 0) -> str:
    rnd = random.Random(seed)
    marks = ["\u00ad", "\u200b", "\u2060", "\ufeff"]
    words = text.split(" ")
    return " ".join(w[: len(w) // 2] + rnd.choice(marks) + w[len(w) // 2 :] if len(w) > 5 else w for w in words)


DAMAGES = [mojibake, latin1_mojibake, entities, full_width, invisibles]


@pytest.mark.parametrize("damage", DAMAGES, ids=lambda f: f.__name__)
def test_a_damaged_copy_has_the_keys_of_its_original(damage):
    damaged = damage(ARTICLE)
    assert damaged != ARTICLE
    assert key_text(damaged) == key_text(ARTICLE)


@pytest.mark.parametrize("damage", [mojibake, latin1_mojibake, entities, invisibles], ids=lambda f: f.__name__)
def test_kept_text_is_mended_to_the_original(damage):
    assert repair_text(damage(ARTICLE)) == ARTICLE


def test_what_a_reader_sees_is_left_alone():
    # Curly quotes, ligatures, full-width text (normal in CJK) and joiners that scripts and
    # emoji need stay in the kept text; the keys fold or drop them.
    text = "“Quoted” ﬁne ｆｕｌｌ 東京タワー، می\u200cخواهم 👩\u200d💻 AT&T R&D"
    assert repair_text(text) == text
    assert key_text(text) == '"Quoted" fine full 東京タワー، میخواهم 👩💻 AT&T R&D'.replace('"', "“", 1).replace(
        '"', "”", 1
    )


def test_plain_ascii_is_returned_as_is():
    text = "A plain sentence without any entity in it."
    assert repair_text(text) is text and key_text(text) is text


def test_entities_and_mojibake_together_are_both_mended():
    assert repair_text("Caf&eacute; &amp; cafÃ© â€” itâ€™s &#8220;fine&#8221;") == "Café & café — it’s “fine”"


@example("\u00a8\u00c2\x80")  # NFKC splits the diaeresis, and the mojibake pair after it then reads anew
@given(st.text(max_size=200))
def test_repair_and_keys_are_idempotent(text):
    once = repair_text(text)
    assert repair_text(once) == once
    key = key_text(text)
    assert key_text(key) == key


def test_the_filter_keys_a_damaged_copy_like_its_original_and_counts_repairs(tmp_path):
    """Through the filter pass: exact-dedup keys of the five damaged copies equal the
    original's; the kept text is repaired for web input only, unless repair_text says so."""
    src = tmp_path / "in.jsonl"
    texts = [ARTICLE] + [d(ARTICLE) for d in DAMAGES]
    src.write_text("".join(json.dumps({"id": str(i), "text": t}) + "\n" for i, t in enumerate(texts)))
    heuristics_off = {k: {"enabled": False} for k in ("gopher_quality", "gopher_repetition", "c4", "fineweb")}
    for repair, expect_repaired in ((None, False), (True, True), (False, False)):
        cfg = CurationConfig(
            decontamination={"enabled": False},
            quality_classifier={"enabled": False},
            heuristics=heuristics_off,
            repair_text=repair,
        )
        curated = tmp_path / f"curated-{repair}"
        result = filter_shard(src, 0, cfg, curated)
        assert result["kept"] == len(texts)
        paths = CurationPaths(curated)
        keys = np.load(paths.keys(0), allow_pickle=False)
        keys = keys[keys["band"] == EXACT_BAND]
        assert (
            len(keys) == len(texts) and len(set(keys["aux"].tolist())) == 1
        )  # every copy is an exact duplicate of the first
        kept = [r["text"] for r in pq.read_table(paths.filtered(0)).to_pylist()]
        if expect_repaired:
            # full_width is a key-only fold: the reader sees full-width letters as written.
            assert kept == [ARTICLE] * 4 + [full_width(ARTICLE), ARTICLE]
            assert result["stats"]["changes"]["repair.documents"] == 4
        else:
            assert "cafÃ©" in kept[1] and kept[3] == entities(ARTICLE)
            assert "repair.documents" not in result["stats"]["changes"]


def test_repair_defaults_on_for_web_input_only():
    cfg = CurationConfig()
    assert DocumentFilter(cfg, None, None, web_input=True).repair
    assert not DocumentFilter(cfg, None, None, web_input=False).repair
    assert DocumentFilter(CurationConfig(repair_text=True), None, None).repair
    assert not DocumentFilter(CurationConfig(repair_text=False), None, None, web_input=True).repair


def test_reference_shards_are_keyed_like_new_documents(tmp_path):
    """An earlier run's curated shard (incremental curation) is keyed through repair too, so a
    damaged re-ingested copy of one of its documents is its exact duplicate."""
    import pyarrow as pa

    from tasks.curation.filter_pass import reference_shard

    earlier = tmp_path / "earlier.parquet"
    pq.write_table(
        pa.table({"id": ["a"], "text": [ARTICLE], "source": ["x"], "metadata": ["{}"]}),
        earlier,
    )
    src = tmp_path / "new.jsonl"
    src.write_text(json.dumps({"id": "b", "text": full_width(ARTICLE)}) + "\n")
    off = {k: {"enabled": False} for k in ("gopher_quality", "gopher_repetition", "c4", "fineweb")}
    cfg = CurationConfig(decontamination={"enabled": False}, quality_classifier={"enabled": False}, heuristics=off)
    reference_shard(earlier, 0, cfg, tmp_path / "curated")
    filter_shard(src, 1, cfg, tmp_path / "curated")
    paths = CurationPaths(tmp_path / "curated")
    old, new = (_exact_keys(paths, i) for i in (0, 1))
    assert old == new and len(old) == 1
