import re

import pytest
from pydantic import ValidationError

from tasks.curation.rules import HeuristicsConfig, apply_heuristics, reason_names
from tasks.curation.rules.text import count_sentences, words

PROSE = """\
The village library opened its doors in the spring of that year, after a long winter of repairs. \
Volunteers had painted the walls, fixed the leaking roof and sorted thousands of donated books into \
neat rows. On the first morning, a queue of children waited outside with their parents, eager to \
borrow something new to read.

The librarian, a retired teacher named Margaret, believed that a library should be more than a \
quiet room full of shelves. She organised weekly story hours, invited local authors to give talks \
and set up a small corner where older residents could learn to use computers. Within a few months, \
the building had become a meeting place for people of every age.

Funding remained a constant worry. The council provided a modest grant, but it covered little more \
than heating and electricity. To raise the rest, the volunteers held book sales, baked cakes for the \
summer fair and wrote letters to businesses in the nearby town. Their efforts paid off when a \
regional charity agreed to support the library for three more years, giving everyone involved a \
welcome sense of security about the future."""
SENTENCES = re.split(r"(?<=\.)\s+", PROSE)  # ten distinct sentences, 34..169 characters
FILTERS = ("gopher_repetition", "gopher_quality", "boilerplate", "c4", "fineweb")
NO_NGRAMS = {"top_ngram_max_char_fraction": {}, "dup_ngram_max_char_fraction": {}}
LINES_OFF = {f"max_dup_{u}_fraction": 1.0 for u in ("line", "para", "line_char", "para_char")}


def only(name: str, **fields) -> HeuristicsConfig:
    """Defaults, with every filter but `name` disabled and `fields` set on `name`."""
    data = {f: {"enabled": f == name} for f in FILTERS}
    data[name].update(fields)
    return HeuristicsConfig.model_validate(data)


def tokens(count: int, prefix: str = "tok") -> list[str]:
    """Distinct eight-character words, so character fractions are word fractions."""
    return [f"{prefix}{i:05d}" for i in range(count)]


def with_phrase(n: int, times: int, filler: int) -> str:
    """`filler` distinct words with one n-word phrase inserted `times` times, spread out."""
    phrase, rest = tokens(n, "phr"), tokens(filler)
    step = filler // times
    out: list[str] = []
    for i in range(times):
        out += rest[i * step : (i + 1) * step] + phrase
    return " ".join(out + rest[times * step :])


def with_block_twice(n: int, filler: int) -> str:
    block = tokens(n, "blk")
    return " ".join(block + tokens(filler) + block)


def lines_of(sentences: list[str], sep: str = "\n") -> str:
    return sep.join(sentences)


NUMBERS = ["one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten"]


def numbered(count: int, body: str) -> list[str]:
    """`count` distinct lines: `body` followed by a number word."""
    return [f"{body} {w}." for w in NUMBERS[:count]]


S0, S6 = SENTENCES[0], SENTENCES[6]  # S6 is the shortest sentence
HASH_FAIL = PROSE + " #" * 25  # 25 '#' over 190 words: 0.13
ELLIPSIS_PASS = lines_of([s[:-1] + "…" for s in SENTENCES[:2]] + SENTENCES[2:])
ELLIPSIS_FAIL = lines_of([s[:-1] + "…" for s in SENTENCES[:4]] + SENTENCES[4:])
NO_STOP = "Quick brown foxes jump over lazy dogs near quiet rivers daily. " * 6
LONG_WORDS = "Extraordinarily sophisticated communication infrastructure"

