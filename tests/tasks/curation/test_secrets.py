"""Secret formats (tasks/curation/secret_rules.py) as redaction finds them: every format in
the contexts it is written in, the look-alikes that must survive, and bounded work on
hostile input. Values are generated from a seeded `random.Random` per format, in each
format's real alphabet and length, never pasted from a real key."""

from __future__ import annotations

import base64
import hashlib
import json
import math
import random
import re
import string
import uuid
from collections.abc import Callable

import pytest

from tasks.curation.redact import RedactionConfig as Config
from tasks.curation.redact import _TriggerIndex, find_pii, redact
from tasks.curation.secret_rules import (
    ENTROPY_FRACTION,
    SECRET_RULES,
    SecretRule,
    entropy_floor,
    random_looking,
    shannon_entropy,
)
from tests.tasks.curation.pii_timing import find_pii_cpu_seconds

CFG = Config()
UPPER, LOWER, DIGITS = string.ascii_uppercase, string.ascii_lowercase, string.digits
B62 = UPPER + LOWER + DIGITS
B64URL = B62 + "-_"
HEX = "0123456789abcdef"
Sample = tuple[str, str]  # a text, and the one secret in it


def _s(rng: random.Random, alphabet: str, n: int) -> str:
    return "".join(rng.choice(alphabet) for _ in range(n))


def _mixed(rng: random.Random, alphabet: str, n: int) -> str:
    """Random, with at least one capital, one small letter and one digit (as issued keys have)."""
    chars = [rng.choice(UPPER), rng.choice(LOWER), rng.choice(DIGITS)] + [rng.choice(alphabet) for _ in range(n - 3)]
    rng.shuffle(chars)
    return "".join(chars)


def _hex(rng: random.Random, n: int) -> str:
    chars = [rng.choice("abcdef"), rng.choice(DIGITS)] + [rng.choice(HEX) for _ in range(n - 2)]
    rng.shuffle(chars)
    return "".join(chars)


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _jwt(rng: random.Random, segments: int = 3) -> str:
    header = {"alg": rng.choice(["HS256", "RS256", "ES256", "EdDSA"]), "typ": "JWT"}
    if rng.random() < 0.5:
        header["kid"] = _s(rng, B62, 8)
    claims = {"sub": str(rng.randint(1, 10**9)), "iat": rng.randint(1.5e9, 1.8e9), "name": _s(rng, LOWER, 6)}
    parts = [_b64url(json.dumps(header).encode()), _b64url(json.dumps(claims).encode())]
    parts += [_b64url(rng.randbytes(rng.choice([32, 64, 256]))) for _ in range(segments - 2)]
    return ".".join(parts)


def _in_sentence(token: str) -> Sample:
    return f"Config: {token} (rotate it)", token


def _token(make: Callable[[random.Random], str]) -> Callable[[random.Random], Sample]:
    return lambda rng: _in_sentence(make(rng))


def _discord_bot(rng: random.Random) -> Sample:
    user_id = base64.b64encode(str(rng.randint(10**17, 10**19 - 1)).encode()).decode().rstrip("=")
    token = f"{user_id}.{_s(rng, B64URL, 6)}.{_mixed(rng, B64URL, 38)}"
    return f"import discord\nclient = discord.Client(intents=intents)\nclient.run('{token}')", token


def _sentry_dsn(rng: random.Random) -> Sample:
    key = _hex(rng, 32)
    if rng.random() < 0.5:  # the legacy form with a secret after the key
        key = f"{key}:{_hex(rng, 32)}"
        return f"SENTRY_DSN https://{key}@sentry.io/{rng.randint(1, 999)}", key
    return f"dsn='https://{key}@o{rng.randint(1, 10**6)}.ingest.sentry.io/{rng.randint(1, 10**7)}'", key


def _assignment(rng: random.Random, names: list[str], value: str) -> Sample:
    name = rng.choice(names)
    forms = ['{n} = "{v}"', '"{n}": "{v}"', "'{n}' => '{v}'", '{n} := "{v}"', "{n}: '{v}'", 'conf["{n}"] = "{v}"']
    form = rng.choice(forms)
    return form.format(n=name, v=value), value


def _bare_assignment(rng: random.Random) -> Sample:
    value = _mixed(rng, B62 + "_-+/", rng.randint(16, 48))
    name = rng.choice(["SECRET_KEY", "API_KEY", "DB_PASSWORD", "client_secret", "GITHUB_TOKEN", "access_key"])
    form = rng.choice(["export {n}={v}", "{n}: {v}", "{n} = {v}", "?{n}={v}&page=2"])
    return form.format(n=name, v=value), value


