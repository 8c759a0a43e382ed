"""The secret formats that redaction looks for: one rule per token format, with where it is documented.

The list to cover is the one gitleaks keeps (github.com/gitleaks/gitleaks, config/gitleaks.toml);
each rule names gitleaks' rule id where it has one, and the vendor's page that documents the
format. The patterns are written here for Python's backtracking ``re`` (redact.py explains
the discipline): a rule opens with its literal prefix where it has one, with the start
boundary as a lookbehind after the prefix so the engine can jump between prefixes; every
repetition is bounded, and possessive where the next item cannot take the same characters.

A rule is scanned only if one of its triggers occurs in the text. A trigger is a substring
that every match contains, or for a format with no fixed substring of its own, the context
it is looked for in (a key's name before "=", the word "discord"). Validators judge each
candidate in Python where a format has a weak prefix or no checksum: they drop the
placeholders and filler that documentation prints where a secret would go.
"""

from __future__ import annotations

import base64
import math
import re
import string
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass

# Entropy floor, in bits per character, as a fraction of the most a value of its length and
# alphabet can hold: log2(min(length, alphabet size)), the alphabet being digits (10), hex
# (16) or anything else (64). A fixed floor fails short values: gitleaks' 3.5 bits is above
# the 3.0 that any 8-character string can reach. Measured on seeded random strings, 0.7
# passes 96-97% of random hex values of 8-16 characters and all base62 ones of 8 or more,
# while repeats and periods stay under it: "aabbccdd" (2.0 of 2.1), "deadbeefdeadbeef"
# (2.2 of 2.8), "1234123412341234" (2.0 of 2.3), "aaaa1111bbbb" (1.6 of 2.5).
ENTROPY_FRACTION = 0.7
KEY_NAME_WINDOW = 64  # characters before an assignment operator that may hold the key's name
_DIGITS = frozenset(string.digits)
_HEX = frozenset(string.hexdigits)


def shannon_entropy(value: str) -> float:
    """Bits per character of ``value``'s own character distribution."""
    n = len(value)
    return -sum(k / n * math.log2(k / n) for k in Counter(value).values()) if n else 0.0


def entropy_floor(value: str) -> float:
    """The entropy ``value`` must reach to count as random (see ENTROPY_FRACTION)."""
    chars = set(value)
    alphabet = 10 if chars <= _DIGITS else 16 if chars <= _HEX else 64
    return ENTROPY_FRACTION * math.log2(max(2, min(len(value), alphabet)))


# Templates and stand-ins that documentation prints where a secret would go: "<password>",
# "${DB_PASS}", "$TOKEN", "{{ secret }}", "%s", "****", "xxxx", "YOUR_API_KEY", "...".
_PLACEHOLDER = re.compile(
    r"(?i)<[^<>]{0,40}>|\A\$|\$\{|\{\{|\A\{\w*\}\Z|%s|%\(|\*{3}|xxxx|\.\.\."
    r"|your|example|placeholder|redacted|changeme|change_me|dummy"
)
_FILLER = re.compile(r"(.)\1{7}")  # eight equal characters: "xxxxxxxx", "00000000"
_WORD_PASSWORDS = frozenset({"password", "passwd", "pass", "pwd", "pw", "secret", "token", "user", "username"})
# Code, not a value: names in snake_case or camelCase, digits only at the end
# ("next_token_2", "MY_SECRET_KEY", "nextPageToken").
_IDENTIFIER = re.compile(r"(?i:[a-z]++(?:_[a-z]++)++_?[0-9]*+)|[A-Za-z][a-z]++(?:[A-Z][a-z]++)++[0-9]*+")


def not_filler(value: str) -> bool:
    """False for documentation filler: a run of eight equal characters."""
    return _FILLER.search(value) is None


def has_digit(value: str) -> bool:
    return any(c.isdigit() for c in value)


def mixed_case_and_digit(value: str) -> bool:
    return has_digit(value) and any(c.isupper() for c in value) and any(c.islower() for c in value)


def mixed_case(value: str) -> bool:
    return any(c.isupper() for c in value) and any(c.islower() for c in value) and not_filler(value)


def hex_with_letter_and_digit(value: str) -> bool:
    # A hex body of only digits or only letters is a number or a word, not a key.
    return has_digit(value) and any(c in "abcdefABCDEF" for c in value) and not_filler(value)


def random_looking(value: str) -> bool:
    """A value with the entropy of a random string, and no placeholder in it."""
    return _PLACEHOLDER.search(value) is None and not_filler(value) and shannon_entropy(value) >= entropy_floor(value)


