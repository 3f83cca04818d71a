"""State: fixtures, the store that runs commands on state, persistence, ids and time."""
