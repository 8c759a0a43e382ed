"""Look-alikes for the curation-class benchmark: values shaped like secrets or personal data
that are neither (section numbers, retina asset names, UUIDs, hashes, versions, DOIs, ISBNs,
dates, coordinates, base64 images) and must survive redaction verbatim. Each is generated at
random in its usual written forms; the Plant's needle is the value itself.
"""

from __future__ import annotations

import base64
import random
import string
import uuid
from collections.abc import Callable

from curation_values import HEX, Names, Plant, random_chars


def _lookalike(kind: str, layout: str, value: str, frame: str) -> Plant:
    return Plant(kind, layout, frame.replace("{v}", value), value, [value])


def section_number(rng: random.Random, names: Names) -> Plant:
    parts = rng.choice([4, 4, 4, 3, 5])
    number = ".".join(str(rng.randint(1, 30)) for _ in range(parts))
    word = rng.choice(["Section", "section", "§", "Clause", "paragraph"])
    frame = rng.choice(
        ["The procedure is described in {v} of the manual.", "This is required by {v} of the standard, as amended."]
    )
    return _lookalike("section_number", f"{parts}_parts", f"{word} {number}", frame)


def asset_name(rng: random.Random, names: Names) -> Plant:
    stem = rng.choice(["logo", "icon-home", "hero-banner", "avatar", "sprite", names.word().lower()])
    scale = rng.choice(["2x", "3x", "1.5x"])
    path = rng.choice(["", "img/", "/static/images/", "assets/icons/"])
    value = f"{path}{stem}@{scale}.{rng.choice(['png', 'jpg', 'webp', 'svg'])}"
    frame = "The high-density version of the picture is served as {v} to retina screens."
    return _lookalike("asset_name", "with_path" if path else "bare", value, frame)


def uuid_value(rng: random.Random, names: Names) -> Plant:
    value = str(uuid.UUID(int=rng.getrandbits(128), version=4))
    upper = rng.random() < 0.3
    frame = rng.choice(["The job was logged with request id {v} in the tracker.", "The object {v} was restored."])
    return _lookalike("uuid", "upper" if upper else "lower", value.upper() if upper else value, frame)


def hash_value(rng: random.Random, names: Names) -> Plant:
    layout = rng.choice(["md5", "sha1", "sha256", "sri"])
    if layout == "sri":
        value = "sha384-" + base64.b64encode(rng.randbytes(48)).decode()
        return _lookalike("hash", layout, value, "The script tag pins its integrity value {v} for the file.")
    value = random_chars(rng, HEX, {"md5": 32, "sha1": 40, "sha256": 64}[layout])
    frame = {
        "md5": "The MD5 sum of the archive is {v} according to the mirror.",
        "sha1": "The regression was introduced by commit {v} in March.",
        "sha256": "The published SHA-256 checksum of the image is {v} on the download page.",
    }[layout]
    return _lookalike("hash", layout, value, frame)


def version(rng: random.Random, names: Names) -> Plant:
    layout = rng.choice(["semver", "four_part", "prerelease", "kernel"])
    if layout == "semver":
        value = f"{rng.randint(0, 20)}.{rng.randint(0, 40)}.{rng.randint(0, 30)}"
    elif layout == "four_part":
        value = ".".join(str(rng.randint(0, 40)) for _ in range(4))
    elif layout == "prerelease":
        value = f"{rng.randint(1, 9)}.{rng.randint(0, 9)}.{rng.randint(0, 9)}-{rng.choice(['rc.', 'beta', 'alpha.'])}"
        value += str(rng.randint(1, 5))
    else:
        value = f"{rng.randint(4, 6)}.{rng.randint(1, 19)}.0-{rng.randint(1, 30)}-amd64"
    frame = rng.choice(
        [
            "The bug was fixed in release {v} of the library.",
            "After the upgrade to {v} the warning disappeared.",
            "Firmware {v} added support for the new sensor.",
        ]
    )
    return _lookalike("version", layout, value, frame)


def doi(rng: random.Random, names: Names) -> Plant:
    prefix = f"10.{rng.randint(1000, 99999)}"
    suffix = rng.choice(
        [
            f"s{rng.randint(10000, 99999)}-0{rng.randint(10, 24)}-{rng.randint(10000, 99999)}-{rng.randint(0, 9)}",
            f"j.{names.word().lower()}.{rng.randint(1995, 2024)}.{rng.randint(1, 12):02d}.{rng.randint(1, 999):03d}",
            f"{names.word().lower()}{rng.randint(10000, 99999)}",
            f"PhysRevLett.{rng.randint(80, 130)}.{rng.randint(10000, 99999):06d}",
        ]
    )
    value = f"{prefix}/{suffix}"
    layout, frame = rng.choice(
        [
            ("doi_prefix", "The study appeared as doi:{v} in the spring."),
            ("url", "See https://doi.org/{v} for the paper."),
        ]
    )
    return _lookalike("doi", layout, value, frame)


