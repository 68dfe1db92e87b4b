"""The auth service: staff accounts, logins, bearer tokens and sessions over HTTP, and the upkeep
of the ``auth`` schema it owns.

Who is calling, and with which role, is answered by every service, not by this one: the guards,
roles, tokens, sessions and the store they read are the library ``shared/auth``, which each
service imports (services never import each other). This service is the door that changes
them: the ``/api/v1/auth`` routes, its migrations, and forgetting spent tokens and sessions.
"""
