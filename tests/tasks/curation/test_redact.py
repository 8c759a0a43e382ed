import logging
import random

import pytest
from pydantic import ValidationError

from tasks.curation import pii_samples
from tasks.curation.redact import PII_TYPES, PIIMatch, RedactionConfig, find_pii, redact
from tests.tasks.curation.pii_timing import find_pii_cpu_seconds

CFG = RedactionConfig()
PEM = (
    "-----BEGIN RSA PRIVATE KEY-----\n"
    "MIIEowIBAAKCAQEAu1SU1LfVLPHCozMxH2Mo4lgOEePzNm0tRgeLezV6ffAt0gun\n"
    "VTLw7onLRnrq0/IzW7yWR7QkrmBL7jTKEn5u+qKhbwKfBstIs+bMY2Zkp18gnTxK\n"
    "-----END RSA PRIVATE KEY-----"
)


@pytest.mark.parametrize(
    "value, kind",
    [
        ("jane.doe+x@mail.example.org", "email"),
        ("maria_chen@yahoo.co.uk", "email"),
        ("+14155550123", "phone"),
        ("+44 20 7946 0958", "phone"),
        ("+49 30 901820", "phone"),
        ("+33 1 23 45 67 89", "phone"),
        ("+91 98765 43210", "phone"),
        ("(415) 555-0123", "phone"),
        ("415-555-0123", "phone"),
        ("415.555.0123", "phone"),
        ("+1 (415) 555-0123", "phone"),
        ("+44 (0)20 7946 0958", "phone"),
        ("1-800-555-0199", "phone"),
        ("415 555 0123", "phone"),
        ("(415) 555 0123", "phone"),
        ("+1 415 555 0123", "phone"),
        ("1 415 555 0123", "phone"),
        ("192.168.0.17", "ipv4"),
        ("8.8.4.4", "ipv4"),
        ("2001:db8:85a3::8a2e:370:7334", "ipv6"),
        ("2001:0DB8:85A3:0000:0000:8A2E:0370:7334", "ipv6"),
        ("fe80::1ff:fe23:4567:890a", "ipv6"),
        ("fe80::1", "ipv6"),
        ("dead:beef::cafe", "ipv6"),
        ("::ffff:192.168.0.1", "ipv6"),
        ("4111 1111 1111 1111", "credit_card"),
        ("5555-5555-5555-4444", "credit_card"),
        ("378282246310005", "credit_card"),
        ("3782 822463 10005", "credit_card"),
        ("2223000048400011", "credit_card"),
        ("4111 1111 1111 1111 12/27", "credit_card"),
        ("4111111111111111 12/27", "credit_card"),
        ("5555-5555-5555-4444 01/2029", "credit_card"),
        ("4111 1111 1111 1111 exp 12/2027", "credit_card"),
        ("3782 822463 10005, valid thru 07/28", "credit_card"),
        ("123-45-6789", "us_ssn"),
        ("DE89 3704 0044 0532 0130 00", "iban"),
        ("GB29NWBK60161331926819", "iban"),
        ("NL91 ABNA 0417 1643 00", "iban"),
        ("FR14 2004 1010 0505 0001 3M02 606", "iban"),
        ("AKIAIOSFODNN7EXAMPLE", "secret"),
        ("ghp_" + "aB3" * 12, "secret"),
        ("github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyz", "secret"),
        ("xoxb-123456789012-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx", "secret"),
        ("AIza" + "Sy9_-" * 7, "secret"),
        ("sk_live_" + "4eC39HqLyjWDarjtT1zdp7dc", "secret"),
        ("rk_live_" + "51H8xYzAbCdEfGhIjKlMnOp", "secret"),
        ("sk-" + "T3BlbkFJ" * 6, "secret"),
        ("sk-proj-" + "Ab1_" * 20, "secret"),
        (PEM, "secret"),
    ],
)
def test_each_type_is_replaced_by_its_token_in_a_sentence(value, kind):
    out, counts = redact(f"Details: {value} (see above).", CFG)
    assert out == f"Details: {CFG.tokens[kind]} (see above).", value
    assert counts == {kind: 1}


