"""Planted values for the curation-class benchmark: secrets and personal data that must be
redacted (look-alikes that must survive are in curation_lookalikes.py). Every value is
generated at random in the shape its issuer uses (prefix, length, alphabet, checksum), so
no two cases share one.

Each generator returns a `Plant`: the sentence to insert into real prose, the value as it
appears there, and the needles, the substrings whose presence in the kept text means a
leak (a token's random body, a password, a JWT's payload and signature; a look-alike's
needle is itself, which must still be there). Sentences avoid what the heuristic rules act
on (curly brackets, the words C4 drops lines for, lines under three words), so the value's
fate is decided by redaction alone.
"""

from __future__ import annotations

import base64
import json
import random
import string
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

ALNUM = string.ascii_letters + string.digits
URLSAFE = ALNUM + "-_"
HEX = "0123456789abcdef"


@dataclass
class Plant:
    kind: str
    format: str
    sentence: str
    value: str
    needles: list[str]
    context: str = ""
    lines: list[str] = field(default_factory=list)  # a multi-line block instead of one sentence


def random_chars(rng: random.Random, alphabet: str, n: int) -> str:
    return "".join(rng.choice(alphabet) for _ in range(n))


def _mixed(rng: random.Random, n: int, alphabet: str = ALNUM) -> str:
    """Random characters with at least one upper, one lower letter and one digit."""
    while True:
        s = random_chars(rng, alphabet, n)
        if any(c.isupper() for c in s) and any(c.islower() for c in s) and any(c.isdigit() for c in s):
            return s


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


class Names:
    """Names of people, places and sites, from proper nouns of the real text."""

    def __init__(self, nouns: list[str], rng: random.Random):
        self.nouns, self.rng = nouns, rng

    def word(self) -> str:
        return self.rng.choice(self.nouns)

    def person(self) -> tuple[str, str]:
        return self.word(), self.word()

    def domain(self) -> str:
        tld = self.rng.choice(["com", "org", "net", "io", "co.uk", "de", "fr", "com.au", "info", "dev"])
        return f"{self.word().lower()}{self.rng.choice(['', '-', ''])}{self.word().lower()}.{tld}"


# --- secrets ----------------------------------------------------------------------------
def jwt(rng: random.Random, names: Names) -> Plant:
    alg = rng.choice(["HS256", "RS256", "ES256"])
    header: dict[str, str] = {"alg": alg, "typ": "JWT"}
    if alg == "RS256":
        header["kid"] = random_chars(rng, HEX, 16)
    first, last = names.person()
    now = rng.randint(1_500_000_000, 1_750_000_000)
    claims = {
        "sub": str(rng.randint(10**5, 10**9)) if rng.random() < 0.5 else str(uuid.UUID(int=rng.getrandbits(128))),
        "name": f"{first} {last}",
        "iat": now,
        "exp": now + rng.choice([900, 3600, 86400]),
        "iss": f"https://auth.{names.domain()}",
    }
    keys = list(claims)
    rng.shuffle(keys)
    payload = _b64url(json.dumps({k: claims[k] for k in keys}, separators=(",", ":")).encode())
    head = _b64url(json.dumps(header, separators=(",", ":")).encode())
    signature = _b64url(rng.randbytes({"HS256": 32, "RS256": 256, "ES256": 64}[alg]))
    token = f"{head}.{payload}.{signature}"
    host = names.domain()
    context, frame = rng.choice(
        [
            ("header", "The failing request carried Authorization: Bearer {v} in its headers."),
            (
                "url_fragment",
                "After the login the browser landed on https://app." + host + "/callback#access_token={v}"
                "&token_type=Bearer&expires_in=3600 and the dashboard opened.",
            ),
            ("cookie", "The captured request also sent Cookie: session={v}; theme=dark to the server."),
            ("url_query", "The export link was https://" + host + "/download?id_token={v} and it still worked."),
            ("prose", "Someone pasted the token {v} into the public issue and it was valid for a day."),
        ]
    )
    return Plant("jwt", alg, frame.replace("{v}", token), token, [payload, signature], context)


