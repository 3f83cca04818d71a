import urllib.error
import urllib.request


def move(mock_session, group):
    """Stands for your client code: the mock's URL, the session's headers."""
    url = f"{mock_session.url}/cdm/client/demo/customer/BAK-11984-007/move/{group}"
    request = urllib.request.Request(url, method="PUT", headers=mock_session.headers)
    try:
        with urllib.request.urlopen(request) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


def test_the_move_is_retried_after_an_outage(mock_session):
    with mock_session.fault(operationId="moveCustomer", status=500, times=1):
        assert move(mock_session, "vip") == 500
        assert move(mock_session, "vip") == 200
    assert move(mock_session, "vip") == 409  # this test's own state: moved for good
    assert mock_session.count(operationId="moveCustomer") == 3
    assert mock_session.count(invalid=True) == 0  # no request the spec rejects
