"""Realistic PII values, and look-alike values that are not PII, for planting into documents.

Every generator takes a `random.Random` so a seeded run is reproducible. Values are
structurally valid (Luhn card numbers, mod-97 IBANs, assignable SSNs) so a detector that
checks them is not penalised, and the negatives are the strings detectors confuse with
PII (dates, versions, non-Luhn order numbers, hex hashes).
"""

from __future__ import annotations

import base64
import ipaddress
import string
import uuid
from collections.abc import Callable
from random import Random

_FIRST = [
    "james",
    "maria",
    "wei",
    "fatima",
    "olga",
    "liam",
    "aisha",
    "carlos",
    "yuki",
    "noah",
    "priya",
    "emma",
    "lukas",
    "sofia",
    "omar",
    "chloe",
]
_LAST = [
    "smith",
    "garcia",
    "chen",
    "okafor",
    "novak",
    "mueller",
    "tanaka",
    "rossi",
    "kowalski",
    "haddad",
    "johnson",
    "dubois",
    "silva",
    "nguyen",
    "patel",
    "larsen",
]
_DOMAINS = [
    "gmail.com",
    "outlook.com",
    "yahoo.co.uk",
    "example.org",
    "mail.acme-corp.com",
    "uni-heidelberg.de",
    "orange.fr",
    "proton.me",
    "company.io",
]
_ALNUM = string.ascii_letters + string.digits


def _digits(rng: Random, n: int) -> str:
    return "".join(rng.choice(string.digits) for _ in range(n))


def _chars(rng: Random, alphabet: str, n: int) -> str:
    return "".join(rng.choice(alphabet) for _ in range(n))


def email(rng: Random) -> str:
    first, last = rng.choice(_FIRST), rng.choice(_LAST)
    local = rng.choice(
        [
            f"{first}.{last}",
            f"{first}_{last}",
            f"{first[0]}{last}{rng.randint(1, 99)}",
            f"{first}+{rng.choice(['news', 'work', 'shop'])}",
            f"{last}.{first}",
        ]
    )
    return f"{local}@{rng.choice(_DOMAINS)}"


def phone(rng: Random) -> str:
    area, exch, line = rng.randint(201, 989), rng.randint(200, 999), _digits(rng, 4)
    formats = [
        f"+44 20 {_digits(rng, 4)} {_digits(rng, 4)}",
        f"+1 ({area}) {exch}-{line}",
        f"{area}-{exch}-{line}",
        f"({area}) {exch}-{line}",
        f"+49 30 {_digits(rng, rng.randint(6, 8))}",
        f"+33 {rng.randint(1, 9)} {' '.join(_digits(rng, 2) for _ in range(4))}",
        f"+1{area}{exch}{line}",  # E.164
        f"+4420{_digits(rng, 8)}",  # E.164
    ]
    return rng.choice(formats)


def ipv4(rng: Random) -> str:
    first = rng.choice([10, 172, 192, rng.randint(1, 223)])
    return ".".join(str(o) for o in [first, rng.randint(0, 255), rng.randint(0, 255), rng.randint(1, 254)])


def ipv6(rng: Random) -> str:
    groups = [0x2001, 0x0DB8] if rng.random() < 0.5 else [0xFE80, 0, 0, 0]
    groups += [rng.randint(0, 0xFFFF) for _ in range(8 - len(groups))]
    if rng.random() < 0.5:  # a run of zero groups, so the compressed form contains "::"
        start = rng.randint(2, 5)
        groups[start : start + 2] = [0, 0]
    addr = ipaddress.IPv6Address(sum(g << (16 * (7 - i)) for i, g in enumerate(groups)))
    text = addr.exploded if rng.random() < 0.4 else addr.compressed
    return text.upper() if rng.random() < 0.2 else text


def luhn_valid(number: str) -> bool:
    digits = [int(c) for c in number if c.isdigit()]
    total = 0
    for i, d in enumerate(reversed(digits)):
        total += d if i % 2 == 0 else (d * 2 - 9 if d > 4 else d * 2)
    return len(digits) > 1 and total % 10 == 0


def _luhn_complete(body: str) -> str:
    for check in string.digits:
        if luhn_valid(body + check):
            return body + check
    raise AssertionError("unreachable: one check digit always completes a Luhn number")


def credit_card(rng: Random) -> str:
    prefix, length = rng.choice(
        [
            ("4", 16),
            (str(rng.randint(51, 55)), 16),
            (str(rng.randint(2221, 2720)), 16),
            (rng.choice(["34", "37"]), 15),
            ("6011", 16),
        ]
    )
    number = _luhn_complete(prefix + _digits(rng, length - len(prefix) - 1))
    sep = rng.choice([" ", "-", ""])
    cuts = [4, 10] if length == 15 else [4, 8, 12]  # Amex prints 4-6-5, the others 4-4-4-4
    parts = [number[a:b] for a, b in zip([0, *cuts], [*cuts, length])]
    return sep.join(parts)


