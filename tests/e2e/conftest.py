"""Helpers for end-to-end tests: HTTP clients on the running network's nodes."""

from __future__ import annotations

from typing import Any

import httpx


def user(creds: dict[str, Any], node: str, role: str) -> dict[str, str]:
    return next(u for u in creds["nodes"][node]["users"] if u["role"] == role)


def client(creds: dict[str, Any], node: str, role: str | None = None) -> httpx.AsyncClient:
    headers = {"Authorization": f"Bearer {user(creds, node, role)['token']}"} if role else {}
    return httpx.AsyncClient(base_url=creds["nodes"][node]["url"], headers=headers, timeout=10)
