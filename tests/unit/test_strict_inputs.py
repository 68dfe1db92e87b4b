"""Values converted instead of refused are refused (issue 16): a number is not a time, 0 is not
false. Checked on the real declarations (the audit API's filters, the notification rules and
preferences), in a bare FastAPI app: no database is reached before the refusal."""

from __future__ import annotations

from typing import Annotated, Any

import httpx
import pytest
from fastapi import Depends, FastAPI
from pydantic import TypeAdapter, ValidationError

from services.audit.api import filters
from services.notifications.api import Preferences, RuleIn
from shared.inputs import Flag, Moment


def app() -> httpx.AsyncClient:
    api = FastAPI()

    @api.get("/records")
    async def records(where: Annotated[Any, Depends(filters)]) -> dict[str, str]:
        return {"since": str(where.since), "until": str(where.until)}

    @api.put("/rules")
    async def rules(rule: RuleIn) -> dict[str, bool]:
        return {"webhook": rule.webhook}

    @api.put("/preferences")
    async def preferences(p: Preferences) -> dict[str, bool]:
        return {"digest": p.digest}

    return httpx.AsyncClient(transport=httpx.ASGITransport(app=api), base_url="http://node")


@pytest.mark.parametrize("value", ["0.5", "0", "1796299200", "-3", "1e9", " 12 "])
async def test_a_number_is_not_a_time(value: str) -> None:
    async with app() as client:
        answer = await client.get("/records", params={"to": value})
    assert answer.status_code == 422, answer.text
    (error,) = answer.json()["detail"]
    assert error["loc"] == ["query", "to"] and "ISO 8601" in error["msg"]


async def test_a_written_time_is_still_taken() -> None:
    async with app() as client:
        answer = await client.get(
            "/records", params={"from": "2026-12-03T15:00:00Z", "to": "2026-12-04T00:00+01:00"}
        )
    assert answer.status_code == 200, answer.text
    assert answer.json()["since"].startswith("2026-12-03 15:00:00")


@pytest.mark.parametrize("value", [0, 1, "true", "yes", None])
async def test_zero_is_not_false(value: object) -> None:
    fields = (("/rules", "webhook"), ("/rules", "enabled"), ("/preferences", "digest"))
    async with app() as client:
        for path, field in fields:
            answer = await client.put(path, json={field: value})
            assert answer.status_code == 422, (path, field, answer.text)
            assert answer.json()["detail"][0]["loc"] == ["body", field]


async def test_true_and_false_are_taken() -> None:
    async with app() as client:
        assert (await client.put("/rules", json={"webhook": False})).json() == {"webhook": False}
        assert (await client.put("/preferences", json={"digest": True})).json() == {"digest": True}


async def test_a_time_without_its_zone_is_refused_not_a_500() -> None:
    async with app() as client:
        answer = await client.get(
            "/records", params={"from": "2026-12-03T15:00:00Z", "to": "2026-12-04"}
        )
    assert answer.status_code == 422, answer.text
    assert "zone" in answer.json()["detail"][0]["msg"]


def test_the_types_alone() -> None:
    with pytest.raises(ValidationError):
        TypeAdapter(Moment).validate_python(1796299200)
    with pytest.raises(ValidationError):
        TypeAdapter(Flag).validate_python(0)
    assert TypeAdapter(Flag).validate_json("true") is True