def ssn_valid(ssn: str) -> bool:
    area, group, serial = ssn.split("-")
    return (
        (len(area), len(group), len(serial)) == (3, 2, 4)
        and area not in ("000", "666")
        and area[0] != "9"
        and group != "00"
        and serial != "0000"
    )


def us_ssn(rng: Random) -> str:
    area = rng.randint(1, 898)
    area += area >= 666  # 666 is never assigned; 900-999 are ITINs, not SSNs
    return f"{area:03d}-{rng.randint(1, 99):02d}-{rng.randint(1, 9999):04d}"


# Country -> (IBAN length, BBAN alphabet per position: "n" digit, "a" upper-case letter).
_IBAN_FORMATS = {
    "DE": "n" * 18,
    "GB": "aaaa" + "n" * 14,
    "FR": "n" * 23,
    "ES": "n" * 20,
    "NL": "aaaa" + "n" * 10,
    "IT": "a" + "n" * 22,
    "CH": "n" * 17,
}


def _iban_number(text: str) -> int:
    return int("".join(str(int(c, 36)) for c in text))


def iban_valid(iban: str) -> bool:
    compact = iban.replace(" ", "")
    return len(compact) > 4 and _iban_number(compact[4:] + compact[:4]) % 97 == 1


def iban(rng: Random) -> str:
    country = rng.choice(sorted(_IBAN_FORMATS))
    bban = "".join(rng.choice(string.digits if k == "n" else string.ascii_uppercase) for k in _IBAN_FORMATS[country])
    check = 98 - _iban_number(bban + country + "00") % 97
    compact = f"{country}{check:02d}{bban}"
    if rng.random() < 0.5:
        return compact
    return " ".join(compact[i : i + 4] for i in range(0, len(compact), 4))


def aws_access_key(rng: Random) -> str:
    return "AKIA" + _chars(rng, string.ascii_uppercase + "234567", 16)


def github_token(rng: Random) -> str:
    return "ghp_" + _chars(rng, _ALNUM, 36)


def slack_token(rng: Random) -> str:
    return f"xoxb-{_digits(rng, rng.randint(10, 13))}-{_digits(rng, rng.randint(10, 13))}-{_chars(rng, _ALNUM, 24)}"


def google_api_key(rng: Random) -> str:
    return "AIza" + _chars(rng, _ALNUM + "_-", 35)


def stripe_key(rng: Random) -> str:
    return "sk_live_" + _chars(rng, _ALNUM, 24)


def rsa_private_key(rng: Random) -> str:
    # A DER SEQUENCE header and version field, so the body opens "MIIE..." like a real key.
    body = base64.b64encode(b"\x30\x82\x04\xa4\x02\x01\x00" + rng.randbytes(rng.randint(300, 600))).decode()
    lines = [body[i : i + 64] for i in range(0, len(body), 64)]
    return "\n".join(["-----BEGIN RSA PRIVATE KEY-----", *lines, "-----END RSA PRIVATE KEY-----"])


def api_key_assignment(rng: Random) -> str:
    name = rng.choice(["api_key", "API_KEY", "secret_key", "apiKey"])
    return f'{name} = "{_chars(rng, string.hexdigits.lower()[:16], 32)}"'


SECRET_GENERATORS: dict[str, Callable[[Random], str]] = {
    "aws_access_key": aws_access_key,
    "github_token": github_token,
    "slack_token": slack_token,
    "google_api_key": google_api_key,
    "stripe_key": stripe_key,
    "rsa_private_key": rsa_private_key,
    "api_key_assignment": api_key_assignment,
}


def secret(rng: Random) -> str:
    return SECRET_GENERATORS[rng.choice(list(SECRET_GENERATORS))](rng)


PII_GENERATORS: dict[str, Callable[[Random], str]] = {
    "email": email,
    "phone": phone,
    "ipv4": ipv4,
    "ipv6": ipv6,
    "credit_card": credit_card,
    "us_ssn": us_ssn,
    "iban": iban,
    "secret": secret,
}


def date(rng: Random) -> str:
    return f"{rng.randint(1990, 2030)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"


def version(rng: Random) -> str:
    # Four small components: the same shape as an IPv4 address, told apart only by context.
    return ".".join(str(rng.randint(0, 20)) for _ in range(4))


def time_of_day(rng: Random) -> str:
    return f"{rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}:{rng.randint(0, 59):02d}"


def order_number(rng: Random) -> str:
    number = _digits(rng, 16)
    if luhn_valid(number):  # shifting one digit by 1 always breaks the Luhn sum
        number = number[:-1] + str((int(number[-1]) + 1) % 10)
    return number


def git_sha(rng: Random) -> str:
    return f"{rng.getrandbits(160):040x}"


def uuid4(rng: Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def price(rng: Random) -> str:
    return f"${rng.randint(1, 99_999):,}.{rng.randint(0, 99):02d}"


NEGATIVE_GENERATORS: dict[str, Callable[[Random], str]] = {
    "date": date,
    "version": version,
    "time": time_of_day,
    "order_number": order_number,
    "git_sha": git_sha,
    "uuid": uuid4,
    "price": price,
}
