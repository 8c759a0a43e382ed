"""The heuristic rules judge a document by its identified language: its own stop words and
word-length bounds; rules without a setting for the language, or built on whitespace words
in a language written without spaces, are skipped and counted, never run with English
settings."""

from pathlib import Path

import pytest
from pydantic import ValidationError

from infra.app.config import ConfigError, load_config
from tasks.curation.config import CurationConfig
from tasks.curation.filters.chain import DocumentFilter
from tasks.curation.rules import HeuristicsConfig, apply_heuristics, skipped_rules

# Written for these tests: the same story in each language, three paragraphs of plain prose.
FR = """\
La bibliothèque du village a ouvert ses portes au printemps, après un long hiver de travaux. \
Des bénévoles ont repeint les murs, réparé le toit qui fuyait et rangé des milliers de livres \
donnés par les habitants. Le premier matin, une file d'enfants attendait devant l'entrée avec \
leurs parents, impatients d'emprunter quelque chose de nouveau.

La bibliothécaire, une ancienne institutrice, pensait qu'une bibliothèque devait être plus \
qu'une salle silencieuse remplie d'étagères. Elle a organisé des lectures chaque semaine, invité \
des auteurs de la région et installé un coin où les personnes âgées pouvaient apprendre à se \
servir d'un ordinateur. En quelques mois, le bâtiment est devenu un lieu de rencontre pour les \
gens de tous les âges.

Le financement restait pourtant une inquiétude constante. La commune versait une petite \
subvention, mais elle couvrait à peine le chauffage et l'électricité. Pour trouver le reste, les \
bénévoles ont vendu des livres, préparé des gâteaux pour la fête de l'été et écrit aux entreprises \
de la ville voisine."""

DE = """\
Die Dorfbibliothek öffnete im Frühjahr ihre Türen, nachdem sie einen langen Winter lang renoviert \
worden war. Freiwillige hatten die Wände gestrichen, das undichte Dach repariert und tausende \
gespendete Bücher in ordentliche Regale sortiert. Am ersten Morgen warteten Kinder mit ihren \
Eltern vor dem Eingang, weil sie sich endlich etwas Neues zum Lesen ausleihen wollten.

Die Bibliothekarin, eine pensionierte Lehrerin, war davon überzeugt, dass eine Bibliothek mehr \
sein sollte als ein stiller Raum voller Regale. Sie organisierte wöchentliche Vorlesestunden, lud \
Autorinnen und Autoren aus der Region ein und richtete eine Ecke ein, in der ältere Menschen den \
Umgang mit Computern lernen konnten. Nach wenigen Monaten war das Gebäude zu einem Treffpunkt für \
Menschen jeden Alters geworden.

Die Finanzierung blieb jedoch eine ständige Sorge. Die Gemeinde zahlte einen bescheidenen \
Zuschuss, der kaum mehr als Heizung und Strom deckte. Um den Rest aufzubringen, veranstalteten \
die Freiwilligen Buchbasare, backten Kuchen für das Sommerfest und schrieben Briefe an Firmen in \
der benachbarten Stadt."""

ES = """\
La biblioteca del pueblo abrió sus puertas en primavera, después de un largo invierno de obras. \
Los voluntarios habían pintado las paredes, arreglado el tejado que tenía goteras y ordenado miles \
de libros donados por los vecinos. La primera mañana, una fila de niños esperaba en la entrada con \
sus padres, con ganas de llevarse algo nuevo para leer.

La bibliotecaria, una maestra jubilada, creía que una biblioteca debía ser algo más que una sala \
silenciosa llena de estanterías. Organizó lecturas cada semana, invitó a autores de la región y \
preparó un rincón donde las personas mayores podían aprender a usar un ordenador. En pocos meses, \
el edificio se había convertido en un lugar de encuentro para gente de todas las edades.

Sin embargo, el dinero seguía siendo una preocupación constante. El ayuntamiento daba una pequeña \
subvención, pero apenas cubría la calefacción y la luz. Para conseguir el resto, los voluntarios \
vendieron libros, hicieron pasteles para la fiesta del verano y escribieron cartas a las empresas \
del pueblo vecino."""

EN = """\
The village library opened its doors in the spring, after a long winter of repairs. Volunteers \
had painted the walls, fixed the leaking roof and sorted thousands of donated books. On the first \
morning, a queue of children waited outside with their parents, eager to borrow something new.

The librarian, a retired teacher, believed that a library should be more than a quiet room full \
of shelves. She organised weekly story hours and set up a corner where older residents could \
learn to use computers. Within a few months, the building had become a meeting place for people \
of every age."""

