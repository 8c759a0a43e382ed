import ipaddress
import json
import os
import random
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from pydantic import ValidationError

from tasks.curation import pii_samples
from tasks.curation.noise import (
    JACCARD_TOLERANCE,
    KINDS,
    SPAM_STYLES,
    NoiseConfig,
    inject_noise,
    near_duplicate,
    spam_documents,
    write_noisy_corpus,
)
from tasks.curation.shingles import jaccard, shingles

EMAIL = re.compile(r"[a-z0-9._+]+@(?:[a-z0-9-]+\.)+[a-z]{2,}")
ROOT = Path(__file__).resolve().parents[3]
_PROSE = (
    "the river carried small boats past old mills while farmers watched storms gather over distant "
    "hills and children counted geese in autumn light near quiet stone bridges a merchant sold wool "
    "salt iron bread to travellers who crossed valley roads before winter closed every pass"
)
_WORDS = _PROSE.split()
SECRET_PATTERNS = [
    r"AKIA[A-Z2-7]{16}",
    r"ghp_[A-Za-z0-9]{36}",
    r"xoxb-\d{10,13}-\d{10,13}-[A-Za-z0-9]{24}",
    r"AIza[A-Za-z0-9_-]{35}",
    r"sk_live_[A-Za-z0-9]{24}",
    r"-----BEGIN RSA PRIVATE KEY-----\n(?:[A-Za-z0-9+/=]{1,64}\n)+-----END RSA PRIVATE KEY-----",
    r'(api_key|API_KEY|secret_key|apiKey) = "[0-9a-f]{32}"',
]


def _corpus(n: int = 200, seed: int = 0) -> list[dict]:
    """Prose from a fixed word list, 40-300 words a document, so some are too short to near-dup."""
    rng = random.Random(seed)
    docs = []
    for i in range(n):
        sentences, words = [], rng.randint(40, 300)
        while words > 0:
            s = [rng.choice(_WORDS) for _ in range(min(words, rng.randint(6, 14)))]
            sentences.append(" ".join(s).capitalize() + ".")
            words -= len(s)
        docs.append({"id": f"doc-{i}", "text": " ".join(sentences), "source": f"file{i % 3}.jsonl"})
    return docs


@pytest.fixture(scope="module")
def noisy():
    docs = _corpus()
    out, labels = inject_noise(docs, NoiseConfig(seed=7, pii_fraction=0.1))
    return docs, out, labels


def _by_kind(out, labels, kind):
    return [(d, lab) for d, lab in zip(out, labels) if lab["kind"] == kind]


def test_counts_follow_fractions_and_every_doc_has_one_label(noisy):
    docs, out, labels = noisy
    assert len(out) == len(labels) and [d["id"] for d in out] == [lab["id"] for lab in labels]
    assert Counter(lab["kind"] for lab in labels) == {
        "original": 200,
        "exact_dup": 10,
        "near_dup": 10,
        "pii": 20,
        "spam": 10,
    }
    assert [d for d, lab in zip(out, labels) if lab["kind"] == "original"] == docs  # order and content kept
    ids = [d["id"] for d in out]
    assert len(set(ids)) == len(ids)
    planted = [i for i in ids if not i.startswith("doc-")]
    assert all(re.fullmatch(r"noise-(exact|near|pii|spam)-\d{6}", i) for i in planted)
    # Interleaved, not appended: some planted doc comes before the last original.
    assert min(ids.index(i) for i in planted) < ids.index("doc-199")


def test_same_seed_gives_identical_output_and_another_seed_differs():
    docs = _corpus(60)
    assert inject_noise(docs, NoiseConfig(seed=3)) == inject_noise(docs, NoiseConfig(seed=3))
    assert inject_noise(docs, NoiseConfig(seed=3)) != inject_noise(docs, NoiseConfig(seed=4))


