"""The key that signs checkpoint manifests, so a resume loads only checkpoints this
installation wrote.

DeepSpeed loads its checkpoint files with `torch.load(weights_only=False)`: unpickling runs
whatever code the file holds. The manifest's SHA-256 sums prove that the files are the ones
the manifest lists, not who wrote them, so a run directory planted or copied from elsewhere
would run its code at `crucible resume`. Each manifest therefore carries an HMAC-SHA256 made
with a key kept outside the run directory (~/.config/crucible/checkpoint.key, mode 600,
created on first use; CRUCIBLE_CHECKPOINT_KEY names another file, which is how the nodes of a
cluster share one). A checkpoint that is unsigned, or signed with another key, is refused
until someone vouches for it (`--trust-checkpoint PATH` re-signs it with this key).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
from pathlib import Path
from typing import Any

KEY_ENV = "CRUCIBLE_CHECKPOINT_KEY"
SIGNATURE = "signature"


class UntrustedCheckpoint(ValueError):
    """A checkpoint not signed with this installation's key; the message names the way out."""


def key_path() -> Path:
    return Path(os.environ.get(KEY_ENV) or Path.home() / ".config" / "crucible" / "checkpoint.key")


def _read_key(path: Path) -> bytes:
    key = bytes.fromhex(path.read_text(encoding="ascii").strip())
    if len(key) < 16:
        raise ValueError(f"{path} holds {len(key)} bytes, too short for a checkpoint key; delete it to make a new one")
    return key


def load_key(create: bool) -> bytes | None:
    """This installation's key; made (32 random bytes, mode 600) when absent and `create`."""
    path = key_path()
    if path.is_file():
        return _read_key(path)
    if not create:
        return None
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, secrets.token_hex(32).encode("ascii") + b"\n")
        os.fsync(fd)
    finally:
        os.close(fd)
    try:
        os.link(tmp, path)  # never replaces: two ranks making it at once agree on the first
    except FileExistsError:
        pass
    finally:
        tmp.unlink()
    return _read_key(path)


def key_id(key: bytes) -> str:
    """A name for the key that reveals nothing of it: which key signed, in messages."""
    return hashlib.sha256(b"crucible checkpoint key id\0" + key).hexdigest()[:16]


def _digest(manifest: dict[str, Any], key: bytes) -> str:
    # The manifest as JSON reads it back (the writer's default=str turns paths into text),
    # in one canonical spelling, without the signature itself.
    body = {k: v for k, v in json.loads(json.dumps(manifest, default=str)).items() if k != SIGNATURE}
    blob = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode("utf-8")
    return hmac.new(key, blob, hashlib.sha256).hexdigest()


def sign(manifest: dict[str, Any]) -> dict[str, Any]:
    """The manifest with this installation's signature (the key is made on first use)."""
    key = load_key(create=True)
    assert key is not None
    return {**manifest, SIGNATURE: {"key_id": key_id(key), "hmac_sha256": _digest(manifest, key)}}


def signature_problem(manifest: dict[str, Any], folder: Path) -> str | None:
    """None if this installation signed the manifest as it is, else why it is refused, with
    the way to accept it."""
    sig = manifest.get(SIGNATURE)
    key = load_key(create=False)
    if not isinstance(sig, dict) or not isinstance(sig.get("hmac_sha256"), str):
        why = "is unsigned (written elsewhere, or by a Crucible from before checkpoints were signed)"
    elif key is None or sig.get("key_id") != key_id(key):
        mine = key_id(key) if key else "not made yet"
        why = f"is signed with another key (key id {sig.get('key_id')}; this installation's is {mine})"
    elif not hmac.compare_digest(sig["hmac_sha256"], _digest(manifest, key)):
        why = "has a manifest that was changed after it was signed"
    else:
        return None
    return (
        f"checkpoint {folder} {why}: it was not written with this installation's checkpoint key "
        f"({key_path()}), and loading it would unpickle whatever its files hold. If you trust where it "
        f"came from, accept it with --trust-checkpoint {folder}; the nodes of a cluster must share one "
        f"key file ({KEY_ENV})"
    )


def trust(folder: Path) -> str:
    """Re-sign the manifest of the checkpoint `folder` with this installation's key, once its
    files match the manifest; returns what was done."""
    from infra.core.storage import write_json
    from tasks.training import checkpoint_store as store

    folder = Path(folder).resolve()
    manifest, problem = store.read_seal(folder)
    if manifest is None:
        raise ValueError(f"cannot trust {folder}: {problem}; --trust-checkpoint takes a checkpoint folder (stepN)")
    problem = store.check_files(folder, manifest["files"])
    if problem is not None:
        raise ValueError(f"cannot trust {folder}: {problem}")
    if signature_problem(manifest, folder) is None:
        return f"checkpoint {folder} is already signed with this installation's key"
    write_json(folder / store.MANIFEST, sign(manifest))
    return f"trusted checkpoint {folder}: its manifest is now signed with this installation's key ({key_path()})"