# A language with no entry in the defaults, written with spaces.
RU = """\
Библиотека в деревне открылась весной, после долгой зимы ремонта. Добровольцы покрасили стены, \
починили протекавшую крышу и расставили по полкам тысячи подаренных книг. В первое утро у входа \
стояла очередь детей с родителями, которым не терпелось взять что-нибудь новое.

Библиотекарь, бывшая учительница, считала, что библиотека должна быть чем-то большим, чем тихая \
комната с полками. Каждую неделю она устраивала чтения, приглашала местных писателей и открыла \
уголок, где пожилые люди учились пользоваться компьютером. Через несколько месяцев здание стало \
местом встречи для людей всех возрастов."""

# Written without spaces: each line is one whitespace "word", and sentences end in "。".
JA = """\
村の図書館は、長い冬の改修を終えて春に開館した。ボランティアが壁を塗り、雨漏りする屋根を直し、寄付された本を棚に並べた。
最初の朝には、子どもたちが親と一緒に入口の前で待っていた。司書は元教師で、図書館は静かな部屋以上のものであるべきだと考えていた。
毎週の読み聞かせを開き、地元の作家を招き、高齢者がコンピューターを学べる場所を作った。数か月のうちに、建物はあらゆる世代の人が集まる場所になった。"""

# Administrative German: compounds put the mean word length (13.0) past Gopher's English 10.
DE_COMPOUNDS = """\
Die Landesregierung veröffentlichte gestern ihre Haushaltsplanungsrichtlinien für Kommunalverwaltungen. \
Die Ausführungsbestimmungen regeln Zuständigkeitsbereiche, Genehmigungsverfahren und Berichtspflichten \
der Bauaufsichtsbehörden. Insbesondere Denkmalschutzauflagen, Brandschutzvorschriften und \
Barrierefreiheitsanforderungen werden künftig gemeinsam überprüft. Verwaltungsmitarbeiterinnen \
erhalten dafür Fortbildungsveranstaltungen über Digitalisierungsstrategien und Datenschutzgrundsätze. \
Die Gemeindevertretungen begrüßten die Vereinfachung der Antragsformulare ausdrücklich. \
Gleichzeitig kritisierten Bürgerinitiativen fehlende Beteiligungsmöglichkeiten bei \
Infrastrukturentscheidungen und Flächennutzungsplänen."""

PROSE = {"fr": FR, "de": DE, "es": ES}
PRESET = Path(__file__).parents[3] / "infra" / "app" / "presets" / "web-multilingual.yaml"


def english_everywhere() -> HeuristicsConfig:
    """The behaviour before the rules knew languages: English settings for every language."""
    en = HeuristicsConfig().languages["en"].model_dump()
    return HeuristicsConfig.model_validate({"languages": dict.fromkeys(PROSE, en)})


@pytest.mark.parametrize("lang", PROSE)
def test_prose_is_kept_in_its_own_language_and_removed_with_english_settings(lang):
    text = PROSE[lang]
    kept = apply_heuristics(text, HeuristicsConfig(), lang)
    assert (kept.reason, kept.text, kept.changes) == (None, text, {})
    dropped = apply_heuristics(text, english_everywhere(), lang)
    assert (dropped.reason, dropped.detail) == ("gopher_quality.stop_words", "0 stop words < 2")


@pytest.mark.parametrize("lang", PROSE)
def test_a_document_without_a_language_is_judged_in_the_default_language(lang):
    assert apply_heuristics(PROSE[lang], HeuristicsConfig(), None).reason == "gopher_quality.stop_words"
    own = HeuristicsConfig(default_language=lang)
    assert apply_heuristics(PROSE[lang], own, None).reason is None
    assert apply_heuristics(EN, own, None).reason == "gopher_quality.stop_words"


def test_english_is_judged_as_before():
    cfg = HeuristicsConfig()
    assert cfg.languages["en"].stop_words == ("the", "be", "to", "of", "and", "that", "have", "with")
    assert (cfg.languages["en"].min_mean_word_length, cfg.languages["en"].max_mean_word_length) == (3, 10)
    for language in ("en", None, "EN", "en-GB", "en_US", "English"):  # tags cut to "en"; a name is no code
        assert apply_heuristics(EN, cfg, language) == apply_heuristics(EN, cfg, "en")
    assert apply_heuristics(EN, cfg, "en").reason is None
    assert apply_heuristics(FR, cfg, "en").reason == "gopher_quality.stop_words"


def test_german_compounds_pass_german_word_length_bounds_only():
    assert apply_heuristics(DE_COMPOUNDS, HeuristicsConfig(), "de").reason is None
    english_bounds = HeuristicsConfig.model_validate({"languages": {"de": {"max_mean_word_length": 10}}})
    dropped = apply_heuristics(DE_COMPOUNDS, english_bounds, "de")
    assert (dropped.reason, dropped.detail) == (
        "gopher_quality.mean_word_length",
        "mean word length 12.96 outside 3..10",
    )