@pytest.mark.parametrize(
    "text",
    [
        # dates, years, times, versions
        "The release on 2021-03-04 at 12:30:45 replaced the one from 04.03.2021.",
        "Between 1999 and 2024 there were 20 releases.",
        "Upgrade to version 1.2.3.4 or v1.2.3.4, but not 1.2.3.4.5 or 10.0.19041.1.",
        "octets 300.1.2.3 and 01.02.03.04 are not addresses",
        # four-part versions marked by a pre-release or build suffix, or a preceding kernel/revision
        "Fixed in 3.7.9.8-rc, 2.4.1.9-beta2, 1.2.3.4+git, 4.1.0.3~dev, 6.2.0.7-alpha and 8.1.2.5-b2.",
        "kernel 4.19.0.6 and revision 2.0.1.7 were built from release 5.4.3.2-final",
        # ISBNs, long integers, decimals, prices, percentages, order and invoice numbers
        "ISBN 978-3-16-148410-0, ISBN-10 0-306-40615-2, ISBN 9780306406157.",
        "population 12345678901234, pi 3.14159265358979, total $1,234,567.89 and 45%",
        "order number 4111111111111112 (not Luhn), invoice 123-456-7890, ref 2019 2020 2021 2022",
        "tracking 1234 5678 9012 3456 7",
        # phone-like but too short or malformed
        "ext. 555-0123, room 12 34 56, +1 555 0123, +49 30, 415-555.0123",
        # hashes and identifiers
        "commit a94a8fe5ccb19ba61c4c0873d391e987982fbbd3 and id 123e4567-e89b-12d3-a456-426614174000",
        "SHA256 9F86D081884C7D659A2FEAA0C55AD015A3BF4F1B2B0B822CD15D6C15B0F00A08",
        # invalid SSNs and IBANs
        "SSNs 000-12-3456, 666-12-3456, 923-45-6789, 123-00-6789, 123-45-0000",
        "IBAN DE88 3704 0044 0532 0130 00 (bad check digits), XX89 3704 0044 0532 0130 00, DE89 3704 0044",
        # colons that are not IPv6, at-signs that are not e-mail
        "foo :: Int -> Int, std::vector<int>, Db::Add, MAC 00:1A:2B:3C:4D:5E, at 10:30:00",
        "slices x[0::2], y[1::2], z[10::20] and ::1",
        # addresses that name no host
        "bind to 127.0.0.1 or 0.0.0.0 with netmask 255.255.255.0",
        "user@localhost, @handle, a@b, name@domain.c0m",
        "logo@2x.png, icon@3x.webp, sprite@2x.jpg, hero@1.5x.avif, bg@2x.svg, font@latin.woff.css",
        "clone https://deploy@git.example.org/repo.git or ssh://git@host.example.net/x",
        # document numbering, not addresses
        "Section 7.6.3.5, § 10.2.1.4, §10.2.1.4, clause 1.2.3.4, (Article 2.1.3.4) and paragraph 3.1.4.1",
        "see Fig. 4.2.1.3, Table 1.1.2.2, Appendix 2.3.4.5, item 9.8.7.6 and step 1.1.1.2",
        # spaced digit groups in tables, dates after card-like numbers
        "row 12 415 555 0123 9 and 415 555 0123 4567 in the table",
        "order 4111 1111 1111 1112 12/27 (not Luhn)",
        # secrets that are names, placeholders or code, not values
        'token = next_token(), password = "password", api_key = "YOUR_API_KEY", secret: "<redacted>"',
        "tokenizer = 'bpe-tokenizer-v2-large', password_hash = 'Ab3dEf9hIj0kLmN'",
        "sk-learn and sk-some-very-long-kebab-case-identifier-here are names",
        "-----BEGIN PUBLIC KEY-----\nMIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA\n-----END PUBLIC KEY-----",
    ],
)
def test_look_alikes_are_left_alone(text):
    assert find_pii(text, CFG) == []
    assert redact(text, CFG) == (text, {})


@pytest.mark.parametrize(
    "text",
    [
        "reach the box at 10.0.0.1- or 192.168.1.20.",
        "the pool 10.1.2.3-4 and 8.8.8.8/24",
        "logged from 172.16.4.2-backup and 10.0.0.3-rcx",  # a word after the dash, not a version suffix
    ],
)
def test_addresses_with_punctuation_after_them_are_still_redacted(text):
    out, counts = redact(text, CFG)
    assert counts["ipv4"] == 2 and out.count("<IP_ADDRESS>") == 2


