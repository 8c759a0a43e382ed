"""Labelled noise planted into a real corpus: exact and near duplicates, PII and spam.

The labels are the ground truth that curation tests, the demo report and benchmarks score
dedup, redaction and the quality filter against, so each planted document records what was
done to it and, for PII, exactly where. Everything is drawn from one seeded `random.Random`
and no set is iterated, so the same input and seed give byte-identical output in any process.
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from random import Random
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from tasks.curation.pii_samples import NEGATIVE_GENERATORS, PII_GENERATORS
from tasks.curation.shingles import jaccard, normalized_words, shingles

log = logging.getLogger(__name__)

JACCARD_TOLERANCE = 0.02
# One interior word edit changes up to `shingle_size` shingles; on documents much shorter
# than this, the achievable similarities are too coarse to land within the tolerance.
MIN_NEAR_DUP_WORDS = 100
KINDS = ("original", "exact_dup", "near_dup", "pii", "spam")


class NoiseConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    seed: int = Field(
        0, description="Seed of the noise injector (which documents are copied, edited or planted with PII)."
    )
    exact_dup_fraction: float = Field(0.05, ge=0, le=1, description="Copies added, as a fraction of input docs.")
    near_dup_fraction: float = Field(0.05, ge=0, le=1, description="Edited copies added, as a fraction of input docs.")
    near_dup_jaccards: list[float] = Field(
        default_factory=lambda: [0.95, 0.9, 0.85, 0.8, 0.75, 0.7, 0.6, 0.5, 0.3],
        min_length=1,
        description="Shingle Jaccard similarities the near-duplicates are edited to, used in turn.",
    )
    pii_fraction: float = Field(0.05, ge=0, le=1, description="Copies with PII planted, as a fraction of input docs.")
    spam_fraction: float = Field(0.05, ge=0, le=1, description="Spam documents added, as a fraction of input docs.")
    shingle_size: int = Field(5, ge=1, description="Words per shingle; match the MinHash stage's.")

    @field_validator("near_dup_jaccards")
    @classmethod
    def _in_unit_interval(cls, value: list[float]) -> list[float]:
        bad = [j for j in value if not 0 < j <= 1]
        if bad:
            raise ValueError(f"near_dup_jaccards must lie in (0, 1], e.g. [0.9, 0.7]; got {bad}")
        return value


# ---------------------------------------------------------------- near-duplicates

_TOKEN = re.compile(r"\S+\s*")
_Edit = tuple[int, str, str]  # (token position, "replace" | "insert" | "delete", word)


def _edit_plan(tokens: list[str], rng: Random) -> list[_Edit]:
    """At most one edit per token, in random order: the first k of the plan are k edits, so
    the number of edits can be bisected with one O(n) render per probe instead of re-scoring
    after every single edit."""
    vocab = list(dict.fromkeys(t.strip() for t in tokens))
    order = list(range(len(tokens)))
    rng.shuffle(order)
    return [(pos, rng.choice(("replace", "replace", "insert", "delete")), rng.choice(vocab)) for pos in order]


def _render(lead: str, tokens: list[str], plan: list[_Edit], k: int, cut: int) -> str:
    """The text after the first k edits of the plan, with the last `cut` tokens dropped."""
    edits = {pos: (op, word) for pos, op, word in plan[:k]}
    out = [lead]
    for i, tok in enumerate(tokens[: len(tokens) - cut]):
        op, word = edits.get(i, ("keep", ""))
        if op == "keep":
            out.append(tok)
        elif op == "replace":
            out.append(word + tok[len(tok.rstrip()) :])
        elif op == "insert":
            out.append(f"{word} {tok}")
    text = "".join(out)
    return text.rstrip() if cut else text


def _bisect(score: Callable[[int], float], lo: int, hi: int, target: float) -> tuple[int, int]:
    """Adjacent (a, a + 1) with score(a) >= target > score(a + 1), given that of lo and hi.
    Needs no monotonicity: the invariant alone guarantees a crossing."""
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if score(mid) >= target else (lo, mid)
    return lo, hi


def near_duplicate(text: str, target: float, rng: Random, n: int = 5) -> tuple[str, float] | None:
    """`text` edited at random word positions until its n-gram shingle Jaccard with the
    original is within JACCARD_TOLERANCE of `target`; the text and the exact Jaccard, or
    None when this document cannot get close enough."""
    lead = text[: len(text) - len(text.lstrip())]
    tokens = _TOKEN.findall(text)
    if not tokens:
        return None
    source = shingles(text, n)
    plan = _edit_plan(tokens, rng)
    cache: dict[tuple[int, int], float] = {}

    def score(k: int, cut: int) -> float:
        if (k, cut) not in cache:
            cache[(k, cut)] = jaccard(source, shingles(_render(lead, tokens, plan, k, cut), n))
        return cache[(k, cut)]

    # Coarse: interior edits. Fine: dropping trailing words, which removes about one
    # shingle each, closes the gap a single interior edit (up to n shingles) leaves.
    k = len(plan)
    if score(k, 0) < target:
        k, k_next = _bisect(lambda m: score(m, 0), 0, len(plan), target)
        candidates = [(k, 0), (k_next, 0)]
    else:
        candidates = [(k, 0)]
    if score(k, 0) > target + JACCARD_TOLERANCE and score(k, len(tokens) - 1) < target:
        cut, cut_next = _bisect(lambda c: score(k, c), 0, len(tokens) - 1, target)
        candidates += [(k, cut), (k, cut_next)]
    best = min(candidates, key=lambda c: abs(score(*c) - target))
    if abs(score(*best) - target) > JACCARD_TOLERANCE:
        return None
    edited = _render(lead, tokens, plan, *best)
    if edited == text:  # no edits needed (target near 1): differ in punctuation only
        edited += "!"
    return edited, jaccard(source, shingles(edited, n))


# ---------------------------------------------------------------- PII

_PII_CONTEXT = {
    "email": ["Contact me at {v} for details.", "Send your CV to {v} before Friday.", "Email {v} with questions."],
    "phone": [
        "Call me at {v} after six.",
        "Phone: {v} (office hours only).",
        "You can reach the front desk on {v} any time.",
    ],
    "ipv4": ["The server at {v} stopped responding.", "Connect to {v} on port 22.", "Client IP {v} was blocked."],
    "ipv6": ["The host {v} is reachable over IPv6.", "Route the traffic via {v} instead."],
    "credit_card": ["My card number is {v} and it expires soon.", "Card number {v}, exp 09/27."],
    "us_ssn": ["SSN: {v} (do not share).", "His social security number is {v} according to the form."],
    "iban": ["Please transfer the deposit to IBAN {v} by Monday.", "Bank account (IBAN): {v}, reference 42."],
    "secret": ["key: {v}", "Use the token {v} for the deploy.", "Config: {v} in settings.py."],
    "pem": ["Here is the private key:\n{v}\nKeep it safe.", "key:\n{v}\n"],
}
_NEGATIVE_CONTEXT = {
    "date": "The meeting was moved to {v} at short notice.",
    "version": "Upgrade to version {v} before deploying.",
    "time": "The backup ran at {v} last night.",
    "order_number": "Your order number is {v} and it ships tomorrow.",
    "git_sha": "Fixed in commit {v} on the main branch.",
    "uuid": "Request id {v} was logged.",
    "price": "The total came to {v} including tax.",
}
_Plant = tuple[str, str, str]  # (type or kind, value, context template with "{v}")


def _boundaries(text: str) -> list[int]:
    """Offsets where a sentence may be inserted: sentence starts, or word starts in text
    without sentence punctuation."""
    spots = [m.end() for m in re.finditer(r"[.!?]\s+", text)]
    if len(spots) < 2:
        spots += [m.end() for m in re.finditer(r"\s+", text)]
    return [0, *spots, len(text)]


def plant(text: str, items: list[_Plant], rng: Random) -> tuple[str, list[tuple[int, int]]]:
    """`text` with each item's context sentence inserted at a random boundary, and the
    (start, end) of each item's value in the result, in item order."""
    spots = _boundaries(text)
    placed = sorted((rng.choice(spots), i) for i in range(len(items)))
    out: list[str] = []
    length = cursor = 0
    spans: list[tuple[int, int]] = [(0, 0)] * len(items)
    for pos, i in placed:
        out.append(text[cursor:pos])
        length, cursor = length + pos - cursor, pos
        _, value, template = items[i]
        last = next((chunk[-1] for chunk in reversed(out) if chunk), " ")
        before = "" if last.isspace() else " "
        piece = before + template.replace("{v}", value) + (" " if pos < len(text) else "")
        start = length + len(before) + template.index("{v}")
        spans[i] = (start, start + len(value))
        out.append(piece)
        length += len(piece)
    out.append(text[cursor:])
    return "".join(out), spans


