"""Page text that is not content, for the curation-class benchmark: junk pages (cookie
consent, HTTP errors, "enable JavaScript" and bot checks, login walls) and boilerplate
blocks (related articles, a site's footer, a licence notice, a newsletter plea) that sites
append to every article.

Each is assembled at random from phrase banks (several wordings of each thing such pages
say, written for this benchmark in the style of the pages they imitate), with a site's
name, numbers and codes of its own, so two pages are as different as two sites' pages are;
a login wall shows the headline and first sentence of a real article, and half the error
pages list recent articles (headline and a sentence each). What a page says is one line per
message, as a main-text extractor returns it.
"""

from __future__ import annotations

import random
from collections.abc import Callable

from curation_values import HEX, Names, random_chars

Snippet = tuple[str, str]  # (a real article's title, one of its sentences)


class Site:
    def __init__(self, names: Names, rng: random.Random):
        a, b = names.word(), names.word()
        self.name = rng.choice([f"The {a} {b}", f"{a} {b}", f"{a}{b.lower()}", f"{a} Daily", f"{a} Review"])
        self.domain = names.domain()
        self.rng = rng

    def fill(self, phrase: str) -> str:
        rng = self.rng
        values = {
            "{site}": self.name,
            "{domain}": self.domain,
            "{n}": str(rng.randint(120, 1600)),
            "{k}": str(rng.randint(2, 10)),
            "{months}": str(rng.choice([6, 12, 13, 24])),
            "{price}": rng.choice(["£1", "$1.99", "€2.49", "$4", "£0.99", "$2.50"]),
            "{hex}": random_chars(rng, HEX, 16),
            "{version}": f"{rng.randint(1, 2)}.{rng.randint(10, 26)}.{rng.randint(0, 9)}",
            "{year}": str(rng.randint(2015, 2025)),
        }
        for key, value in values.items():
            phrase = phrase.replace(key, value)
        return phrase


def _pick(rng: random.Random, bank: list[list[str]], lo: int, hi: int) -> list[str]:
    """One wording each of between lo and hi of the bank's messages, in the bank's order."""
    chosen = sorted(rng.sample(range(len(bank)), rng.randint(lo, min(hi, len(bank)))))
    return [rng.choice(bank[i]) for i in chosen]


COOKIE_TITLES = ["We value your privacy", "Your privacy matters to {site}", "Cookie settings", "Before you continue"]
COOKIE_BANK = [
    [
        "This site uses cookies to improve your experience and to show you personalised content and ads.",
        "We use cookies to give you the best possible experience on {site}.",
        "By continuing to browse {site}, you agree to our use of cookies and similar technologies.",
    ],
    [
        "{site} and our {n} partners store and access information on a device, such as cookies, and process "
        "personal data, such as unique identifiers and standard information sent by a device.",
        "We and our {n} partners use technologies such as cookies to store and access device information.",
        "This website stores data such as cookies to enable essential site functionality, as well as marketing, "
        "personalisation and analytics.",
    ],
    [
        "The data is processed for personalised advertising and content, advertising and content measurement, "
        "audience research and services development.",
        "Our partners process this data to show you relevant ads, to measure their reach and to understand how "
        "the site is used.",
    ],
    [
        "With your permission we and our partners may use precise geolocation data and identification through "
        "device scanning.",
        "Some partners may also combine this information with other data they have collected about you.",
    ],
    [
        "You may click to consent to our and our partners' processing as described above.",
        "Click accept to agree, or manage your choices for each purpose and partner.",
    ],
    [
        "Alternatively you may access more detailed information and change your preferences before consenting or "
        "to refuse consenting.",
        "You can review each purpose and vendor in detail and decide which ones you allow.",
    ],
    [
        "Please note that some processing of your personal data may not require your consent, but you have a "
        "right to object to such processing.",
        "Some vendors rely on their legitimate interest instead of asking for consent, and you can object to this.",
    ],
    [
        "Your preferences will apply to this website only and you can change them at any time from the link at "
        "the bottom of every page.",
        "You can withdraw your consent at any time by returning to this page.",
    ],
    [
        "Strictly necessary cookies are required for the website to function and cannot be switched off.",
        "Essential cookies make the site work, for example by keeping you signed in, and are always on.",
    ],
    [
        "Performance cookies allow us to count visits and traffic sources so we can measure and improve the "
        "performance of our site.",
        "Analytics cookies help us understand which pages are the most and least popular.",
    ],
    [
        "Targeting cookies may be set by our advertising partners to build a profile of your interests and show "
        "you relevant adverts on other sites.",
        "If you do not allow these cookies, you will experience less targeted advertising.",
    ],
    [
        "Your consent applies to all subdomains of {domain} and is stored for {months} months.",
        "We will ask you again in {months} months or when our list of partners changes.",
    ],
    [
        "Read more about how we use cookies in our cookie policy and privacy policy.",
        "See our Privacy Policy and Cookie Policy for the full list of partners and purposes.",
    ],
    ["Accept all | Reject all | Manage preferences", "I accept | Show purposes | Show vendors", "Agree and close"],
]

