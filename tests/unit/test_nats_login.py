"""How a node's ``RELAIS_NATS_URL`` becomes nats-py's servers and credentials."""

import pytest

from shared.bus import login, shown


def test_credentials_leave_the_urls_to_apply_to_every_server() -> None:
    assert login("nats://hub:s3cret@10.0.0.1:4222, nats://10.0.0.2:4222,nats://10.0.0.3:4222") == {
        "servers": ["nats://10.0.0.1:4222", "nats://10.0.0.2:4222", "nats://10.0.0.3:4222"],
        "user": "hub",
        "password": "s3cret",
    }


def test_a_user_alone_is_a_token_and_a_list_works_as_a_string_does() -> None:
    assert login(["tls://t0k3n@hub.example.org:4222"]) == {
        "servers": ["tls://hub.example.org:4222"],
        "token": "t0k3n",
    }
    assert login("nats://[::1]:4222") == {"servers": ["nats://[::1]:4222"]}


def test_logs_show_the_addresses_without_the_password() -> None:
    assert shown("nats://relais:pw@127.0.0.1:4222") == "nats://127.0.0.1:4222"


def test_no_address_is_refused() -> None:
    with pytest.raises(ValueError):
        login(" , ")
