"""One message of a CAD feed (NATS JetStream, contract section 12) through the envelopes.

The subject says whose event it is and in which format: ``<prefix>.<agency_id>.events``
carries one native event, ``<prefix>.<agency_id>.eido`` one EIDO document. The verdict
says whether the message may be acknowledged: only once its event is committed, or kept
as a dead letter; a failure of our own (the database is down) leaves it unacknowledged
so it is delivered again.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from callerconnect.adapters.cad.native import EventRejected
from callerconnect.logs import log_event
from callerconnect.service.envelopes import Envelopes, Format

log = logging.getLogger("callerconnect.feed")

Verdict = Literal["ack", "retry"]

_FORMATS: dict[str, Format] = {"events": "native", "eido": "eido"}


@dataclass(frozen=True)
class Addressed:
    """What a subject names: the agency and the format of the payload."""

    agency_id: str
    format: Format


def read_subject(subject: str, prefix: str) -> Addressed | None:
    """``<prefix>.<agency_id>.events|eido`` read, or None for any other subject. The one
    place a subject is read, so serving several agencies later changes only this and
    :func:`handle_message`'s check."""
    parts = subject.split(".")
    if len(parts) != 3 or parts[0] != prefix or parts[2] not in _FORMATS or not parts[1]:
        return None
    return Addressed(parts[1], _FORMATS[parts[2]])


def handle_message(
    by_agency: Mapping[str, Envelopes], subject: str, data: bytes, prefix: str
) -> Verdict:
    """Open one message's payload with the envelopes of the agency its subject names
    (``by_agency``: every agency served, the default one first) and say what to do with
    the message."""
    addressed = read_subject(subject, prefix)
    source = f"nats:{addressed.format if addressed else 'native'}"
    envelopes = by_agency.get(addressed.agency_id) if addressed else None
    try:
        if addressed is None or envelopes is None:
            # Kept under the default agency (nobody else's): the first one served.
            default = next(iter(by_agency.values()))
            # Kept, so nothing is lost, and acknowledged: a redelivery would fare no
            # better. The subject is not logged: it is whatever the publisher chose.
            why = (
                "the subject is not <prefix>.<agency>.events or .eido"
                if addressed is None
                else "the subject names an agency this deployment does not serve"
            )
            letter = default.intake.dead_letter(
                data.decode("utf-8", errors="replace"),
                source,
                EventRejected("(subject)", "agency" if addressed else "subject", why),
            )
            log_event(log, "feed_message_refused", level=logging.WARNING, dead_letter=letter)
            return "ack"
        envelopes.receive(data, source, addressed.format, batches=False, what="the message")
    except Exception as error:
        # Our own failure (most often the database): not acknowledged, so JetStream
        # delivers the message again; the intake's event-id check keeps it once. Only
        # the error's type is logged: a database error's text can quote the statement.
        log_event(log, "feed_message_failed", level=logging.ERROR, error=type(error).__name__)
        return "retry"
    return "ack"