_SCHEMES = {  # scheme: (default port or None, path, environment variable)
    "postgres": (5432, "/{db}", "DATABASE_URL"),
    "postgresql": (5432, "/{db}", "DATABASE_URL"),
    "mysql": (3306, "/{db}", "DATABASE_URL"),
    "mongodb": (27017, "/{db}?authSource=admin", "MONGO_URI"),
    "mongodb+srv": (None, "/{db}?retryWrites=true", "MONGODB_URI"),
    "redis": (6379, "/0", "REDIS_URL"),
    "rediss": (6380, "/0", "REDIS_URL"),
    "amqp": (5672, "/{db}", "BROKER_URL"),
    "amqps": (5671, "/{db}", "CELERY_BROKER_URL"),
    "ftp": (21, "/upload", "FTP_URL"),
    "sftp": (22, "/home/{db}", "SFTP_TARGET"),
    "smtp": (587, "", "EMAIL_URL"),
    "ldap": (389, "/dc={db},dc=org", "LDAP_URI"),
    "mssql": (1433, "/{db}", "SQLSERVER_URL"),
    "https": (None, "/api/{db}/export", "EXPORT_URL"),
}


def connection_url(rng: random.Random, names: Names) -> Plant:
    scheme = rng.choice(list(_SCHEMES))
    port, path, env = _SCHEMES[scheme]
    password = _mixed(rng, rng.randint(10, 24), ALNUM + "-_.~!*")
    user = rng.choice(["admin", "app", "root", "deploy", "svc_" + names.word().lower(), names.word().lower()])
    host = rng.choice(
        [
            f"{names.word().lower()}-db.{names.word().lower()}.internal",
            f"{names.word().lower()}{rng.randint(1, 9)}.{random_chars(rng, 'abcdefghijklmnopqrstuvwxyz0123456789', 12)}"
            ".eu-west-1.rds.amazonaws.com",
            f"cluster0.{random_chars(rng, 'abcdefghijklmnopqrstuvwxyz0123456789', 5)}.mongodb.net",
            names.domain(),
        ]
    )
    netloc = f"{user}:{password}@{host}" + (f":{port}" if port and rng.random() < 0.7 else "")
    url = f"{scheme}://{netloc}{path.replace('{db}', names.word().lower())}"
    context, frame = rng.choice(
        [
            ("env", "The deployment notes told everyone to set " + env + "={v} before the first start."),
            ("prose", "The worker connects to {v} when it starts, as the old runbook says."),
            ("config", "The committed settings had sqlalchemy.url = {v} on the third line."),
            ("log", "The crash report showed the line connection refused for {v} after a timeout."),
        ]
    )
    return Plant("connection_url", scheme, frame.replace("{v}", url), url, [password], context)