def _cycle(names: list[str], rng: Random) -> Iterator[str]:
    """Every name once per round, so a handful of documents already covers all types."""
    names = list(names)
    rng.shuffle(names)
    return itertools.cycle(names)


def pii_document(
    text: str, types: Iterator[str], negatives: Iterator[str], rng: Random
) -> tuple[str, list[dict], list[dict]]:
    """`text` with 1-3 PII values and 1-2 look-alike negatives planted; their records with spans."""
    items: list[_Plant] = []
    for _ in range(rng.randint(1, 3)):
        kind = next(types)
        value = PII_GENERATORS[kind](rng)
        context = "pem" if value.startswith("-----BEGIN") else kind
        items.append((kind, value, rng.choice(_PII_CONTEXT[context])))
    n_pii = len(items)
    for _ in range(rng.randint(1, 2)):
        kind = next(negatives)
        items.append((kind, NEGATIVE_GENERATORS[kind](rng), _NEGATIVE_CONTEXT[kind]))
    new_text, spans = plant(text, items, rng)
    records = [{"kind": k, "value": v, "start": s, "end": e} for (k, v, _), (s, e) in zip(items, spans)]
    pii = [{"type": r.pop("kind"), **r} for r in records[:n_pii]]
    return new_text, sorted(pii, key=lambda r: r["start"]), sorted(records[n_pii:], key=lambda r: r["start"])