def assigned_value(value: str) -> bool:
    """A quoted value assigned to a secret's name: not a placeholder, word or name of a thing."""
    plain = value.replace("_", "").replace("-", "").replace(".", "")
    if plain.isalpha() and (plain.islower() or plain.isupper()):  # "access_token", "API_KEY"
        return False
    return len(set(value)) >= 4 and _IDENTIFIER.fullmatch(value) is None and random_looking(value)


def bare_assigned_value(value: str) -> bool:
    """An unquoted value: code ("token = next_token_2") is the risk, so ask for a digit too."""
    return has_digit(value) and any(c.isalpha() for c in value) and assigned_value(value)


def url_password(value: str) -> bool:
    """A password in a URL that is not a template ("${DB_PASS}", "<password>", "[:password]")."""
    return (
        value.lower() not in _WORD_PASSWORDS
        and _PLACEHOLDER.search(value) is None
        and "[" not in value
        and "]" not in value
        and not_filler(value)
    )


def _b64decode(segment: str) -> bytes | None:
    try:
        return base64.b64decode(segment + "=" * (-len(segment) % 4), altchars=b"-_", validate=False)
    except ValueError:  # binascii.Error: a length no base64 text has
        return None


def jwt_header(value: str) -> bool:
    """The first segment decodes to a JOSE header, which must name its "alg" (RFC 7515 4.1.1)."""
    header = _b64decode(value.split(".", 1)[0])
    return header is not None and b'"alg"' in header


def basic_credentials(value: str) -> bool:
    """HTTP Basic credentials decode to printable "user:password" (RFC 7617 2)."""
    decoded = _b64decode(value.rstrip("="))
    if decoded is None:
        return False
    try:
        text = decoded.decode("ascii")
    except UnicodeDecodeError:
        return False
    return ":" in text and text.isprintable() and _PLACEHOLDER.search(text) is None


def discord_bot_token(value: str) -> bool:
    """The first segment of a bot token is the bot's user id (a 17-20 digit snowflake) in base64."""
    user_id = _b64decode(value.split(".", 1)[0])
    return user_id is not None and user_id.isdigit() and 17 <= len(user_id) <= 20 and mixed_case(value)


@dataclass(frozen=True)
class SecretRule:
    """One secret format: how to find it cheaply, how to judge a candidate, where it is defined."""

    name: str  # gitleaks' rule id where gitleaks has the format, else a name in its style
    service: str
    pattern: re.Pattern[str]  # the group named "v" is what gets redacted, else the whole match
    triggers: tuple[str, ...]  # substrings, one of which every match (or its context) contains
    source: str  # where the format is documented
    validator: Callable[[str], bool] | None = None  # judges the redacted text
    # For "name = value" rules, whose match starts at the operator: the lower-cased name
    # that must end just before it.
    key_name: re.Pattern[str] | None = None

    def __post_init__(self) -> None:
        if not self.triggers:
            raise ValueError(f"secret rule {self.name!r} has no triggers: it would be scanned in every document")

    def spans(self, text: str) -> Iterator[tuple[int, int]]:
        """Offsets of this format's secrets in ``text``."""
        group = "v" if "v" in self.pattern.groupindex else 0
        for m in self.pattern.finditer(text):
            if self.key_name is not None:
                # Lower-cased here, on a short window: the name is matched without (?i), whose
                # alternation the engine would have to try at every offset.
                window = text[max(0, m.start() - KEY_NAME_WINDOW) : m.start()].lower()
                if self.key_name.search(window) is None:
                    continue
            start, end = m.span(group)
            if self.validator is None or self.validator(text[start:end]):
                yield start, end


def _rule(
    name: str,
    service: str,
    pattern: str,
    triggers: tuple[str, ...],
    source: str,
    validator: Callable[[str], bool] | None = None,
    key_name: str | None = None,
) -> SecretRule:
    return SecretRule(
        name, service, re.compile(pattern), triggers, source, validator, re.compile(key_name) if key_name else None
    )


def _name_value(
    name: str,
    service: str,
    value: str,
    triggers: tuple[str, ...],
    source: str,
    validator: Callable[[str], bool] | None,
    key_name: str,
) -> tuple[SecretRule, SecretRule]:
    """A "name = value" format as two rules, one per operator character, so that each scan
    opens with a literal the engine can skip to (":" or ":=", and "=" or "=>")."""
    colon, equals = (
        _rule(f"{name}{op[0]}", service, op + r"[ \t]{0,8}" + value, triggers or (op[0],), source, validator, key_name)
        for op in (":=?", "=>?")
    )
    return colon, equals