def test_a_language_without_settings_skips_its_rules_and_counts_them():
    kept = apply_heuristics(RU, HeuristicsConfig(), "ru")
    assert (kept.reason, kept.text) == (None, RU)
    assert kept.changes == {
        "rules_skipped.gopher_quality.mean_word_length.ru": 1,
        "rules_skipped.gopher_quality.stop_words.ru": 1,
    }
    # Given settings (here, English ones), the rules run, and the Russian page fails them.
    en = HeuristicsConfig().languages["en"].model_dump()
    ru_as_en = HeuristicsConfig.model_validate({"languages": {"ru": en}})
    assert apply_heuristics(RU, ru_as_en, "ru").reason == "gopher_quality.stop_words"


def test_skips_are_counted_for_removed_documents_too():
    repeated = "\n".join([RU.splitlines()[0]] * 5)
    dropped = apply_heuristics(repeated, HeuristicsConfig(), "ru")
    assert dropped.reason == "gopher_repetition.dup_line_fraction"
    assert dropped.changes == {
        "rules_skipped.gopher_quality.mean_word_length.ru": 1,
        "rules_skipped.gopher_quality.stop_words.ru": 1,
    }


def test_the_filter_pass_counts_skips_of_kept_and_removed_documents():
    cfg = CurationConfig.model_validate(
        {"input_path": "unused", "quality_classifier": {"enabled": False}, "decontamination": {"enabled": False}}
    )
    check = DocumentFilter(cfg, None, None)
    assert check(RU, "ru").reason is None
    assert check("\n".join([RU.splitlines()[0]] * 5), "ru").reason == "gopher_repetition.dup_line_fraction"
    assert check(FR, "fr").reason is None
    assert check.changes["rules_skipped.gopher_quality.stop_words.ru"] == 2
    assert not any(k.endswith(".fr") for k in check.changes)


def test_a_language_removed_from_the_defaults_is_skipped():
    cfg = HeuristicsConfig.model_validate({"languages": {"fr": None}})
    outcome = apply_heuristics(FR, cfg, "fr")
    assert outcome.reason is None
    assert set(outcome.changes) == {
        "rules_skipped.gopher_quality.mean_word_length.fr",
        "rules_skipped.gopher_quality.stop_words.fr",
    }
    # The removal survives the config's JSON round trip (a run's saved config.yaml).
    assert HeuristicsConfig.model_validate_json(cfg.model_dump_json()).languages["fr"].stop_words == ()


def test_a_language_written_without_spaces_skips_the_word_rules():
    cfg = HeuristicsConfig()
    kept = apply_heuristics(JA, cfg, "ja")
    assert (kept.reason, kept.text) == (None, JA)
    assert kept.changes["rules_skipped.gopher_quality.stop_words.ja"] == 1
    assert set(kept.changes) == {f"rules_skipped.{rule}.ja" for rule in skipped_rules(cfg, "ja")}
    assert {
        "gopher_quality.word_count",
        "c4.too_few_words",
        "c4.too_few_sentences",
        "fineweb.line_punct_ratio",
        "fineweb.list_ratio",
        "gopher_repetition.top_2_gram",
    } <= set(skipped_rules(cfg, "ja"))
    # Read as whitespace words, the page has 3 "words", 0 sentences, and every line is too short.
    spaced = HeuristicsConfig(unspaced_languages=())
    assert apply_heuristics(JA, spaced, "ja").reason == "c4.too_few_sentences"


def test_rules_that_do_not_need_words_still_apply_to_such_languages():
    repeated = "\n".join([JA.splitlines()[0]] * 4)
    assert apply_heuristics(repeated, HeuristicsConfig(), "ja").reason == "gopher_repetition.dup_line_fraction"


def test_a_disabled_rule_is_not_counted_as_skipped():
    cfg = HeuristicsConfig.model_validate({"gopher_quality": {"min_stop_words": 0}})
    assert "gopher_quality.stop_words" not in skipped_rules(cfg, "ru")
    off = HeuristicsConfig.model_validate(
        {f: {"enabled": False} for f in ("gopher_repetition", "gopher_quality", "c4", "fineweb")}
    )
    assert skipped_rules(off, "ja") == []
    assert apply_heuristics(JA, off, "ja").changes == {}


def test_cookie_phrases_of_the_document_language_remove_lines():
    fr_cookie = "Ce site utilise des cookies pour mesurer son audience et améliorer votre navigation."
    en_cookie = "This site uses cookies to measure its audience and improve your browsing experience."
    page = "\n".join([fr_cookie, en_cookie, FR])
    outcome = apply_heuristics(page, HeuristicsConfig(), "fr")
    assert outcome.reason is None and outcome.text == FR
    assert outcome.changes["c4.lines_removed.policy"] == 2
    # Judged as Spanish, only C4's English phrases (applied to every language) match.
    spanish = HeuristicsConfig.model_validate({"languages": {"es": {"stop_words": ["de", "la"]}}})
    as_es = apply_heuristics(page, spanish, "es")
    assert as_es.changes["c4.lines_removed.policy"] == 1 and as_es.text.startswith(fr_cookie)