# ---------------------------------------------------------------- spam

_LETTERS = re.compile(r"[^\W\d_]{2,}")
_SPAM_PHRASES = [
    "cheap viagra",
    "best price",
    "buy now",
    "free shipping",
    "limited offer",
    "casino bonus",
    "click here",
    "lose weight fast",
    "work from home",
    "100% free",
    "order today",
    "hot deals",
    "no prescription needed",
    "make money online",
    "act now",
]
_NAV = [
    "Home",
    "About",
    "About Us",
    "Contact",
    "Blog",
    "Shop",
    "FAQ",
    "Privacy Policy",
    "Terms of Use",
    "Sitemap",
    "Careers",
    "Login",
    "Register",
    "Cart",
    "Help",
]
_COOKIE = [
    "We use cookies to improve your experience. By continuing to browse you agree to our use of cookies.",
    "Accept cookies",
    "Accept all | Reject all | Manage preferences",
    "This website uses cookies to ensure you get the best experience on our website. Learn more",
]


def _keyword_stuffing(words: list[str], rng: Random) -> str:
    topics = [rng.choice(words).lower() for _ in range(3)]
    pool = _SPAM_PHRASES + [p.format(w) for w in topics for p in ("cheap {}", "best {} price", "buy {} online")]
    return "\n".join(" ".join(rng.choice(pool) for _ in range(rng.randint(6, 12))) for _ in range(rng.randint(4, 12)))


def _word_salad(words: list[str], rng: Random) -> str:
    picked = words[:]
    rng.shuffle(picked)
    picked = picked[: rng.randint(60, 250)]
    sentences, i = [], 0
    while i < len(picked):
        step = rng.randint(5, 15)
        sentences.append(" ".join(picked[i : i + step]).capitalize() + ".")
        i += step
    return " ".join(sentences)


def _boilerplate(words: list[str], rng: Random) -> str:
    site = rng.choice(words).capitalize()
    nav = " | ".join(rng.sample(_NAV, rng.randint(4, 8)))
    categories = " | ".join(rng.choice(words).capitalize() for _ in range(rng.randint(3, 6)))
    lines = [
        "Skip to main content",
        nav,
        categories,
        rng.choice(_COOKIE),
        f"Subscribe to the {site} newsletter",
        "Share: Facebook | Twitter | LinkedIn | Email",
        nav,
        f"© {rng.randint(2005, 2024)} {site} Inc. All rights reserved.",
        rng.choice(_COOKIE),
    ]
    return "\n".join(line for line in lines if line == nav or rng.random() < 0.85)


