import pytest

from tasks.curation.redact import redact


@pytest.mark.parametrize("text, expected, kind", [
    ("write to jane.doe+x@mail.example.org today", "write to <EMAIL> today", "email"),
    ("server 192.168.0.17 answered", "server <IP_ADDRESS> answered", "ipv4"),
    ("v6 host 2001:db8:85a3::8a2e:370:7334 up", "v6 host <IP_ADDRESS> up", "ipv6"),
    ("link fe80::1ff:fe23:4567:890a here", "link <IP_ADDRESS> here", "ipv6"),
])
def test_addresses_are_replaced_and_counted(text, expected, kind):
    out, counts = redact(text)
    assert out == expected and counts == {kind: 1}


@pytest.mark.parametrize("text", [
    "version 1.2.3.4.5 of the tool", "octets 300.1.2.3 are invalid", "at 12:30:45 sharp",
    "the directive example:: follows", "no at-sign here", "user@localhost is not a public address",
])
def test_non_addresses_are_left_alone(text):
    assert redact(text) == (text, {})


def test_tokens_and_switches():
    out, counts = redact("a@b.com 10.0.0.1", email_token="[E]", ips=False)
    assert out == "[E] 10.0.0.1" and counts == {"email": 1}
