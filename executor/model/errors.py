"""The one retry vocabulary: every step says "try again later" or "trying again cannot help"
with these two, and only the loop that owns the retry (dispatcher, outbox, poller, API client)
decides when. Domain errors that carry more (an HTTP status, say) subclass one of them.
"""

from __future__ import annotations


class Temporary(Exception):
    """It may pass on its own (an outage, an overload, a token the operator will fix): try again
    later and never report the work as done meanwhile. `delay`: when, if the raiser knows
    better than the retry loop's backoff."""

    delay: float | None = None  # also for subclasses whose constructor does not pass one

    def __init__(self, message: str = "", *, delay: float | None = None) -> None:
        super().__init__(message)
        self.delay = delay


class Permanent(Exception):
    """Trying again cannot help (the request itself was refused): give up now and say why."""