ERROR_TITLES = {
    404: ["404 Not Found", "Page not found", "Error 404", "Oops! That page can't be found."],
    500: ["500 Internal Server Error", "Something went wrong", "Error 500"],
    503: ["503 Service Unavailable", "Service temporarily unavailable", "We'll be back soon"],
    403: ["403 Forbidden", "Access denied", "Error 403: you do not have permission to view this page."],
}
ERROR_BANK = {
    404: [
        [
            "The page you are looking for might have been removed, had its name changed, or is temporarily "
            "unavailable.",
            "The link you followed may be broken, or the page may have been removed.",
            "Sorry, we couldn't find the page you were looking for.",
        ],
        [
            "Please check that the address in the address bar of your browser is spelled and formatted correctly.",
            "If you typed the address, make sure it is spelled correctly.",
        ],
        [
            "If you reached this page by clicking a link, contact the site administrator to tell them that the link "
            "is incorrectly formatted.",
            "If you followed a link from another site, that site may have an old address for this page.",
        ],
        [
            "Click the Back button in your browser to try another link.",
            "Try searching for what you need, or go back to the home page.",
        ],
        ["You can also browse our most popular sections from the menu at the top of this page."],
        ["HTTP Error 404: the requested resource could not be found on this server."],
    ],
    500: [
        [
            "The server encountered an internal error or misconfiguration and was unable to complete your request.",
            "Something went wrong on our end while loading this page.",
        ],
        [
            "Please contact the server administrator to inform them of the time this error occurred and the actions "
            "you performed just before it.",
            "Our engineers have been notified and are working to fix the problem.",
        ],
        [
            "More information about this error may be available in the server error log.",
            "Please try again in a few minutes.",
        ],
        ["Request ID: {hex} was logged with the error."],
        ["Apache/2.4.{k}1 (Ubuntu) Server at {domain} Port 443 returned the error.", "nginx/{version} failed."],
    ],
    503: [
        [
            "The server is temporarily unable to service your request due to maintenance downtime or capacity "
            "problems.",
            "We are performing scheduled maintenance and will be back online shortly.",
        ],
        ["Please try again later.", "Thank you for your patience while we improve the site."],
        ["Reference #{k}.{hex} was recorded for this request.", "Error code 503 was returned by the backend."],
    ],
    403: [
        [
            "You don't have permission to access this resource on this server.",
            "Access to this page has been denied because we believe you are using automation tools.",
        ],
        [
            "This may be because your address has been blocked or your request looked unusual.",
            "Your request was rejected by the firewall for security reasons.",
        ],
        ["If you think this is a mistake, please contact the site owner and quote reference {hex} in your message."],
    ],
}