# reason -> (config, a document that passes, a document that fails with that reason).
# Each config isolates its rule where another rule of the same filter would fire first.
CASES = {
    "gopher_repetition.dup_line_fraction": (
        only("gopher_repetition", max_dup_line_char_fraction=1.0, **NO_NGRAMS),
        lines_of(SENTENCES[:8] + [S6] * 2),
        lines_of(SENTENCES[:7] + [S6] * 5),
    ),
    "gopher_repetition.dup_para_fraction": (
        only("gopher_repetition", **{**LINES_OFF, "max_dup_para_fraction": 0.3}, **NO_NGRAMS),
        lines_of(SENTENCES[:8] + [S6] * 2, "\n\n"),
        lines_of(SENTENCES[:7] + [S6] * 5, "\n\n"),
    ),
    "gopher_repetition.dup_line_char_fraction": (
        only("gopher_repetition", **{**LINES_OFF, "max_dup_line_char_fraction": 0.2}, **NO_NGRAMS),
        lines_of([*SENTENCES, S6]),
        lines_of(SENTENCES + [S0] * 3),
    ),
    "gopher_repetition.dup_para_char_fraction": (
        only("gopher_repetition", **{**LINES_OFF, "max_dup_para_char_fraction": 0.2}, **NO_NGRAMS),
        lines_of([*SENTENCES, S6], "\n\n"),
        lines_of(SENTENCES + [S0] * 3, "\n\n"),
    ),
    # Default thresholds: the phrase is the only repetition, so no other n-gram rule fires.
    "gopher_repetition.top_2_gram": (
        only("gopher_repetition"),
        with_phrase(2, 4, 40),
        with_phrase(2, 6, 40),
    ),  # 8/48, 12/52
    "gopher_repetition.top_3_gram": (
        only("gopher_repetition"),
        with_phrase(3, 3, 45),
        with_phrase(3, 5, 45),
    ),  # 9/54, 15/60
    "gopher_repetition.top_4_gram": (
        only("gopher_repetition"),
        with_phrase(4, 2, 60),
        with_phrase(4, 4, 60),
    ),  # 8/68, 16/76
    **{
        f"gopher_repetition.dup_{n}_gram": (
            # A repeated n-gram also repeats every shorter one, so only n is checked here.
            only("gopher_repetition", top_ngram_max_char_fraction={}, dup_ngram_max_char_fraction={n: t}),
            with_block_twice(n, int(n / t)),  # covers n / (n/t + 2n) < t
            with_block_twice(n, int((n / t - 2 * n) / 2)),
        )  # covers well over t
        for n, t in {5: 0.15, 6: 0.14, 7: 0.13, 8: 0.12, 9: 0.11, 10: 0.10}.items()
    },
    "gopher_quality.word_count": (only("gopher_quality"), PROSE, "The cat sat on the mat with the dog and the bird."),
    "gopher_quality.mean_word_length": (
        only("gopher_quality"),
        PROSE,
        "It is to be, as it was in the day of old; so be it. " * 5,
    ),
    "gopher_quality.symbol_word_ratio": (only("gopher_quality"), PROSE + " #" * 10, HASH_FAIL),
    "gopher_quality.bullet_lines": (
        only("gopher_quality"),
        lines_of([f"• {s}" for s in SENTENCES[:8]] + SENTENCES[8:]),  # 80% bullets
        lines_of([f"- {s}" for s in SENTENCES]),
    ),
    "gopher_quality.ellipsis_lines": (only("gopher_quality"), ELLIPSIS_PASS, ELLIPSIS_FAIL),
    "gopher_quality.alpha_words": (only("gopher_quality"), PROSE + " 1234" * 20, PROSE + " 1234" * 60),  # 0.90, 0.76
    "gopher_quality.stop_words": (only("gopher_quality"), "The " + NO_STOP + "Most OF them rest.", NO_STOP),
    "boilerplate.furniture_page": (
        only("boilerplate"),
        lines_of(SENTENCES[:7]) + "\nSign in to comment.\nAccept all cookies.",  # 2 of 9 lines
        lines_of(SENTENCES[:4]) + "\nSign in to comment.\nAccept all cookies.",  # 2 of 6
    ),
    "c4.lorem_ipsum": (
        only("c4", remove_no_terminal_punct=True),
        PROSE + "\nLorem ipsum dolor sit amet",  # no end punctuation: line dropped
        PROSE + "\nLorem ipsum dolor sit amet, consectetur adipiscing.",
    ),
    "c4.curly_bracket": (
        only("c4", remove_no_terminal_punct=True),
        PROSE + "\nfunction show() {",  # a code line without punctuation: dropped
        PROSE + "\nWrite {name} in the template, then save it.",
    ),
    "c4.too_few_sentences": (only("c4"), lines_of(SENTENCES[:5], " "), lines_of(SENTENCES[:4], " ")),
    "fineweb.line_punct_ratio": (
        only("fineweb"),
        lines_of([s[:-1] for s in SENTENCES[:8]] + SENTENCES[8:]),  # 2 of 10 end in '.'
        lines_of([s[:-1] for s in SENTENCES[:9]] + SENTENCES[9:]),
    ),  # 1 of 10
    "fineweb.short_line_ratio": (
        only("fineweb"),
        lines_of(numbered(6, "A short line") + SENTENCES[:4]),  # 6 of 10 short
        lines_of(numbered(7, "A short line") + SENTENCES[:3]),
    ),  # 7 of 10
    "fineweb.char_dup_ratio": (only("fineweb"), lines_of(SENTENCES), lines_of([*SENTENCES, S6])),  # 34 / 1139 chars
    "fineweb.list_ratio": (
        only("fineweb"),
        lines_of(numbered(10, LONG_WORDS)),  # 9 breaks / 50 words
        lines_of(numbered(10, "Extraordinarily-sophisticated")),
    ),  # 9 breaks / 20 words
}


