"""Tools for checking other servers against the spec: `mockserver contract` and `mockserver proxy`."""
