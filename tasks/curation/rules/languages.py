"""What the heuristic rules know about each language.

Gopher's stop words (the, be, to, of, and, that, have, with) and its word-length bounds are
English: applied to a French page, the stop-word rule removes it. FineWeb-2 (Penedo et al.,
2025, "FineWeb2: One Pipeline to Scale Them All", arXiv:2506.20920; huggingface/fineweb-2,
configs/{iso3}_{script}.yml) tunes those rules per language instead, with stop words taken
from each language's most frequent Wikipedia words and at least 2 of them required, as in
English. Here each language the rules know has a `LanguageRules` entry; a rule with no
setting for a document's language is skipped and counted, never run with English settings.

The stop-word lists below were written for this project, not copied: function words from
the top of FineWeb-2's lists, kept only when they are whole words as text.words splits text
(FineWeb-2's tokenizer splits French "l'" off its word; ours does not), leaving out the
most common English words among them ("a", "in", "is", "no", "on", "as", "son"), so an
English page misidentified as French still fails. Two kept words are also English ones, rare
in English text but among the most frequent of their own language: German and Dutch "die",
Portuguese "do". Each fr/de/es word was checked to be
among the 60 most frequent words of Debian's own French, German and Spanish manuals
(debian-reference-fr/-de/-es, developers-reference-fr/-de); it, pt and nl are unchecked.

Mean word length: Gopher's 3..10 for English. FineWeb-2 raises the maximum where words are
long: fr 11, de 15 (compounds), es 14, pt 13, nl 16 (it 21, which we cap at 14 like es: no
Italian prose averages more). Its minimums (0..4) are for a tokenizer that makes "l'" a word;
ours keeps Gopher's 3 for all of these.

Languages written without spaces between words (Chinese, Japanese, Thai, ...) have no
whitespace words to count: the rules built on words, and on Latin sentence punctuation, are
skipped for them (rules/__init__.py, skipped_rules).
"""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from tasks.curation.rules.text import words

# ISO 639-1, or 639-3 where a language has no 639-1 code (py3langid gives both: "fr", "yue");
# region and script subtags are cut off before lookup.
LANGUAGE_CODE = re.compile(r"[a-z]{2,3}")
# py3langid's languages written without spaces between words (Chinese, Cantonese, Wu,
# Japanese, Thai, Lao, Khmer, Burmese, Dzongkha), and Tibetan.
UNSPACED_LANGUAGES = ("zh", "yue", "wuu", "ja", "th", "lo", "km", "my", "dz", "bo")


