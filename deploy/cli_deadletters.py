"""``relais deadletters list|show|redeliver|discard``: the messages a node's consumers gave up
on, and what to do with each once its cause is fixed. Through the node's API, as one of its
administrators (``deploy/node_client.py``); every action is in the node's audit chain.

Messages follow ``RELAIS_LANG`` (or ``LANG``): French, Arabic or English. Times are Morocco's.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer

from deploy.node_client import (
    DEMO_CREDENTIALS,
    AsJson,
    CredentialsFile,
    NodeId,
    Token,
    Url,
    User,
    call,
    local_time,
    print_json,
    target,
)
from shared.i18n import N_
from shared.text import gettext as _

deadletters_app = typer.Typer(
    help="Messages the node's consumers gave up on: list, show, redeliver, discard.",
    no_args_is_help=True,
)
API = "/api/v1/node/dead-letters"
STATES = {
    "open": N_("open"),
    "redelivered": N_("redelivered"),
    "discarded": N_("discarded"),
}
LetterId = Annotated[int, typer.Argument(help="the dead letter's number (from the list)", min=1)]


def why(letter: dict[str, Any]) -> str:
    """Why the consumer gave up, in the operator's words."""
    if letter.get("why") == "terminated":
        return _("refused: %(reason)s") % {"reason": letter.get("reason") or "-"}
    return _("failed %(count)s times") % {"count": letter.get("deliveries") or "?"}


def state(letter: dict[str, Any]) -> str:
    code = str(letter.get("state") or "open")
    return _(STATES[code]) if code in STATES else code


def rows(letters: list[dict[str, Any]]) -> list[str]:
    """The list as lines: number, when, consumer, where, event type, why, state."""
    lines = [
        _("Dead letters: %(count)s (times in Morocco, Africa/Casablanca)") % {"count": len(letters)}
    ]
    for letter in letters:
        where = f"{letter['stream']}#{letter['stream_seq']}"
        lines.append(
            f"{letter['id']:>5}  {local_time(letter.get('at'))}  "
            f"{letter['consumer']:<14} {where:<14} {letter.get('event_type') or '?':<40} "
            f"{state(letter):<12} {why(letter)[:80]}"
        )
    return lines


def details(letter: dict[str, Any]) -> list[str]:
    """One letter, field by field (ids and types; the content stays in its stream)."""
    fields = [
        (_("number"), str(letter["id"])),
        (_("when"), local_time(letter.get("at"))),
        (_("consumer"), letter["consumer"]),
        (_("stream"), f"{letter['stream']} #{letter['stream_seq']}"),
        (_("subject"), letter.get("subject") or "-"),
        (_("event type"), letter.get("event_type") or "-"),
        (_("event id"), letter.get("event_id") or "-"),
        (_("why"), why(letter)),
        (_("deliveries"), str(letter.get("deliveries") or "-")),
        (_("state"), state(letter)),
        (_("redeliveries tried"), str(letter.get("attempts", 0))),
    ]
    if letter.get("last_error"):
        fields.append((_("last failure"), letter["last_error"]))
    if letter.get("handled_at"):
        fields.append((_("handled by"), str(letter.get("handled_by") or "-")))
        fields.append((_("handled at"), local_time(letter["handled_at"])))
    if letter.get("note"):
        fields.append((_("reason for discarding"), letter["note"]))
    width = max(len(label) for label, _value in fields)
    return [f"{label:<{width}}  {value}" for label, value in fields]


@deadletters_app.command("list")
def list_letters(
    limit: Annotated[int, typer.Option(help="the most recent N", min=1, max=1000)] = 100,
    url: Url = None,
    token: Token = None,
    user: User = None,
    node: NodeId = None,
    credentials: CredentialsFile = DEMO_CREDENTIALS,
    as_json: AsJson = False,
) -> None:
    """The most recent dead letters, newest last, with what was done with each."""
    where = target(url, token, user, node, credentials)
    letters = call(where, "GET", API, limit=limit)
    if as_json:
        print_json(letters)
        return
    for line in rows(letters):
        typer.echo(line)


@deadletters_app.command("show")
def show(
    letter_id: LetterId,
    url: Url = None,
    token: Token = None,
    user: User = None,
    node: NodeId = None,
    credentials: CredentialsFile = DEMO_CREDENTIALS,
    as_json: AsJson = False,
) -> None:
    """One dead letter: where its message is, why it was given up on, what was done since."""
    letter = call(target(url, token, user, node, credentials), "GET", f"{API}/{letter_id}")
    if as_json:
        print_json(letter)
        return
    for line in details(letter):
        typer.echo(line)


@deadletters_app.command("redeliver")
def redeliver(
    letter_id: LetterId,
    url: Url = None,
    token: Token = None,
    user: User = None,
    node: NodeId = None,
    credentials: CredentialsFile = DEMO_CREDENTIALS,
    as_json: AsJson = False,
) -> None:
    """Hand the message to its consumer again, once its cause is fixed. An event that was
    already applied is recognised and not applied twice. Exit 1 if the consumer fails again."""
    letter = call(
        target(url, token, user, node, credentials), "POST", f"{API}/{letter_id}/redeliver"
    )
    if as_json:
        print_json(letter)
        return
    typer.secho(
        _("Dead letter %(id)s redelivered: %(consumer)s handled it.")
        % {"id": letter["id"], "consumer": letter["consumer"]},
        fg="green",
    )


@deadletters_app.command("discard")
def discard(
    letter_id: LetterId,
    reason: Annotated[str, typer.Option(help="why it is set aside (no personal data)")],
    url: Url = None,
    token: Token = None,
    user: User = None,
    node: NodeId = None,
    credentials: CredentialsFile = DEMO_CREDENTIALS,
    as_json: AsJson = False,
) -> None:
    """Set a dead letter aside for good, saying why; it is no longer offered for redelivery."""
    letter = call(
        target(url, token, user, node, credentials),
        "POST",
        f"{API}/{letter_id}/discard",
        {"reason": reason},
    )
    if as_json:
        print_json(letter)
        return
    typer.secho(_("Dead letter %(id)s discarded.") % {"id": letter["id"]}, fg="green")
