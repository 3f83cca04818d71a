"""Test helpers behind the pytest plugin (`mockserver.pytest_plugin`): the server process and a test's session.

Import these for type hints (`def test_x(mock_session: MockSession)`); the
plugin itself imports them only when a fixture is first used.
"""

from mockserver.testing.harness import Fault, MockServer, MockServerError, MockSession, WaitTimeout

__all__ = ["Fault", "MockServer", "MockServerError", "MockSession", "WaitTimeout"]
