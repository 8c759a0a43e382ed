"""Pages that are only furniture (consent, browser checks, errors, sign-in walls) are removed;
pages that mention the same things in their content are not."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from tasks.curation.rules import HeuristicsConfig, apply_heuristics, reason_names
from tasks.curation.rules.boilerplate import REASON, BoilerplateConfig, check_furniture
from tasks.curation.rules.text import lines

CONSENT = """Your privacy matters to us
Together with our vendors we store and read information on your device, such as unique identifiers.
With your consent we show personalised ads and measure how our pages perform for visitors.
Some vendors process data on the basis of legitimate interest, which you can object to below.
Open the privacy settings to choose the purposes you agree to, one by one.
Accept all
Manage options"""

CHECK = """Please stand by
We are checking your browser before letting you reach www.example.org.
This takes no more than five seconds and happens only once per visit.
Make sure JavaScript is switched on, otherwise the check cannot finish.
Ray ID: 8a1b2c3d4e5f6071"""

ERROR = """Oops! That page can't be found.
It looks like nothing was found at this location, maybe the link is a broken link.
You could return to the homepage or use the menu above to find what you need.
Error 404"""

PAYWALL = """The harbour that outlived its town
When the railway reached the coast in 1871, the fishing fleet moved north for good.
This story is for subscribers only.
Subscribe now and get unlimited access to every article, the archive and the crossword.
Already have an account? Sign in here."""

ARTICLE = """The harbour that outlived its town
When the railway reached the coast in 1871, the fishing fleet moved north for good, and within a
decade the town's population had halved. The harbour itself was kept in repair by the county,
which needed a refuge for coasters caught by the autumn gales, and it still shelters boats today.
The old customs house became a school in 1902 and a museum of the fleet in 1968; its collection
holds the log books of forty vessels and the letters of the families who followed them north.
Sign in to comment"""

BAKING = """Brown butter cookies
These cookies keep for a week in a tin, and the dough freezes well for a month.
Melt the butter until it smells of toasted nuts, then let it cool before you add the sugar.
Accept all the advice about chilling the dough: cookies baked from warm dough spread thin.
Bake the cookies at 180 degrees for eleven minutes, until the edges are golden."""

API_DOCS = """Client objects
connect(host, port=21, timeout=None)
Connect to the given host and port; the default port is the standard one for the protocol.
login(user, password)
Log in to the server as user; a server that refuses the login raises an error.
cwd(path)
Change to the directory named by path on the server, relative to the current one.
retrlines(command, callback=None)
Send the command and pass each line of the reply to the callback, or print it by default.
The session keeps the connection open until quit() is called or the server closes it after its timeout.
Passwords are sent in clear text unless the connection was upgraded with starttls() first, so prefer it.
A 404 reply from the server means the path named is not there.
Examples of each call follow in the next section, together with the replies a typical server sends."""


@pytest.mark.parametrize("page", [CONSENT, CHECK, ERROR, PAYWALL], ids=["consent", "check", "error", "paywall"])
def test_furniture_pages_are_removed(page):
    failure = check_furniture(lines(page), BoilerplateConfig())
    assert failure is not None and failure[0] == REASON
    outcome = apply_heuristics(page, HeuristicsConfig())
    assert outcome.reason == REASON and outcome.text == page


@pytest.mark.parametrize("page", [ARTICLE, BAKING, API_DOCS], ids=["article", "baking", "api_docs"])
def test_content_that_mentions_the_same_words_stays(page):
    assert check_furniture(lines(page), BoilerplateConfig()) is None


def test_the_rule_edits_nothing_it_keeps():
    cfg = HeuristicsConfig.model_validate(
        {k: {"enabled": False} for k in ("gopher_quality", "gopher_repetition", "c4", "fineweb")}
    )
    assert apply_heuristics(ARTICLE, cfg).text == ARTICLE


def test_phrases_match_whole_words_only():
    cfg = BoilerplateConfig(min_lines=1, max_line_fraction=0.1)
    assert check_furniture(["see the bloglogin page", "a 4040 total"], cfg) is None
    assert check_furniture(["Log in.", "text"], cfg) is not None


def test_long_lines_are_prose_and_do_not_count():
    cfg = BoilerplateConfig(max_line_words=10)
    long_line = "Subscribe now " + "and read " * 10
    assert check_furniture([long_line, "Sign in", "Accept all", "x"], cfg) is not None  # 2 of 4 short
    assert check_furniture([long_line, long_line, "Sign in", "x", "y", "z", "w"], cfg) is None  # 1 < min_lines


def test_a_kind_can_be_replaced_or_added_and_bad_names_are_refused():
    cfg = BoilerplateConfig(phrases={"account": ("members area",), "newsletter": ("join our mailing list",)})
    assert cfg.phrases["consent"]  # the other kinds keep their defaults
    page = ["Members area", "Join our mailing list today", "Welcome back"]
    failure = check_furniture(page, cfg)
    assert failure is not None and "account 1" in failure[1] and "newsletter 1" in failure[1]
    assert check_furniture(["Sign in", "Log in", "x"], cfg) is None  # the replaced list is gone
    with pytest.raises(ValidationError, match="must be names"):
        BoilerplateConfig(phrases={"bad kind": ("x",)})


def test_the_reason_is_listed_in_checking_order():
    names = reason_names(HeuristicsConfig())
    assert names.index("gopher_repetition.dup_line_fraction") < names.index(REASON) < names.index("c4.lorem_ipsum")
    off = HeuristicsConfig.model_validate({"boilerplate": {"enabled": False}})
    assert apply_heuristics(CONSENT, off).reason != REASON


JS_TUTORIAL = """JavaScript arrays: map, filter and reduce
JavaScript map() calls a function on every element and returns the new array it builds.
JavaScript filter() keeps the elements for which the function returns true, in their order.
JavaScript reduce() folds the array into one value, starting from the one given as its second argument.
All three leave the original array unchanged, which makes them easy to chain one after another.
A page that returns 404 from the server is not an array, whatever it says; check the status first.
The next chapter shows how the same three methods work on the entries of a Map object."""


def test_a_page_about_javascript_or_http_errors_is_content():
    # Single words ("javascript", "404", "login") are not furniture; phrases with their context are.
    assert check_furniture(lines(JS_TUTORIAL), BoilerplateConfig()) is None


def test_a_page_without_line_breaks_costs_one_pass():
    """Line starts are found once, however many phrases a single long line holds."""
    import time

    one_line = "please sign in here now and " * 4000
    split = one_line.replace(" and ", " and\n", 1)
    cfg = BoilerplateConfig(min_lines=1, max_line_fraction=0.01)

    def timed(page: str) -> float:
        start = time.perf_counter()
        for _ in range(3):
            check_furniture(lines(page), cfg)
        return time.perf_counter() - start

    assert timed(one_line) < 20 * timed(split) + 0.05
