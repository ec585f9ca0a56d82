"""Pure parts shared by the transports: source addresses, counters, TLS options."""

from __future__ import annotations

import ssl

import pytest

from bench.protocol.errors import UsageError
from bench.transports.common import (
    TransportOptions,
    TransportStats,
    client_ssl_context,
    parse_source_addrs,
    source_addr,
)


def test_source_addrs_read_ranges_and_lists() -> None:
    """An IPv4 range expands to every address in it; a comma list keeps its order."""
    assert parse_source_addrs("127.0.0.1-127.0.0.4") == ("127.0.0.1", "127.0.0.2", "127.0.0.3", "127.0.0.4")
    assert parse_source_addrs("127.0.0.9, 127.0.0.2,::1") == ("127.0.0.9", "127.0.0.2", "::1")
    assert parse_source_addrs("127.0.0.1-127.0.0.2,127.0.0.7") == ("127.0.0.1", "127.0.0.2", "127.0.0.7")


@pytest.mark.parametrize("text", ["", "localhost", "127.0.0.5-127.0.0.1", "127.0.0.1-x", "10.0.0.0-10.2.0.0"])
def test_bad_source_addrs_are_one_line_usage_errors(text: str) -> None:
    """Anything that is not an address or a forward range is refused, naming the flag."""
    with pytest.raises(UsageError, match="--source-addrs") as info:
        parse_source_addrs(text)
    assert "\n" not in str(info.value)


def test_devices_spread_over_source_addresses() -> None:
    """Device d binds source_addrs[d % n]; without addresses the OS chooses."""
    options = TransportOptions(source_addrs=("127.0.0.1", "127.0.0.2"))
    spread = [source_addr(options, d) for d in range(3)]
    assert spread == [("127.0.0.1", 0), ("127.0.0.2", 0), ("127.0.0.1", 0)]
    assert source_addr(TransportOptions(), 5) is None


def test_stats_merge_by_addition_and_round_trip_through_json() -> None:
    """Counters of two processes add up; JSON keeps every one."""
    a, b = TransportStats(), TransportStats()
    a.messages_sent, a.bytes_sent, b.messages_sent, b.malformed_replies = 3, 100, 4, 2
    a.merge(b)
    again = TransportStats.from_json(a.to_json())
    assert (again.messages_sent, again.bytes_sent, again.malformed_replies) == (7, 100, 2)
    assert again.to_json() == a.to_json()
    assert a.errors == 2


def test_insecure_skips_certificate_checks() -> None:
    """--insecure: no host name check, no certificate verification; the default verifies both."""
    assert client_ssl_context(True).verify_mode == ssl.CERT_NONE
    strict = client_ssl_context(False)
    assert strict.verify_mode == ssl.CERT_REQUIRED and strict.check_hostname
