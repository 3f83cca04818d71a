"""The QA toolkit: per-test sessions, fault and latency rules, the request journal, scenarios."""