def _token_body(rng: random.Random, service: str) -> tuple[str, str, list[str]]:
    """(token, environment variable, its random parts)."""
    if service == "huggingface":
        body = _mixed(rng, 34, string.ascii_letters + string.digits)
        return "hf_" + body, "HF_TOKEN", [body]
    if service == "sendgrid":
        a, b = _mixed(rng, 22, URLSAFE), _mixed(rng, 43, URLSAFE)
        return f"SG.{a}.{b}", "SENDGRID_API_KEY", [a, b]
    if service == "github_classic":
        body = _mixed(rng, 36)
        return rng.choice(["ghp_", "gho_", "ghs_", "ghu_"]) + body, "GITHUB_TOKEN", [body]
    if service == "github_fine_grained":
        a, b = _mixed(rng, 22), _mixed(rng, 59)
        return f"github_pat_{a}_{b}", "GH_TOKEN", [a, b]
    if service == "aws_access_key":
        body = random_chars(rng, string.ascii_uppercase + "234567", 16)
        return rng.choice(["AKIA", "ASIA"]) + body, "AWS_ACCESS_KEY_ID", [body]
    if service == "aws_secret_key":
        body = _mixed(rng, 40, ALNUM + "/+")
        return body, "AWS_SECRET_ACCESS_KEY", [body]
    if service == "slack_bot":
        body = _mixed(rng, 24)
        tok = f"xox{rng.choice('bpa')}-{rng.randint(10**10, 10**13)}-{rng.randint(10**10, 10**13)}-{body}"
        return tok, "SLACK_BOT_TOKEN", [body]
    if service == "slack_webhook":
        body = _mixed(rng, 24)
        upper = string.ascii_uppercase + string.digits
        url = f"https://hooks.slack.com/services/T{random_chars(rng, upper, 10)}/B{random_chars(rng, upper, 10)}/{body}"
        return url, "SLACK_WEBHOOK_URL", [body]
    if service == "stripe":
        body = _mixed(rng, rng.randint(24, 99))
        return rng.choice(["sk_live_", "rk_live_", "sk_test_"]) + body, "STRIPE_SECRET_KEY", [body]
    if service == "openai":
        if rng.random() < 0.5:
            a, b = _mixed(rng, 20), _mixed(rng, 20)
            return f"sk-{a}T3BlbkFJ{b}", "OPENAI_API_KEY", [a, b]
        body = _mixed(rng, 156, URLSAFE)
        return "sk-proj-" + body, "OPENAI_API_KEY", [body]
    if service == "anthropic":
        body = _mixed(rng, 93, URLSAFE)
        return f"sk-ant-api03-{body}AA", "ANTHROPIC_API_KEY", [body]
    if service == "gitlab":
        body = _mixed(rng, 20, URLSAFE)
        return "glpat-" + body, "GITLAB_TOKEN", [body]
    if service == "npm":
        body = _mixed(rng, 36)
        return "npm_" + body, "NPM_TOKEN", [body]
    if service == "pypi":
        body = _mixed(rng, rng.randint(60, 150), URLSAFE)
        return "pypi-AgEIcHlwaS5vcmc" + body, "TWINE_PASSWORD", [body]
    if service == "google_api":
        body = _mixed(rng, 35, URLSAFE)
        return "AIza" + body, "GOOGLE_API_KEY", [body]
    if service == "mailgun":
        body = random_chars(rng, HEX, 32)
        return "key-" + body, "MAILGUN_API_KEY", [body]
    if service == "digitalocean":
        body = random_chars(rng, HEX, 64)
        return "dop_v1_" + body, "DIGITALOCEAN_TOKEN", [body]
    if service == "shopify":
        body = random_chars(rng, HEX, 32)
        return "shpat_" + body, "SHOPIFY_ACCESS_TOKEN", [body]
    if service == "telegram_bot":
        body = _mixed(rng, 33, URLSAFE)
        return f"{rng.randint(10**8, 10**10)}:AA{body}", "TELEGRAM_BOT_TOKEN", [body]
    raise ValueError(service)


SERVICES = (
    "huggingface",
    "sendgrid",
    "github_classic",
    "github_fine_grained",
    "aws_access_key",
    "aws_secret_key",
    "slack_bot",
    "slack_webhook",
    "stripe",
    "openai",
    "anthropic",
    "gitlab",
    "npm",
    "pypi",
    "google_api",
    "mailgun",
    "digitalocean",
    "shopify",
    "telegram_bot",
)


