"""Link tokens, unlock tokens, entry names and receipt addresses: the pure parts of shares."""

from __future__ import annotations

import base64
import time
import uuid

import jwt
import pytest

from instashare.shares.archive import archive_filename, entry_names
from instashare.shares.delivery import truncated_network
from instashare.shares.links import TOKEN_LENGTH, ShareKeys, derive_key, new_nonce
from instashare.shares.page import human_size

SECRET = "a secret key of at least thirty-two bytes, for tests"


def keys(secret: str = SECRET, ttl: int = 60) -> ShareKeys:
    return ShareKeys(secret, ttl)


def test_a_link_token_is_48_url_safe_characters_with_160_secret_bits() -> None:
    share_id, nonce = uuid.uuid4(), new_nonce()
    token = keys().link_token(share_id, nonce)
    assert len(token) == TOKEN_LENGTH == 48
    assert set(token) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
    raw = base64.urlsafe_b64decode(token)
    assert raw[:16] == share_id.bytes
    assert len(raw[16:]) == 20
    assert len(nonce) == 32
    assert new_nonce() != nonce


def test_a_link_opens_only_with_its_nonce_and_key() -> None:
    share_id, nonce = uuid.uuid4(), new_nonce()
    token = keys().link_token(share_id, nonce)
    link = ShareKeys.parse_link(token)
    assert link is not None
    assert link.share_id == share_id
    assert keys().link_matches(link, nonce)
    assert not keys().link_matches(link, new_nonce())  # rotated
    assert not keys("another secret key of thirty-two bytes or more").link_matches(link, nonce)
    tampered = ShareKeys.parse_link(token[:-1] + ("A" if token[-1] != "A" else "B"))
    assert tampered is not None
    assert not keys().link_matches(tampered, nonce)
    # Deterministic: the owner can be shown the same link again.
    assert keys().link_token(share_id, nonce) == token


@pytest.mark.parametrize(
    "token", ["", "short", "x" * 47, "x" * 49, "+" * 48, "a/" * 24, "é" * 48, "=" * 48]
)
def test_anything_else_is_not_a_token(token: str) -> None:
    assert ShareKeys.parse_link(token) is None


def test_keys_are_derived_per_purpose() -> None:
    assert derive_key(SECRET, b"one") != derive_key(SECRET, b"two")
    assert derive_key(SECRET, b"one") != SECRET.encode()
    assert len(derive_key(SECRET, b"one")) == 32


def test_unlock_tokens_are_bound_to_the_share_the_link_and_the_password() -> None:
    share_id, nonce = uuid.uuid4(), new_nonce()
    token = keys().issue_unlock(share_id, nonce, "hash-1")
    grant = keys().verify_unlock(token, share_id, nonce, "hash-1")
    assert grant is not None
    assert grant.expires_at <= int(time.time()) + 60
    assert keys().verify_unlock(token, uuid.uuid4(), nonce, "hash-1") is None
    assert keys().verify_unlock(token, share_id, new_nonce(), "hash-1") is None
    assert keys().verify_unlock(token, share_id, nonce, "hash-2") is None
    assert (
        keys("another secret key of thirty-two bytes").verify_unlock(
            token, share_id, nonce, "hash-1"
        )
        is None
    )
    # Two unlocks are two clients.
    again = keys().verify_unlock(
        keys().issue_unlock(share_id, nonce, "hash-1"), share_id, nonce, "hash-1"
    )
    assert again is not None
    assert again.token_id != grant.token_id


def test_an_account_token_is_no_unlock_token_and_expiry_holds() -> None:
    share_id, nonce = uuid.uuid4(), new_nonce()
    # Signed with SECRET_KEY itself, as account tokens are.
    account = jwt.encode({"sub": str(share_id), "exp": time.time() + 60}, SECRET, "HS256")
    assert keys().verify_unlock(account, share_id, nonce, "h") is None
    expired = ShareKeys(SECRET, -1).issue_unlock(share_id, nonce, "h")
    assert keys().verify_unlock(expired, share_id, nonce, "h") is None
    assert keys().verify_unlock("not.a.jwt", share_id, nonce, "h") is None
    unsigned = jwt.encode({"sub": str(share_id), "exp": time.time() + 60}, None, algorithm="none")
    assert keys().verify_unlock(unsigned, share_id, nonce, "h") is None


def test_repeated_entry_names() -> None:
    names = ["a.txt", "a.txt", "A.TXT", "a (2).txt", ".env", ".env", "x", "x", "x", "a.tar.gz"]
    assert entry_names([*names, "a.tar.gz"]) == [
        "a.txt",
        "a (2).txt",
        "A (3).TXT",
        "a (2) (2).txt",
        ".env",
        ".env (2)",
        "x",
        "x (2)",
        "x (3)",
        "a.tar.gz",
        "a.tar (2).gz",
    ]


@pytest.mark.parametrize(
    ("title", "filename"),
    [(None, "share.zip"), ("", "share.zip"), ("  ..  ", "share.zip"), ("Q3/Q4\\x", "Q3-Q4-x.zip")],
)
def test_archive_file_names(title: str | None, filename: str) -> None:
    assert archive_filename(title) == filename


@pytest.mark.parametrize(
    ("host", "network"),
    [
        ("203.0.113.77", "203.0.113.0/24"),
        ("2001:db8:1234:5678::1", "2001:db8:1234::/48"),
        ("::ffff:198.51.100.9", "198.51.100.0/24"),
        ("unknown", "unknown"),
        ("not an address", "unknown"),
    ],
)
def test_receipts_keep_only_the_network(host: str, network: str) -> None:
    assert truncated_network(host) == network


@pytest.mark.parametrize(
    ("size", "text"),
    [
        (0, "0 bytes"),
        (1023, "1023 bytes"),
        (1024, "1.0 KiB"),
        (5 << 20, "5.0 MiB"),
        (3 << 40, "3072.0 GiB"),
    ],
)
def test_human_sizes(size: int, text: str) -> None:
    assert human_size(size) == text
