"""The dashboard: the node's web pages for its staff, server-rendered, in French, Arabic and
English. It reads through shared code (``shared.auth``) and, as pages grow, the node's HTTP
API; never through another service's modules."""