class LanguageRules(BaseModel):
    """The language-dependent settings of the heuristic rules for one language. A setting left
    empty has its rule skipped for this language (and counted)."""

    # Frozen: the defaults below are shared module-level instances.
    model_config = ConfigDict(extra="forbid", frozen=True)

    stop_words: tuple[str, ...] = Field(
        (),
        description="Gopher's stop-word rule counts these whole words, in any case "
        "(gopher_quality.min_stop_words of them needed); empty: the rule is skipped.",
    )
    min_mean_word_length: float | None = Field(
        None, ge=0, description="Gopher: least mean word length, in characters; None: no lower bound."
    )
    max_mean_word_length: float | None = Field(
        None, gt=0, description="Gopher: most mean word length, in characters; None: no upper bound."
    )
    policy_substrings: tuple[str, ...] = Field(
        (),
        description="Cookie and terms-of-use phrases in this language: C4 removes the lines holding "
        "them, besides those holding its English ones (c4.policy_substrings, applied to every language).",
    )

    @field_validator("stop_words")
    @classmethod
    def _whole_words(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        # Words are matched in lower case and after text.words has stripped their punctuation:
        # a stop word it would split or strip ("l'", "e.g.") would silently never match.
        out = tuple(w.lower() for w in v)
        bad = [w for w in out if words(w) != [w]]
        if bad:
            raise ValueError(
                f"stop words {bad} are not single words as the rules split text (whitespace-separated, "
                f"leading and trailing punctuation stripped): write each as it appears inside a sentence"
            )
        return out

    @field_validator("policy_substrings")
    @classmethod
    def _lower(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        # Lines are matched in lower case; a capitalised phrase would silently never match.
        return tuple(s.lower() for s in v)

    @model_validator(mode="after")
    def _range(self) -> LanguageRules:
        lo, hi = self.min_mean_word_length, self.max_mean_word_length
        if lo is not None and hi is not None and lo > hi:
            raise ValueError(f"min_mean_word_length ({lo}) exceeds max_mean_word_length ({hi})")
        return self

    @property
    def has_word_length(self) -> bool:
        return self.min_mean_word_length is not None or self.max_mean_word_length is not None


NO_RULES = LanguageRules()


def _rules(stop_words: str, max_mean_word_length: float, policy: tuple[str, ...]) -> LanguageRules:
    return LanguageRules(
        stop_words=tuple(stop_words.split()),
        min_mean_word_length=3,
        max_mean_word_length=max_mean_word_length,
        policy_substrings=policy,
    )


# English is Gopher's, as published; its policy phrases are C4's (c4.policy_substrings).
DEFAULT_LANGUAGES: dict[str, LanguageRules] = {
    "en": _rules("the be to of and that have with", 10, ()),
    "fr": _rules(
        "de la le les des du et à un une en est dans par pour que qui sur au pas il avec ne",
        11,
        (
            "politique de confidentialité",
            "conditions d'utilisation",
            "conditions d’utilisation",
            "utilise des cookies",
            "utilisons des cookies",
            "utilisation des cookies",
        ),
    ),
    "de": _rules(
        "der die das und den dem des von zu mit für auf ist ein eine nicht sich im es wird auch als dass",
        15,
        (
            "datenschutzerklärung",
            "nutzungsbedingungen",
            "verwendet cookies",
            "verwenden cookies",
            "verwendung von cookies",
            "einsatz von cookies",
        ),
    ),
    "es": _rules(
        "de la el en y que los las del se por un una con para su es al lo como",
        14,
        (
            "política de privacidad",
            "política de cookies",
            "utiliza cookies",
            "utilizamos cookies",
            "uso de cookies",
            "términos de uso",
            "condiciones de uso",
        ),
    ),
    "it": _rules(
        "di e il la che del della un una per non con da è si nel le gli dei sono",
        14,
        ("informativa sulla privacy", "utilizza cookie", "utilizziamo cookie", "uso dei cookie", "termini di utilizzo"),
    ),
    "pt": _rules(
        "de que e o do da em um uma para com não os se na por mais dos das é",
        13,
        ("política de privacidade", "utiliza cookies", "utilizamos cookies", "uso de cookies", "termos de uso"),
    ),
    "nl": _rules(
        "de het een en van dat op te voor met zijn niet die er ook aan door wordt bij naar",
        16,
        ("privacybeleid", "cookiebeleid", "gebruikt cookies", "gebruiken cookies", "gebruiksvoorwaarden"),
    ),
}


# ISO 639-2/3 codes of the languages with defaults here and of the unspaced ones, as other
# tools tag documents ("eng", "fra", FineWeb-2's "fra_Latn"): without this they would match no
# entry, and the rules for them would be skipped.
_THREE_LETTER = {
    "eng": "en",
    "fra": "fr",
    "fre": "fr",
    "deu": "de",
    "ger": "de",
    "spa": "es",
    "ita": "it",
    "por": "pt",
    "nld": "nl",
    "dut": "nl",
    "zho": "zh",
    "chi": "zh",
    "cmn": "zh",
    "jpn": "ja",
    "tha": "th",
}


def language_code(raw: str | None) -> str | None:
    """The primary language subtag of a language tag ("pt-BR" -> "pt"), or None if `raw` is
    none or not a language code (then the default language applies)."""
    if not raw:
        return None
    code = raw.strip().lower().replace("_", "-").split("-", 1)[0]
    code = _THREE_LETTER.get(code, code)
    return code if LANGUAGE_CODE.fullmatch(code) else None
