"""The registry of built-in corpora: each name resolves to its builder and its check, and a
path of the user's is not mistaken for one."""

import inspect

import pytest

from tasks.corpus.builtin import BUILTIN_CORPORA, BuiltinCorpus, builtin_corpus


@pytest.mark.parametrize("name", sorted(BUILTIN_CORPORA))
def test_each_builtin_corpus_resolves_to_its_builder_and_check(name):
    corpus = builtin_corpus(name)
    assert corpus is not None and corpus.name == name
    build, check = corpus._function(corpus.build_function), corpus._function(corpus.check_function)
    # Called with no arguments by curation and preflight.
    assert all(p.default is not p.empty for p in inspect.signature(build).parameters.values())
    assert not inspect.signature(check).parameters


def test_a_user_path_is_not_a_builtin_corpus(tmp_path):
    assert builtin_corpus(str(tmp_path)) is None
    assert builtin_corpus("demo/") is None  # only the exact name


def test_build_and_check_call_the_named_functions(tmp_path, monkeypatch):
    import tasks.corpus.demo as demo

    monkeypatch.setattr(demo, "check_available", lambda: (_ for _ in ()).throw(demo.CorpusUnavailable("no")))
    monkeypatch.setattr(demo, "build_demo_corpus", lambda: tmp_path)
    corpus = BuiltinCorpus("x", "build-x", "tasks.corpus.demo", "build_demo_corpus", "check_available")
    assert corpus.build() == tmp_path
    with pytest.raises(demo.CorpusUnavailable):
        corpus.check_available()
