"""Routing: which tier answers a request (routes such as ``auto``), and which replica of that tier
(load, affinity, breakers, failover). See ``docs/routing.md``."""
