"""``relais status``: per node, its link to the hub, what waits to leave and to arrive, its
consumers' lag, its dead letters and, for the nodes the demo launcher runs, its processes.

Where the figures come from:
- each node's ``GET /api/v1/node/status`` (admin token from the demo's credentials file): its
  streams and consumers, its outbox tables' unsent rows, its dead letters;
- the hub's same answer: ``FROM_<org>`` (how far it copied the node's ``OUTBOX``) and
  ``TO_<org>`` (what is addressed to the node), so outbound = ``OUTBOX.last_seq`` minus the
  last ``OUTBOX`` sequence in ``FROM_<org>``, inbound = ``TO_<org>.last_seq`` minus the last
  ``TO_<org>`` sequence in the node's ``INBOX``;
- each nats-server's monitoring port (``/leafz``): the leaf link;
- the demo launcher's control socket: the processes, and where a stopped node's streams
  stood when it stopped (so the backlog is still counted while it is away).
Whatever cannot be reached is named in ``unreachable``; the figures it would give are ``null``.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer

from deploy.demo_control import ask
from shared.text import gettext as _

Report = dict[str, Any]


async def collect(credentials: Path, nodes: dict[str, Any]) -> Report:
    """Everything ``relais status`` shows about ``nodes`` (from the ``credentials`` file under
    the demo's root), as the ``--json`` document."""
    root = credentials.parent
    report: Report = {"credentials": str(credentials), "launcher": None, "nodes": {}}
    launcher: dict[str, Any] = {}
    try:
        launcher = await ask(root, {"do": "processes"}, wait=5)
        report["launcher"] = "reachable"
    except (OSError, TimeoutError, json.JSONDecodeError):
        report["launcher"] = "unreachable"
    async with httpx.AsyncClient(timeout=3) as client:
        answers = await asyncio.gather(*(_ask_node(client, node) for node in nodes.values()))
    seen = dict(zip(nodes, answers, strict=True))
    hub_id = next((n for n, node in nodes.items() if node["role"] == "secretariat"), None)
    hub = seen.get(hub_id) if hub_id else None
    stopped = launcher.get("stopped", {})
    for node_id, node in nodes.items():
        mine = seen[node_id]
        entry: dict[str, Any] = {
            "org": node["org"],
            "role": node["role"],
            "url": node["url"],
            "ready": mine["ready"],
            "checks": mine["checks"],
            "link": mine["link"],
            "outbound": outbound_backlog(node, mine, hub, stopped.get(hub_id) if hub_id else None),
            "inbound": inbound_backlog(node, mine, hub, stopped.get(node_id)),
            "consumers": _consumers(mine["status"]),
            "dead_letters": mine["status"]["dead_letters"] if mine["status"] else None,
            "processes": [
                p
                for p in launcher.get("processes", [])
                if p["name"] in (f"node-{node_id}", f"nats-{node_id}")
            ],
            "unreachable": mine["unreachable"],
        }
        report["nodes"][node_id] = entry
    return report


async def _ask_node(client: httpx.AsyncClient, node: dict[str, Any]) -> dict[str, Any]:
    """What one node and its nats-server say about themselves; what did not answer."""
    found: dict[str, Any] = {
        "ready": False,
        "checks": {},
        "status": None,
        "link": None,
        "unreachable": [],
    }
    admin = next((u for u in node["users"] if u["role"] == "admin"), None)
    headers = {"Authorization": f"Bearer {admin['token']}"} if admin else {}
    try:
        ready = await client.get(f"{node['url']}/readyz")
        found["ready"] = ready.status_code == 200
        found["checks"] = ready.json().get("checks", {})
        answer = await client.get(f"{node['url']}/api/v1/node/status", headers=headers)
        answer.raise_for_status()
        found["status"] = answer.json()
    except (httpx.HTTPError, ValueError) as exc:
        found["unreachable"].append(f"{node['url']}: {_reason(exc)}")
    monitor = node.get("monitor_url")
    if monitor:
        try:
            leafz = (await client.get(f"{monitor}/leafz")).json()
            leaves = sorted(str(leaf.get("name", "?")) for leaf in leafz.get("leafs") or [])
            if node["role"] == "secretariat":
                found["link"] = {"state": "serving", "leaves": leaves}
            else:
                found["link"] = {"state": "up" if leaves else "down", "leaves": leaves}
        except (httpx.HTTPError, ValueError) as exc:
            # A member whose own nats-server does not answer has no link to the hub.
            state = "unknown" if node["role"] == "secretariat" else "down"
            found["link"] = {"state": state, "leaves": []}
            found["unreachable"].append(f"{monitor}: {_reason(exc)}")
    return found


def _reason(exc: Exception) -> str:
    if isinstance(exc, httpx.HTTPStatusError):
        return f"HTTP {exc.response.status_code}"
    if isinstance(exc, httpx.ConnectError):
        return "connection refused"
    return type(exc).__name__


def _stream(status: dict[str, Any] | None, name: str) -> dict[str, Any] | None:
    if status is None:
        return None
    return next((s for s in status["streams"] if s["name"] == name), None)


def _sourced(stream: dict[str, Any] | None) -> int | None:
    """How far ``stream`` has copied its origin; 0 if it holds nothing yet, ``None`` if unknown."""
    if stream is None:
        return None
    last = stream.get("last_sourced")
    if last:
        return int(last["seq"])
    return 0 if stream["last_seq"] == 0 else None


def outbound_backlog(
    node: dict[str, Any],
    mine: dict[str, Any],
    hub: dict[str, Any] | None,
    hub_stopped: dict[str, Any] | None,
) -> dict[str, Any]:
    """Events written but not yet at the hub: the outbox tables' unsent rows (not yet in the
    node's ``OUTBOX``), and the ``OUTBOX`` messages the hub's ``FROM_<org>`` has not copied."""
    status = mine["status"]
    outbox = _stream(status, "OUTBOX")
    from_org = f"FROM_{node['org']}"
    copied = _sourced(_stream(hub["status"] if hub else None, from_org))
    basis = "hub"
    if copied is None and hub_stopped is not None:
        copied, basis = hub_stopped["positions"].get(from_org), "hub at its stop"
    waiting = None
    if outbox is not None and copied is not None:
        waiting = max(outbox["last_seq"] - copied, 0)
    unsent = status["outbox_unsent"] if status else None
    return {"outbox_unsent": unsent, "not_at_hub": waiting, "counted_from": basis}


def inbound_backlog(
    node: dict[str, Any],
    mine: dict[str, Any],
    hub: dict[str, Any] | None,
    node_stopped: dict[str, Any] | None,
) -> dict[str, Any]:
    """Events at the hub addressed to the node (``TO_<org>``) not yet in its ``INBOX``."""
    to_org = _stream(hub["status"] if hub else None, f"TO_{node['org']}")
    copied = _sourced(_stream(mine["status"], "INBOX"))
    basis = "node"
    if copied is None and node_stopped is not None:
        copied, basis = node_stopped["positions"].get("INBOX"), "node at its stop"
    waiting = None
    if to_org is not None and copied is not None:
        waiting = max(to_org["last_seq"] - copied, 0)
    return {"waiting_at_hub": waiting, "counted_from": basis}


def _consumers(status: dict[str, Any] | None) -> list[dict[str, Any]] | None:
    if status is None:
        return None
    return [
        {"stream": s["name"], **c}
        for s in status["streams"]
        for c in s.get("consumers", [])
        if not s["name"].startswith(("FROM_", "TO_"))
    ]


# -- for people -------------------------------------------------------------------------------


def render(report: Report) -> list[tuple[str, str | None]]:
    """The report as lines for people, each with a colour (or none)."""
    lines: list[tuple[str, str | None]] = []
    unknown = _("unknown")
    label = {
        "link": _("link to the hub"),
        "outbound": _("outbound"),
        "inbound": _("inbound"),
        "consumers": _("consumers"),
        "dead_letters": _("dead letters"),
        "processes": _("processes"),
        "cannot_reach": _("cannot reach"),
    }
    for node_id, node in report["nodes"].items():
        state = _("ready") if node["ready"] else _("not ready")
        lines.append(
            (f"{node_id:<12} {node['url']:<24} {state}", "green" if node["ready"] else "red")
        )
        link = node["link"]
        if link is not None:
            if link["state"] == "serving":
                text = _("%(count)s leaves linked: %(names)s") % {
                    "count": len(link["leaves"]),
                    "names": ", ".join(link["leaves"]) or "-",
                }
            else:
                text = {"up": _("up"), "down": _("down")}.get(link["state"], unknown)
            lines.append((f"    {label['link']:<22} {text}", None))
        out = node["outbound"]
        unsent = out["outbox_unsent"]
        rows = unknown if unsent is None else str(sum(v or 0 for v in unsent.values()))
        at_hub = unknown if out["not_at_hub"] is None else str(out["not_at_hub"])
        if unsent is None and out["not_at_hub"] is None:
            text = unknown
        else:
            text = _("%(rows)s unsent outbox rows, %(stream)s OUTBOX events not yet at the hub") % {
                "rows": rows,
                "stream": at_hub,
            }
        lines.append((f"    {label['outbound']:<22} {text}", None))
        waiting = node["inbound"]["waiting_at_hub"]
        lines.append(
            (
                f"    {label['inbound']:<22} "
                + _("%(count)s events waiting at the hub")
                % {"count": unknown if waiting is None else waiting},
                "yellow" if waiting else None,
            )
        )
        consumers = node["consumers"]
        lagging = [c for c in consumers or [] if c["pending"] or c["ack_pending"]]
        if consumers is None:
            text = unknown
        elif not lagging:
            text = _("%(count)s, all caught up") % {"count": len(consumers)}
        else:
            text = _("%(count)s, %(lagging)s behind") % {
                "count": len(consumers),
                "lagging": len(lagging),
            }
        lines.append((f"    {label['consumers']:<22} {text}", "yellow" if lagging else None))
        for c in lagging:
            lines.append(
                (
                    f"      {c['stream']}/{c['name']}: "
                    + _("%(pending)s pending, %(ack)s unacknowledged, %(redelivered)s redelivered")
                    % {
                        "pending": c["pending"],
                        "ack": c["ack_pending"],
                        "redelivered": c["redelivered"],
                    },
                    "yellow",
                )
            )
        letters = node["dead_letters"]
        lines.append(
            (
                f"    {label['dead_letters']:<22} {unknown if letters is None else letters}",
                "yellow" if letters else None,
            )
        )
        if node["processes"]:
            names = {
                "running": _("running"),
                "restarting": _("restarting"),
                "stopped": _("stopped"),
            }
            text = ", ".join(
                f"{p['name']} {names.get(p['state'], p['state'])}" for p in node["processes"]
            )
            lines.append((f"    {label['processes']:<22} {text}", None))
        for where in node["unreachable"]:
            lines.append((f"    {label['cannot_reach']:<22} {where}", "red"))
    if report["launcher"] != "reachable":
        lines.append(
            (
                _(
                    "The demo launcher does not answer on its control socket: process states"
                    " are not shown."
                ),
                "yellow",
            )
        )
    return lines


def status(
    credentials: Annotated[Path, typer.Option(help="the demo's credentials file")] = Path(
        ".relais/demo/credentials.json"
    ),
    as_json: Annotated[bool, typer.Option("--json", help="output for scripts")] = False,
) -> None:
    """Each node of the demo network: link, backlogs, consumer lag, dead letters, processes."""
    if not credentials.exists():
        typer.secho(
            _("relais status: no %(path)s; is `relais demo` running?") % {"path": credentials},
            err=True,
            fg="red",
        )
        raise typer.Exit(2)
    report = asyncio.run(collect(credentials, json.loads(credentials.read_text())["nodes"]))
    if as_json:
        typer.echo(json.dumps(report, indent=2))
    else:
        for line, colour in render(report):
            typer.secho(line, fg=colour)
    if any(not node["ready"] for node in report["nodes"].values()):
        raise typer.Exit(1)