def test_entries_given_are_merged_over_the_defaults():
    cfg = HeuristicsConfig.model_validate(
        {"languages": {"de": {"max_mean_word_length": 18}, "pl": {"stop_words": ["i", "w", "nie"]}}}
    )
    assert cfg.languages["de"].max_mean_word_length == 18
    assert cfg.languages["de"].stop_words == HeuristicsConfig().languages["de"].stop_words
    assert {"en", "fr", "es", "pl"} <= set(cfg.languages)
    assert HeuristicsConfig.model_validate_json(cfg.model_dump_json()) == cfg


def test_old_gopher_keys_move_to_the_default_language():
    cfg = HeuristicsConfig.model_validate(
        {"gopher_quality": {"stop_words": ["The", "a"], "max_mean_word_length": 12, "min_words": 20}}
    )
    assert cfg.languages["en"].stop_words == ("the", "a")
    assert cfg.languages["en"].max_mean_word_length == 12 and cfg.gopher_quality.min_words == 20
    assert cfg.languages["fr"] == HeuristicsConfig().languages["fr"]
    # An explicit languages entry wins over the old key.
    both = HeuristicsConfig.model_validate(
        {"gopher_quality": {"stop_words": ["x"]}, "languages": {"en": {"stop_words": ["y"]}}}
    )
    assert both.languages["en"].stop_words == ("y",)


@pytest.mark.parametrize(
    "data, message",
    [
        ({"languages": {"fr": {"stopwords": ["le"]}}}, r"languages\.fr\.stopwords"),
        ({"languages": {"French": {"stop_words": ["le"]}}}, r"\['French'\] are not language codes"),
        ({"unspaced_languages": ["JA"]}, r"\['JA'\] are not language codes"),
        ({"default_language": "pl"}, r"default_language 'pl' has no entry in languages; use one of: de, en"),
        ({"languages": {"fr": {"stop_words": ["l'", "de"]}}}, r"stop words \[\"l'\"\] are not single words"),
        (
            {"languages": {"de": {"min_mean_word_length": 16}}},
            r"min_mean_word_length \(16\.0\) exceeds max_mean_word_length \(15\.0\)",
        ),
        ({"languages": {"ja": {"stop_words": ["の"]}}}, r"ja is in unspaced_languages"),
        ({"languages": {"fr": ["le"]}}, r"languages\.fr"),
    ],
)
def test_bad_language_config_is_refused_with_the_fix(data, message):
    with pytest.raises(ValidationError, match=message):
        HeuristicsConfig.model_validate(data)


def test_a_misspelt_language_key_is_named_by_the_config_loader():
    with pytest.raises(ConfigError, match=r"unknown key 'curation\.heuristics\.languages\.fr\.stopwords'"):
        load_config(PRESET, ["curation.heuristics.languages.fr.stopwords=[le]"])


def test_the_multilingual_preset_keeps_four_languages_each_with_rules():
    cfg = load_config(PRESET)
    keep = cfg.curation.web.language.keep
    assert keep == ["en", "fr", "de", "es"]
    heuristics = cfg.curation.heuristics
    assert all(heuristics.languages[lang].stop_words for lang in keep)
    assert all(skipped_rules(heuristics, lang) == [] for lang in keep)
    # Its classifier's good class is English: it would remove the other languages' pages.
    assert cfg.curation.quality_classifier.enabled is False


def test_three_letter_and_script_tagged_codes_map_to_their_language():
    from tasks.curation.rules.languages import language_code

    assert [language_code(c) for c in ("eng", "fra_Latn", "deu", "spa", "zho_Hans", "pt-BR")] == [
        "en",
        "fr",
        "de",
        "es",
        "zh",
        "pt",
    ]


def test_a_document_left_empty_by_the_line_rules_is_removed_as_empty():
    """For a language whose counting rules are skipped, C4 can remove every line; the
    document then goes as `empty`, not kept with no text."""
    from tasks.curation.config import CurationConfig
    from tasks.curation.filters.chain import DocumentFilter

    page = "このサイトはjavascriptを使います。\nThis site uses cookies to work well."
    cfg = CurationConfig(quality_classifier={"enabled": False}, heuristics={"fineweb": {"enabled": False}})
    check = DocumentFilter(cfg, None, None)
    verdict = check(page, "ja")
    assert verdict.reason == "empty"