def test_output_does_not_depend_on_the_hash_seed(tmp_path):
    # Iterating a set anywhere would make the output vary between processes.
    script = (
        "import json, sys; sys.path.insert(0, '.'); from tests.tasks.curation.test_noise import _corpus;"
        "from tasks.curation.noise import NoiseConfig, inject_noise;"
        "print(json.dumps(inject_noise(_corpus(40), NoiseConfig(seed=1, pii_fraction=0.2))))"
    )
    runs = [
        subprocess.run(
            [sys.executable, "-c", script],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
            env={**os.environ, "PYTHONHASHSEED": seed},
        ).stdout
        for seed in ("1", "2")
    ]
    assert runs[0] == runs[1] and runs[0]


def test_exact_duplicates_copy_their_source_and_follow_it(noisy):
    docs, out, labels = noisy
    position = {d["id"]: i for i, d in enumerate(out)}
    source = {d["id"]: d for d in docs}
    for d, lab in _by_kind(out, labels, "exact_dup"):
        src = source[lab["dup_of"]]
        assert d["text"] == src["text"] and d["source"] == src["source"]
        assert position[d["id"]] > position[src["id"]]  # so keep-first dedup keeps the original


def test_near_duplicates_reach_their_target_jaccard(noisy):
    docs, out, labels = noisy
    source = {d["id"]: d["text"] for d in docs}
    pairs = _by_kind(out, labels, "near_dup")
    for d, lab in pairs:
        recomputed = jaccard(shingles(source[lab["dup_of"]], 5), shingles(d["text"], 5))
        assert recomputed == lab["jaccard"]
        assert abs(recomputed - lab["target_jaccard"]) <= JACCARD_TOLERANCE
        assert d["text"] != source[lab["dup_of"]]
    assert {lab["target_jaccard"] for _, lab in pairs} == set(NoiseConfig().near_dup_jaccards)


@pytest.mark.parametrize("target, n", [(1.0, 5), (0.97, 5), (0.4, 5), (0.1, 5), (0.8, 3)])
def test_near_duplicate_on_a_100_word_document(target, n):
    text = " ".join(" ".join(d["text"] for d in _corpus(5, seed=5)).split()[:100])
    edited, achieved = near_duplicate(text, target, random.Random(0), n)
    assert edited != text and achieved == jaccard(shingles(text, n), shingles(edited, n))
    assert abs(achieved - target) <= JACCARD_TOLERANCE


def test_near_duplicate_scores_a_long_document_a_logarithmic_number_of_times(monkeypatch):
    # Re-scoring after every single edit would be quadratic on long documents.
    from tasks.curation import noise

    calls = []
    monkeypatch.setattr(noise, "shingles", lambda text, n=5: calls.append(1) or shingles(text, n))
    rng = random.Random(1)
    text = " ".join(rng.choice(_WORDS) for _ in range(20_000))
    edited, achieved = near_duplicate(text, 0.3, random.Random(0))
    assert abs(achieved - 0.3) <= JACCARD_TOLERANCE and achieved == jaccard(shingles(text, 5), shingles(edited, 5))
    assert len(calls) <= 2 * 15 + 4  # two bisections over < 2**15 positions, plus end points


def test_near_duplicate_gives_up_on_a_document_of_one_repeated_word():
    assert near_duplicate("echo " * 200, 0.5, random.Random(0)) is None


def test_pii_spans_slice_their_values_and_every_type_appears(noisy):
    docs, out, labels = noisy
    source = {d["id"]: d["text"] for d in docs}
    types, negatives = Counter(), Counter()
    for d, lab in _by_kind(out, labels, "pii"):
        assert 1 <= len(lab["pii"]) <= 3 and 1 <= len(lab["negatives"]) <= 2
        spans = [(p["start"], p["end"]) for p in lab["pii"] + lab["negatives"]]
        assert all(b <= c for (_, b), (c, _) in zip(sorted(spans), sorted(spans)[1:]))  # no overlaps
        for p in lab["pii"]:
            assert d["text"][p["start"] : p["end"]] == p["value"]
            types[p["type"]] += 1
        for neg in lab["negatives"]:
            assert d["text"][neg["start"] : neg["end"]] == neg["value"]
            negatives[neg["kind"]] += 1
        # Inserted at boundaries: the source's words all survive, in order.
        assert set(source[lab["source"]].split()) <= set(d["text"].split())
    assert set(types) == set(pii_samples.PII_GENERATORS)
    assert set(negatives) == set(pii_samples.NEGATIVE_GENERATORS)


