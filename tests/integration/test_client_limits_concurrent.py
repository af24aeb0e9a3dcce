"""Per-client limits hold under concurrency (second probe, finding 6), on SQLite and
PostgreSQL, through the real HTTP stack: a real uvicorn server on a socket, many
threads posting at once. Before the fix the count was read, then increased, so on
PostgreSQL 23 of 40 concurrent landline posts got through a limit of 10."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable

import httpx
import pytest

from callerconnect.service.survey import SurveyLimits
from tests.support.live_server import LiveServer
from tests.support.survey import ANSWERS, csrf_of

BURST = 40


def _at_once(requests: list[Callable[[], int]]) -> Counter[int]:
    """Run every request in its own thread, released together; the status codes."""
    start = threading.Barrier(len(requests))
    codes: list[int] = []
    lock = threading.Lock()

    def run(request: Callable[[], int]) -> None:
        start.wait()
        code = request()
        with lock:
            codes.append(code)

    threads = [threading.Thread(target=run, args=(request,)) for request in requests]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert len(codes) == len(requests)
    return Counter(codes)


def test_concurrent_landline_posts_get_exactly_the_limit_through(
    live_socket_server: LiveServer,
) -> None:
    limit = SurveyLimits().landline_attempts.hits
    clients = [httpx.Client(base_url=live_socket_server.url, timeout=60) for _ in range(BURST)]
    try:
        forms = []
        for n, client in enumerate(clients):
            page = client.get("/feedback")
            assert page.status_code == 200
            forms.append(
                {
                    "csrf_token": csrf_of(page.text),
                    "lang": "en",
                    "action": "submit",
                    "case_number": f"99-{n:05d}",
                    **ANSWERS,
                }
            )

        def post(client: httpx.Client, form: dict[str, str]) -> Callable[[], int]:
            return lambda: client.post("/feedback", data=form).status_code

        codes = _at_once([post(client, form) for client, form in zip(clients, forms, strict=True)])
    finally:
        for client in clients:
            client.close()

    assert codes == Counter({303: limit, 429: BURST - limit})


def test_concurrent_token_guesses_get_exactly_the_limit_through(
    live_socket_server: LiveServer,
) -> None:
    limit = SurveyLimits().token_guesses.hits

    def guess(n: int) -> Callable[[], int]:
        return lambda: httpx.get(f"{live_socket_server.url}/s/{n:022d}", timeout=60).status_code

    codes = _at_once([guess(n) for n in range(BURST)])

    assert codes == Counter({404: limit, 429: BURST - limit})


@pytest.mark.parametrize(
    ("first", "second", "same"),
    [
        ("2001:db8:1:2::1", "2001:db8:1:2:ffff::9", True),
        ("2001:db8:1:2::1", "2001:db8:1:3::1", False),
        ("198.51.100.7", "198.51.100.8", False),
        ("::ffff:198.51.100.7", "198.51.100.7", True),
    ],
)
def test_clients_are_grouped_by_address_and_ipv6_by_its_64(
    first: str, second: str, same: bool
) -> None:
    from callerconnect.web.clients import client_group

    assert (client_group(first) == client_group(second)) is same
