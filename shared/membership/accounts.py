"""The hub's NATS accounts, generated from the directory (DESIGN.md §3, isolation).

One account per member organisation (``ORG_<org>``) holding its ``FROM_`` and ``TO_`` streams,
one ``HUB`` account for ``ROUTER`` and the secretariat's own streams, and ``SYS``. They are
joined only by the exports and imports written here, each granted to one account: an
organisation's leaf, even one it has modified, reaches nothing of another organisation's or of
the hub's, and a message it forges on its own delivery subject makes the hub's streams act in
its own account only. The leaf's user (its nkey) may only reset its own consumer, send on its
own delivery subject and answer its own flow control (``publish`` is what the leaf may send into
the hub; ``subscribe`` what the hub may send to it), and may log in only as a leaf, once at a
time (``max_leafnodes: 1``: a second leaf made with a copy of the nkey is refused).

The passwords of the ``SYS`` and ``HUB`` users are not here: the file includes
``users-sys.conf`` and ``users-hub.conf``, written once by ``relais hub init``, so that the
directory can rewrite this file without holding any secret.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

from shared.federation import (
    DEFAULT_QUOTA,
    HUB_ACCOUNT,
    INBOX_CONSUMER,
    OUTBOX_CONSUMER,
    ROUTER,
    ROUTER_CONSUMER,
    Quota,
    account,
    account_api,
    inbox_reset_subject,
    to_consumer,
)

SYSTEM_ACCOUNT = "SYS"


@dataclass(frozen=True)
class OrgAccount:
    """A member's account; ``nkey`` is its leaf user's public key, ``None`` while it may not
    connect (suspended, or its credentials expired)."""

    org: str
    nkey: str | None


def leaf_permissions(org: str, hub_domain: str) -> dict[str, dict[str, list[str]]]:
    """What the hub lets org's leaf send in and receive: its own links, nothing else.
    (``$JSC.R.>`` carries the replies of the servers' own source requests.)"""
    return {
        "publish": {
            "allow": [
                inbox_reset_subject(org, hub_domain),
                f"fed.from.{org}",
                f"$JS.FC.TO_{org}.{INBOX_CONSUMER}.*",
                "$JSC.R.>",
            ]
        },
        "subscribe": {
            "allow": [
                f"$JS.{org}.API.CONSUMER.RESET.OUTBOX.{OUTBOX_CONSUMER}",
                f"fed.to.{org}",
                f"$JS.FC.OUTBOX.{OUTBOX_CONSUMER}.*",
                "$JSC.R.>",
            ]
        },
    }


def _q(value: object) -> str:
    return json.dumps(value)  # a JSON value is a valid nats-server configuration value


def account_jetstream(quota: Quota, replicas: int = 1) -> dict[str, object]:
    """An organisation account's JetStream limits: room for its two streams (each within
    ``quota``, which the streams must declare) and their two consumers, no more. The hub's own
    clients make them; the leaf makes nothing there."""
    return {
        "max_file": quota.account_storage(replicas),
        "max_mem": 64 * 1024 * 1024,
        "max_streams": 2,
        "max_consumers": 4,
        "max_bytes_required": True,
    }


def _org_account(
    member: OrgAccount, hub_domain: str, limits: dict[str, object], leaf_links: int
) -> str:
    org, name = member.org, account(member.org)
    users = ""
    if member.nkey is not None:
        user = {
            "nkey": member.nkey,
            "allowed_connection_types": ["LEAFNODE"],
            "permissions": leaf_permissions(org, hub_domain),
        }
        users = f"    users: [{_q(user)}]\n"
    reset = f"$JS.API.CONSUMER.RESET.{ROUTER}.{to_consumer(org)}"
    return (
        f"  {name}: {{\n"
        f"    jetstream: {_q(limits)}\n"
        # One leaf link per credential: a copy of the nkey is refused while the node is linked.
        f"    limits: {{ max_leafnodes: {leaf_links} }}\n"
        f"{users}"
        "    exports: [\n"
        f'      {{ service: "$JS.API.>", accounts: [{HUB_ACCOUNT}] }}\n'
        f'      {{ stream: "hub.from.{org}", accounts: [{HUB_ACCOUNT}] }}\n'
        f'      {{ service: "$JS.FC.FROM_{org}.{ROUTER_CONSUMER}.*", '
        f"accounts: [{HUB_ACCOUNT}] }}\n"
        "    ]\n"
        "    imports: [\n"
        f'      {{ service: {{ account: {HUB_ACCOUNT}, subject: "{reset}" }}, '
        f'to: "JS.{HUB_ACCOUNT}.API.CONSUMER.RESET.{ROUTER}.{to_consumer(org)}" }}\n'
        f'      {{ stream: {{ account: {HUB_ACCOUNT}, subject: "hub.to.{org}" }} }}\n'
        f"      {{ service: {{ account: {HUB_ACCOUNT}, "
        f'subject: "$JS.FC.{ROUTER}.{to_consumer(org)}.*" }} }}\n'
        "    ]\n"
        "  }\n"
    )


def render_accounts(
    members: Sequence[OrgAccount],
    *,
    hub_domain: str,
    quota: Quota = DEFAULT_QUOTA,
    replicas: int = 1,
    leaf_links: int = 1,
) -> str:
    """The ``accounts`` block and ``system_account`` of the hub's configuration; each member's
    leaf may hold ``leaf_links`` links at once (one: a copy of its nkey is refused)."""
    limits = account_jetstream(quota, replicas)
    chosen = sorted(members, key=lambda m: m.org)
    exports, imports = [], []
    for m in chosen:
        org, name = m.org, account(m.org)
        exports += [
            f'      {{ service: "$JS.API.CONSUMER.RESET.{ROUTER}.{to_consumer(org)}", '
            f"accounts: [{name}] }}",
            f'      {{ stream: "hub.to.{org}", accounts: [{name}] }}',
            f'      {{ service: "$JS.FC.{ROUTER}.{to_consumer(org)}.*", accounts: [{name}] }}',
        ]
        imports += [
            f'      {{ service: {{ account: {name}, subject: "$JS.API.>" }}, '
            f'to: "{account_api(org)}.>" }}',
            f'      {{ stream: {{ account: {name}, subject: "hub.from.{org}" }} }}',
            f"      {{ service: {{ account: {name}, "
            f'subject: "$JS.FC.FROM_{org}.{ROUTER_CONSUMER}.*" }} }}',
        ]
    hub = (
        f"  {HUB_ACCOUNT}: {{\n"
        "    jetstream: enabled\n"
        '    include "users-hub.conf"\n'
        "    exports: [\n" + "".join(line + "\n" for line in exports) + "    ]\n"
        "    imports: [\n" + "".join(line + "\n" for line in imports) + "    ]\n"
        "  }\n"
    )
    return (
        "# The hub's NATS accounts, written by the hub's directory from its roster: do not edit.\n"
        f"system_account: {SYSTEM_ACCOUNT}\n"
        "accounts {\n"
        f'  {SYSTEM_ACCOUNT}: {{ include "users-sys.conf" }}\n'
        f"{hub}" + "".join(_org_account(m, hub_domain, limits, leaf_links) for m in chosen) + "}\n"
    )
