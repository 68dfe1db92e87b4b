"""``python -m tests.chaos`` (``make chaos``): a chaos run, its figures printed and written to
``bench-results/<UTC time>-chaos.json``. Exit 0 when nothing acknowledged was lost,
duplicated or left stuck, every audit chain verifies and no request answered 500; else 1."""

from __future__ import annotations

import argparse
import asyncio
import sys

from tests.chaos.faults import CLUSTER_KINDS, KINDS
from tests.chaos.run import Options, parse_kinds, quiet_logs, run


def main(argv: list[str] | None = None) -> int:
    defaults = Options()
    parser = argparse.ArgumentParser(prog="python -m tests.chaos", description=__doc__)
    parser.add_argument(
        "--duration",
        type=float,
        default=defaults.duration,
        help=f"seconds of traffic and faults (default {defaults.duration:.0f}: the full run)",
    )
    parser.add_argument(
        "--rate",
        type=float,
        default=defaults.rate,
        help=f"referrals a second, both senders together (default {defaults.rate})",
    )
    parser.add_argument("--seed", type=int, default=defaults.seed, help="the random faults' seed")
    parser.add_argument(
        "--faults",
        default=None,
        help=f"fault kinds, comma-separated (default: all: {','.join(KINDS)}; with --hub-cluster"
        f" {','.join(CLUSTER_KINDS)})",
    )
    parser.add_argument(
        "--hub-cluster",
        action="store_true",
        help="the hub as three clustered nats-servers (R3 streams, each leaf linked to all"
        " three); hub-server-kill and hub-server-pause take one of the three",
    )
    parser.add_argument(
        "--every-kind-first", action="store_true", help="each kind once, in order, then at random"
    )
    parser.add_argument("--keep", action="store_true", help="keep the network's folder and logs")
    args = parser.parse_args(argv)
    try:
        known = CLUSTER_KINDS if args.hub_cluster else KINDS
        kinds = parse_kinds(args.faults or ",".join(known), known)
    except ValueError as error:
        parser.error(str(error))
    quiet_logs()
    options = Options(
        duration=args.duration,
        rate=args.rate,
        seed=args.seed,
        kinds=kinds,
        every_kind_first=args.every_kind_first,
        keep=args.keep,
        hub_cluster=args.hub_cluster,
    )
    result = asyncio.run(run(options))
    five_hundreds = sum(
        n
        for statuses in result.document["http_5xx_by_route"].values()
        for status, n in statuses.items()
        if status == "500"
    )
    return 0 if result.verdict.ok and five_hundreds == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
