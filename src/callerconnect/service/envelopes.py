"""Bytes → events: the front half of intake, the same for every entrance.

The HTTP routes, ``callerconnect ingest``, dead-letter replay and the NATS consumer all
hand what they received to :class:`Envelopes`: it decodes the JSON, opens a
``{"events": [...]}`` batch, converts an EIDO document, holds the incidents named by a
snapshot it cannot read, and keeps whatever it refuses as a dead letter. Each entrance
only turns the :class:`Delivery` it gets back into its own answer (an HTTP status, a
count, an acknowledgement).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, cast

from callerconnect.adapters.cad.eido.fields import incident_ids
from callerconnect.adapters.cad.eido.reader import EidoError
from callerconnect.adapters.cad.eido.snapshot import events_from_eido
from callerconnect.adapters.cad.native import EventRejected
from callerconnect.service.holds import HELD_TIME_AHEAD, HELD_UNREADABLE
from callerconnect.service.intake import Intake
from callerconnect.service.intake_result import IntakeResult

#: Deepest nesting of arrays and objects accepted in a body. Events nest 4 deep in a
#: batch and EIDO documents about 5; the limit keeps recursive code (schema validation,
#: copying, re-encoding for the dead letters) far from Python's recursion limit.
MAX_JSON_DEPTH = 32

#: ``malformed``: not JSON at all; ``envelope``: JSON, but not an event, a batch of
#: them or a readable EIDO document; ``event``: a single event the intake rejected.
RefusalKind = Literal["malformed", "envelope", "event"]

Format = Literal["native", "eido"]


@dataclass(frozen=True)
class Refusal:
    kind: RefusalKind
    rejected: EventRejected
    dead_letter_id: int | None = None


@dataclass(frozen=True)
class Delivery:
    """What became of one envelope: a result per event, or why it was refused whole (a
    lone rejected event has both)."""

    results: list[IntakeResult] = field(default_factory=list)
    refusal: Refusal | None = None


def _why(error: Exception) -> str:
    if isinstance(error, json.JSONDecodeError):
        return f"{error.msg} at line {error.lineno} column {error.colno}"
    if isinstance(error, RecursionError):
        return "nested too deeply"
    return "it cannot be decoded"


def _nesting_exceeds(value: Any, limit: int) -> bool:
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children)
    return False


def parse_json(raw: bytes, what: str = "the body", field: str = "(body)") -> Any:
    """Bytes as JSON (RFC 8259: UTF-8, so anything else is refused rather than guessed
    at), or :class:`EventRejected` saying why not; ``what`` names the bytes in it."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise EventRejected(
            field, "encoding", f"{what} is not UTF-8 (invalid byte at offset {error.start})"
        ) from None
    try:
        value = json.loads(text)
    except (ValueError, RecursionError) as error:
        raise EventRejected(field, "json", f"{what} is not valid JSON: {_why(error)}") from None
    if _nesting_exceeds(value, MAX_JSON_DEPTH):
        raise EventRejected(
            field, "maxDepth", f"{what} nests more than {MAX_JSON_DEPTH} levels deep"
        )
    return value


def format_of(source: str) -> Format:
    """The format a payload arrived in, from the source it was kept under (``eido:<key>``,
    ``nats:eido``; everything else carries native events)."""
    return "eido" if "eido" in source.split(":") else "native"


