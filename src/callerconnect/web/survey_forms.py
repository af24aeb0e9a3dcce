"""Reading a posted survey form: URL-encoded, bounded in size before it is read whole."""

from __future__ import annotations

from urllib.parse import parse_qsl

from fastapi import Request

from callerconnect.web.clients import client_of
from callerconnect.web.limits import BodyTooLarge

MAX_FORM_BYTES = 32 * 1024  # a full response with a 1,000-character comment is ~5 KB


class FormTooLarge(Exception):
    pass


async def read_form(request: Request) -> dict[str, str]:
    """The posted URL-encoded fields (first value of each), refusing oversized bodies
    before reading them whole."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > MAX_FORM_BYTES:
        raise FormTooLarge
    body = bytearray()
    try:
        async for chunk in request.stream():
            body.extend(chunk)
            if len(body) > MAX_FORM_BYTES:
                raise FormTooLarge
    except BodyTooLarge:  # the middleware's count (web/limits.py) got there first
        raise FormTooLarge from None
    fields: dict[str, str] = {}
    try:
        pairs = parse_qsl(
            body.decode("utf-8", errors="replace"), keep_blank_values=True, max_num_fields=100
        )
    except ValueError:
        return fields
    for key, value in pairs:
        fields.setdefault(key, value)
    return fields


def client_address(request: Request) -> str:
    """The client as the per-client limits count it (web/clients.py)."""
    return client_of(request)
