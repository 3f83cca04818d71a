"""mockserver: a stateful contract mock of Relay Network CDM and eGain Customer Manager."""

__version__ = "0.1.0"