def isbn(rng: random.Random, names: Names) -> Plant:
    if rng.random() < 0.7:
        body = rng.choice(["978", "979"]) + random_chars(rng, string.digits, 9)
        check = (10 - sum(int(d) * (1 if i % 2 == 0 else 3) for i, d in enumerate(body)) % 10) % 10
        digits = body + str(check)
        layout = rng.choice(["isbn13_hyphens", "isbn13_plain"])
        r = rng.randint(2, 5)  # the registrant's digits; the publication's take the rest
        value = f"{digits[:3]}-{digits[3]}-{digits[4 : 4 + r]}-{digits[4 + r : 12]}-{digits[12]}"
        value = value if layout == "isbn13_hyphens" else digits
    else:
        body = random_chars(rng, string.digits, 9)
        check = (11 - sum(int(d) * (10 - i) for i, d in enumerate(body)) % 11) % 11
        digits = body + ("X" if check == 10 else str(check))
        layout, value = "isbn10_hyphens", f"{digits[0]}-{digits[1:4]}-{digits[4:9]}-{digits[9]}"
    return _lookalike("isbn", layout, value, "The second edition (ISBN {v}) adds two chapters on the later years.")


def date_value(rng: random.Random, names: Names) -> Plant:
    y, m, d = rng.randint(1950, 2030), rng.randint(1, 12), rng.randint(1, 28)
    months = ["January", "February", "March", "April", "May", "June", "July", "August", "September"]
    months += ["October", "November", "December"]
    layout, value = rng.choice(
        [
            ("iso", f"{y}-{m:02d}-{d:02d}"),
            ("us", f"{m:02d}/{d:02d}/{y}"),
            ("european_dots", f"{d:02d}.{m:02d}.{y}"),
            ("iso_datetime", f"{y}-{m:02d}-{d:02d}T{rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}:00Z"),
            ("long", f"{d} {months[m - 1]} {y}"),
        ]
    )
    return _lookalike("date", layout, value, "The meeting was moved to {v} at the last minute.")


def coordinates(rng: random.Random, names: Names) -> Plant:
    lat, lon = rng.uniform(-80, 80), rng.uniform(-179, 179)
    layout = rng.choice(["decimal", "hemisphere", "dms"])
    if layout == "decimal":
        value = f"{lat:.4f}, {lon:.4f}"
    elif layout == "hemisphere":
        value = f"{abs(lat):.4f}° {'N' if lat >= 0 else 'S'}, {abs(lon):.4f}° {'E' if lon >= 0 else 'W'}"
    else:

        def dms(x: float) -> str:
            x = abs(x)
            return f"{int(x)}°{int(x * 60) % 60}′{int(x * 3600) % 60}″"

        value = f"{dms(lat)}{'N' if lat >= 0 else 'S'} {dms(lon)}{'E' if lon >= 0 else 'W'}"
    return _lookalike("coordinates", layout, value, "The survey marker sits at {v} on the ridge above the village.")


_IMAGE_MAGIC = {
    "png": bytes.fromhex("89504e470d0a1a0a0000000d49484452"),
    "gif": b"GIF89a",
    "jpeg": bytes.fromhex("ffd8ffe000104a464946"),
    "svg+xml": b'<svg xmlns="http://www.w3.org/2000/svg" ',
    "webp": b"RIFF\x00\x00\x00\x00WEBPVP8 ",
}


def data_uri(rng: random.Random, names: Names) -> Plant:
    kind = rng.choice(list(_IMAGE_MAGIC))
    payload = base64.b64encode(_IMAGE_MAGIC[kind] + rng.randbytes(rng.randint(40, 280))).decode()
    value = f"data:image/{kind};base64,{payload}"
    return _lookalike("data_uri", kind, value, "The small icon is inlined as {v} in the page source.")


LOOKALIKES: dict[str, Callable[[random.Random, Names], Plant]] = {
    "section_number": section_number,
    "asset_name": asset_name,
    "uuid": uuid_value,
    "hash": hash_value,
    "version": version,
    "doi": doi,
    "isbn": isbn,
    "date": date_value,
    "coordinates": coordinates,
    "data_uri": data_uri,
}
