from __future__ import annotations

import base64

import pytest

from tidings.errors import Unauthorized
from tidings.kit.crypto import fernet_for
from tidings.workspace.keys import KeyCipher, generate_key, key_from_authorization


def test_authorization_header_forms() -> None:
    assert key_from_authorization("Bearer abc") == "abc"
    assert key_from_authorization("bearer  abc ") == "abc"
    # Segment's partner-destination example: key "segment" → Basic c2VnbWVudDo=
    assert key_from_authorization("Basic c2VnbWVudDo=") == "segment"
    assert key_from_authorization("Basic Om5vdXNlcg==") is None  # ":nouser"
    assert key_from_authorization("Digest abc") is None
    assert key_from_authorization("") is None
    assert key_from_authorization(None) is None


@pytest.mark.parametrize(
    "header",
    [
        "Basic !!!",
        "Basic é",  # not ASCII: base64 decoding raises ValueError, not binascii.Error
        "Basic \xff\xfe",
        "Basic " + base64.b64encode(b"\xff\xfe:").decode(),  # base64 of bytes that are not UTF-8
    ],
)
def test_malformed_basic_credentials_are_a_401(header: str) -> None:
    with pytest.raises(Unauthorized) as raised:
        key_from_authorization(header)
    assert raised.value.code == "invalid_authorization"
    assert "base64" in raised.value.message


def test_keys_are_prefixed_by_environment_and_unique() -> None:
    assert generate_key("test").startswith("tdg_test_")
    assert generate_key("production").startswith("tdg_live_")
    assert len({generate_key("test") for _ in range(100)}) == 100


def test_cipher_round_trips_and_rejects_other_secrets() -> None:
    cipher = KeyCipher(fernet_for(b"secret-one", "tidings api keys"))
    other = KeyCipher(fernet_for(b"secret-two", "tidings api keys"))
    ciphertext = cipher.encrypt("tdg_test_abc")
    assert b"tdg_test_abc" not in ciphertext
    assert cipher.matches(ciphertext, "tdg_test_abc")
    assert not cipher.matches(ciphertext, "tdg_test_abd")
    assert not other.matches(ciphertext, "tdg_test_abc")
    assert other.decrypt(ciphertext) is None