@pytest.mark.parametrize(
    "text, expected",
    [
        ('api_key = "s3cr3tValue!"', 'api_key = "<SECRET>"'),
        ('{"password": "Tr0ub4dor&3"}', '{"password": "<SECRET>"}'),
        ("DB_PASSWORD=Xy7kLm9pQr2sTu4vWx", "DB_PASSWORD=<SECRET>"),
        ("client_secret: 'a1b2c3d4e5f6a7b8'", "client_secret: '<SECRET>'"),
        ("aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "aws_secret_access_key = <SECRET>"),
        ('AWS_SECRET_ACCESS_KEY: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"', 'AWS_SECRET_ACCESS_KEY: "<SECRET>"'),
    ],
)
def test_assigned_secrets_lose_only_their_value(text, expected):
    assert redact(text, CFG) == (expected, {"secret": 1})


def test_private_key_block_is_replaced_whole_and_the_prose_around_it_kept():
    text = f"Here is the key:\n{PEM}\nKeep it safe. And another:\n{PEM.replace('RSA ', '')}\nDone."
    out, counts = redact(text, CFG)
    assert out == "Here is the key:\n<SECRET>\nKeep it safe. And another:\n<SECRET>\nDone."
    assert counts == {"secret": 2}


def test_truncated_private_key_loses_its_header_and_body_lines():
    truncated = PEM.rsplit("\n", 1)[0]  # no END line, as on a cut-off page
    out, _ = redact(f"{truncated}\nthe rest of the page", CFG)
    assert out == "<SECRET>\nthe rest of the page"


def test_iban_ends_at_its_country_length_and_neighbours_are_found():
    text = "IBAN BE68 5390 0754 7034 AND DE89 3704 0044 0532 0130 00 BY Monday"
    assert redact(text, CFG) == ("IBAN <IBAN> AND <IBAN> BY Monday", {"iban": 2})


def test_matches_are_sorted_and_overlaps_merged_into_the_longer_claim():
    # The IPv4 tail of the IPv6 address, and the key inside the assignment, are one match each.
    text = 'host ::ffff:192.168.0.1 then api_key = "AKIAIOSFODNN7EXAMPLE" and a@b.io'
    matches = find_pii(text, CFG)
    assert [m.type for m in matches] == ["ipv6", "secret", "email"]
    assert [text[m.start : m.end] for m in matches] == ["::ffff:192.168.0.1", "AKIAIOSFODNN7EXAMPLE", "a@b.io"]
    assert matches[0] == PIIMatch("ipv6", 5, 23)


def test_offsets_survive_characters_that_lengthen_when_lower_cased():
    text = 'İİİ password = "Tr0ub4dor&3" İ'
    assert redact(text, CFG) == ('İİİ password = "<SECRET>" İ', {"secret": 1})


def test_types_tokens_and_switch_are_honoured():
    text = "mail a@b.com from 10.0.0.1, card 4111 1111 1111 1111"
    cfg = RedactionConfig(types=["email", "credit_card"], tokens={"email": "[E]"})
    assert redact(text, cfg) == ("mail [E] from 10.0.0.1, card <CREDIT_CARD>", {"email": 1, "credit_card": 1})
    assert cfg.tokens["ipv6"] == "<IP_ADDRESS>"  # partial mapping merged over the defaults
    assert redact(text, RedactionConfig(enabled=False)) == (text, {})
    assert redact("nothing here", CFG) == ("nothing here", {})


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"types": ["email", "passport"]}, r"unknown PII type\(s\) \['passport'\]; valid types: email, phone"),
        ({"tokens": {"mail": "[E]"}}, r"unknown PII type\(s\) \['mail'\]; valid types: email"),
        ({"redact_names": True}, "Extra inputs are not permitted"),
    ],
)
def test_config_rejects_unknown_names_listing_valid_ones(kwargs, message):
    with pytest.raises(ValidationError, match=message):
        RedactionConfig(**kwargs)


def test_config_round_trips_through_json():
    cfg = RedactionConfig(types=["iban"], tokens={"iban": "[ACCOUNT]"})
    assert RedactionConfig.model_validate_json(cfg.model_dump_json()) == cfg


