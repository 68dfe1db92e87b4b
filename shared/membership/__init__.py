"""Membership of the network: how a node joins (its application, the credentials the hub issues,
a change of its keys) and what a member's account at the hub grants it (the accounts file).

Both the hub's directory (which admits members and rewrites the accounts) and the deployment
tools (``relais node init``, ``relais hub admit``) use them; the running of the hub's
nats-server from the roster is the directory's own (``services/directory/hub_server.py``).
"""