def test_c4_keeps_unpunctuated_lines_by_default_as_fineweb_does():
    out = apply_heuristics(PROSE + "\nA heading without a full stop", only("c4"))
    assert out.reason is None and out.text.endswith("A heading without a full stop")


def test_every_reason_has_a_case():
    assert set(CASES) == set(reason_names(HeuristicsConfig()))


@pytest.mark.parametrize("reason", CASES)
def test_rule_passes_and_fails(reason):
    cfg, good, bad = CASES[reason]
    kept = apply_heuristics(good, cfg)
    assert kept.reason is None, kept.detail
    dropped = apply_heuristics(bad, cfg)
    assert (dropped.reason, dropped.text, dropped.changes) == (reason, bad, {})
    assert dropped.detail


@pytest.mark.parametrize("reason", CASES)
def test_disabled_filter_does_not_fire(reason):
    cfg, _, bad = CASES[reason]
    off = cfg.model_copy(deep=True)
    getattr(off, reason.split(".")[0]).enabled = False
    assert apply_heuristics(bad, off).reason is None


def test_clean_prose_passes_all_filters_unchanged():
    outcome = apply_heuristics(PROSE, HeuristicsConfig())
    assert (outcome.reason, outcome.text, outcome.changes) == (None, PROSE, {})


def test_filters_run_in_order_and_first_failure_wins():
    spam = "Buy cheap watches now at our store" + "\nBuy cheap watches now at our store" * 4
    assert apply_heuristics(spam, HeuristicsConfig()).reason == "gopher_repetition.dup_line_fraction"
    cfg = HeuristicsConfig.model_validate({"gopher_repetition": {"enabled": False}})
    assert apply_heuristics(spam, cfg).reason == "c4.too_few_sentences"
    cfg = HeuristicsConfig.model_validate({"gopher_repetition": {"enabled": False}, "c4": {"enabled": False}})
    assert apply_heuristics(spam, cfg).reason == "gopher_quality.word_count"


def test_words_are_counted_after_line_removals():
    """A consent page whose banner lines carry its word count goes: Gopher's min_words sees
    the text after C4 has removed the JavaScript and cookie lines."""
    banner = [
        "This website uses cookies to give you the best experience, and by continuing you accept our cookie policy.",
        "Please enable JavaScript in your browser settings to continue to the page you asked for today.",
        "We and our partners use cookies to personalise content and ads, and to analyse our traffic here.",
        "Read our privacy policy and terms of use to learn how we process your data and how to opt out.",
        "Some features of this site will not work until JavaScript is switched on again in your browser.",
        "You can change your cookie settings at any time, and withdraw the consent you gave us before.",
    ]
    page = "\n".join([*banner, "Accept all. Reject all. Manage your choices here."])
    assert len(page.split()) >= 50  # enough words before the line removals
    cfg = HeuristicsConfig.model_validate(
        {"c4": {"min_sentences": 0}, "fineweb": {"enabled": False}, "boilerplate": {"enabled": False}}
    )
    outcome = apply_heuristics(page, cfg)
    assert outcome.reason == "gopher_quality.word_count"
    assert int(outcome.detail.split()[0]) < 50 <= len(page.split())
    no_furniture_rule = HeuristicsConfig.model_validate({"boilerplate": {"enabled": False}})
    assert apply_heuristics(page, no_furniture_rule).reason == "c4.too_few_sentences"
    assert apply_heuristics(page, HeuristicsConfig()).reason == "boilerplate.furniture_page"


