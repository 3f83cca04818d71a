"""The contract stage: route, check and decode requests, check responses, all from the spec."""