def _bare_password(rng: random.Random) -> Sample:
    """A password in an .env or .ini line, with the symbols passwords have ('.' and '&' aside:
    those end an unquoted value), and a full stop after it half of the time."""
    value = _mixed(rng, B62 + "!@#%^*~-_+/", rng.randint(12, 24))
    name = rng.choice(["DB_PASS", "password", "SMTP_PASSWORD", "pwd", "admin_pass"])
    form = rng.choice(["{n}={v}", "{n} = {v}", "Set {n}={v}. Then restart.", "{n}={v} # rotated monthly"])
    return form.format(n=name, v=value), value


def _php_define(rng: random.Random) -> Sample:
    value = _mixed(rng, B62 + "!#%^*-_+=.", rng.randint(12, 40))
    name = rng.choice(["DB_PASSWORD", "API_KEY", "AUTH_SALT_SECRET", "STRIPE_SECRET", "MAIL_PASS"])
    quote = rng.choice("'\"")
    return f"define( {quote}{name}{quote}, {quote}{value}{quote} );", value


def _cli_flag(rng: random.Random) -> Sample:
    value = _mixed(rng, B62 + "_-+/", rng.randint(16, 40))
    flags = ["--api-key", "--password", "--client-secret", "--token", "--db-pass", "--apikey", "--auth-token"]
    flag = rng.choice(flags)
    form = rng.choice(["tool {f} {v} --verbose", "tool {f}={v}", "tool {f} '{v}'", 'tool {f}="{v}"'])
    return form.format(f=flag, v=value), value


def _basic(rng: random.Random) -> Sample:
    credentials = base64.b64encode(f"{_s(rng, LOWER, 6)}:{_mixed(rng, B62, 12)}".encode()).decode()
    return f'curl -H "Authorization: Basic {credentials}" https://api.test', credentials