def _repeated_lines(words: list[str], rng: Random) -> str:
    start = rng.randrange(max(1, len(words) - 12))
    line = " ".join(words[start : start + rng.randint(6, 12)])
    return "\n".join([line] * rng.randint(10, 40))


def _link_list(words: list[str], rng: Random) -> str:
    lines = [rng.choice(["Related searches:", "Top links", "Popular pages"])]
    for _ in range(rng.randint(10, 30)):
        a, b = rng.choice(words).lower(), rng.choice(words).lower()
        lines.append(f"Best {a} {b} - https://www.{a}-{b}.com/{b}/{a}-{rng.randint(1, 999)}.html")
    return "\n".join(lines)


SPAM_STYLES: dict[str, Callable[[list[str], Random], str]] = {
    "keyword_stuffing": _keyword_stuffing,
    "word_salad": _word_salad,
    "boilerplate": _boilerplate,
    "repeated_lines": _repeated_lines,
    "link_list": _link_list,
}


def spam_documents(texts: list[str], n: int, rng: Random) -> list[tuple[str, str]]:
    """n low-quality documents, (text, style), built from the words of `texts`; the styles
    take turns so every style is represented."""
    if n <= 0:
        return []
    pool = [t for t in texts if _LETTERS.search(t)]
    if not pool:
        raise ValueError("spam_documents needs at least one text containing words to draw from")
    styles = list(SPAM_STYLES)
    offset = rng.randrange(len(styles))
    out = []
    for i in range(n):
        style = styles[(offset + i) % len(styles)]
        words = _LETTERS.findall(rng.choice(pool)) + _LETTERS.findall(rng.choice(pool))
        out.append((SPAM_STYLES[style](words, rng), style))
    return out


# ---------------------------------------------------------------- assembly

_Planted = tuple[int, dict[str, Any], dict[str, Any]]  # (earliest output slot, doc, label)


def _pick(rng: Random, candidates: list[int], k: int) -> list[int]:
    if not candidates:
        return []
    return rng.sample(candidates, k) if k <= len(candidates) else [rng.choice(candidates) for _ in range(k)]


def _near_dups(docs: list[dict], cfg: NoiseConfig, rng: Random, k: int) -> list[_Planted]:
    eligible = [i for i, d in enumerate(docs) if len(normalized_words(d["text"])) >= MIN_NEAR_DUP_WORDS]
    if k and not eligible:
        log.warning("noise: no document has %d words; planting no near-duplicates", MIN_NEAR_DUP_WORDS)
        return []
    planted: list[_Planted] = []
    for i in range(k):
        target = cfg.near_dup_jaccards[i % len(cfg.near_dup_jaccards)]
        for _attempt in range(5):  # a document full of repeats may not reach the target; try another
            src = rng.choice(eligible)
            made = near_duplicate(docs[src]["text"], target, rng, cfg.shingle_size)
            if made is not None:
                doc_id = f"noise-near-{len(planted):06d}"
                planted.append(
                    (
                        src + 1,
                        {**docs[src], "id": doc_id, "text": made[0]},
                        {
                            "id": doc_id,
                            "kind": "near_dup",
                            "dup_of": docs[src]["id"],
                            "target_jaccard": target,
                            "jaccard": made[1],
                        },
                    )
                )
                break
    if len(planted) < k:
        log.warning("noise: planted %d of %d near-duplicates", len(planted), k)
    return planted


