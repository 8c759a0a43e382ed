import gzip

import pytest

from tasks.corpus import demo


def test_gcide_pages_group_whole_entries(tmp_path):
    entries = [f"Word{i} \\Word{i}\\, n.\n   Meaning number {i}.\n   [1913 Webster]" for i in range(400)]
    path = tmp_path / "gcide.dict.dz"
    path.write_bytes(gzip.compress("\n\n".join(entries).encode()))
    docs = list(demo.gcide_documents(path))
    assert len(docs) > 1 and all(len(d["text"]) <= demo.PAGE_CHARS + 200 for d in docs)
    assert "\n\n".join(d["text"] for d in docs) == "\n\n".join(entries)  # nothing lost or split
    assert docs[0]["source"] == "reference" and docs[0]["metadata"]["first_entry"] == "Word0"


def test_python_docs_are_cut_at_paragraphs(tmp_path):
    (tmp_path / "lib").mkdir()
    paragraphs = [f"Paragraph {i} " + "text " * 200 for i in range(20)]
    (tmp_path / "lib" / "mod.rst.txt").write_text("\n\n".join(paragraphs))
    docs = list(demo.pydoc_documents(tmp_path))
    assert len(docs) > 1 and docs[0]["id"] == "pydoc-lib/mod.rst.txt-000"
    assert sum(d["text"].count("Paragraph ") for d in docs) == 20


def test_missing_packages_without_root_say_what_to_run(tmp_path, monkeypatch):
    monkeypatch.setenv("CRUCIBLE_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(demo, "GCIDE", demo.DebianSource("dict-gcide", "no/such/file", "reference", "x"))
    monkeypatch.setattr(demo.os, "geteuid", lambda: 1000)
    with pytest.raises(demo.CorpusUnavailable, match=r"sudo apt-get install dict-gcide.*curation.input_path"):
        demo.check_available()


def test_a_built_corpus_is_reused(tmp_path, monkeypatch):
    monkeypatch.setenv("CRUCIBLE_CACHE_DIR", str(tmp_path))
    dest = tmp_path / f"demo-corpus-{demo.CORPUS_VERSION}"
    dest.mkdir()
    (dest / "_SUCCESS.json").write_text('{"documents": 3}')
    demo.check_available()  # no packages needed once built
    assert demo.build_demo_corpus() == dest