FORMATS: dict[str, Callable[[random.Random], Sample]] = {
    "aws-access-token": _token(lambda r: r.choice(["AKIA", "ASIA", "ABIA", "ACCA"]) + _s(r, UPPER + "234567", 16)),
    "gcp-api-key": _token(lambda r: "AIza" + _s(r, B64URL, 35)),
    "azure-storage-account-key": lambda r: (
        lambda k: (f"DefaultEndpointsProtocol=https;AccountName=st{r.randint(1, 99)};AccountKey={k};Suffix=x", k)
    )(_s(r, B62 + "+/", 86) + "=="),
    "alibaba-access-key-id": _token(lambda r: "LTAI" + _mixed(r, B62, 20)),
    "digitalocean-pat": _token(lambda r: r.choice(["dop", "doo", "dor"]) + "_v1_" + _hex(r, 64)),
    "heroku-api-key-v2": _token(lambda r: "HRKU-AA" + _s(r, B64URL, 58)),
    "databricks-api-token": _token(lambda r: "dapi" + _hex(r, 32) + r.choice(["", "-2"])),
    "vault-service-token": _token(lambda r: r.choice(["hvs.", "hvb."]) + _s(r, B64URL, r.randint(90, 200))),
    "hashicorp-tf-api-token": _token(lambda r: _s(r, B62, 14) + ".atlasv1." + _s(r, B64URL, 67)),
    "pulumi-api-token": _token(lambda r: "pul-" + _hex(r, 40)),
    "doppler-api-token": _token(lambda r: "dp." + r.choice(["pt.", "ct.", "sa.", "st.", "st.prd."]) + _s(r, B62, 43)),
    "github-pat": _token(lambda r: f"gh{r.choice('pousr')}_" + _s(r, B62, 36)),
    "github-fine-grained-pat": _token(lambda r: "github_pat_" + _s(r, B62, 22) + "_" + _s(r, B62, 59)),
    "gitlab-pat": _token(
        lambda r: r.choice(
            [
                r.choice(["glpat-", "gldt-", "glrt-", "glcbt-"]) + _s(r, B64URL, 20),
                "glptt-" + _hex(r, 40),
                "glpat-" + _s(r, B64URL, 27) + "." + _s(r, LOWER + DIGITS, 9),
            ]
        )
    ),
    "gitlab-rrt": _token(lambda r: "GR1348941" + _s(r, B64URL, 20)),
    "npm-access-token": _token(lambda r: "npm_" + _s(r, B62, 36)),
    "pypi-upload-token": _token(lambda r: "pypi-AgEIcHlwaS5vcmc" + _s(r, B64URL, r.randint(60, 200))),
    "atlassian-api-token": _token(lambda r: "ATATT3" + _s(r, B64URL, 179) + "=" + _s(r, "0123456789ABCDEF", 8)),
    "postman-api-token": _token(lambda r: "PMAK-" + _hex(r, 24) + "-" + _hex(r, 34)),
    "slack-bot-token": _token(
        lambda r: r.choice(
            [
                f"xox{r.choice('bpa')}-{_s(r, DIGITS, 12)}-{_s(r, DIGITS, 13)}-{_s(r, B62, 24)}",
                f"xapp-1-A{_s(r, UPPER + DIGITS, 10)}-{_s(r, DIGITS, 13)}-{_hex(r, 64)}",
            ]
        )
    ),
    "slack-webhook-url": lambda r: (lambda p: (f"curl -X POST https://hooks.slack.com/services/{p} -d @msg.json", p))(
        f"T{_s(r, UPPER + DIGITS, 8)}/B{_s(r, UPPER + DIGITS, 10)}/{_s(r, B62, 24)}"
    ),
    "discord-bot-token": _discord_bot,
    "discord-webhook-url": lambda r: (
        lambda t: (f"url = 'https://discord.com/api/webhooks/{_s(r, DIGITS, 18)}/{t}'", t)
    )(_s(r, B64URL, 68)),
    "telegram-bot-api-token": lambda r: (lambda t: (f"bot = telebot.TeleBot('{t}')", t))(
        f"{r.randint(10**8, 10**10 - 1)}:AA{_mixed(r, B64URL, 33)}"
    ),
    "twilio-api-key": _token(lambda r: "SK" + _hex(r, 32)),
    "twilio-account-sid": _token(lambda r: "AC" + _hex(r, 32)),
    "sendgrid-api-token": _token(lambda r: "SG." + _s(r, B64URL, 22) + "." + _s(r, B64URL, 43)),
    "mailgun-private-api-token": _token(lambda r: "key-" + _hex(r, 32)),
    "mailgun-pub-key": _token(lambda r: "pubkey-" + _hex(r, 32)),
    "mailchimp-api-key": _token(lambda r: _hex(r, 32) + f"-us{r.randint(1, 21)}"),
    "stripe-access-token": _token(
        lambda r: f"{r.choice(['sk', 'rk'])}_{r.choice(['live', 'test'])}_" + _s(r, B62, r.choice([24, 99]))
    ),
    "stripe-webhook-secret": _token(lambda r: "whsec_" + _s(r, B62, 32)),
    "square-access-token": _token(lambda r: r.choice(["EAAA" + _mixed(r, B64URL, 60), "sq0atp-" + _s(r, B64URL, 22)])),
    "square-secret": _token(lambda r: "sq0csp-" + _s(r, B64URL, 43)),
    "shopify-access-token": _token(lambda r: f"shp{r.choice(['at', 'ca', 'pa', 'ss'])}_" + _hex(r, 32)),
    "openai-api-key": _token(
        lambda r: r.choice(
            [
                "sk-" + _mixed(r, B62, 20) + "T3BlbkFJ" + _s(r, B62, 20),
                f"sk-{r.choice(['proj', 'svcacct', 'admin'])}-"
                + _mixed(r, B64URL, 74)
                + "T3BlbkFJ"
                + _s(r, B64URL, 74),
            ]
        )
    ),
    "anthropic-api-key": _token(lambda r: f"sk-ant-{r.choice(['api03', 'admin01'])}-" + _s(r, B64URL, 93) + "AA"),
    "huggingface-access-token": _token(
        lambda r: r.choice(["hf_", "api_org_"]) + r.choice(UPPER) + r.choice(LOWER) + _s(r, UPPER + LOWER, 32)
    ),
    "perplexity-api-key": _token(lambda r: "pplx-" + _s(r, B62, 48)),
    "linear-api-key": _token(lambda r: "lin_api_" + _s(r, B62, 40)),
    "notion-api-token": _token(
        lambda r: r.choice(["ntn_" + _s(r, DIGITS, 11) + _mixed(r, B62, 35), "secret_" + _mixed(r, B62, 43)])
    ),
    "dropbox-api-token": _token(lambda r: "sl." + r.choice(["", "u."]) + _mixed(r, B64URL, 138)),
    "sentry-dsn": _sentry_dsn,
    "sentry-user-token": _token(
        lambda r: r.choice(
            [
                "sntryu_" + _hex(r, 64),
                "sntrys_"
                + base64.b64encode(json.dumps({"iat": r.random(), "url": "x"}).encode()).decode()
                + "_"
                + _s(r, B62, 43),
            ]
        )
    ),
    "grafana-cloud-api-token": _token(
        lambda r: r.choice(["glc_" + _s(r, B62 + "+/", 80) + "==", "glsa_" + _s(r, B62, 32) + "_" + _hex(r, 8)])
    ),
    "new-relic-user-api-key": _token(lambda r: "NRAK-" + _s(r, UPPER + DIGITS, 27)),
    "twitter-bearer-token": _token(lambda r: "A" * 22 + _mixed(r, B62 + "%", r.randint(80, 100))),
    "age-secret-key": _token(lambda r: "AGE-SECRET-KEY-1" + _s(r, "QPZRY9X8GF2TVDW0S3JN54KHCE6MUA7L", 58)),
    "jwt": _token(lambda r: _jwt(r, r.choice([3, 5]))),
    "url-password": lambda r: (
        lambda pw: (f"url = {r.choice(['postgres', 'mysql', 'redis', 'amqp'])}://app:{pw}@db.internal:5432/x", pw)
    )(_mixed(r, B62 + "-._~!", r.randint(8, 24))),
    "authorization-bearer": lambda r: (lambda t: (f"-H 'Authorization: Bearer {t}'", t))(_mixed(r, B62 + "-_~", 40)),
    "authorization-basic": _basic,
    "aws-secret-access-key": lambda r: _assignment(
        r, ["aws_secret_access_key", "AWS_SECRET_ACCESS_KEY", "awsSecretAccessKey"], _s(r, B62 + "/+", 40)
    ),
    "generic-api-key": lambda r: _assignment(
        r,
        ["api_key", "client_secret", "password", "SECRET_KEY", "access_token", "DB_PASSWORD", "apiKey", "passphrase"],
        _mixed(r, B62 + "!@#^&()-_=+.", r.randint(10, 40)),
    ),
    "generic-api-key-bare": lambda r: (_bare_assignment if r.random() < 0.5 else _bare_password)(r),
    "generic-api-key-php-define": _php_define,
    "generic-api-key-cli-flag": _cli_flag,
}
SAMPLES_PER_FORMAT = 25


