"""When a repeat, a pool wait or a statement is a finding: the kinds and their thresholds.

Contract: the four kind names a :class:`~latency_ledger.model.Finding` carries,
:class:`Thresholds` (validated on construction: a bad value is a
:class:`~latency_ledger.errors.ConfigError`, each default with its source beside it) and
:func:`is_setup_statement`, which tells the connection and transaction setup statements
(``SET``, ``SHOW``, ``PRAGMA``, ``BEGIN``/``COMMIT``, savepoints) that are never N+1 or
slow-statement findings. Pure values; imports nothing of the findings package.
"""

from __future__ import annotations

from dataclasses import dataclass

from latency_ledger.errors import ConfigError

N_PLUS_ONE = "n_plus_one"
CHATTY_CALLS = "chatty_calls"
POOL_WAIT = "pool_wait"
SLOW_STATEMENT = "slow_statement"


@dataclass(frozen=True, slots=True, kw_only=True)
class Thresholds:
    """When a repeat is a finding. Every default says where it comes from."""

    # Sentry's N+1 DB query detector, as documented at
    # docs.sentry.io/product/issues/issue-details/performance-issues/n-one-queries/ :
    # the repeating spans must number "usually five" and their total duration "must
    # exceed 50ms" (older versions of that page said 100 ms); both are per-project
    # settings there too. Sentry only looks at sequential, non-overlapping spans; we
    # also count concurrent ones, costed by what they held the request up.
    n_plus_one_min_repeats: int = 5
    n_plus_one_min_ns: int = 50_000_000
    # Our addition: a fixed 50 ms floor misses the loop that dominates a fast endpoint
    # (20 x 2 ms selects in a 60 ms request). A repeat that costs at least this share
    # of its request's wall time is reported as well.
    n_plus_one_min_fraction: float = 0.10
    # A loop of outgoing calls is the network form of the same mistake (batch the
    # calls), so the same rule applies.
    chatty_min_repeats: int = 5
    chatty_min_ns: int = 50_000_000
    chatty_min_fraction: float = 0.10
    # An uncontended pool checkout takes microseconds; a millisecond per request means
    # requests queue for a connection or open a new one each time.
    pool_wait_min_ns: int = 1_000_000
    # Slow statements are a ranking of statements that are slow: one whose own time at
    # p50 is under both of these is a fast lookup, not a finding however often it runs
    # (its count shows in N+1 findings). 1 ms: a primary-key lookup takes tens of
    # microseconds on SQLite (0.02 ms at p50 on one app tried, issue 9) and well under a
    # millisecond on loopback PostgreSQL; 5% of the endpoint's p50 is where one statement
    # starts to matter to its latency.
    slow_statement_min_ns: int = 1_000_000
    slow_statement_min_fraction: float = 0.05
    # This many slow statements are reported per endpoint / overall.
    slow_statements_top: int = 5
    overall_slow_statements_top: int = 10

    def __post_init__(self) -> None:
        counts = (
            self.n_plus_one_min_repeats,
            self.chatty_min_repeats,
            self.slow_statements_top,
            self.overall_slow_statements_top,
        )
        if (
            any(c < 0 for c in counts)
            or min(self.n_plus_one_min_repeats, self.chatty_min_repeats) < 2
        ):
            raise ConfigError("finding thresholds: repeat counts must be >= 2 and tops >= 0")
        if (
            min(
                self.n_plus_one_min_ns,
                self.chatty_min_ns,
                self.pool_wait_min_ns,
                self.slow_statement_min_ns,
            )
            < 0
        ):
            raise ConfigError("finding thresholds: times must be >= 0 ns")
        for share in (
            self.n_plus_one_min_fraction,
            self.chatty_min_fraction,
            self.slow_statement_min_fraction,
        ):
            if not 0.0 <= share <= 1.0:
                raise ConfigError(f"finding thresholds: share {share} is not in [0, 1]")


DEFAULT_THRESHOLDS = Thresholds()


# A statement that sets up a connection or a transaction: its cost is real database time
# (a COMMIT's fsync is booked in the ledger), but "run fewer of them" or "add an index"
# is not the fix, so it is never an N+1 or a slow-statement finding.
SETUP_KEYWORDS = frozenset(
    {
        "SET",
        "SHOW",
        "PRAGMA",
        "BEGIN",
        "START",
        "COMMIT",
        "END",
        "ROLLBACK",
        "SAVEPOINT",
        "RELEASE",
        "RESET",
        "DISCARD",
        "DEALLOCATE",
        "USE",
        "CONNECT",
    }
)


def is_setup_statement(statement: str) -> bool:
    """Connection or transaction setup (``SET``, ``SHOW``, ``PRAGMA``, ``BEGIN``,
    ``COMMIT``, ``SAVEPOINT``...), not a query a fix could remove or speed up."""
    head = statement[:24].lstrip().split(None, 1)
    return bool(head) and head[0].rstrip(";").upper() in SETUP_KEYWORDS
