"""Wiring of the referrals service: its router, schema, INBOX consumer, NATS ingress and the
deadline clock."""

from __future__ import annotations

from pathlib import Path

from services.referrals import clock, commands, consumer, forms, metrics, roster
from services.referrals.api import router
from shared.service import Service, ServiceContext


async def start(ctx: ServiceContext) -> None:
    forms.forms()  # a broken data file stops the node now, not at the first referral
    forms.reasons()
    await roster.install(ctx)  # before the consumers: their first envelopes use it
    for subscription in consumer.subscriptions(ctx):
        await ctx.subscribe(subscription)
    for subject, responder in commands.commands(ctx).items():
        await ctx.bus.serve(subject, responder, queue="referrals")
    ctx.background("deadline clock", lambda: clock.run(ctx))
    metrics.watch(ctx)


service = Service(
    name="referrals",
    router=router,
    migrations=Path(__file__).parent / "migrations",
    start=start,
)