def test_matched_values_never_reach_logs_or_output(caplog, capsys):
    text = f"a@b.com 123-45-6789 4111 1111 1111 1111 {PEM}"
    with caplog.at_level(logging.DEBUG):
        redact(text, CFG)
        find_pii(text, CFG)
    assert caplog.records == []
    assert capsys.readouterr() == ("", "")


def test_spaced_us_phone_numbers_in_every_written_form():
    rng = random.Random(0)
    for _ in range(50):
        area, exchange, line = rng.randint(200, 999), rng.randint(200, 999), f"{rng.randint(0, 9999):04d}"
        number = rng.choice(["{} {} {}", "({}) {} {}", "+1 {} {} {}", "1 {} {} {}"]).format(area, exchange, line)
        text = f"Call {number} today."
        assert redact(text, CFG) == ("Call <PHONE> today.", {"phone": 1}), text


def test_card_numbers_take_their_expiry_with_them():
    rng = random.Random(1)
    for _ in range(50):
        card = pii_samples.credit_card(rng)
        month, year = f"{rng.randint(1, 12):02d}", rng.choice(["", "20"]) + str(rng.randint(24, 35))
        expiry = rng.choice([" {}/{}", " exp {}/{}", ", expires {}/{}", " {} / {}"]).format(month, year)
        text = f"Paid with {card}{expiry}. Thanks"
        assert redact(text, CFG) == ("Paid with <CREDIT_CARD>. Thanks", {"credit_card": 1}), text
    # A date after the number is not its expiry; the number still goes.
    assert redact("card 4111 1111 1111 1111 12/27/2024", CFG)[0] == "card <CREDIT_CARD> 12/27/2024"


def test_url_credentials_are_a_secret_not_an_email():
    text = "DATABASE_URL=postgres://admin:Xk9pQ2mZ7r@db.internal:5432/app and mail bob@example.org"
    assert redact(text, CFG) == (
        "DATABASE_URL=postgres://admin:<SECRET>@db.internal:5432/app and mail <EMAIL>",
        {"secret": 1, "email": 1},
    )


# Each line makes a naive pattern backtrack: many candidate starts, long near-misses.
HOSTILE = [
    ("email", "a@"),
    ("email", "a.a@a.a@"),
    ("email", "a@a-a."),
    ("email", "a" * 70 + "@b.c "),
    ("phone", "+1 "),
    ("phone", "+1 (415) "),
    ("phone", "415-555-"),
    ("phone", "415 555 "),
    ("phone", "1 415 555 0123 "),
    ("phone", "1 "),
    ("ipv4", "1.1.1.1."),
    ("ipv4", "255."),
    ("ipv6", ":"),
    ("ipv6", "1:2:3:4:5:6:7:8:9:"),
    ("ipv6", "fe80::"),
    ("credit_card", "4111 "),
    ("credit_card", "1-"),
    ("credit_card", "4111 1111 1111 1111 12/"),
    ("credit_card", "4111 1111 1111 1111 exp "),
    ("email", "a@2x.png "),
    ("email", "://a:b@c.de"),
    ("ipv4", "Section 1.2.3.4 "),
    ("us_ssn", "123-45-"),
    ("iban", "DE89 "),
    ("iban", "DE89"),
    ("secret", "AKIA"),
    ("secret", "ghp_a"),
    ("secret", "xoxb-"),
    ("secret", "sk-a"),
    ("secret", "-----BEGIN"),
    ("secret", "-----BEGIN RSA PRIVATE KEY-----\nAAAAAAAAAAAAAAAAAAAA\n"),
    ("secret", 'password = "'),
    ("secret", "token:"),
    ("secret", "aws_secret_access_key="),
]


@pytest.mark.parametrize("kind, unit", HOSTILE)
def test_hostile_input_costs_linear_time(kind, unit):
    assert kind in PII_TYPES
    cfg = RedactionConfig(types=[kind])
    small, large = ((unit * (n // len(unit) + 1))[:n] for n in (2**18, 2**20))
    find_pii(small, cfg)  # warm up
    # Linear work gives a ratio near 4, quadratic near 16; no wall-clock threshold.
    assert find_pii_cpu_seconds(large, cfg) < 8 * find_pii_cpu_seconds(small, cfg)