def service_token(rng: random.Random, names: Names) -> Plant:
    service = rng.choice(SERVICES)
    token, env, parts = _token_body(rng, service)
    frames = [
        ("env", "The setup notes said to run export " + env + "={v} before starting the uploader."),
        ("yaml", "The committed settings file still had " + env.lower() + ": {v} in it."),
    ]
    if service == "slack_webhook":
        frames += [("prose", "The alerting job posted every failure to {v} for months.")]
    elif service != "aws_secret_key":  # without its name, an AWS secret is any 40 characters
        frames += [
            ("cli", "Reproduce it with the command line client and --token {v} as the only option."),
            ("header", "The same call with Authorization: Bearer {v} returned the expected result."),
            ("prose", "The key {v} was pasted into the chat and revoked an hour later."),
            ("url_query", "The script fetched https://api." + names.domain() + "/v2/items?key={v} once a minute."),
        ]
    context, frame = rng.choice(frames)
    return Plant("service_token", service, frame.replace("{v}", token), token, parts, context)


_ASSIGNED_NAMES = (
    "api_key",
    "apikey",
    "apiKey",
    "API_KEY",
    "client_secret",
    "clientSecret",
    "secret_key",
    "auth_token",
    "access_token",
    "password",
    "db_password",
    "DB_PASS",
    "passwd",
    "app_secret",
    "webhook_secret",
    "encryption_key",
    "signing_key",
    "private_token",
)


def assignment(rng: random.Random, names: Names) -> Plant:
    name = rng.choice(_ASSIGNED_NAMES)
    style = rng.choice(["alnum", "hex", "password"])
    if style == "alnum":
        value = _mixed(rng, rng.randint(24, 48))
    elif style == "hex":
        value = random_chars(rng, HEX, rng.choice([32, 40, 64]))
    else:
        value = _mixed(rng, rng.randint(12, 20), ALNUM + "!#%^&*-_+=.")
    syntax, text = rng.choice(
        [
            ("python", f'{name} = "{value}"'),
            ("yaml", f"{name}: {value}"),
            ("env", f"{name.upper()}={value}"),
            ("json", f'"{name}": "{value}",'),
            ("ini", f"{name} = {value}"),
            ("header", f'-H "X-Api-Key: {value}"'),
            ("php", f"define('{name.upper()}', '{value}');"),
            ("cli_flag", f"--{name.lower().replace('_', '-')} {value}"),
        ]
    )
    frame = rng.choice(
        [
            "A review of the old configuration turned up {v} on one of its first lines.",
            "The pasted snippet contained {v} and nobody noticed for weeks.",
            "The deploy script was run with {v} by the night shift.",
        ]
    )
    return Plant("assignment", syntax, frame.replace("{v}", text), text, [value], style)


_KEYS = {  # type: (PEM label, DER prefix, random bytes after it)
    "rsa": ("RSA PRIVATE KEY", "3082025c02010002818100", 582),  # 1024 bits: a 2048-bit key alone
    # would push a 250-word document past Gopher's mean word length of 10
    "ec": ("EC PRIVATE KEY", "30770201010420", 112),
    "pkcs8_ed25519": ("PRIVATE KEY", "302e020100300506032b657004220420", 32),
    "openssh": ("OPENSSH PRIVATE KEY", "6f70656e7373682d6b65792d7631000000000a6165733235362d637472", 360),
}


def private_key(rng: random.Random, names: Names) -> Plant:
    key = rng.choice(list(_KEYS))
    label, prefix, n = _KEYS[key]
    body = base64.b64encode(bytes.fromhex(prefix) + rng.randbytes(n)).decode()
    chunks = [body[i : i + 64] for i in range(0, len(body), 64)]
    begin, end = f"-----BEGIN {label}-----", f"-----END {label}-----"
    # A PEM block; or on one line, flattened by an extractor or escaped as in a JSON
    # service-account file (under C4's 1000-character word limit for every key here).
    layouts = ["multiline", "flattened", "escaped"]
    layout = rng.choice(layouts)
    if layout == "multiline":
        block = [begin, *chunks, end]
        intro = "The backup folder that was shared by mistake held this key:"
        return Plant("private_key", key, intro, "\n".join(block), chunks, layout, [intro, *block])
    if layout == "flattened":
        value = " ".join([begin, *chunks, end])
        sentence = f"The page showed the key {value} as plain text."
    else:
        value = '"private_key": "' + "\\n".join([begin, *chunks, end]) + '\\n",'
        sentence = f"The service account file in the repository had {value} among its fields."
    return Plant("private_key", key, sentence, value, chunks, layout)