def _base_name(name: str) -> str:
    return name.rstrip(":=")  # "name = value" rules come as a ':' and an '=' variant


def test_every_rule_is_documented_distinct_and_has_samples_here():
    names = [rule.name for rule in SECRET_RULES]
    assert len(names) == len(set(names))
    assert {_base_name(n) for n in names} == set(FORMATS)
    for rule in SECRET_RULES:
        assert rule.service and rule.triggers, rule.name
        assert rule.source.startswith(("https://", "gitleaks ")), rule.name
    # At least the twenty most common services, and the formats the findings named.
    services = {rule.service for rule in SECRET_RULES}
    assert len(services) >= 20
    for expected in ("AWS", "GitHub", "GitLab", "Slack", "Stripe", "OpenAI", "Anthropic", "Hugging Face", "SendGrid"):
        assert expected in services


@pytest.mark.parametrize("fmt", sorted(FORMATS))
def test_each_format_is_redacted_alone_in_its_context(fmt):
    rng = random.Random(fmt)
    rules = [rule for rule in SECRET_RULES if _base_name(rule.name) == fmt]
    for _ in range(SAMPLES_PER_FORMAT):
        text, secret = FORMATS[fmt](rng)
        assert text.count(secret) == 1
        start = text.index(secret)
        assert redact(text, CFG) == (text.replace(secret, "<SECRET>"), {"secret": 1}), text
        # The format's own rule finds it, so no other rule's catch hides a broken one.
        assert any((start, start + len(secret)) in set(rule.spans(text)) for rule in rules), text


# Rules whose trigger is context before the match (a key's name; "discord", as gitleaks'
# Discord rules require), not a part of it.
CONTEXT_TRIGGERED = {"discord-bot-token", "aws-secret-access-key"}


@pytest.mark.parametrize("fmt", sorted(set(FORMATS) - CONTEXT_TRIGGERED))
def test_a_trigger_occurs_wherever_a_rule_matches(fmt):
    # The driver skips a rule whose triggers are absent, so a match without one would be lost.
    rng = random.Random(fmt)
    for rule in (rule for rule in SECRET_RULES if _base_name(rule.name) == fmt):
        for _ in range(SAMPLES_PER_FORMAT):
            text, _secret = FORMATS[fmt](rng)
            for m in rule.pattern.finditer(text):
                assert any(t in m.group() for t in rule.triggers), (rule.name, text)


def test_context_triggered_rules_are_skipped_without_their_context():
    text, secret = _discord_bot(random.Random(3))
    assert redact(text, CFG)[0] == text.replace(secret, "<SECRET>")
    without = text.replace("discord", "chat")
    assert redact(without, CFG) == (without, {})
    # AWS's documented example key holds "EXAMPLE", a placeholder to the generic rule: only the
    # AWS rule, triggered by the key's name, takes it.
    example = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
    assert redact(f"AWS_SECRET_ACCESS_KEY={example}", CFG)[0] == "AWS_SECRET_ACCESS_KEY=<SECRET>"
    assert redact(f"OTHER_ACCESS_KEY={example}", CFG) == (f"OTHER_ACCESS_KEY={example}", {})


