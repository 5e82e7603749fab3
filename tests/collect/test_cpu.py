"""collect/cpu.py: when the process's CPU no request thread ran is charged to a request."""

from __future__ import annotations

from time import process_time_ns

from latency_ledger.collect.accounting import CHARGED
from latency_ledger.collect.cpu import FlightClock, ProcessWindow

MS = 1_000_000


def _started(flight: FlightClock, unclaimed_ns: int, flying: int = 1) -> tuple[int, int, int, int]:
    """A request that began when the process's clock read ``unclaimed_ns`` less than now
    and nothing was charged since: that much CPU ran in no request thread."""
    flight.in_flight += 1
    flight.begun += 1
    return (process_time_ns() - unclaimed_ns, CHARGED.ns, flying, flight.begun)


def test_a_lone_request_waiting_for_native_threads_gets_all_their_cpu() -> None:
    flight = FlightClock()
    start = _started(flight, 100 * MS)
    threads, bound, _ = flight.native_threads(start, 90 * MS, 0, 100 * MS, 5 * MS)
    assert 100 * MS <= bound <= 110 * MS  # the clock moved on a little since
    assert threads == bound
    assert flight.in_flight == 0


def test_requests_in_flight_together_share_it_evenly_with_the_whole_as_bound() -> None:
    flight = FlightClock()
    start = _started(flight, 90 * MS, flying=2)  # one other in flight when it began
    flight.begun += 1  # and one more began meanwhile
    threads, bound, _ = flight.native_threads(start, 90 * MS, 0, 100 * MS, 5 * MS)
    assert bound >= 90 * MS
    assert threads == bound // 3


def test_no_charge_where_the_cpu_does_not_look_like_threads_working_for_it() -> None:
    flight = FlightClock()
    cases = {
        "never off its CPU outside its waits": (0, 100 * MS, 5 * MS),
        "idle far longer than the CPU (a sleep, while others ran)": (800 * MS, 900 * MS, 5 * MS),
        "a small share of a long life (queued behind others)": (20 * MS, 3_000 * MS, 5 * MS),
        "less than twice its own CPU": (20 * MS, 100 * MS, 30 * MS),
    }
    for why, (idle, wall, cpu) in cases.items():
        start = _started(flight, 50 * MS)
        assert flight.native_threads(start, idle, 0, wall, cpu)[:2] == (0, 0), why
    # the collector's own work (a first profile's import) is not a native thread's
    start = _started(flight, 50 * MS)
    assert flight.native_threads(start, 40 * MS, 50 * MS, 100 * MS, 5 * MS)[:2] == (0, 0)


def test_the_process_window_returns_both_clocks_once_per_window() -> None:
    window = ProcessWindow()
    assert window.add(3 * MS, window.process0 + 10 * MS) is None  # the window is not over
    window.last_ns -= 2_000_000_000  # two seconds later
    assert window.add(4 * MS, window.process0 + 20 * MS) == (20 * MS, 7 * MS)
    assert window.booked == 0
    # a clock that went back (a forked child's, before after_fork) counts as nothing
    window.last_ns -= 2_000_000_000
    assert window.add(1, window.process0 - 5) == (0, 1)
