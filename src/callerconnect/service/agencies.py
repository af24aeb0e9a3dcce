"""The agencies one deployment serves (contract section 11), built once at start-up.

Each service takes the agency with the work it is given, never at construction: the web
intake from the key an event was posted with, the dispatcher and receipts from the outbox
row, the inbound handler from the number the caller texted (``To``), the commands from
``--agency``. :class:`Agencies` is the one lookup for all of them.
"""

from __future__ import annotations

import hmac
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from zoneinfo import ZoneInfo

from callerconnect.adapters.sms.base import SmsProvider
from callerconnect.adapters.sms.phone import InvalidPhone, normalize_phone
from callerconnect.domain.policy import Policy


@dataclass(frozen=True)
class Agency:
    """One agency: what its texts say, when and from which number they go out."""

    id: str
    name: Mapping[str, str]
    """Its name by language (``en``, ``fr``), as texts and pages quote it."""
    tz: ZoneInfo
    """Quiet hours, days of reports and months of open data are local to it."""
    policy: Policy
    sender: str
    non_emergency_number: str
    provider: SmsProvider = field(repr=False)
    intake_keys: tuple[bytes, ...] = field(default=(), repr=False)


class UnknownAgency(LookupError):
    """An agency id that is not configured; the message names the configured ones."""

    def __init__(self, agency_id: str, known: Iterable[str]) -> None:
        names = ", ".join(known)
        super().__init__(f"unknown agency {agency_id!r}; the configured agencies are: {names}")
        self.agency_id = agency_id


def _number(text: str) -> str:
    """A sender or a ``To`` as one comparable form: E.164 for a phone number, the digits
    of a short code as they are."""
    stripped = text.strip()
    try:
        return normalize_phone(stripped)
    except InvalidPhone:
        return stripped


class Agencies:
    """The configured agencies, the default one first."""

    def __init__(self, agencies: Iterable[Agency]) -> None:
        self._by_id = {agency.id: agency for agency in agencies}
        if not self._by_id:
            raise ValueError("a deployment serves at least one agency")
        self._by_sender = {_number(a.sender): a for a in self._by_id.values()}

    @property
    def default(self) -> Agency:
        return next(iter(self._by_id.values()))

    @property
    def ids(self) -> list[str]:
        return list(self._by_id)

    def __iter__(self) -> Iterator[Agency]:
        return iter(self._by_id.values())

    def __len__(self) -> int:
        return len(self._by_id)

    def get(self, agency_id: str | None) -> Agency:
        """The agency ``agency_id`` (the default one for ``None``); raises UnknownAgency."""
        if agency_id is None:
            return self.default
        try:
            return self._by_id[agency_id]
        except KeyError:
            raise UnknownAgency(agency_id, self._by_id) from None

    def by_key(self, key: bytes) -> Agency | None:
        """The agency an intake key belongs to, or None. Every key is compared, in
        constant time, so the answer's timing says nothing about which one matched."""
        found: Agency | None = None
        for agency in self._by_id.values():
            for candidate in agency.intake_keys:
                if hmac.compare_digest(candidate, key):
                    found = agency
        return found

    def by_sender(self, number: str) -> Agency | None:
        """The agency whose number ``number`` is: a caller's text to it is its caller's."""
        return self._by_sender.get(_number(number))

    def senders(self) -> list[str]:
        return [agency.sender for agency in self._by_id.values()]

    def providers(self) -> list[SmsProvider]:
        """Each distinct provider once (agencies sharing credentials share one)."""
        seen: dict[int, SmsProvider] = {}
        for agency in self._by_id.values():
            seen.setdefault(id(agency.provider), agency.provider)
        return list(seen.values())

    def with_provider(self, provider: SmsProvider, agency_id: str | None = None) -> Agencies:
        """These agencies with ``provider`` for one agency (every one when None)."""
        return Agencies(
            replace(agency, provider=provider)
            if agency_id is None or agency.id == agency_id
            else agency
            for agency in self._by_id.values()
        )