@pytest.mark.parametrize(
    "template",
    [
        "Authorization: Bearer {jwt}",
        "GET /cb#access_token={jwt}&token_type=bearer&expires_in=3600",
        "https://app.test/callback?id_token={jwt}&state=xyz",
        "Cookie: session={jwt}; theme=dark",
        "Set-Cookie: auth={jwt}; HttpOnly; Secure",
        '{{"token": "{jwt}", "user": 7}}',
        "localStorage.setItem('jwt', '{jwt}');",
        "the token {jwt}. It expires soon",
        "<input type=hidden name=csrf value={jwt}>",
    ],
)
def test_jwts_are_redacted_in_every_context(template):
    rng = random.Random(template)
    for segments in (3, 3, 5):
        jwt = _jwt(rng, segments)
        text = template.format(jwt=jwt)
        assert redact(text, CFG) == (text.replace(jwt, "<SECRET>"), {"secret": 1}), text


def test_unsigned_jwt_and_jwt_like_base64_without_a_header():
    header = _b64url(b'{"alg":"none"}')
    unsigned = f"{header}.{_b64url(b'{}' * 8)}."
    assert redact(f"t={unsigned} ok", CFG) == ("t=<SECRET> ok", {"secret": 1})
    # Base64 JSON with dots, but no "alg": a data blob, not a token.
    blob = ".".join(_b64url(part) for part in (b'{"name":"chart","v":2}', b'{"x":[1,2,3]}', b"abc"))
    assert find_pii(f"data {blob} end", CFG) == []


@pytest.mark.parametrize(
    "scheme",
    [
        *("postgres", "postgresql", "mysql", "mongodb", "mongodb+srv", "redis", "rediss", "amqp", "amqps", "ftp"),
        *("sftp", "smtp", "smtps", "https", "http", "ssh", "git+ssh", "jdbc:mysql", "s3", "ldap", "mssql", "nats"),
    ],
)
def test_passwords_in_urls_of_any_scheme_lose_only_the_password(scheme):
    rng = random.Random(scheme)
    for _ in range(10):
        password = _mixed(rng, B62 + "-._~!;,", rng.randint(6, 30))
        user = rng.choice(["admin", "app_user", "root", "deploy", "u"])
        text = f"DSN: {scheme}://{user}:{password}@db-{rng.randint(1, 9)}.example.net:{rng.randint(1, 65535)}/main"
        assert redact(text, CFG) == (text.replace(password, "<SECRET>"), {"secret": 1}), text


@pytest.mark.parametrize(
    "text, expected",
    [
        ("redis://:s3cr3tPa55@cache:6379/0", "redis://:<SECRET>@cache:6379/0"),  # no user name
        ("ftp://bob:p@ss:w0rd@files.test/", "ftp://bob:<SECRET>@files.test/"),  # unescaped '@' and ':'
        (
            "mongodb+srv://u:K9%40x%2Fy@c0.mongodb.net/db?retryWrites=true",
            "mongodb+srv://u:<SECRET>@c0.mongodb.net/db?retryWrites=true",
        ),
        ("postgres://admin:Xk9pQ2mZ7r@10.0.0.5/app", "postgres://admin:<SECRET>@<IP_ADDRESS>/app"),
    ],
)
def test_url_passwords_in_unusual_shapes(text, expected):
    assert redact(text, CFG)[0] == expected


@pytest.mark.parametrize(
    "text",
    [
        "https://user@example.com/repo.git",  # a user name, no password
        "mailto:someone@example.com?subject=hi",
        "https://example.com:8443/path?q=1#frag",
        "http://[2001:db8::1]:8080/index.html",
        "postgres://user:<password>@localhost:5432/db",
        "mysql://root:${MYSQL_ROOT_PASSWORD}@db:3306/app",
        "amqp://guest:password@rabbit:5672/",
        "redis://default:$REDIS_PASS@cache:6379",
        "url = 'postgresql://%s:%s@%s/%s' % (user, pw, host, name)",
        "smtp://mailer:****@smtp.test:587",
        "https://user:pass@host.example",
    ],
)
def test_urls_without_a_real_password_keep_it(text):
    assert [m.type for m in find_pii(text, CFG) if m.type == "secret"] == []


