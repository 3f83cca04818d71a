"""Relay Network CDM: move, load and retrieve customers of a client's product groups."""
