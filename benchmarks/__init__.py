"""Benchmarks: the mock against a bare app on the same server, every figure of one run measured in that run.

    python -m benchmarks              # about 10 minutes on 2 cores; prints Markdown (benchmarks/RESULTS.md is one run)
    python -m benchmarks --smoke      # about a minute: checks the harness works, not how fast (CI runs it)
    python -m benchmarks --only serving,in-process

Phases (runner.PHASES): start-up and idle memory; throughput and p99 of moveCustomer and retrieveCustomer, idle and
under the held load; µs per request in process; what the state file costs (a move, a restart, a compaction); what
the shared store costs; start, lookups and resets with up to a million customers. Needs wrk.
"""