@pytest.mark.parametrize(
    "text, secret",
    [
        ("DB_PASS=hunter22", "hunter22"),  # .env files: short, unquoted, symbols
        ("SMTP_PASSWORD=P@ssw0rd!", "P@ssw0rd!"),
        ('{"password": "Qx7!mz"}', "Qx7!mz"),
        ("signing_key: 'k8Hq2LmZp0Vx'", "k8Hq2LmZp0Vx"),
        ('privateKey = "MIIEvQIBADANBgkqhkiG9w0BAQEFAASC"', "MIIEvQIBADANBgkqhkiG9w0BAQEFAASC"),
        ("credentials = 'svc:Zt9qLw2x'", "svc:Zt9qLw2x"),
        ("$conf['db_pwd'] => 'Rb4#kq92Lx';", "Rb4#kq92Lx"),
        ("export JWT_SECRET=7c1e4b0f93aa", "7c1e4b0f93aa"),
        ("os.environ['OPENAI_API_KEY'] = 'q9XvL2mTz8Rw'", "q9XvL2mTz8Rw"),
    ],
)
def test_short_and_symbol_laden_values_assigned_to_secret_names(text, secret):
    assert redact(text, CFG) == (text.replace(secret, "<SECRET>"), {"secret": 1})


@pytest.mark.parametrize(
    "text",
    [
        "primary_key = 'user_id'\ncache_key = 'page:%s' % slug\nsort_key=created_at",
        "partition_key: tenant_id_2024\npassword_min_length = 12\npasses = 3\nbypass = True",
        "session_key = request.session.session_key\nlicense_key = get_license_key(user)",
        'auth_token = ""\naccess_token = None\npassword = "********"',
    ],
)
def test_names_with_code_or_empty_values_keep_them(text):
    assert find_pii(text, CFG) == []


def _uuid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def _png_data_uri(rng: random.Random) -> str:
    # A PNG signature, runs of zero bytes (they encode to "AAAA..."), and random bytes.
    body = b"\x89PNG\r\n\x1a\n" + b"".join(
        rng.choice([bytes(rng.randint(8, 60)), rng.randbytes(64)]) for _ in range(200)
    )
    return "data:image/png;base64," + base64.b64encode(body).decode()


LOOK_ALIKE_GENERATORS: dict[str, Callable[[random.Random], str]] = {
    "uuid": lambda r: f"request id {_uuid(r)} and token_id={_uuid(r)}",
    "md5": lambda r: f"md5sum {hashlib.md5(r.randbytes(16)).hexdigest()}  file.tar.gz",
    "sha1": lambda r: f"commit {hashlib.sha1(r.randbytes(16)).hexdigest()}\nAuthor: dev",
    "sha256": lambda r: f'"checksum": "sha256:{hashlib.sha256(r.randbytes(16)).hexdigest()}"',
    "sha256-upper": lambda r: f"SHA256 {hashlib.sha256(r.randbytes(16)).hexdigest().upper()}",
    "short-commit": lambda r: f"fixed in {r.getrandbits(28):07x} (merged)",
    "data-uri": lambda r: f'<img src="{_png_data_uri(r)}" alt="logo">',
    "base64-blob": lambda r: "blob: " + base64.b64encode(r.randbytes(3000)).decode(),
    "css-colour": lambda r: f"color: #{r.getrandbits(24):06x}; background: #{r.getrandbits(12):03X};",
}


@pytest.mark.parametrize("kind", sorted(LOOK_ALIKE_GENERATORS))
def test_generated_look_alikes_survive(kind):
    rng = random.Random(kind)
    for _ in range(40):
        text = LOOK_ALIKE_GENERATORS[kind](rng)
        assert find_pii(text, CFG) == [], text


