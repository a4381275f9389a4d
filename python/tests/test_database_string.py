"""The database string from Python: libpq's parameters checked with their names, and a server
that accepts the connection and never answers ends the call within ``connect_timeout``. No
server is needed: the listener below is a socket nobody answers on."""

import socket
import time

import pytest

import inflight


def test_a_bad_parameter_is_named():
    with pytest.raises(inflight.InvalidInputError) as e:
        inflight.open_database("postgres://u@127.0.0.1:1/x?sslmode=verify_full", "a")
    assert "verify_full" in str(e.value)
    with pytest.raises(inflight.InvalidInputError) as e:
        inflight.open_database("host=127.0.0.1 sslpassword=x", "a")
    assert '"sslpassword"' in str(e.value)


def test_a_server_that_never_answers_fails_within_the_connect_timeout():
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)  # the kernel completes the handshakes; nobody reads a byte
    port = listener.getsockname()[1]
    try:
        started = time.monotonic()
        with pytest.raises(inflight.DatabaseError) as e:
            inflight.open_database(
                f"postgres://u@127.0.0.1:{port}/x?connect_timeout=2&sslmode=disable", "a"
            )
        took = time.monotonic() - started
        assert "start-up within 2 s" in str(e.value)
        assert 1.9 <= took < 6, took
    finally:
        listener.close()


def test_kept_changing_is_an_inflight_error():
    assert issubclass(inflight.KeptChangingError, inflight.InflightError)
