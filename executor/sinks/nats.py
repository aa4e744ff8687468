from __future__ import annotations

import hashlib
import json

from nats.aio.client import Client
from nats.errors import MaxPayloadError

from executor.model.errors import Permanent, Temporary
from executor.model.events import OutEvent


def message_id(event: OutEvent) -> str:
    """`Nats-Msg-Id` of an event: the same for every publish of the same (source, id), so a
    JetStream stream's duplicate window drops a republish (the outbox sends again after a crash
    between a publish and marking it delivered); nats-io/nats-server: server/stream.go, JSMsgId."""
    digest = hashlib.sha256(f"{event['source']}\0{event['id']}".encode()).hexdigest()
    return digest[:32]


class NatsSink:
    """Publishes each event (structured JSON) to the subject named by its type, as Keptn does,
    with a `Nats-Msg-Id` header derived from its source and id.

    With JetStream the publish is acknowledged by the server; plain NATS is flushed, so a send
    that returns has at least reached the server.
    """

    name = "nats"

    def __init__(self, client: Client, jetstream: bool = False, timeout: int = 5) -> None:
        self.client = client
        self.jetstream = jetstream
        self.timeout = timeout

    async def send(self, event: OutEvent) -> None:
        subject = str(event["type"])
        body = json.dumps(event, separators=(",", ":")).encode()
        # The header rides plain NATS too: a JetStream stream that captures the subject (Keptn's
        # own, say) applies its duplicate window whoever published.
        headers = {"Nats-Msg-Id": message_id(event)}
        try:
            if self.jetstream:
                await self.client.jetstream().publish(subject, body, timeout=self.timeout, headers=headers)
            else:
                if not self.client.is_connected:
                    raise Temporary("not connected to NATS")
                await self.client.publish(subject, body, headers=headers)
                await self.client.flush(timeout=int(self.timeout))
        except Temporary:
            raise
        except MaxPayloadError as exc:
            raise Permanent(f"NATS refused {subject}: {exc}") from None
        except Exception as exc:
            raise Temporary(f"NATS publish to {subject} failed: {exc.__class__.__name__}: {exc}") from None

    async def close(self) -> None:
        return None