def _luhn_complete(digits: str) -> str:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch) * (1 if i % 2 else 2)
        total += d - 9 if d > 9 else d
    return digits + str((10 - total % 10) % 10)


def credit_card(rng: random.Random, names: Names) -> Plant:
    network = rng.choice(["visa", "mastercard", "amex", "discover"])
    prefix, length = {
        "visa": ("4", 16),
        "mastercard": (rng.choice([str(rng.randint(51, 55)), str(rng.randint(2221, 2720))]), 16),
        "amex": (rng.choice(["34", "37"]), 15),
        "discover": (rng.choice(["6011", "65"]), 16),
    }[network]
    digits = _luhn_complete(prefix + random_chars(rng, string.digits, length - len(prefix) - 1))
    sep = rng.choice([" ", "-", ""])
    groups = (
        [digits[:4], digits[4:10], digits[10:]] if network == "amex" else [digits[i : i + 4] for i in (0, 4, 8, 12)]
    )
    number = sep.join(groups)
    mm, yy = f"{rng.randint(1, 12):02d}", rng.randint(25, 33)
    expiry = rng.choice(
        [
            f" {mm}/{yy}",
            f" exp {mm}/{yy}",
            f" (exp. {mm}/20{yy})",
            f" valid thru {mm}/{yy}",
            f", expiry {mm}/{yy}, CVV {rng.randint(100, 999)}",
            "",
        ]
    )
    value = number + expiry
    layout = {" ": "spaced", "-": "dashed", "": "solid"}[sep] + ("+expiry" if expiry else "")
    sentence = f"The order form was submitted with card {value} and the charge went through."
    return Plant("credit_card", layout, sentence, value, [number], network)


def _nanp(rng: random.Random) -> tuple[str, str, str]:
    def part() -> str:
        while True:
            p = f"{rng.randint(2, 9)}{rng.randint(0, 9)}{rng.randint(0, 9)}"
            if p[1:] != "11":
                return p

    return part(), part(), f"{rng.randint(0, 9999):04d}"


def phone(rng: random.Random, names: Names) -> Plant:
    a, b, c = _nanp(rng)
    layout, value = rng.choice(
        [
            ("spaces", f"{a} {b} {c}"),
            ("parens", f"({a}) {b}-{c}"),
            ("parens_spaces", f"({a}) {b} {c}"),
            ("dashes", f"{a}-{b}-{c}"),
            ("dots", f"{a}.{b}.{c}"),
            ("intl_spaces", f"+1 {a} {b} {c}"),
            ("intl_dashes", f"+1-{a}-{b}-{c}"),
            ("one_dashes", f"1-{a}-{b}-{c}"),
        ]
    )
    frame = rng.choice(
        [
            "For bookings, call {v} on weekdays before noon.",
            "The contact sheet listed her mobile number as {v} in the footer.",
            "Leave a message at {v} and someone will call you back.",
        ]
    )
    return Plant("phone", layout, frame.replace("{v}", value), value, [value])


def email(rng: random.Random, names: Names) -> Plant:
    first, last = (w.lower() for w in names.person())
    local = rng.choice(
        [f"{first}.{last}", f"{first}{last}", f"{first[0]}.{last}", f"{first}_{last}{rng.randint(1, 99)}"]
    )
    layout = rng.choice(["plain", "mailto", "header", "plus_tag"])
    if layout == "plus_tag":
        local += "+" + rng.choice(["news", "shop", "lists", "work"])
    address = f"{local}@{names.domain()}"
    sentence = {
        "plain": f"Questions about the schedule went to {address} that year.",
        "mailto": f"The author page linked mailto:{address} under the photograph.",
        "header": f"The forwarded message began with From: {first.title()} {last.title()} <{address}> and a date.",
        "plus_tag": f"She signed up with {address} so that the mail could be filtered.",
    }[layout]
    return Plant("email", layout, sentence, address, [address])


