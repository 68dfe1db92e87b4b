"""Who a node's spans say they come from: the node, with the service as an attribute."""

from __future__ import annotations

from shared import telemetry


def test_every_process_of_a_node_reports_as_the_node() -> None:
    referrals = telemetry.resource("referrals", node_id="sanad").attributes
    directory = telemetry.resource("directory+audit", node_id="sanad").attributes
    other_node = telemetry.resource("referrals", node_id="amal").attributes
    assert referrals["service.name"] == directory["service.name"] == "relais-sanad"
    assert other_node["service.name"] == "relais-amal"
    assert (referrals["relais.service"], directory["relais.service"]) == (
        "referrals",
        "directory+audit",
    )