def test_c4_removes_lines_and_counts_them():
    page = "\n".join(
        [
            "Home | About | Contact",
            SENTENCES[0],
            "Please enable JavaScript to view the comments on this page.",
            "This site uses cookies to improve your experience.",
            "Thanks!",
            "Here is a link to " + "x" * 1001 + " for you.",
            "It was founded in 1901.[1] The hall followed in 1920.[citation needed]",
            "",
            *SENTENCES[1:5],
        ]
    )
    outcome = apply_heuristics(page, only("c4", remove_no_terminal_punct=True))
    assert outcome.reason is None
    assert outcome.text == "\n".join(
        [SENTENCES[0], "It was founded in 1901. The hall followed in 1920.", "", *SENTENCES[1:5]]
    )
    assert outcome.changes == {
        "c4.lines_removed": 5,
        "c4.lines_removed.no_terminal_punct": 1,
        "c4.lines_removed.javascript": 1,
        "c4.lines_removed.policy": 1,
        "c4.lines_removed.too_few_words": 1,
        "c4.lines_removed.too_long_word": 1,
        "c4.citations_removed": 2,
    }


def test_fineweb_sees_c4_output_and_a_drop_reports_no_changes():
    page = "Home | About | Contact\n" + lines_of([*SENTENCES, S6])
    cfg = HeuristicsConfig.model_validate(
        {"gopher_repetition": {"enabled": False}, "gopher_quality": {"enabled": False}}
    )
    outcome = apply_heuristics(page, cfg)
    assert (outcome.reason, outcome.text, outcome.changes) == ("fineweb.char_dup_ratio", page, {})


def test_stop_words_match_any_case_and_repeats_count():
    cfg = only("gopher_quality")
    assert apply_heuristics("THE " + NO_STOP + "The end.", cfg).reason is None
    assert apply_heuristics("The " + NO_STOP, cfg).reason == "gopher_quality.stop_words"


def test_ngram_overlaps_are_counted_once():
    # One 5-word block three times: the second and third copies are repeats (2/3 of the
    # characters). Counting each repeated 5-gram's characters separately would give 10/3.
    text = " ".join(tokens(5) * 3)
    cfg = only("gopher_repetition", top_ngram_max_char_fraction={}, dup_ngram_max_char_fraction={5: 0.6})
    assert apply_heuristics(text, cfg).detail == "repeated 5-grams cover 0.667 of characters > 0.6"


def test_words_strip_punctuation_and_drop_symbols():
    assert words("“Hello,” she said -- (twice)... # don't 3.5") == ["Hello", "she", "said", "twice", "don't", "3.5"]


def test_sentence_count_ignores_abbreviations_before_lower_case():
    assert count_sentences("See e.g. the map. It shows two roads! Really?") == 3


def test_config_survives_a_json_round_trip():
    # The config is saved beside every output; JSON turns the n-gram sizes into strings.
    cfg = HeuristicsConfig.model_validate({"gopher_repetition": {"dup_ngram_max_char_fraction": {7: 0.2}}})
    assert HeuristicsConfig.model_validate_json(cfg.model_dump_json()) == cfg


@pytest.mark.parametrize(
    "data, field",
    [
        ({"gopher_repetition": {"max_dup_line_fraction": 1.5}}, "max_dup_line_fraction"),
        ({"gopher_quality": {"min_alpha_words_fraction": -0.1}}, "min_alpha_words_fraction"),
        ({"fineweb": {"max_short_line_fraction": 2}}, "max_short_line_fraction"),
        ({"gopher_repetition": {"dup_ngram_max_char_fraction": {5: 1.2}}}, "dup_ngram_max_char_fraction"),
        ({"gopher_repetition": {"top_ngram_max_char_fraction": {0: 0.2}}}, "top_ngram_max_char_fraction"),
        ({"gopher_quality": {"min_words": 200, "max_words": 100}}, "min_words .200. exceeds max_words .100."),
        ({"gopher_quality": {"min_mean_word_length": 12}}, "min_mean_word_length .12.0. exceeds"),
        ({"c4": {"min_sentences": -1}}, "min_sentences"),
        ({"c4": {"min_sentence": 5}}, "min_sentence"),  # a misspelt field is refused, not ignored
    ],
)
def test_bad_config_names_the_field(data, field):
    with pytest.raises(ValidationError, match=field):
        HeuristicsConfig.model_validate(data)
