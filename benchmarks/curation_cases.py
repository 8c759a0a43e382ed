"""The cases of benchmarks/curation_classes.py, built by script from real text (issue 29).

With n = --cases (default 200) and one seed, the classes are:
- duplicates: n pairs of a real English passage (typographic quotes, a no-break space after
  each sentence, as published pages have them) and a copy with one encoding damage
  (curation_damage.py: entities, compatibility forms, mojibake, soft hyphens, zero-width
  characters, or an invisible and an encoding damage together), the damages in turn, each
  at the lowest rate that puts the copies' word 5-gram Jaccard under 0.75 (rate and Jaccard
  are in the labels; a passage too plain for entities or mojibake to hide is passed over);
- secrets: n English passages with 3 planted secrets or personal data each, the 12 kinds in
  turn (curation_values.SECRETS), each value drawn at random in its issuer's shape;
- lookalikes: n English passages with 3 planted look-alikes each, the 10 kinds in turn;
- junk: n junk pages (cookie consent, HTTP error, "enable JavaScript", login wall) in turn
  (curation_pages.py);
- languages: n // 2 passages of prose in each of English, French, German and Spanish, from
  Debian's manuals (curation_sources.MANUALS);
- repeated_spans: n English passages, each with one of max(2, n // 8) boilerplate blocks
  (related articles, footer, licence, newsletter; over 60 words, no run of 30 words shared
  between two blocks) at its end (or, one in five, its start), each block in about 8 of them;
- control: n // 2 English passages with nothing planted.
English passages are WikiText-2 and tiny-shakespeare, 150-260 words, each used once (n // 4
WikiText passages are set aside for the headlines and sentences that login walls, error
pages and related-article blocks quote); the English text lasts to about n = 220. The
documents are shuffled and numbered `doc-NNNNN`, so their ids say nothing of their class.
Nothing here calls the curation code under test: the same seed gives the same cases before and after
a change to curation.
"""

from __future__ import annotations

import json
import random
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from curation_damage import DAMAGES, HIDDEN_BELOW, damage, typographic
from curation_lookalikes import LOOKALIKES
from curation_pages import BLOCKS, JUNK, Site, Snippet, boilerplate_block
from curation_sources import SENTENCE, Passage, PassagePool, english_pool, manual_pool, proper_nouns
from curation_values import SECRETS, Names, Plant

LANGUAGES = ("en", "fr", "de", "es")
PLANTS_PER_DOC = 3
DOCS_PER_BLOCK = 8
SHARED_RUN = 30  # words: shorter than the 50 tokens substring dedup's spans have at least


@dataclass
class Case:
    text: str
    label: dict[str, Any]


@dataclass
class Cases:
    docs: list[dict[str, str]] = field(default_factory=list)  # {"id", "text"}, in input order
    labels: list[dict[str, Any]] = field(default_factory=list)  # {"id", "class", ...}, same order


class Snippets:
    """(title, sentence) pairs of reserved WikiText passages, each handed out once; a call
    takes its snippets from different articles."""

    def __init__(self, passages: list[Passage]):
        self.queues = [
            [(p.title, s) for para in p.paragraphs for s in SENTENCE.split(para) if 8 <= len(s.split()) <= 30]
            for p in passages
            if p.title and "<unk>" not in p.title
        ]
        self.turn = 0

    def take(self, k: int) -> list[Snippet]:
        out: list[Snippet] = []
        for _ in range(len(self.queues) * 40):
            queue = self.queues[self.turn % len(self.queues)]
            self.turn += 1
            if queue and queue[0][0] not in {title for title, _ in out}:
                out.append(queue.pop(0))
                if len(out) == k:
                    return out
        raise ValueError("the reserved WikiText snippets run out; ask for fewer cases")


def _with_plants(passage: Passage, plants: list[Plant], rng: random.Random) -> str:
    """The passage with each plant's sentence (or lines) as a paragraph of its own, at
    distinct places after the first paragraph."""
    paras = list(passage.paragraphs)
    spots = sorted(rng.sample(range(1, len(paras) + 1), min(len(plants), len(paras))), reverse=True)
    spots += [len(paras)] * (len(plants) - len(spots))
    for spot, plant in zip(spots, plants):
        paras.insert(spot, "\n".join(plant.lines) if plant.lines else plant.sentence)
    return "\n\n".join(paras)


def _text(passage: Passage) -> str:
    return "\n\n".join(passage.paragraphs)


def duplicate_cases(n: int, pool: PassagePool, rng: random.Random, tries: int = 8) -> list[Case]:
    """A passage the damage cannot hide (too few characters for it to touch) is put back and
    the next one tried, up to `tries`; the last try is kept, hidden or not."""
    cases = []
    kinds = list(DAMAGES)
    for pair in range(n):
        kind = kinds[pair % len(kinds)]
        passed_over = []
        for attempt in range(tries):
            passage = pool.take(1)[0]
            clean = typographic(_text(passage))
            copy, rate, jaccard = damage(clean, kind, rng)
            if jaccard < HIDDEN_BELOW or attempt == tries - 1:
                break
            passed_over.append(passage)
        pool.put_back(passed_over)
        common = {"class": "duplicates", "pair": pair, "damage": kind, "rate": rate, "jaccard": round(jaccard, 4)}
        cases += [Case(clean, {**common, "copy": "clean"}), Case(copy, {**common, "copy": "damaged"})]
    return cases