LOOK_ALIKES = [
    # document numbering, asset names, versions
    "See Section 7.6.3.5, § 10.2.1.4, clause 1.2.3.4, Article 2.1.3.4 and paragraph 3.1.4.1.",
    "Use logo@2x.png, icon@3x.webp, sprite@2x.jpg and hero@1.5x.avif for retina screens.",
    "Upgrade to version 1.2.3.4, v10.0.19041.1 or release 6.2.0.7 of the driver.",
    # identifiers and numbers
    "doi:10.1038/nature14539, https://doi.org/10.1000/182 and ISBN 978-3-16-148410-0",
    "On 2024-06-01 at 14:30:05, then 12/27/2024 and 27.12.2024, we met at 48.8584, 2.2945.",
    "Total $1,299.99 (was €1.499,00), order #A-2024-000123, invoice INV-778812, qty 12.",
    "tracking 1Z999AA10123456784 and part number 0451-2210-88",
    # code: names, not values
    "token = next_token\npassword = get_password(user)\napi_key = os.environ['API_KEY']",
    "secret = self.secret_store.lookup(name)\naccess_token = response.json()['access_token']",
    "token = tokens[0]\npassword: str = Field(min_length=12)\nSECRET_KEY = config.SECRET_KEY",
    "if token == expected_token_value_2:\n    return True",
    "api_key = API_KEY_FROM_ENVIRONMENT\ntoken = next_token_value_2",
    # placeholders where a secret goes
    'api_key = "YOUR_API_KEY"\npassword = "<password>"\ntoken: "${GITHUB_TOKEN}"\nsecret: "{{ vault_secret }}"',
    'password = "********"\nAPI_KEY="xxxxxxxxxxxxxxxxxxxx"\nclient_secret = "changeme"',
    "Authorization: Bearer <token>\nAuthorization: Bearer YOUR_ACCESS_TOKEN\nAuthorization: Bearer $TOKEN",
    "export OPENAI_API_KEY=sk-...\nexport HF_TOKEN=hf_xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
    "GITHUB_TOKEN=ghp_xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx and sk_live_XXXXXXXXXXXXXXXXXXXXXXXX",
    "https://hooks.slack.com/services/T00000000/B00000000/XXXXXXXXXXXXXXXXXXXXXXXX",
    "AccountKey=<storage-account-key>;EndpointSuffix=core.windows.net",
    # words and slugs
    "sk-learn, sk-some-very-long-kebab-case-identifier-here and key-value-store-design-notes-v2",
    "how-to-rotate-the-api-key-without-downtime-in-production-clusters is a slug",
    "Antidisestablishmentarianism and pneumonoultramicroscopicsilicovolcanoconiosis are long words.",
    "The Bearer of this letter is a friend; Basic training starts Monday.",
    "hf_hub_download, hf_transfer and api_org_settings are names in code",
    "SK Telecom, AC Milan, EAAA conference, dapi program, SG.Ltd and sl. abbreviations",
]


@pytest.mark.parametrize("text", LOOK_ALIKES)
def test_look_alikes_survive(text):
    assert find_pii(text, CFG) == []


def test_shannon_entropy_and_floor():
    assert shannon_entropy("") == 0 and shannon_entropy("aaaa") == 0
    assert shannon_entropy("abcd") == 2 and shannon_entropy("aabb") == 1
    # The floor scales with the most a value of its length and alphabet can reach.
    assert entropy_floor("12345678") == pytest.approx(ENTROPY_FRACTION * 3)  # log2(8)
    assert entropy_floor("deadbeefdeadbeefdeadbeef") == pytest.approx(ENTROPY_FRACTION * 4)  # hex: log2(16)
    assert entropy_floor("Xy7kLm9pQr2sTu4vWxYz5aBcD") == pytest.approx(ENTROPY_FRACTION * math.log2(25))


def test_random_values_pass_the_floor_and_patterns_do_not():
    rng = random.Random(0)
    for alphabet, n in ((B62, 8), (B62, 12), (B62 + "!@#^&()-_=+", 20), (B64URL, 40), (HEX, 32)):
        values = [_s(rng, alphabet, n) for _ in range(300)]
        assert sum(map(random_looking, values)) >= 0.97 * len(values), (alphabet, n)
    for low in ("aabbccdd", "deadbeefdeadbeef", "1234123412341234", "aaaa1111bbbb", "abcabcabcabc", "00000001"):
        assert not random_looking(low), low


def test_trigger_index_agrees_with_a_substring_search():
    triggers = sorted({t for rule in SECRET_RULES for t in rule.triggers})
    index = _TriggerIndex(triggers)
    rng = random.Random(1)
    pieces = [*triggers, *"abc XYZ_-.:=/019AKJ"]
    for _ in range(400):
        text = "".join(rng.choice(pieces) for _ in range(rng.randint(0, 12)))
        assert index.present(text) == {t for t in triggers if t in text}, text


