"""The retention window of sent events and processed ids: never shorter than the time an event
can come again, and every consumer of every service held to the bound it assumes."""

from __future__ import annotations

import hashlib
import importlib
import inspect
import pkgutil
from pathlib import Path
from unittest.mock import Mock

import pytest
from pydantic import ValidationError

import services
from shared import pruning
from shared.bus import Subscription
from shared.db import load_migrations
from shared.federation import DAY, DEADLETTER, node_streams
from shared.settings import NodeSettings

HOUR = 3600.0


def settings(**extra: object) -> NodeSettings:
    return NodeSettings.model_validate(
        {
            "node_id": "sanad",
            "org": "sanad",
            "secret_key": "s" * 20,
            "nats_url": "nats://127.0.0.1:4222",
            "database_url": "postgresql://x",
            **extra,
        }
    )


def every_subscription() -> list[Subscription]:
    """Each consumer a service declares: what its ``consumer`` module's functions return."""
    found: list[Subscription] = []
    for info in pkgutil.iter_modules(services.__path__):
        try:
            module = importlib.import_module(f"services.{info.name}.consumer")
        except ModuleNotFoundError:
            continue
        for _, function in inspect.getmembers(module, inspect.isfunction):
            if function.__module__ != module.__name__:
                continue
            result = function(Mock())
            for item in result if isinstance(result, list) else [result]:
                if isinstance(item, Subscription):
                    found.append(item)
    return found


def test_a_redelivery_span_counts_each_delivery_and_each_back_off() -> None:
    # 3 deliveries of up to 10 s each, then 1 s and 5 s of back-off between them.
    assert pruning.redelivery_span(3, (1.0, 5.0, 30.0), 10.0) == 36.0
    # The last back-off repeats when there are more deliveries than delays.
    assert pruning.redelivery_span(4, (1.0, 5.0), 0.0) == 11.0


def test_every_consumer_stops_redelivering_within_the_bound_the_window_assumes() -> None:
    subscriptions = every_subscription()
    assert {s.durable for s in subscriptions} >= {"referrals", "directory", "audit"}
    for s in subscriptions:
        span = pruning.redelivery_span(s.max_deliver, s.retry_delays, s.ack_wait)
        assert span <= pruning.LONGEST_REDELIVERY, f"{s.stream}/{s.durable}: {span} s"
        # The brief's rougher reckoning, max_deliver times the longest back-off, fits too.
        assert s.max_deliver * max(s.retry_delays) <= pruning.LONGEST_REDELIVERY


def test_the_minimum_window_outlasts_the_duplicate_window_and_the_redeliveries() -> None:
    windows = [s.duplicate_window for s in node_streams("sanad", hub_domain="hub", is_hub=False)]
    assert pruning.duplicate_window() == max(windows) == 120.0
    assert pruning.minimum_window() >= max(pruning.duplicate_window(), pruning.LONGEST_REDELIVERY)


def test_a_window_shorter_than_the_minimum_is_refused_at_start() -> None:
    floor = pruning.minimum_window() / HOUR
    with pytest.raises(ValidationError, match="shorter than the minimum") as refused:
        settings(event_retention_hours=floor - 0.5)
    assert refused.value.errors()[0]["loc"] == ("event_retention_hours",)
    assert settings(event_retention_hours=floor).event_retention_hours == floor


def test_the_default_window_outlasts_what_the_streams_keep() -> None:
    # A consumer made afresh (a restored node) is handed everything its stream still holds;
    # the default keeps the processed ids at least as long, so none of it is applied twice.
    # (DEADLETTER keeps advisories, which name a message; they are not events to apply.)
    streams = node_streams("sanad", hub_domain="hub", is_hub=False)
    max_age = max(s.max_age or 0 for s in streams if s.name != DEADLETTER)
    assert pruning.stream_max_age() == max_age == 30 * DAY
    assert settings().event_retention_hours * HOUR > max_age


def test_each_migration_carries_the_sha256_of_its_file(tmp_path: Path) -> None:
    folder = tmp_path / "svc" / "migrations"
    folder.mkdir(parents=True)
    (folder / "0001_init.sql").write_bytes(b"CREATE TABLE t (id int);\n")
    (migration,) = load_migrations(folder)
    assert migration.name == "svc/0001_init"
    assert migration.path == folder / "0001_init.sql"
    assert migration.checksum == hashlib.sha256(b"CREATE TABLE t (id int);\n").hexdigest()