def _check_pii(kind: str, value: str) -> bool:
    digits = re.sub(r"\D", "", value)
    checks = {
        "email": lambda: EMAIL.fullmatch(value) is not None,
        "phone": lambda: re.fullmatch(r"[+\d() -]+", value) is not None and 9 <= len(digits) <= 13,
        "ipv4": lambda: isinstance(ipaddress.ip_address(value), ipaddress.IPv4Address),
        "ipv6": lambda: isinstance(ipaddress.ip_address(value), ipaddress.IPv6Address),
        "credit_card": lambda: pii_samples.luhn_valid(value) and len(digits) in (15, 16),
        "us_ssn": lambda: pii_samples.ssn_valid(value),
        "iban": lambda: pii_samples.iban_valid(value),
        "secret": lambda: any(re.fullmatch(p, value) for p in SECRET_PATTERNS),
    }
    return checks[kind]()


def test_planted_pii_values_are_valid(noisy):
    _, out, labels = noisy
    planted = [p for _, lab in _by_kind(out, labels, "pii") for p in lab["pii"]]
    assert all(_check_pii(p["type"], p["value"]) for p in planted), [
        p for p in planted if not _check_pii(p["type"], p["value"])
    ]


def test_generators_produce_valid_values_of_every_format():
    rng = random.Random(0)
    for kind, generate in pii_samples.PII_GENERATORS.items():
        values = [generate(rng) for _ in range(300)]
        assert all(_check_pii(kind, v) for v in values), kind
    rng = random.Random(1)
    cards = [pii_samples.credit_card(rng) for _ in range(300)]
    assert {len(re.sub(r"\D", "", c)) for c in cards} == {15, 16}
    assert any(" " in c for c in cards) and any("-" in c for c in cards) and any(c.isdigit() for c in cards)
    ibans = [pii_samples.iban(rng) for _ in range(300)]
    assert len({i[:2] for i in ibans}) >= 5 and any(" " in i for i in ibans) and any(" " not in i for i in ibans)
    v6 = [pii_samples.ipv6(rng) for _ in range(300)]
    assert any("::" in v for v in v6) and any(v.count(":") == 7 and len(v) == 39 for v in v6)
    secrets = [pii_samples.secret(rng) for _ in range(300)]
    assert all(any(re.fullmatch(p, s) for s in secrets) for p in SECRET_PATTERNS)
    assert all(not pii_samples.luhn_valid(pii_samples.order_number(rng)) for _ in range(300))


@pytest.mark.parametrize(
    "check, value, valid",
    [
        (pii_samples.luhn_valid, "4111 1111 1111 1111", True),
        (pii_samples.luhn_valid, "4111-1111-1111-1112", False),
        (pii_samples.luhn_valid, "378282246310005", True),
        (pii_samples.iban_valid, "GB82 WEST 1234 5698 7654 32", True),
        (pii_samples.iban_valid, "DE89370400440532013000", True),
        (pii_samples.iban_valid, "DE89370400440532013001", False),
        (pii_samples.ssn_valid, "123-45-6789", True),
        (pii_samples.ssn_valid, "666-45-6789", False),
        (pii_samples.ssn_valid, "912-45-6789", False),
        (pii_samples.ssn_valid, "123-00-6789", False),
    ],
)
def test_validators_agree_with_published_examples(check, value, valid):
    assert check(value) is valid


def test_spam_covers_every_style_and_differs_from_originals(noisy):
    docs, out, labels = noisy
    originals = {d["text"] for d in docs}
    spam = _by_kind(out, labels, "spam")
    assert {lab["style"] for _, lab in spam} == set(SPAM_STYLES)
    assert all(d["text"] not in originals and d["text"].strip() for d, _ in spam)