# A token ends where its alphabet does; "(?![A-Za-z0-9_-])" after it, and a lookbehind for
# the same class after its prefix, keep it from being cut out of a longer run.
_E = r"(?![A-Za-z0-9_-])"
_GITLAB = (
    "glpat-",
    "glptt-",
    "gldt-",
    "glrt-",
    "glcbt-",
    "glsoat-",
    "glft-",
    "glimt-",
    "glagent-",
    "gloas-",
    "glffct-",
)
_DOPPLER = ("dp.pt.", "dp.st.", "dp.ct.", "dp.sa.", "dp.scim.", "dp.audit.")
# "name = value": the match starts at the assignment operator (":", "=", ":=", "=>"), which the
# engine can skip to; the name before it is checked in Python (SecretRule.key_name).
_NAME_END = r"""["']?\]?[ \t]{0,8}\Z"""  # a closing quote, and bracket: settings["API_KEY"] = ...
_GENERIC_SOURCE = "gitleaks generic-api-key (a secret's name, then a value over the entropy floor)"
# The name must end in one of these: "db_password", "DB_PASS" and "client_secret" count,
# "tokenizer", "password_hash" and "primary_key" do not; "pass" only as a word of its own
# ("compass:", "bypass=" and "Pass: 12-for-20" are not credentials).
_SECRET_NAME = (
    r"(?:(?:api|access|auth|secret|private|signing|encryption|master|client|app|license|session)[_-]?key"
    r"|secret|token|passw(?:or)?d|(?<![a-z])pass|pwd|passphrase|credentials?)" + _NAME_END
)

# The part of _SECRET_NAME that names the secret, for the two rules below whose name sits in
# another syntax: PHP's define('DB_PASSWORD', '...') and a command-line flag --api-key ....
_SECRET_WORD = (
    r"(?:(?:api|access|auth|secret|private|signing|encryption|master|client|app|license|session)[_-]?key"
    r"|secret|token|passw(?:or)?d|(?<![a-z])pass|pwd|passphrase)"
)