def _public_ipv4(rng: random.Random) -> str:
    while True:
        o = [rng.randint(1, 223), rng.randint(0, 255), rng.randint(0, 255), rng.randint(1, 254)]
        private = o[0] in (10, 127) or (o[0] == 172 and 16 <= o[1] <= 31) or (o[0], o[1]) in ((192, 168), (169, 254))
        if not private and not (o[0] == 100 and 64 <= o[1] <= 127):
            return ".".join(map(str, o))


def ipv4(rng: random.Random, names: Names) -> Plant:
    ip = _public_ipv4(rng)
    layout, text = rng.choice(
        [
            ("plain", f"The abuse report named {ip} as the source of the traffic."),
            ("port", f"The admin panel was left open on {ip}:{rng.choice([8080, 8443, 3000, 9200])} for a month."),
            (
                "log_line",
                f'The access log shows {ip} - - [12/Mar/2024:10:02:11 +0000] "GET /index.html HTTP/1.1" 200 5120 '
                "for it.",
            ),
        ]
    )
    return Plant("ipv4", layout, text, ip, [ip])


def ipv6(rng: random.Random, names: Names) -> Plant:
    groups = [f"{rng.randint(0x2001, 0x2C0F):x}"] + [f"{rng.randint(0, 0xFFFF):x}" for _ in range(7)]
    layout = rng.choice(["full", "compressed", "bracket_port"])
    if layout == "full":
        ip = ":".join(groups)
    else:
        groups[4:7] = ["0", "0", "0"]
        ip = ":".join(groups[:4]) + "::" + groups[7]
    shown = f"[{ip}]:{rng.choice([443, 8443])}" if layout == "bracket_port" else ip
    sentence = f"The firewall log traced the connection attempts to {shown} over the weekend."
    return Plant("ipv6", layout, sentence, ip, [ip])


def us_ssn(rng: random.Random, names: Names) -> Plant:
    while (area := rng.randint(1, 899)) == 666:
        pass
    sep = rng.choice(["-", " "])
    value = f"{area:03d}{sep}{rng.randint(1, 99):02d}{sep}{rng.randint(1, 9999):04d}"
    sentence = f"The form was filled in with social security number {value} and signed."
    return Plant("us_ssn", "dashes" if sep == "-" else "spaces", sentence, value, [value])


_IBAN_BBAN = {  # country: BBAN pattern (L letter, D digit)
    "DE": "D" * 18,
    "FR": "D" * 23,
    "GB": "LLLL" + "D" * 14,
    "ES": "D" * 20,
    "NL": "LLLL" + "D" * 10,
    "IT": "L" + "D" * 22,
}


def iban(rng: random.Random, names: Names) -> Plant:
    country = rng.choice(list(_IBAN_BBAN))
    bban = "".join(rng.choice(string.ascii_uppercase if c == "L" else string.digits) for c in _IBAN_BBAN[country])
    numeric = "".join(str(int(c, 36)) for c in bban + country + "00")
    compact = f"{country}{98 - int(numeric) % 97:02d}{bban}"
    layout = rng.choice(["printed", "compact"])
    value = " ".join(compact[i : i + 4] for i in range(0, len(compact), 4)) if layout == "printed" else compact
    sentence = f"Please transfer the deposit to IBAN {value} before Friday."
    return Plant("iban", f"{country}_{layout}", sentence, value, [value])


SECRETS: dict[str, Callable[[random.Random, Names], Plant]] = {
    "jwt": jwt,
    "connection_url": connection_url,
    "service_token": service_token,
    "assignment": assignment,
    "private_key": private_key,
    "credit_card": credit_card,
    "phone": phone,
    "email": email,
    "ipv4": ipv4,
    "ipv6": ipv6,
    "us_ssn": us_ssn,
    "iban": iban,
}
