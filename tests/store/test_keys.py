from __future__ import annotations

import hashlib

import pytest

from respgate.config import KeyConfig
from respgate.store.keys import ApiKeys, KeyConfigError

KEY_A = "sk-a-" + "1" * 40
KEY_B = "sk-b-" + "2" * 40


def test_no_keys_means_open_with_the_empty_tenant() -> None:
    keys = ApiKeys.from_config([])
    assert keys.open
    assert keys.tenant_for(None) == ""


def test_bearer_tokens_map_to_their_tenant_from_each_source() -> None:
    keys = ApiKeys.from_config(
        [
            KeyConfig(tenant="a", key=KEY_A),
            KeyConfig(tenant="b", key_env="B_KEY"),
            KeyConfig(tenant="c", sha256=hashlib.sha256(b"sk-c-" + b"3" * 40).hexdigest()),
        ],
        environ={"B_KEY": KEY_B},
    )
    assert not keys.open
    assert keys.tenant_for(f"Bearer {KEY_A}") == "a"
    assert keys.tenant_for(f"bearer {KEY_B}") == "b"
    assert keys.tenant_for("Bearer sk-c-" + "3" * 40) == "c"


@pytest.mark.parametrize(
    "header", [None, "", "Bearer", "Bearer ", f"Basic {KEY_A}", "Bearer wrong", KEY_A]
)
def test_missing_or_wrong_tokens_have_no_tenant(header: str | None) -> None:
    assert ApiKeys.from_config([KeyConfig(tenant="a", key=KEY_A)]).tenant_for(header) is None


def test_only_hashes_are_kept() -> None:
    keys = ApiKeys.from_config([KeyConfig(tenant="a", key=KEY_A)])
    assert KEY_A not in repr(vars(keys))


@pytest.mark.parametrize(
    "entry",
    [
        KeyConfig(tenant="", key=KEY_A),
        KeyConfig(tenant="a"),
        KeyConfig(tenant="a", key=KEY_A, sha256="00" * 32),
        KeyConfig(tenant="a", key="short"),
        KeyConfig(tenant="a", key_env="UNSET_VARIABLE"),
        KeyConfig(tenant="a", sha256="xyz"),
    ],
)
def test_bad_entries_are_refused_with_their_position(entry: KeyConfig) -> None:
    with pytest.raises(KeyConfigError, match=r"keys\[1\]"):
        ApiKeys.from_config([KeyConfig(tenant="ok", key=KEY_B), entry], environ={})
