"""The payload of every Relais event, one module per service that publishes it.

Importing this package registers every type in ``shared.events.registry``.
"""

from shared.contracts import audit, directory, referrals

__all__ = ["audit", "directory", "referrals"]
