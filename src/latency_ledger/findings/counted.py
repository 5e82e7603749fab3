"""Statement findings counted over every request, from the collector's per-request tallies.

Contract: :class:`Counted` sums the :class:`~latency_ledger.model.StatementTallies` of
every request of an endpoint that carries them (the in-app collector writes them on
every request's SERVER span, kept or not), per statement fingerprint: its calls and
booked time in each request (a :class:`~latency_ledger.findings.estimate.Tally` whose
every request weighs 1, so its variance terms stay 0), and, per request, whether it was
an N+1 by the same thresholds the kept trees are held to (at least
``n_plus_one_min_repeats`` calls costing ``n_plus_one_min_ns`` or
``n_plus_one_min_fraction`` of the request). When every request of an endpoint was
counted, its N+1 and slow-statement counts, costs and shares are these sums, exact;
kept trees still give what the tallies do not hold: the statement's text where the
request did not carry it, the p50 and p99 of single calls, and whether calls overlapped.
Statements folded past the collector's cap (fingerprint 0) are counted in the database
time and never a finding. Sums merge (``analyze --jobs``); pure arithmetic.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from latency_ledger.findings.estimate import Aux, Base, Tally
from latency_ledger.findings.thresholds import Thresholds
from latency_ledger.model import StatementTallies

FOLDED = 0  # the fingerprint of the statements a collector folded together
MAX_FINGERPRINTS = 2000  # per endpoint (as findings.MAX_TARGETS_PER_ENDPOINT); the rest fold
MAX_TEXTS = 20_000  # fingerprint -> text remembered per accumulator


@dataclass(slots=True)
class Counted:
    """One endpoint's counted requests: how many, their database time, and per
    fingerprint the statement's tally and its N+1 tally (module docstring)."""

    requests: int = 0
    database: Aux = field(default_factory=Aux)
    statements: dict[int, Tally] = field(default_factory=dict)
    repeats: dict[int, Tally] = field(default_factory=dict)

    def add(
        self,
        tallies: StatementTallies,
        wall_ns: int,
        database_ns: int,
        thresholds: Thresholds,
        texts: dict[int, str],
    ) -> None:
        """One counted request; texts it carries go into ``texts`` (fingerprint -> text)."""
        self.requests += 1
        database = self.database
        database.total_ns += database_ns
        database.w_ns += database_ns
        if not tallies.count:
            return
        if tallies.texts:
            for fingerprint, text in zip(tallies.fingerprints, tallies.texts, strict=True):
                if text and fingerprint not in texts and len(texts) < MAX_TEXTS:
                    texts[fingerprint] = text
        minimum = thresholds.n_plus_one_min_repeats
        min_ns = thresholds.n_plus_one_min_ns
        min_booked = thresholds.n_plus_one_min_fraction * wall_ns if wall_ns > 0 else min_ns
        statements, repeats = self.statements, self.repeats
        for fingerprint, calls, booked, longest in zip(
            tallies.fingerprints, tallies.calls, tallies.booked_ns, tallies.longest_ns, strict=True
        ):
            tally = statements.get(fingerprint)
            if tally is None:
                if len(statements) >= MAX_FINGERPRINTS:
                    fingerprint = FOLDED
                tally = statements.setdefault(fingerprint, Tally())
            tally.add(1.0, calls, booked, database_ns)
            if (
                fingerprint != FOLDED
                and calls >= minimum
                and (booked >= min_ns or booked >= min_booked)
            ):
                repeat = repeats.get(fingerprint)
                if repeat is None:
                    repeat = repeats[fingerprint] = Tally()
                # batching leaves one call: the longest (findings.batching_saves)
                repeat.add(1.0, calls, booked, database_ns, False, max(0, booked - longest))

    def merge(self, other: Counted) -> None:
        """Add ``other``'s requests: counted, never scaled."""
        self.requests += other.requests
        self.database.merge(other.database)
        for fingerprint, tally in other.statements.items():
            self.statements.setdefault(fingerprint, Tally()).merge(tally)
        for fingerprint, tally in other.repeats.items():
            self.repeats.setdefault(fingerprint, Tally()).merge(tally)

    def base(self) -> Base:
        """The requests the counted figures are of: all of them, each weighing 1."""
        return Base(
            weight=float(self.requests), variance=0.0, requests=self.requests, aux=self.database
        )