def inject_noise(docs: list[dict], cfg: NoiseConfig) -> tuple[list[dict], list[dict]]:
    """(noisy docs, labels), one label per output doc, in output order. Each planted copy
    comes after its source (so keep-first dedup keeps the original); the rest are placed at
    seeded random positions among the originals. Counts are round(fraction x len(docs))."""
    bad = [i for i, d in enumerate(docs) if "id" not in d or not isinstance(d.get("text"), str)]
    if bad:
        raise ValueError(f"documents need an 'id' and a string 'text'; first offending index {bad[0]}")
    rng = Random(cfg.seed)
    n = len(docs)
    with_text = [i for i, d in enumerate(docs) if d["text"].strip()]
    planted: list[_Planted] = []
    for i, src in enumerate(_pick(rng, with_text, round(cfg.exact_dup_fraction * n))):
        doc_id = f"noise-exact-{i:06d}"
        planted.append(
            (src + 1, {**docs[src], "id": doc_id}, {"id": doc_id, "kind": "exact_dup", "dup_of": docs[src]["id"]})
        )
    planted += _near_dups(docs, cfg, rng, round(cfg.near_dup_fraction * n))
    types, negatives = _cycle(list(PII_GENERATORS), rng), _cycle(list(NEGATIVE_GENERATORS), rng)
    for i, src in enumerate(_pick(rng, with_text, round(cfg.pii_fraction * n))):
        doc_id = f"noise-pii-{i:06d}"
        text, pii, negs = pii_document(docs[src]["text"], types, negatives, rng)
        planted.append(
            (
                src + 1,
                {**docs[src], "id": doc_id, "text": text},
                {"id": doc_id, "kind": "pii", "source": docs[src]["id"], "pii": pii, "negatives": negs},
            )
        )
    spam = spam_documents([d["text"] for d in docs], round(cfg.spam_fraction * n), rng)
    for i, (text, style) in enumerate(spam):
        doc_id = f"noise-spam-{i:06d}"
        # Spam is what a web crawl brings in; labelled so, the training mixture can weigh it.
        planted.append(
            (0, {"id": doc_id, "text": text, "source": "web"}, {"id": doc_id, "kind": "spam", "style": style})
        )

    clashes = sorted({str(d["id"]) for d in docs} & {p[1]["id"] for p in planted})
    if clashes:
        raise ValueError(
            f"input already has planted-noise ids such as {clashes[0]!r}: plant noise into "
            "the clean corpus, not into a previous noisy copy"
        )
    slots = [rng.randint(lo, n) for lo, _, _ in planted]  # slot s: just before original s
    by_slot = sorted(range(len(planted)), key=lambda i: (slots[i], i))
    out_docs: list[dict] = []
    labels: list[dict] = []
    j = 0
    for s in range(n + 1):
        while j < len(by_slot) and slots[by_slot[j]] == s:
            out_docs.append(planted[by_slot[j]][1])
            labels.append(planted[by_slot[j]][2])
            j += 1
        if s < n:
            out_docs.append(docs[s])
            labels.append({"id": docs[s]["id"], "kind": "original"})
    return out_docs, labels


def _write_atomic(path: Path, records: list[dict]) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        f.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in records)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


NOISE_MARKER = ".crucible-noisy-corpus"


def write_noisy_corpus(
    docs: list[dict], out_dir: Path, cfg: NoiseConfig, docs_per_file: int = 5000, force: bool = False
) -> dict:
    """Write the noisy corpus as out_dir/part-NNNNN.jsonl ({id, text, source?}) and its
    labels as out_dir/labels.jsonl, each file atomically; the document count per kind.

    Parts of an earlier, larger corpus there are deleted, so `out_dir` must be absent, empty,
    an earlier noisy corpus (or `force`): see infra/core/output_folder.py."""
    from infra.core.output_folder import claim, mark

    if docs_per_file < 1:
        raise ValueError(f"docs_per_file must be at least 1, got {docs_per_file}")
    out_dir = Path(out_dir)
    claim(out_dir, NOISE_MARKER, "noisy corpus", force)
    noisy, labels = inject_noise(docs, cfg)
    out_dir.mkdir(parents=True, exist_ok=True)
    mark(out_dir, NOISE_MARKER, documents=len(noisy))
    written = set()
    for part, start in enumerate(range(0, max(len(noisy), 1), docs_per_file)):
        path = out_dir / f"part-{part:05d}.jsonl"
        _write_atomic(
            path,
            [
                {"id": d["id"], "text": d["text"], **({"source": d["source"]} if "source" in d else {})}
                for d in noisy[start : start + docs_per_file]
            ],
        )
        written.add(path.name)
    for stale in out_dir.glob("part-*.jsonl"):  # a previous, larger run's parts would be read as input
        if stale.name not in written:
            stale.unlink()
    _write_atomic(out_dir / "labels.jsonl", labels)
    return {kind: sum(label["kind"] == kind for label in labels) for kind in KINDS}