PROSE = (
    "The committee met on 12 March 2019 in Geneva to review section 4 of the draft; 37 delegates attended, "
    "and the vote (21 to 16) approved a budget of $4,500,000 for the next phase. Questions were raised about "
    "the schedule: key dates, the secret ballot and the token fee of 3.5% were discussed at length. "
)
# Each unit, repeated, offers a pattern many starts or long near-misses; after a prefix, one
# start and a near-miss as long as the input.
HOSTILE: list[str | tuple[str, str]] = [
    "eyJ.",
    "eyJ",
    "eyJhbGciOiJIUzI1NiJ9.",
    "a:a@",
    "x://a:a@",
    "://",
    "://a:",
    "SG.",
    "SG.a",
    "hf_",
    "hf_a",
    "sk-",
    "sk-a1",
    "key-",
    "0-us1",
    "Bearer ",
    "Bearer a.",
    "Basic QUFB",
    'password = "',
    "token:",
    "api_key=a",
    "=",
    '="a',
    "dp.pt.",
    "A",
    "xoxb-1",
    "ghp_",
    "glpat-",
    "pypi-AgEIcHlwaS5vcmc",
    "sentry.://",
    "://0123456789abcdef0123456789abcdef@",
    "1234567:A",
    "discord.M",
    "0123456789abcd.atlasv1.",
    "AGE-SECRET-KEY-1",
    "sntrys_",
    "whsec_",
    "ntn_0",
    "ATATT3",
    "hvs.",
    "PMAK-0",
    "0a-us",
    "MTIzNDU2Nzg5MDEyMzQ1Njc4.",
    "AccountKey=",
    "hooks.slack.com/services/",
    "EAAA",
    "sl.",
    "aws_secret_access_key=",
    ("x://", "a:a@"),
    ("://u:", "@a"),
    ('api_key = "', "a"),
    ("password: ", "a1"),
    ("Bearer ", "a"),
    ("Basic ", "QUFB"),
    ("eyJ", "a"),
    ("eyJaaaaaaaaaaaa.", "a"),
    ("SG.", "a"),
    ("hf_", "a"),
    ("sk-", "a1-"),
    ("AccountKey=", "A"),
    ("hooks.slack.com/services/", "a"),
    ("-----BEGIN RSA PRIVATE KEY-----\n", "AAAAAAAAAAAAAAAAAAAA\n"),
]


def test_hostile_input_costs_about_as_much_as_prose():
    n = 200_000
    prose = (PROSE * (n // len(PROSE) + 1))[:n]
    find_pii_cpu_seconds(prose, CFG)  # warm up
    baseline = find_pii_cpu_seconds(prose, CFG)
    ratios = {}
    for case in HOSTILE:
        prefix, unit = case if isinstance(case, tuple) else ("", case)
        ratios[prefix + unit] = find_pii_cpu_seconds((prefix + unit * (n // len(unit) + 1))[:n], CFG) / baseline
    # Linear patterns cost a few times plain prose (when written: 13x for "://a:", which the
    # IPv6 pattern tries at every colon, under 6x for the rest); one that backtracks over its
    # input costs hundreds of times as much at this size.
    assert max(ratios.values()) < 40, sorted(ratios.items(), key=lambda kv: -kv[1])[:3]


def test_a_token_is_only_found_whole():
    # One more character of its alphabet on either side makes it part of a longer run.
    token = "ghp_" + _s(random.Random(2), B62, 36)
    assert redact(f"x{token}", CFG) == (f"x{token}", {})
    assert redact(f"{token}_x", CFG) == (f"{token}_x", {})
    assert redact(f"({token})", CFG) == ("(<SECRET>)", {"secret": 1})


def test_a_rule_without_triggers_is_refused():
    with pytest.raises(ValueError, match="'always' has no triggers: it would be scanned in every document"):
        SecretRule("always", "Example", re.compile("x"), (), "https://example.test")


@pytest.mark.parametrize(
    "text",
    [
        "tool --token-file /etc/tool/t0ken2.txt",  # the flag names a file of the secret, not the secret
        "tool --password $DB_PASSWORD --verbose",  # a variable, not a value
        "sort --sort-key name2field --reverse",  # a key that is not a secret's name
        "define('DEBUG_SECRET_LEVEL', true);",  # not a quoted value
        "define('CACHE_PATH', '/var/cache/app2');",  # not a secret's name
        "self.token = obj.attr2.value",  # code: attribute access is not a value
    ],
)
def test_flag_define_and_code_look_alikes_survive(text):
    assert redact(text, CFG) == (text, {})


def test_a_spaced_ssn_counts_only_where_the_text_names_it():
    for text in ("SSN: 078 05 1120.", "her social security number 219 09 9999 was", "SS# 123 45 6789"):
        redacted, counts = redact(text, CFG)
        assert counts == {"us_ssn": 1} and "<SSN>" in redacted, text
    for text in ("rows 123 45 6789 and 2", "the range 078 05 1120 of ids", "SSN: 666 05 1120", "SSN 123 00 4567"):
        assert redact(text, CFG)[1].get("us_ssn", 0) == 0, text


@pytest.mark.parametrize("text", ["The compass: N45E12W3 heading", "bypass=ab12cd34ef", "surpass: 3x4y5z6w"])
def test_pass_inside_a_word_is_not_a_credential_name(text):
    assert redact(text, CFG) == (text, {})