def test_spam_documents_for_the_quality_classifier():
    texts = [d["text"] for d in _corpus(20)]
    made = spam_documents(texts, 25, random.Random(0))
    assert len(made) == 25 and Counter(style for _, style in made) == dict.fromkeys(SPAM_STYLES, 5)
    assert made == spam_documents(texts, 25, random.Random(0))
    assert spam_documents([], 0, random.Random(0)) == []
    with pytest.raises(ValueError, match="containing words"):
        spam_documents(["", "123 456"], 3, random.Random(0))


def test_write_noisy_corpus_round_trips_and_replaces_stale_parts(tmp_path):
    docs = _corpus(50)
    cfg = NoiseConfig(seed=2, exact_dup_fraction=0.1)
    write_noisy_corpus(docs, tmp_path / "a", cfg, docs_per_file=4)  # an earlier run's, with more parts
    assert len(list((tmp_path / "a").glob("part-*.jsonl"))) > 5
    counts = write_noisy_corpus(docs, tmp_path / "a", cfg, docs_per_file=16)
    write_noisy_corpus(docs, tmp_path / "b", cfg, docs_per_file=16)
    out, labels = inject_noise(docs, cfg)
    parts = sorted((tmp_path / "a").glob("part-*.jsonl"))
    assert [p.name for p in parts] == [f"part-{i:05d}.jsonl" for i in range(-(-len(out) // 16))]
    records = [json.loads(line) for p in parts for line in p.read_text().splitlines()]
    assert records == [
        {"id": d["id"], "text": d["text"], "source": d["source"]}
        if "source" in d
        else {"id": d["id"], "text": d["text"]}
        for d in out
    ]
    written = [json.loads(line) for line in (tmp_path / "a" / "labels.jsonl").read_text().splitlines()]
    assert written == labels
    assert counts == {"original": 50, "exact_dup": 5, "near_dup": 2, "pii": 2, "spam": 2}
    assert list(counts) == list(KINDS)
    names = sorted(p.name for p in (tmp_path / "a").iterdir())
    assert names == sorted(p.name for p in (tmp_path / "b").iterdir())  # no temp files left behind
    assert all((tmp_path / "a" / n).read_bytes() == (tmp_path / "b" / n).read_bytes() for n in names)


def test_write_noisy_corpus_refuses_a_folder_it_did_not_write(tmp_path):
    (tmp_path / "part-00099.jsonl").write_text('{"id": "someone else", "text": "their data"}\n')
    with pytest.raises(ValueError, match=r"not written by Crucible.*--force"):
        write_noisy_corpus(_corpus(10), tmp_path, NoiseConfig(seed=0))
    assert [p.name for p in tmp_path.iterdir()] == ["part-00099.jsonl"]
    write_noisy_corpus(_corpus(10), tmp_path, NoiseConfig(seed=0), force=True)
    assert not (tmp_path / "part-00099.jsonl").exists()  # forced: the stale part is replaced


def test_noise_cannot_be_planted_into_a_noisy_copy():
    out, _ = inject_noise(_corpus(40), NoiseConfig())
    with pytest.raises(ValueError, match="clean corpus"):
        inject_noise(out, NoiseConfig())


def test_short_corpus_gets_no_near_duplicates_but_the_rest():
    docs = [{"id": str(i), "text": f"short note number {i} about {_WORDS[i]}."} for i in range(40)]
    _, labels = inject_noise(docs, NoiseConfig(near_dup_fraction=0.5))
    assert Counter(lab["kind"] for lab in labels) == {"original": 40, "exact_dup": 2, "pii": 2, "spam": 2}


@pytest.mark.parametrize(
    "field, value, message",
    [
        ("pii_fraction", 1.5, "less than or equal to 1"),
        ("spam_fraction", -0.1, "greater than or equal to 0"),
        ("near_dup_jaccards", [0.9, 0.0], r"\(0, 1\]"),
        ("near_dup_jaccards", [], "at least 1"),
        ("shingle_size", 0, "greater than or equal to 1"),
        ("dup_fraction", 0.1, "Extra inputs are not permitted"),
    ],
)
def test_config_rejects_bad_values(field, value, message):
    with pytest.raises(ValidationError, match=message):
        NoiseConfig(**{field: value})
