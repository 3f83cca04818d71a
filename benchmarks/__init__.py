"""Benchmark harness of issue 4: mockserver against a bare-Flask baseline on the same WSGI server.

Run `python -m benchmarks --help`. Not a test: CI runs only `python -m benchmarks --smoke`,
which checks that the harness works, not how fast anything is.
"""