class Envelopes:
    """Opens envelopes for one intake. ``max_batch`` bounds a ``{"events": [...]}``
    batch (``intake.max_batch``); ``None`` leaves it unbounded."""

    def __init__(self, intake: Intake, *, max_batch: int | None = None) -> None:
        self.intake = intake
        self.max_batch = max_batch

    # -- whole bodies -----------------------------------------------------------------

    def receive(
        self,
        raw: bytes,
        source: str,
        format: Format,
        *,
        batches: bool = True,
        what: str = "the body",
        field: str = "(body)",
    ) -> Delivery:
        """Bytes as received: decoded, then opened as ``format``. ``batches=False`` for
        an entrance that carries exactly one event per message; ``what`` and ``field``
        name the bytes in a refusal (a line of a file, a message)."""
        body = self.decode(raw, source, what, field)
        if isinstance(body, Refusal):
            return Delivery(refusal=body)
        if format == "eido":
            return self.eido(body, source, raw=raw)
        return self.native(body, source, batches=batches, raw=raw)

    def decode(
        self, raw: bytes, source: str, what: str = "the body", field: str = "(body)"
    ) -> Any | Refusal:
        """The bytes as JSON, or a refusal (the bytes kept as a dead letter)."""
        try:
            return parse_json(raw, what, field)
        except EventRejected as rejected:
            # The bytes as received: their length and hash are those the CAD can check.
            return Refusal("malformed", rejected, self.intake.dead_letter(raw, source, rejected))

    def too_large(self, sample: bytes, source: str, size: int | None, limit: int) -> Refusal:
        """A body over ``limit`` bytes, not read to its end: what was read (its first
        64 KiB kept) and the declared ``size``, if any, as a dead letter."""
        rejected = EventRejected(
            "(body)",
            "maxBytes",
            f"the body has {size} bytes; at most {limit} are accepted — split the batch"
            if size is not None
            else f"the body has more than {limit} bytes, the most accepted — split the batch",
        )
        letter = self.intake.dead_letter(sample, source, rejected, size=size, whole=False)
        return Refusal("malformed", rejected, letter)

    def replay(self, raw: str, source: str) -> Delivery:
        """A dead letter's payload, opened again as what it was sent as. Nothing is kept
        a second time: the letter itself records how its replay went."""
        try:
            body = json.loads(raw)
        except ValueError:
            rejected = EventRejected("(body)", "json", "still not valid JSON")
            return Delivery(refusal=Refusal("malformed", rejected))
        # A letter from an EIDO entrance holds the document when the document was
        # refused, but one converted event when only that event's processing failed.
        is_event = isinstance(body, dict) and ("event_id" in body or "events" in body)
        if format_of(source) == "eido" and not is_event:
            return self.eido(body, "replay", keep_rejected=False)
        return self.native(body, "replay", keep_rejected=False)

    # -- decoded bodies ---------------------------------------------------------------

    def native(
        self,
        body: Any,
        source: str,
        *,
        batches: bool = True,
        keep_rejected: bool = True,
        raw: bytes | None = None,
    ) -> Delivery:
        """One native event, or (``batches``) a ``{"events": [...]}`` batch of them.
        ``raw``: the bytes the body was decoded from, kept if it is refused whole."""
        opened = self._open_native(body, source, batches, keep_rejected, raw)
        if isinstance(opened, Delivery):
            return opened
        events, alone = opened
        return _native_delivery(self._submit(events, source, keep_rejected), alone)

    def receive_native_many(self, raws: Sequence[bytes], source: str) -> list[Delivery | Exception]:
        """Several native bodies of one source, received together (the HTTP intake's
        requests that came while others folded): each opened as :meth:`receive` opens
        it, the events of all of them folded as one group (``Intake.submit_requests``).
        Each body's answer is the one :meth:`receive` would have given it alone: its
        delivery, or the exception it would have raised."""
        answers: list[Delivery | Exception | None] = []
        opened: list[tuple[int, list[Any], bool]] = []
        for index, raw in enumerate(raws):
            try:
                body = self.decode(raw, source)
                if isinstance(body, Refusal):
                    answers.append(Delivery(refusal=body))
                    continue
                events = self._open_native(body, source, True, True, raw)
            except Exception as error:  # a dead letter that could not be written
                answers.append(error)
                continue
            if isinstance(events, Delivery):
                answers.append(events)
            else:
                answers.append(None)
                opened.append((index, *events))
        try:
            folded = self.intake.submit_requests([events for _, events, _ in opened], source)
        except Exception as error:  # for the bodies it was folding; the refused keep theirs
            folded = [error] * len(opened)
        for (index, _, alone), outcome in zip(opened, folded, strict=True):
            answers[index] = (
                outcome
                if isinstance(outcome, Exception)
                else _native_delivery(cast(list[IntakeResult], outcome), alone)
            )
        return cast(list[Delivery | Exception], answers)  # every None filled in above

    def _open_native(
        self, body: Any, source: str, batches: bool, keep_rejected: bool, raw: bytes | None
    ) -> tuple[list[Any], bool] | Delivery:
        """A native body's events, and whether it was one event alone (not a batch);
        or the refusal of the whole body, already kept."""
        if isinstance(body, dict) and "events" in body and "event_id" not in body:
            if not batches:
                return self._refuse(
                    source,
                    body,
                    EventRejected("events", "type", "one event per message, not a batch"),
                    keep_rejected,
                    raw,
                )
            events = body["events"]
            if not isinstance(events, list):
                return self._refuse(
                    source,
                    body,
                    EventRejected("events", "type", "events must be a list of event objects"),
                    keep_rejected,
                    raw,
                )
            if not events:
                return self._refuse(
                    source,
                    body,
                    EventRejected("events", "minItems", "events must hold at least one event"),
                    keep_rejected,
                    raw,
                )
            if self.max_batch is not None and len(events) > self.max_batch:
                return self._refuse(
                    source,
                    body,
                    EventRejected(
                        "events",
                        "maxItems",
                        f"events holds {len(events)} events; at most {self.max_batch} per request",
                    ),
                    keep_rejected,
                    raw,
                )
            return events, False
        if not isinstance(body, dict):
            return self._refuse(
                source,
                body,
                EventRejected(
                    "(body)", "type", 'the body must be one event object or {"events": [...]}'
                ),
                keep_rejected,
                raw,
            )
        return [body], True

    def eido(
        self, body: Any, source: str, *, keep_rejected: bool = True, raw: bytes | None = None
    ) -> Delivery:
        """One NENA EIDO document, as the events it holds."""
        try:
            events = events_from_eido(
                body, case_number_pattern=self.intake.policy.case_number_pattern
            )
            # Refused whole, like any snapshot we cannot use: never half of it folded.
            self.intake.check_snapshot_times(events)
        except EidoError as error:
            delivery = self._refuse(
                source, body, EventRejected(error.field, "eido", str(error)), keep_rejected, raw
            )
            # Kept first, then: a snapshot we cannot read may hold a caution or a
            # reclassification, so the incidents it names are held (service/holds.py).
            if keep_rejected:  # a replay: held when it first came
                self.intake.hold(incident_ids(body), HELD_UNREADABLE, source)
            return delivery
        except EventRejected as ahead:
            # A snapshot stamped ahead of its receipt (domain/event_time.py): refused
            # whole, and, since it may carry a danger, its incidents held.
            delivery = self._refuse(source, body, ahead, keep_rejected, raw)
            if keep_rejected:
                self.intake.hold(incident_ids(body), HELD_TIME_AHEAD, source)
            return delivery
        return Delivery(self._submit(events, source, keep_rejected))

    def _submit(
        self, events: Sequence[Any], source: str, keep_rejected: bool
    ) -> list[IntakeResult]:
        if keep_rejected:
            return self.intake.submit_many(events, source)
        return [self.intake.submit(event, source, keep_rejected=False) for event in events]

    def _refuse(
        self,
        source: str,
        body: Any,
        rejected: EventRejected,
        keep_rejected: bool,
        raw: bytes | None = None,
    ) -> Delivery:
        kept: str | bytes = raw if raw is not None else json.dumps(body)
        letter = self.intake.dead_letter(kept, source, rejected) if keep_rejected else None
        return Delivery(refusal=Refusal("envelope", rejected, letter))


def _native_delivery(results: list[IntakeResult], alone: bool) -> Delivery:
    """The delivery of a native body's folded events; a lone event that was rejected
    refuses its body too (the HTTP intake answers it with a 422, not a 202)."""
    if not alone:
        return Delivery(results)
    (result,) = results
    if result.status == "rejected":
        rejected = EventRejected(
            result.field or "(event)", result.rule or "rejected", result.error or "rejected"
        )
        return Delivery([result], Refusal("event", rejected, result.dead_letter_id))
    return Delivery([result])
