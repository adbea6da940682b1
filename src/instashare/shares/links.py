"""Link tokens and unlock tokens: both computed from keys derived from SECRET_KEY, never stored.

A link token is ``base64url(share id (16 bytes) || tag (20 bytes))`` where the tag is
``HMAC-SHA256(link key, share id || nonce)`` cut to 160 bits, and the nonce is 32 random bytes
kept in the share's row. The database therefore holds what is needed to show the owner the link
again (with the key), but no working link: a dump opens nothing, and the tag (which carries the
nonce's randomness) cannot be guessed from the id, which recipients see. Rotation replaces the
nonce; changing SECRET_KEY changes the key, so every existing link stops working.

An unlock token (handed out for a share's password) is a JWT signed with another derived key,
so it can never pass as an account token, nor an account token as one. It names its share and
carries a binding to the share's current nonce and password hash: rotating the link or changing
(or removing) the password invalidates every unlock token issued before.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import secrets
import time
from dataclasses import dataclass
from uuid import UUID, uuid4

import jwt

from instashare.config import Settings

NONCE_BYTES = 32
TAG_BYTES = 20
TOKEN_LENGTH = 48  # base64url characters of 16 + 20 bytes, without padding
_TOKEN = re.compile(r"^[A-Za-z0-9_-]{48}$")
_LINK_KEY_PURPOSE = b"instashare share links v1"
_UNLOCK_KEY_PURPOSE = b"instashare share unlock tokens v1"
UNLOCK_AUDIENCE = "instashare:share-unlock"
_ALGORITHM = "HS256"


def derive_key(secret: str, purpose: bytes) -> bytes:
    """A key for one purpose only, so that no two uses of SECRET_KEY can be confused."""
    return hmac.new(secret.encode(), purpose, hashlib.sha256).digest()


def new_nonce() -> bytes:
    return secrets.token_bytes(NONCE_BYTES)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


@dataclass(frozen=True)
class LinkToken:
    """A parsed (not yet verified) link token."""

    share_id: UUID
    tag: bytes


@dataclass(frozen=True)
class UnlockGrant:
    """A verified unlock token: who may download this share until when."""

    token_id: str
    expires_at: int


class ShareKeys:
    """Makes and checks link tokens and unlock tokens; built once from the settings."""

    def __init__(self, secret_key: str, unlock_ttl_seconds: int) -> None:
        self._link_key = derive_key(secret_key, _LINK_KEY_PURPOSE)
        self._unlock_key = derive_key(secret_key, _UNLOCK_KEY_PURPOSE)
        self.unlock_ttl_seconds = unlock_ttl_seconds

    @classmethod
    def from_settings(cls, settings: Settings) -> ShareKeys:
        return cls(settings.secret_key, settings.share_unlock_token_ttl_seconds)

    # --- links ---------------------------------------------------------------------------

    def _tag(self, share_id: UUID, nonce: bytes) -> bytes:
        return hmac.new(self._link_key, share_id.bytes + nonce, hashlib.sha256).digest()[:TAG_BYTES]

    def link_token(self, share_id: UUID, nonce: bytes) -> str:
        return _b64(share_id.bytes + self._tag(share_id, nonce))

    @staticmethod
    def parse_link(token: str) -> LinkToken | None:
        """The share a token claims to open, or None if it cannot be a token at all."""
        if not _TOKEN.fullmatch(token):
            return None
        try:
            raw = base64.urlsafe_b64decode(token.encode("ascii"))
        except (binascii.Error, ValueError):
            return None
        return LinkToken(share_id=UUID(bytes=raw[:16]), tag=raw[16:])

    def link_matches(self, link: LinkToken, nonce: bytes) -> bool:
        return hmac.compare_digest(link.tag, self._tag(link.share_id, nonce))

    # --- unlock tokens -------------------------------------------------------------------

    def _binding(self, share_id: UUID, nonce: bytes, password_hash: str) -> str:
        material = share_id.bytes + nonce + password_hash.encode()
        return _b64(hmac.new(self._unlock_key, material, hashlib.sha256).digest()[:16])

    def issue_unlock(self, share_id: UUID, nonce: bytes, password_hash: str) -> str:
        now = int(time.time())
        claims = {
            "sub": str(share_id),
            "aud": UNLOCK_AUDIENCE,
            "jti": uuid4().hex,
            "iat": now,
            "exp": now + self.unlock_ttl_seconds,
            "bnd": self._binding(share_id, nonce, password_hash),
        }
        return jwt.encode(claims, self._unlock_key, algorithm=_ALGORITHM)

    def verify_unlock(
        self, token: str, share_id: UUID, nonce: bytes, password_hash: str
    ) -> UnlockGrant | None:
        """The grant if ``token`` is a live unlock token for this share as it is now."""
        try:
            claims = jwt.decode(
                token,
                self._unlock_key,
                algorithms=[_ALGORITHM],
                audience=UNLOCK_AUDIENCE,
                options={"require": ["exp", "sub", "jti", "bnd", "aud"]},
            )
        except jwt.PyJWTError:
            return None
        binding = claims.get("bnd")
        if claims.get("sub") != str(share_id) or not isinstance(binding, str):
            return None
        if not hmac.compare_digest(binding, self._binding(share_id, nonce, password_hash)):
            return None
        return UnlockGrant(token_id=str(claims["jti"]), expires_at=int(claims["exp"]))