SECRET_RULES: tuple[SecretRule, ...] = (
    # --- cloud providers --------------------------------------------------------------
    _rule(
        "aws-access-token",
        "AWS",
        r"A(?<![A-Za-z0-9]A)(?:KIA|SIA|BIA|CCA|3T[A-Z0-9])[A-Z2-7]{16}(?![A-Za-z0-9])",
        ("AKIA", "ASIA", "ABIA", "ACCA", "A3T"),
        "https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_identifiers.html#identifiers-unique-ids",
    ),
    _rule(
        "gcp-api-key",
        "Google Cloud",
        r"AIza(?<![A-Za-z0-9_-]AIza)[A-Za-z0-9_-]{35}" + _E,
        ("AIza",),
        "https://cloud.google.com/docs/authentication/api-keys",
        not_filler,
    ),
    _rule(
        "azure-storage-account-key",
        "Azure",
        r"(?:AccountKey|SharedAccessKey)=(?P<v>[A-Za-z0-9+/]{40,100}+={0,2})(?![A-Za-z0-9+/=])",
        ("AccountKey=", "SharedAccessKey="),
        "https://learn.microsoft.com/en-us/azure/storage/common/storage-configure-connection-string",
        not_filler,
    ),
    _rule(
        "alibaba-access-key-id",
        "Alibaba Cloud",
        r"LTAI(?<![A-Za-z0-9]LTAI)[A-Za-z0-9]{20}(?![A-Za-z0-9])",
        ("LTAI",),
        "https://www.alibabacloud.com/help/en/ram/user-guide/create-an-accesskey-pair",
        has_digit,
    ),
    _rule(
        "digitalocean-pat",  # also digitalocean-access-token (doo_), digitalocean-refresh-token (dor_)
        "DigitalOcean",
        r"do[opr]_v1_(?<![A-Za-z0-9_]do[opr]_v1_)[0-9a-f]{64}(?![A-Za-z0-9_])",
        ("dop_v1_", "doo_v1_", "dor_v1_"),
        "https://docs.digitalocean.com/reference/api/create-personal-access-token/",
    ),
    _rule(
        "heroku-api-key-v2",
        "Heroku",
        r"HRKU-(?<![A-Za-z0-9_-]HRKU-)[A-Za-z0-9_-]{60}" + _E,
        ("HRKU-",),
        "https://devcenter.heroku.com/articles/authentication",
        not_filler,
    ),
    _rule(
        "databricks-api-token",
        "Databricks",
        r"dapi(?<![A-Za-z0-9_-]dapi)[0-9a-f]{32}(?:-[0-9])?" + _E,
        ("dapi",),
        "https://docs.databricks.com/en/dev-tools/auth/pat.html",
        hex_with_letter_and_digit,
    ),
    _rule(
        "vault-service-token",  # also vault-batch-token (hvb.)
        "HashiCorp Vault",
        r"hv[sb]\.(?<![A-Za-z0-9_.-]hv[sb]\.)[A-Za-z0-9_-]{90,300}+" + _E,
        ("hvs.", "hvb."),
        "https://developer.hashicorp.com/vault/docs/concepts/tokens#token-prefixes",
        not_filler,
    ),
    _rule(
        "hashicorp-tf-api-token",
        "HCP Terraform",
        r"(?<![A-Za-z0-9_.-])[A-Za-z0-9]{14}\.atlasv1\.[A-Za-z0-9_=-]{60,70}+(?![A-Za-z0-9_=-])",
        (".atlasv1.",),
        "https://developer.hashicorp.com/terraform/cloud-docs/users-teams-organizations/api-tokens",
        not_filler,
    ),
    _rule(
        "pulumi-api-token",
        "Pulumi",
        r"pul-(?<![A-Za-z0-9_-]pul-)[0-9a-f]{40}" + _E,
        ("pul-",),
        "https://www.pulumi.com/docs/pulumi-cloud/access-management/access-tokens/",
        hex_with_letter_and_digit,
    ),
    _rule(
        "doppler-api-token",
        "Doppler",
        r"dp\.(?<![A-Za-z0-9_.-]dp\.)(?:pt|st|ct|sa|scim|audit)\.(?:[a-z0-9_-]{1,35}+\.)?[A-Za-z0-9]{40,44}"
        r"(?![A-Za-z0-9])",
        _DOPPLER,
        "https://docs.doppler.com/reference/auth-token-formats",
        not_filler,
    ),
    # --- code hosting and package registries ------------------------------------------
    _rule(
        "github-pat",  # also github-oauth (gho_), github-app-token (ghu_, ghs_), github-refresh-token (ghr_)
        "GitHub",
        r"gh[pousr]_(?<![A-Za-z0-9_]gh[pousr]_)[A-Za-z0-9]{36,251}+(?![A-Za-z0-9_])",
        ("ghp_", "gho_", "ghu_", "ghs_", "ghr_"),
        "https://docs.github.com/en/authentication/keeping-your-account-and-data-secure/"
        "about-authentication-to-github#githubs-token-formats",
        not_filler,
    ),
    _rule(
        "github-fine-grained-pat",
        "GitHub",
        r"github_pat_(?<![A-Za-z0-9_]github_pat_)[A-Za-z0-9_]{22,244}+(?![A-Za-z0-9_])",
        ("github_pat_",),
        "https://docs.github.com/en/authentication/keeping-your-account-and-data-secure/"
        "about-authentication-to-github#githubs-token-formats",
        not_filler,
    ),
    _rule(
        "gitlab-pat",  # also gitlab-ptt, -deploy-token, -runner-authentication-token, -pat-routable, ...
        "GitLab",
        r"gl(?<![A-Za-z0-9_-]gl)(?:pat|ptt|dt|rt|cbt|soat|ft|imt|agent|oas|ffct)-[A-Za-z0-9_-]{20,300}+"
        r"(?:\.[0-9a-z]{9})?+" + _E,
        _GITLAB,
        "https://docs.gitlab.com/ee/security/token_overview.html#token-prefixes",
        not_filler,
    ),
    _rule(
        "gitlab-rrt",
        "GitLab",
        r"GR1348941(?<![A-Za-z0-9_-]GR1348941)[A-Za-z0-9_-]{20,64}+" + _E,
        ("GR1348941",),
        "https://docs.gitlab.com/ee/security/token_overview.html#token-prefixes",
        not_filler,
    ),
    _rule(
        "npm-access-token",
        "npm",
        r"npm_(?<![A-Za-z0-9_]npm_)[A-Za-z0-9]{36}(?![A-Za-z0-9_])",
        ("npm_",),
        "https://github.blog/changelog/2021-09-23-npm-has-a-new-access-token-format/",
        not_filler,
    ),
    _rule(
        "pypi-upload-token",
        "PyPI",  # the body is a macaroon whose base64 opens with the issuer's domain
        r"pypi-(?<![A-Za-z0-9_-]pypi-)(?:AgEIcHlwaS5vcmc|AgENdGVzdC5weXBpLm9yZw)[A-Za-z0-9_-]{50,1000}+" + _E,
        ("pypi-AgEIcHlwaS5vcmc", "pypi-AgENdGVzdC5weXBpLm9yZw"),
        "https://pypi.org/help/#apitoken",
    ),
    _rule(
        "atlassian-api-token",
        "Atlassian",
        r"ATATT3(?<![A-Za-z0-9_-]ATATT3)[A-Za-z0-9_=-]{180,200}+(?![A-Za-z0-9_=-])",
        ("ATATT3",),
        "https://support.atlassian.com/atlassian-account/docs/manage-api-tokens-for-your-atlassian-account/",
        not_filler,
    ),
    _rule(
        "postman-api-token",
        "Postman",
        r"PMAK-(?<![A-Za-z0-9_-]PMAK-)[0-9a-fA-F]{24}-[0-9a-fA-F]{34}" + _E,
        ("PMAK-",),
        "https://learning.postman.com/docs/developer/postman-api/authentication/",
    ),
    # --- messaging and e-mail ---------------------------------------------------------
    _rule(
        "slack-bot-token",  # also slack-user-token, slack-app-token (xapp-), slack-legacy-*-token
        "Slack",
        r"x(?<![A-Za-z0-9_-]x)(?:ox[abposre]|app)-[A-Za-z0-9-]{10,250}+" + _E,
        ("xox", "xapp-"),
        "https://api.slack.com/authentication/token-types",
        lambda v: has_digit(v) and not_filler(v),
    ),
    _rule(
        "slack-webhook-url",
        "Slack",
        r"hooks\.slack\.com/(?:services|workflows|triggers)/(?P<v>[A-Za-z0-9+/_-]{20,120}+)",
        ("hooks.slack.com",),
        "https://api.slack.com/messaging/webhooks",
        not_filler,
    ),
    _rule(
        "discord-bot-token",
        # user id (base64) . timestamp . HMAC. With no fixed substring of its own, it is looked
        # for where Discord is named ("import discord" and "discord.Client()", "discord.js",
        # "DISCORD_TOKEN"), as gitleaks' discord rules are; "TOKEN = '...'" is caught by
        # generic-api-key anywhere.
        "Discord",
        r"[MNO](?<![A-Za-z0-9_.-][MNO])[A-Za-z0-9_-]{23,27}+\.[A-Za-z0-9_-]{6}\.[A-Za-z0-9_-]{27,40}+" + _E,
        ("discord.", "Discord", "DISCORD_"),
        "https://discord.com/developers/docs/reference#authentication",
        discord_bot_token,
    ),
    _rule(
        "discord-webhook-url",
        "Discord",
        r"discord(?:app)?\.com/api/webhooks/[0-9]{17,20}/(?P<v>[A-Za-z0-9_-]{60,68})" + _E,
        ("/api/webhooks/",),
        "https://discord.com/developers/docs/resources/webhook#execute-webhook",
        not_filler,
    ),
    _rule(
        "telegram-bot-api-token",
        "Telegram",  # bot id, ':', then 35 characters; issued ones all begin with "A"
        r"[0-9](?<![A-Za-z0-9_][0-9])[0-9]{4,15}+:A[A-Za-z0-9_-]{34}" + _E,
        (":A",),
        "https://core.telegram.org/bots/api#authorizing-your-bot",
        mixed_case,
    ),
    _rule(
        "twilio-api-key",
        "Twilio",
        r"SK(?<![A-Za-z0-9]SK)[0-9a-fA-F]{32}(?![A-Za-z0-9])",
        ("SK",),
        "https://www.twilio.com/docs/iam/api-keys",
        hex_with_letter_and_digit,
    ),
    _rule(
        "twilio-account-sid",
        "Twilio",
        r"AC(?<![A-Za-z0-9]AC)[0-9a-f]{32}(?![A-Za-z0-9])",
        ("AC",),
        "https://www.twilio.com/docs/glossary/what-is-a-sid",
        hex_with_letter_and_digit,
    ),
    _rule(
        "sendgrid-api-token",
        "SendGrid",
        r"SG\.(?<![A-Za-z0-9_.-]SG\.)[A-Za-z0-9_-]{22}\.[A-Za-z0-9_-]{43}" + _E,
        ("SG.",),
        "https://www.twilio.com/docs/sendgrid/ui/account-and-settings/api-keys",
        not_filler,
    ),
    _rule(
        "mailgun-private-api-token",
        "Mailgun",
        r"key-(?<![A-Za-z0-9_-]key-)[0-9a-f]{32}" + _E,
        ("key-",),
        "https://documentation.mailgun.com/docs/mailgun/user-manual/get-started/",
        hex_with_letter_and_digit,
    ),
    _rule(
        "mailgun-pub-key",
        "Mailgun",
        r"pubkey-(?<![A-Za-z0-9_-]pubkey-)[0-9a-f]{32}" + _E,
        ("pubkey-",),
        "https://documentation.mailgun.com/docs/mailgun/user-manual/get-started/",
        hex_with_letter_and_digit,
    ),
    _rule(
        "mailchimp-api-key",
        "Mailchimp",  # 32 hex digits, then the data centre
        r"[0-9a-f](?<![A-Za-z0-9_-][0-9a-f])[0-9a-f]{31}-us[0-9]{1,2}" + _E,
        ("-us",),
        "https://mailchimp.com/developer/marketing/guides/quick-start/",
        hex_with_letter_and_digit,
    ),
    # --- payments and commerce --------------------------------------------------------
    _rule(
        "stripe-access-token",
        "Stripe",  # secret (sk_) and restricted (rk_) keys; publishable pk_ keys are public
        r"[rs]k_(?<![A-Za-z0-9_][rs]k_)(?:live|test|prod)_[A-Za-z0-9]{10,247}+(?![A-Za-z0-9_])",
        ("k_live_", "k_test_", "k_prod_"),
        "https://docs.stripe.com/keys",
        not_filler,
    ),
    _rule(
        "stripe-webhook-secret",
        "Stripe",
        r"whsec_(?<![A-Za-z0-9_]whsec_)[A-Za-z0-9+/]{32,100}+={0,2}(?![A-Za-z0-9_+/=])",
        ("whsec_",),
        "https://docs.stripe.com/webhooks",
        not_filler,
    ),
    _rule(
        "square-access-token",
        "Square",
        r"(?:EAAA(?<![A-Za-z0-9_+/-]EAAA)|sq0atp-(?<![A-Za-z0-9_-]sq0atp-))[A-Za-z0-9_-]{22,60}+" + _E,
        ("EAAA", "sq0atp-"),
        "https://developer.squareup.com/docs/build-basics/access-tokens",
        lambda v: mixed_case_and_digit(v) and not_filler(v),
    ),
    _rule(
        "square-secret",
        "Square",
        r"sq0csp-(?<![A-Za-z0-9_-]sq0csp-)[A-Za-z0-9_-]{43}" + _E,
        ("sq0csp-",),
        "https://developer.squareup.com/docs/build-basics/access-tokens",
        not_filler,
    ),
    _rule(
        "shopify-access-token",  # also shopify-custom-access-token, -private-app-access-token, -shared-secret
        "Shopify",
        r"shp(?<![A-Za-z0-9_]shp)(?:at|ca|pa|ss)_[0-9a-fA-F]{32}(?![A-Za-z0-9_])",
        ("shpat_", "shpca_", "shppa_", "shpss_"),
        "https://shopify.dev/docs/apps/build/authentication-authorization/access-tokens",
        hex_with_letter_and_digit,
    ),
    # --- AI and developer services ----------------------------------------------------
    _rule(
        "openai-api-key",
        "OpenAI",  # "sk-", "sk-proj-", "sk-svcacct-"; also the sk- keys of compatible APIs
        r"sk-(?<![A-Za-z0-9_-]sk-)[A-Za-z0-9_-]{32,256}+" + _E,
        ("sk-",),
        "https://platform.openai.com/docs/api-reference/authentication",
        mixed_case_and_digit,  # kebab-case slugs ("sk-some-long-name") lack digits or capitals
    ),
    _rule(
        "anthropic-api-key",  # also anthropic-admin-api-key
        "Anthropic",
        r"sk-ant-(?<![A-Za-z0-9_-]sk-ant-)(?:api|admin|sid)[0-9]{2}-[A-Za-z0-9_-]{80,128}+" + _E,
        ("sk-ant-",),
        "https://docs.anthropic.com/en/api/getting-started",
        not_filler,
    ),
    _rule(
        "huggingface-access-token",  # also huggingface-organization-api-token (api_org_)
        "Hugging Face",  # 34 letters and no digit, so mixed case is what tells it from a name
        r"(?:hf|api_org)_(?<![A-Za-z0-9_]hf_)(?<![A-Za-z0-9_]api_org_)[A-Za-z]{34}(?![A-Za-z0-9_])",
        ("hf_", "api_org_"),
        "https://huggingface.co/docs/hub/security-tokens",
        mixed_case,
    ),
    _rule(
        "perplexity-api-key",
        "Perplexity",
        r"pplx-(?<![A-Za-z0-9_-]pplx-)[A-Za-z0-9]{48}" + _E,
        ("pplx-",),
        "https://docs.perplexity.ai/guides/getting-started",
        not_filler,
    ),
    _rule(
        "linear-api-key",
        "Linear",
        r"lin_api_(?<![A-Za-z0-9_]lin_api_)[A-Za-z0-9]{40}(?![A-Za-z0-9_])",
        ("lin_api_",),
        "https://developers.linear.app/docs/graphql/working-with-the-graphql-api",
        not_filler,
    ),
    _rule(
        "notion-api-token",
        "Notion",  # "ntn_" since 2024; "secret_" + 43 before, which code names can resemble
        r"(?:ntn_(?<![A-Za-z0-9_]ntn_)[0-9]{11}[A-Za-z0-9]{35}|secret_(?<![A-Za-z0-9_]secret_)[A-Za-z0-9]{43})"
        r"(?![A-Za-z0-9_])",
        ("ntn_", "secret_"),
        "https://developers.notion.com/docs/authorization",
        lambda v: mixed_case_and_digit(v) and not_filler(v),
    ),
    _rule(
        "dropbox-api-token",
        "Dropbox",
        r"sl\.(?<![A-Za-z0-9_.-]sl\.)(?:u\.)?[A-Za-z0-9_=-]{130,1400}+(?![A-Za-z0-9_=-])",
        ("sl.",),
        "https://developers.dropbox.com/oauth-guide",
        lambda v: mixed_case_and_digit(v) and not_filler(v),
    ),
    _rule(
        "sentry-dsn",
        "Sentry",  # the key (and legacy secret) before '@' in the project's DSN
        r"://(?P<v>[0-9a-f]{32}(?::[0-9a-f]{32})?)@(?:[A-Za-z0-9-]{1,63}+\.){0,4}sentry\.",
        ("sentry.",),
        "https://docs.sentry.io/concepts/key-terms/dsn-explainer/",
    ),
    _rule(
        "sentry-user-token",  # also sentry-org-token (sntrys_ + base64 JSON)
        "Sentry",
        r"sntry[su]_(?<![A-Za-z0-9_]sntry[su]_)[A-Za-z0-9+/=_]{64,600}+(?![A-Za-z0-9+/=_])",
        ("sntrys_", "sntryu_"),
        "https://docs.sentry.io/account/auth-tokens/",
        not_filler,
    ),
    _rule(
        "grafana-cloud-api-token",  # also grafana-service-account-token (glsa_)
        "Grafana",
        r"gl(?:c|sa)_(?<![A-Za-z0-9_]glc_)(?<![A-Za-z0-9_]glsa_)[A-Za-z0-9+/_]{32,400}+={0,3}(?![A-Za-z0-9_+/=])",
        ("glc_", "glsa_"),
        "https://grafana.com/docs/grafana/latest/administration/service-accounts/",
        not_filler,
    ),
    _rule(
        "new-relic-user-api-key",
        "New Relic",
        r"NRAK-(?<![A-Za-z0-9_-]NRAK-)[A-Z0-9]{27}" + _E,
        ("NRAK-",),
        "https://docs.newrelic.com/docs/apis/intro-apis/new-relic-api-keys/",
        not_filler,
    ),
    _rule(
        "twitter-bearer-token",
        "X (Twitter)",  # 22 'A's open every app-only bearer token
        r"A(?<![A-Za-z0-9%+/]A)A{21}[A-Za-z0-9%]{80,100}+(?![A-Za-z0-9%])",
        ("AAAAAAAAAAAAAAAAAAAAAA",),
        "https://developer.x.com/en/docs/authentication/oauth-2-0/bearer-tokens",
        lambda v: mixed_case_and_digit(v[22:]),
    ),
    _rule(
        "age-secret-key",
        "age",
        r"AGE-SECRET-KEY-1[QPZRY9X8GF2TVDW0S3JN54KHCE6MUA7L]{58}(?![A-Za-z0-9])",  # bech32, upper case
        ("AGE-SECRET-KEY-1",),
        "https://age-encryption.org/v1",
    ),
    # --- formats that any service uses ------------------------------------------------
    _rule(
        "jwt",
        "JSON Web Token",  # header.payload.signature in base64url (JWE: five segments); header '{"' = eyJ
        r"eyJ(?<![A-Za-z0-9_-]eyJ)[A-Za-z0-9_-]{10,4096}+\.[A-Za-z0-9_-]{2,16384}+\.[A-Za-z0-9_-]{0,4096}+"
        r"(?:\.[A-Za-z0-9_-]{0,16384}+\.[A-Za-z0-9_-]{0,4096}+)?+" + _E,
        ("eyJ",),
        "https://www.rfc-editor.org/rfc/rfc7519#section-3 (compact form: RFC 7515 section 7.1)",
        jwt_header,
    ),
    _rule(
        "url-password",
        "any URL scheme",  # scheme://user:password@host; only the password is redacted
        r"://[^\s/?#:]{0,128}+:(?P<v>[^\s/?#@]{1,256}+(?:@[^\s/?#@]{1,256}+){0,2})@(?=[A-Za-z0-9\[])",
        ("://",),
        "https://www.rfc-editor.org/rfc/rfc3986#section-3.2.1",
        url_password,
    ),
    _rule(
        "authorization-bearer",
        "HTTP Bearer",
        r"[Bb]earer[ \t]{1,4}(?P<v>[A-Za-z0-9_~+/-]{1,2048}+(?:\.[A-Za-z0-9_~+/-]{1,2048}+){0,4}+={0,2})"
        r"(?![A-Za-z0-9_~+/=-])",
        ("Bearer", "bearer"),
        "https://www.rfc-editor.org/rfc/rfc6750#section-2.1",
        lambda v: len(v) >= 20 and (has_digit(v) or mixed_case(v)) and random_looking(v),
    ),
    _rule(
        "authorization-basic",
        "HTTP Basic",
        r"Basic[ \t]{1,4}(?P<v>[A-Za-z0-9+/]{8,1024}+={0,2})(?![A-Za-z0-9+/=])",
        ("Basic",),
        "https://www.rfc-editor.org/rfc/rfc7617#section-2",
        basic_credentials,
    ),
    # --- name = value --------------------------------------------------------------
    *_name_value(
        "aws-secret-access-key",
        "AWS",
        r"""["']?(?P<v>[A-Za-z0-9/+=]{40})(?![A-Za-z0-9/+=])""",
        ("aws_", "AWS_", "aws-", "AWS-", "awsSecret", "AwsSecret"),
        "https://docs.aws.amazon.com/IAM/latest/UserGuide/id_credentials_access-keys.html",
        None,
        r"aws[_-]?secret[_-]?(?:access[_-]?)?key" + _NAME_END,
    ),
    _rule(
        "generic-api-key-php-define",
        "any (PHP constant)",
        r"""define\([ \t]{0,4}['"](?i:[a-z0-9_]{0,60}?"""
        + _SECRET_WORD
        + r""")['"][ \t]{0,4},[ \t]{0,4}(?P<q>['"])(?P<v>[^\s"'\\]{6,256}+)(?P=q)[ \t]{0,4}\)""",
        ("define(",),
        "https://www.php.net/manual/en/function.define.php; " + _GENERIC_SOURCE,
        assigned_value,
    ),
    _rule(
        "generic-api-key-cli-flag",
        "any (command-line flag)",
        r"""--(?<![\w-]--)(?:[a-z0-9]{1,30}-){0,4}[a-z0-9]{0,20}?"""
        + _SECRET_WORD.replace("[_-]", "-")
        + r"""[ =]["']?(?P<v>[^\s"'\\]{6,256}+)""",
        ("--",),
        "https://www.gnu.org/prep/standards/html_node/Command_002dLine-Interfaces.html (long options, "
        "--name value or --name=value); " + _GENERIC_SOURCE,
        assigned_value,
    ),
    *_name_value(
        "generic-api-key",
        "any (quoted value)",
        r"""(?P<q>["'])(?P<v>[^\s"'\\]{6,256}+)(?P=q)""",
        (),
        _GENERIC_SOURCE,
        assigned_value,
        _SECRET_NAME,
    ),
    *_name_value(
        "generic-api-key-bare",
        # No ':' and '=' only as base64 padding, so a value never spans an operator. No '.':
        # "token = self.next_token" is code; a '.' after the value ends it only when a space or
        # the end follows (a sentence's full stop), not a name (an attribute).
        "any (unquoted value)",
        r"(?P<v>[A-Za-z0-9_+/!@#%^*~-]{8,256}+={0,2})(?![\w(\[=]|\.[\w(])",
        (),
        _GENERIC_SOURCE,
        bare_assigned_value,
        _SECRET_NAME,
    ),
)