SCRIPT_TITLES = ["JavaScript is disabled", "Just a moment...", "Please verify you are a human", "{site}"]
SCRIPT_BANK = [
    [
        "You need to enable JavaScript to run this app.",
        "We're sorry but {site} doesn't work properly without JavaScript enabled. Please enable it to continue.",
        "JavaScript is disabled in your browser.",
    ],
    [
        "Please enable JavaScript or switch to a supported browser to continue using {domain}.",
        "For the best experience, turn on JavaScript in your browser settings and reload the page.",
    ],
    ["You can see a list of supported browsers in our Help Center."],
    [
        "Checking if the site connection is secure before you are let in.",
        "{domain} needs to review the security of your connection before proceeding.",
    ],
    ["Verifying you are human. This may take a few seconds.", "Please wait while we check your browser."],
    [
        "Requests from your network looked unusual, so we need to confirm that you are not a robot.",
        "Why am I seeing this page? Our systems have detected unusual traffic from your computer network.",
    ],
    [
        "This check is automatic, and you will be redirected to the page you asked for shortly.",
        "Once the check is complete you will be taken to the page you requested.",
    ],
    ["Enable JavaScript and cookies to continue."],
    [
        "If the problem persists, please contact the site owner and include the reference code shown below.",
        "Completing the check proves you are a human and gives you temporary access to the site.",
    ],
    ["Ray ID: {hex} was assigned to this visit.", "Reference code: {hex} was assigned to this visit."],
]

LOGIN_TITLES = ["Subscribe to continue reading", "Sign in to keep reading", "This article is for members"]
LOGIN_BANK = [
    [
        "This article is for subscribers only.",
        "You have reached your limit of {k} free articles this month.",
        "Members only: please log in or join to see the rest of this page.",
    ],
    [
        "Subscribe now from just {price} a month for unlimited digital access, the app and our daily newsletter.",
        "Get unlimited access to {site} for {price} a week, billed monthly after the trial.",
    ],
    [
        "Already a subscriber? Sign in to keep reading.",
        "Already have an account? Log in to continue.",
    ],
    [
        "Create a free account to read {k} articles a month and get our morning briefing.",
        "Register for free to unlock this story and receive our weekly highlights.",
    ],
    [
        "Sign in with your email address, or continue with Google, Apple or Facebook.",
        "Enter your email address and password to log in.",
    ],
    ["Forgot your password? We will send you a link to reset it.", "Trouble signing in? Reset your password here."],
    ["Don't have an account? Register now, it only takes a minute.", "New to {site}? Create an account."],
    [
        "By continuing, you agree to our Terms of Use and acknowledge our Privacy Policy.",
        "By signing in you accept the terms of use of {site} and confirm that you have read our privacy policy.",
    ],
    [
        "Cancel anytime. Offer available to new subscribers only.",
        "Your subscription renews automatically until you cancel it.",
    ],
]


def _page(site: Site, title: str, body: list[str]) -> str:
    return "\n".join(site.fill(line) for line in [title, *body])


def cookie_page(site: Site, rng: random.Random, snippets: list[Snippet]) -> str:
    return _page(site, rng.choice(COOKIE_TITLES), _pick(rng, COOKIE_BANK, 6, 12))


def error_page(site: Site, rng: random.Random, snippets: list[Snippet]) -> str:
    """With snippets, the recent articles a CMS theme lists under its "not found" message."""
    code = rng.choice([404, 404, 500, 503, 403])
    body = _pick(rng, ERROR_BANK[code], 3, 6)
    if snippets:
        body += [f"Recent articles on {site.name}:"] + [f"• {t}: {s}" for t, s in snippets]
    return _page(site, rng.choice(ERROR_TITLES[code]), body)


def script_page(site: Site, rng: random.Random, snippets: list[Snippet]) -> str:
    return _page(site, rng.choice(SCRIPT_TITLES), _pick(rng, SCRIPT_BANK, 5, 9))


def login_wall(site: Site, rng: random.Random, snippets: list[Snippet]) -> str:
    """An article's headline and first sentence, then the wall."""
    title, sentence = snippets[0]
    return _page(site, title, [sentence, *_pick(rng, LOGIN_BANK, 5, 8)])


