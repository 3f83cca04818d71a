"""Serving: the HTTP apps, the request pipeline, rendering, the servers that run them."""