def planted_cases(cls: str, n: int, pool: PassagePool, names: Names, rng: random.Random) -> list[Case]:
    makers = SECRETS if cls == "secrets" else LOOKALIKES
    kinds = list(makers)
    cases = []
    for i, passage in enumerate(pool.take(n)):
        plants = [makers[kinds[(i * PLANTS_PER_DOC + j) % len(kinds)]](rng, names) for j in range(PLANTS_PER_DOC)]
        label = {
            "class": cls,
            "source": passage.source,
            "plants": [{k: v for k, v in asdict(p).items() if k not in ("sentence", "lines")} for p in plants],
        }
        cases.append(Case(_with_plants(passage, plants, rng), label))
    return cases


def junk_cases(n: int, snippets: Snippets, names: Names, rng: random.Random) -> list[Case]:
    kinds = list(JUNK)
    cases = []
    for i in range(n):
        kind = kinds[i % len(kinds)]
        # A login wall shows an article's opening; half the error pages list recent articles.
        k = {"login_wall": 1, "error_page": rng.choice([0, 4])}.get(kind, 0)
        entries = snippets.take(k) if k else []
        cases.append(Case(JUNK[kind](Site(names, rng), rng, entries), {"class": "junk", "kind": kind}))
    return cases


def language_cases(per_language: int, languages: tuple[str, ...], rng: random.Random) -> list[Case]:
    cases = []
    for lang in languages:
        cases += [
            Case(_text(p), {"class": "languages", "language": lang, "source": p.source})
            for p in manual_pool(lang, rng).take(per_language)
        ]
    return cases


def _runs(text: str, n: int = 0) -> set[tuple[str, ...]]:
    words = text.split()
    n = n or SHARED_RUN
    return {tuple(words[i : i + n]) for i in range(len(words) - n + 1)}


def repeated_span_cases(n: int, pool: PassagePool, snippets: Snippets, names: Names, rng: random.Random) -> list[Case]:
    blocks: list[tuple[str, str]] = []
    taken: set[tuple[str, ...]] = set()
    for b in range(max(2, n // DOCS_PER_BLOCK)):
        kind = BLOCKS[b % len(BLOCKS)]
        entries = snippets.take(5) if kind == "related_articles" else []
        # Two sites' blocks may pick the same wordings: redraw until no run of SHARED_RUN
        # words is another block's too, so each block's first occurrence is its own.
        for _ in range(100):
            block = "\n".join(boilerplate_block(kind, Site(names, rng), rng, entries))
            grams = _runs(block)
            if not grams & taken:
                break
        else:
            raise RuntimeError(f"no {kind} block unlike the {len(blocks)} before it in 100 draws")
        taken |= grams
        blocks.append((kind, block))
    cases = []
    for i, passage in enumerate(pool.take(n)):
        b = i % len(blocks)
        kind, block = blocks[b]
        position = "start" if rng.random() < 0.2 else "end"
        parts = [block, _text(passage)] if position == "start" else [_text(passage), block]
        label = {"class": "repeated_spans", "block": b, "block_kind": kind, "block_text": block, "position": position}
        cases.append(Case("\n\n".join(parts), label))
    return cases


def build_cases(n: int, seed: int, corpora: Path, languages: tuple[str, ...] = LANGUAGES) -> Cases:
    """Every class's cases, shuffled into one input order, with ids and labels."""
    rng = random.Random(seed)
    pool = english_pool(corpora, rng, 150, 260)
    names = Names(proper_nouns(corpora), rng)
    snippets = Snippets(pool.take(max(12, n // 4), source="wikitext"))
    cases = duplicate_cases(n, pool, rng)
    cases += planted_cases("secrets", n, pool, names, rng)
    cases += planted_cases("lookalikes", n, pool, names, rng)
    cases += junk_cases(n, snippets, names, rng)
    cases += language_cases(n // 2, languages, rng)
    cases += repeated_span_cases(n, pool, snippets, names, rng)
    cases += [Case(_text(p), {"class": "control", "source": p.source}) for p in pool.take(n // 2)]
    rng.shuffle(cases)
    out = Cases()
    seen_blocks: set[int] = set()
    for i, case in enumerate(cases):
        label = {"id": f"doc-{i:05d}", **case.label}
        if label["class"] == "repeated_spans":
            label["first"] = label["block"] not in seen_blocks
            seen_blocks.add(label["block"])
        out.docs.append({"id": label["id"], "text": case.text})
        out.labels.append(label)
    return out


def write_cases(cases: Cases, input_dir: Path, labels_path: Path, files: int = 2) -> None:
    """The documents as `files` JSONL files (input order = file order, then line order), and
    the labels as one JSONL file outside the input folder."""
    input_dir.mkdir(parents=True, exist_ok=True)
    per_file = -(-len(cases.docs) // files)
    for f in range(files):
        chunk = cases.docs[f * per_file : (f + 1) * per_file]
        (input_dir / f"docs-{f:04d}.jsonl").write_text(
            "".join(json.dumps(d, ensure_ascii=False) + "\n" for d in chunk), encoding="utf-8"
        )
    labels_path.write_text(
        "".join(json.dumps(lab, ensure_ascii=False) + "\n" for lab in cases.labels), encoding="utf-8"
    )
