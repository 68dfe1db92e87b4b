"""``relais outbox replay --since``: publish again what the node's services already sent, from
an outbox sequence (of one service) or a time on; after a JetStream folder was lost, or for a
member that missed events. Through the node's API, as one of its administrators; audited.

Repeats are harmless: within JetStream's duplicate window (2 minutes) the broker drops them,
beyond it every consumer recognises the event by its id and applies nothing twice.
"""

from __future__ import annotations

from typing import Annotated

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
    print_json,
    target,
)
from shared.text import gettext as _

outbox_app = typer.Typer(
    help="The node's outbox: what its services sent, kept in PostgreSQL.", no_args_is_help=True
)


@outbox_app.command("replay")
def replay(
    since: Annotated[
        str,
        typer.Option(
            help="an outbox sequence (with --service) or a time: 2026-12-01T08:00 (Morocco's"
            " time unless an offset is given)"
        ),
    ],
    service: Annotated[
        str | None, typer.Option(help="one service only (referrals, directory, ...)")
    ] = None,
    url: Url = None,
    token: Token = None,
    user: User = None,
    node: NodeId = None,
    credentials: CredentialsFile = DEMO_CREDENTIALS,
    as_json: AsJson = False,
) -> None:
    """Publish again every event the node's services wrote from --since on, sent or not."""
    body = {"since": since, "service": service}
    answer = call(
        target(url, token, user, node, credentials), "POST", "/api/v1/node/outbox/replay", body
    )
    if as_json:
        print_json(answer)
        return
    for name, figures in answer["services"].items():
        typer.echo(
            _("%(service)s: %(count)s events published again (from outbox sequence %(seq)s)")
            % {"service": name, "count": figures["replayed"], "seq": figures["from_seq"] or "-"}
        )
    typer.secho(
        _("%(count)s events published again in all.") % {"count": answer["replayed"]}, fg="green"
    )