JUNK: dict[str, Callable[[Site, random.Random, list[Snippet]], str]] = {
    "cookie_consent": cookie_page,
    "error_page": error_page,
    "enable_javascript": script_page,
    "login_wall": login_wall,
}


# --- boilerplate blocks ------------------------------------------------------------------
FOOTER_BANK = [
    [
        "{site} is an independent publication founded in {year} and owned by its readers.",
        "{site} has covered local news, culture and sport since {year}.",
    ],
    [
        "Our journalism at {site} is funded by readers like you, and we accept no money from political parties.",
        "{site} is funded by its {n} members and by advertising that never influences what we write.",
    ],
    [
        "To report an error in this article, write to the {site} corrections desk through the form on {domain}.",
        "Spotted a mistake in this story? Tell the desk at {domain} and we will correct it.",
    ],
    [
        "Copyright {year} {site} Media Ltd. All rights reserved.",
        "All content is copyright {site} {year} unless otherwise stated.",
    ],
    [
        "Reproduction of any material from {domain} without written permission is strictly prohibited.",
        "Contributors to {site} retain the copyright of their own photographs and illustrations.",
    ],
    [
        "{site} Media Ltd is registered in England and Wales as company number 0{k}{k}4{k}71{k}.",
        "{site} is a registered charity, number 11{k}{k}0{k}4.",
    ],
]
LICENCE_BANK = [
    [
        "This article by {site} is published under the Creative Commons Attribution-ShareAlike 4.0 International "
        "licence.",
        "Unless otherwise noted, the text of this page on {domain} is available under a Creative Commons "
        "Attribution 4.0 licence.",
    ],
    [
        "You are free to share and adapt it for any purpose, even commercially, provided you credit {site}, link to "
        "the licence and indicate if changes were made.",
        "You may copy and redistribute the material in any medium or format, as long as you credit {site} and link "
        "back to {domain}.",
    ],
    [
        "If you remix, transform or build upon this {site} material, you must distribute your contributions under "
        "the same licence.",
        "Adaptations of articles from {domain} must be shared under the same conditions as the original work.",
    ],
    [
        "Images on {domain} may be subject to other licences, so check each caption before reuse.",
        "Photographs published by {site} are excluded from this licence unless the caption says otherwise.",
    ],
    [
        "The views expressed are the author's own and do not necessarily reflect those of {site} or its editors.",
        "Opinions in this piece belong to the writer and not to the editorial board of {site}.",
    ],
]
NEWSLETTER_BANK = [
    [
        "Enjoyed this article? Join {n} readers who get the {site} briefing in their inbox every morning.",
        "Like what you read? Get the best of {site} delivered to your inbox once a week.",
    ],
    [
        "The {site} newsletter is free, it takes two minutes to read, and you can unsubscribe with one click.",
        "We send one email a week from {domain}, never share your address, and you can leave whenever you like.",
    ],
    [
        "Support independent journalism by becoming a {site} member from {price} a month.",
        "If you value our reporting, please consider supporting {site} with a contribution of {price} a month.",
    ],
    [
        "Members of {site} get early access to our investigations, invitations to events and an advert-free site.",
        "Every contribution to {site}, however big or small, keeps our reporting open to everyone.",
    ],
    [
        "Follow {site} on social media for the latest stories as they break.",
        "Share this {site} story with a friend who would find it useful.",
    ],
]


def boilerplate_block(kind: str, site: Site, rng: random.Random, entries: list[Snippet]) -> list[str]:
    """The lines of one site's block: every message of its bank, in one of its wordings."""
    if kind == "related_articles":
        return [f"More from {site.name} that you may have missed:"] + [f"• {t}: {s}" for t, s in entries]
    bank = {"footer": FOOTER_BANK, "licence": LICENCE_BANK, "newsletter": NEWSLETTER_BANK}[kind]
    lines = [site.fill(line) for line in _pick(rng, bank, len(bank), len(bank))]
    # A footer and a licence notice are one paragraph; a newsletter plea is a few.
    return lines if kind == "newsletter" else [" ".join(lines)]


BLOCKS = ("related_articles", "footer", "licence", "newsletter")
