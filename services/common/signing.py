"""Ed25519 signatures on approval messages (DESIGN §4 signing rule)."""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey


def signed_bytes(message: dict[str, Any]) -> bytes:
    """What is signed: the JSON object as received minus `signature`, canonical form."""
    unsigned = {k: v for k, v in message.items() if k != "signature"}
    return json.dumps(unsigned, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def sign(message: dict[str, Any], private_key_b64: str) -> str:
    """The base64 signature of `message` with a raw 32-byte private key (base64)."""
    key = Ed25519PrivateKey.from_private_bytes(base64.b64decode(private_key_b64))
    return base64.b64encode(key.sign(signed_bytes(message))).decode()


def verify(message: dict[str, Any], signature_b64: str, public_key_b64: str) -> bool:
    """True only for a well-formed signature by that key over exactly this message."""
    try:
        key = Ed25519PublicKey.from_public_bytes(base64.b64decode(public_key_b64, validate=True))
        key.verify(base64.b64decode(signature_b64, validate=True), signed_bytes(message))
    except (InvalidSignature, ValueError, binascii.Error):
        return False
    return True


def generate_keypair() -> tuple[str, str]:
    """A new (private, public) pair, each standard base64 of the raw 32 bytes."""
    key = Ed25519PrivateKey.generate()
    private = key.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                                serialization.NoEncryption())
    public = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return base64.b64encode(private).decode(), base64.b64encode(public).decode()
