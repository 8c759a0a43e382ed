"""The documentation site's generated reference pages (infra/app/reference_docs.py): every
configuration key and every CLI option is described, and the pages list them all. The site's
--strict build itself runs in `bash infra/dev.sh test`, before pytest."""

from __future__ import annotations

import argparse

import yaml

from flows.config import PipelineConfig
from infra.app import reference_docs as ref
from infra.app.cli import _parser
from tests.conftest import ROOT


def _dumped_keys(value: object, sections: set[str], path: str = "") -> set[str]:
    """The dotted keys of a dumped config: the keys of each section, recursively."""
    if isinstance(value, dict) and (not path or path in sections):
        return {p for k, v in value.items() for p in _dumped_keys(v, sections, f"{path}.{k}".lstrip("."))}
    return {path}


def test_every_config_key_has_a_description():
    keys = list(ref.config_keys())
    missing = [k.path for k in keys if not k.description.strip()]
    assert not missing, (
        "config keys without Field(description=...) (add one in the model, short and accurate):\n  "
        + "\n  ".join(missing)
    )
    assert len(keys) > 200  # nested sections are expanded, not just the top level


def test_the_keys_cover_the_models_and_their_nested_sections():
    paths = {k.path for k in ref.config_keys()}
    for expected in (
        "run_id",
        "training.max_steps",
        "training.parallel.tensor",
        "training.batch_ramp.start_batch",  # an optional section
        "curation.noise.seed",  # another, None by default
        "curation.web.extraction.extractor",
        "curation.heuristics.languages.<key>.stop_words",  # a mapping of sections
        "evaluation.generation_files[].file",  # a list of sections
        "evaluation.judges[].kind",
    ):
        assert expected in paths, expected
    # Every key a default config dumps is in the reference (mapping and list entries aside).
    sections = {k.path for k in ref.config_keys() if "section" in k.type.split(" | ")}  # not lists or mappings
    dumped = _dumped_keys(PipelineConfig().model_dump(mode="json"), sections)
    assert len(dumped) > 150 and dumped <= paths, sorted(dumped - paths)


def test_the_configuration_page_lists_every_key_with_type_default_and_description():
    page = ref.configuration_markdown()
    keys = list(ref.config_keys())
    for k in keys:
        if k.section and "." not in k.path:  # a top-level section: a heading of its own
            assert f"\n## {k.path}\n\n{ref._cell(k.description)}\n" in page, k.path
        else:
            assert f"| {ref.key_cell(k.path)} |" in page, k.path

    def row_of(key: str) -> str:
        return next(line for line in page.splitlines() if line.startswith(f"| {ref.key_cell(key)} |"))

    row = row_of("training.max_steps")
    assert "<code>int</code>" in row and "<code>300</code>" in row and "Optimizer steps." in row
    row = row_of("curation.normalization")
    assert '"NFC" &#124; "NFKC"' in row  # a literal type, its pipe escaped out of the table syntax
    row = row_of("evaluation.judges[].model")
    assert "required" in row


def test_readable_types():
    from typing import Literal

    assert ref.type_name(int | None) == "int | null"
    assert ref.type_name(list[str]) == "list[str]"
    assert ref.type_name(tuple[str, ...]) == "list[str]"
    assert ref.type_name(tuple[float, float]) == "[float, float]"
    assert ref.type_name(dict[str, float] | None) == "dict[str, float] | null"
    assert ref.type_name(Literal["a", "b"]) == '"a" | "b"'
    assert ref.type_name(PipelineConfig) == "section"


def test_every_cli_verb_and_option_has_help():
    verbs = ref.cli_verbs()
    assert not [v for v, text in verbs if not text.strip()], "verbs without help= in infra/app/cli.py"
    missing = [f"crucible {o.verb} {o.names}" for o in ref.cli_options() if not o.help.strip()]
    assert not missing, "CLI options without help= in infra/app/cli.py:\n  " + "\n  ".join(missing)


def test_the_cli_page_lists_every_verb_and_option():
    parser = _parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    page = ref.cli_markdown()
    assert set(sub.choices) == {v for v, _ in ref.cli_verbs()}
    for verb in sub.choices:
        assert f"\n## crucible {verb}\n" in page, verb
        assert f"[`{verb}`](#crucible-{verb})" in page, verb
    for o in ref.cli_options():
        assert f"| {ref.key_cell(o.names)} |" in page, (o.verb, o.names)
    assert "--trust-checkpoint" in page and "--price-per-gpu-hour" in page


def test_the_nav_names_the_generated_pages():
    config = yaml.safe_load((ROOT / "infra" / "mkdocs.yml").read_text())
    nav = yaml.safe_dump(config["nav"])
    assert ref.CONFIG_PAGE in nav and ref.CLI_PAGE in nav
    assert config["docs_dir"] == "../docs" and config["theme"]["font"] is False
    # Generated at build time, never committed (a committed copy would go stale).
    for generated in (ref.CONFIG_PAGE, ref.CLI_PAGE, ref.STYLESHEET):
        assert not (ROOT / "docs" / generated).exists(), generated
    assert ref.STYLESHEET in config["extra_css"]


def test_the_test_command_builds_the_site_strictly():
    """`bash infra/dev.sh test` builds the site with --strict and without -q: in MkDocs 1.6, -q
    hides the warnings that --strict counts, so a broken link would pass."""
    builds = [line for line in (ROOT / "infra" / "dev.sh").read_text().splitlines() if 'mkdocs" build' in line]
    assert builds, "infra/dev.sh no longer builds the documentation site"
    for line in builds:
        assert "--strict" in line and " -q" not in line and "-f infra/mkdocs.yml" in line, line
