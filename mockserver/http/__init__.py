"""Serving: the HTTP apps, the request exchange, rendering, the servers that run them."""
