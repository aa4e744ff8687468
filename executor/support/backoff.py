"""One capped exponential backoff, and the numbers of every retry loop in one place."""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True)
class Backoff:
    """Attempt n (from 0) waits base * 2**n seconds, at most `cap`. With `jitter`, a random point
    in the upper half of that, so many clients retrying at once spread out."""

    base: float
    cap: float
    attempts: int = 0  # tries before giving up (1 = no retry); 0 = the caller never gives up
    jitter: bool = False

    def delay(self, attempt: int) -> float:
        ceiling = min(self.cap, self.base * 2.0 ** min(max(attempt, 0), 64))
        return ceiling / 2 + random.uniform(0, ceiling / 2) if self.jitter else ceiling


# An event whose handling hit a Temporary error goes back to the queue after this.
EVENT_RETRY = Backoff(base=2.0, cap=120.0)
# An outgoing event a sink could not take: retried in order per sink.
DELIVERY = Backoff(base=0.5, cap=60.0)
# One Keptn API request: 5xx, 429 and connection failures, 4 tries in all.
KEPTN_REQUEST = Backoff(base=0.5, cap=8.0, attempts=4)
# The Keptn poller after a failed round (its base is the poll interval).
KEPTN_POLL_CAP = 60.0
# One Kubernetes API call (429, 5xx, unreachable), and the Job watch after it broke.
KUBE_REQUEST = Backoff(base=0.25, cap=4.0, attempts=5, jitter=True)
KUBE_WATCH = Backoff(base=0.2, cap=5.0, jitter=True)
# A cluster of CLUSTERS_FILE whose create failed is skipped this long (doubling per failure).
CLUSTER_RETRY = Backoff(base=2.0, cap=60.0, jitter=True)
