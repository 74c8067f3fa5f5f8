"""The client prepares its requests itself (a third of requests' CPU): what goes on the wire is what
requests would have sent, field by field and over real HTTP."""

import http.server
import json
import threading
from typing import Any, Dict, Iterator, List, Tuple
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from segment_source.client import SegmentClient, SegmentCursorPaginator, SegmentSession

BASE = "https://api.segmentapis.com"


def prepared_both_ways(session: SegmentSession, request: requests.Request) -> Tuple[Any, Any]:
    return session.prepare_request(request), requests.Session.prepare_request(session, request)


def fields(prepared: requests.PreparedRequest) -> Dict[str, Any]:
    return {
        "method": prepared.method,
        "url": prepared.url,
        "headers": dict(prepared.headers),
        "body": prepared.body,
        "hooks": prepared.hooks,
        "cookies": [(c.name, c.value) for c in prepared._cookies or []],  # what requests keeps for redirects
    }


def rest_request(client: SegmentClient, path: str, **params: Any) -> requests.Request:
    """A request as dlt's `RESTClient` builds it for the client (headers, auth, hooks)."""
    return client._rest._create_request(path, "GET", params=params, hooks={"response": []})


@pytest.mark.parametrize(
    "path, params",
    [
        ("", {}),  # GET /: the workspace
        ("sources", {"pagination[count]": 1000}),
        ("sources", {"pagination[count]": 1000, "pagination[cursor]": "MTAwMA=="}),
        ("destination/d1/filters", {"pagination[count]": 200, "skipped": None}),
        ("spaces/sp 1/audiences", {"pagination[count]": 200, "name": "Ünïcode & more=yes"}),
        ("warehouses", {"tags": ["a", "b", None], "n": 3}),
        ("sources?include=all", {"pagination[count]": 2}),
    ],
)
def test_every_request_the_client_sends_is_prepared_as_requests_prepares_it(path, params):
    client = SegmentClient(BASE, "sgp_token")
    request = rest_request(client, path, **params)
    ours, theirs = prepared_both_ways(client._rest.session, request)
    assert fields(ours) == fields(theirs)
    assert ours.headers["Authorization"] == "Bearer sgp_token"


def test_the_paginators_next_page_is_prepared_as_requests_prepares_it():
    client = SegmentClient(BASE, "sgp_token")
    request = rest_request(client, "sources")
    paginator = SegmentCursorPaginator(1000)
    paginator.init_request(request)
    paginator._next_reference = "MTAwMA=="  # what update_state keeps from data.pagination.next
    paginator.update_request(request)
    request.headers["Accept"] = "application/vnd.segment.v1alpha+json"  # a 406 chose the media type
    ours, theirs = prepared_both_ways(client._rest.session, request)
    assert fields(ours) == fields(theirs)
    assert "pagination%5Bcursor%5D=MTAwMA%3D%3D" in ours.url


@pytest.mark.parametrize(
    "change",
    [
        lambda session, request: session.cookies.set("AWSALB", "sticky"),
        lambda session, request: setattr(request, "cookies", {"c": "1"}),
        lambda session, request: setattr(session, "auth", ("user", "pass")),
        lambda session, request: session.params.update({"always": "1"}),
        lambda session, request: setattr(request, "data", {"form": "1"}),
        lambda session, request: setattr(session, "trust_env", True),
    ],
    ids=["session cookie", "request cookie", "session auth", "session params", "a body", "environment"],
)
def test_any_other_request_is_prepared_by_requests_itself(change):
    client = SegmentClient(BASE, "sgp_token")
    session, request = client._rest.session, rest_request(client, "sources", **{"pagination[count]": 1000})
    change(session, request)
    ours, theirs = prepared_both_ways(session, request)
    assert fields(ours) == fields(theirs)


@pytest.mark.parametrize(
    "session_proxies, session_verify, proxies, stream, verify, cert",
    [
        ({}, True, {}, None, None, None),  # what dlt's RESTClient passes on every request
        ({"https": "http://proxy:3128"}, "/etc/ca.pem", {}, None, None, None),  # HTTPS_PROXY, REQUESTS_CA_BUNDLE
        ({"https": "http://proxy:3128"}, True, {"https": None, "http": "http://other:80"}, True, False, "c.pem"),
    ],
)
def test_the_send_settings_are_merged_as_requests_merges_them(
    session_proxies, session_verify, proxies, stream, verify, cert
):
    session = SegmentClient(BASE, "sgp_token")._rest.session
    session.proxies.update(session_proxies)
    session.verify = session_verify
    ours = session.merge_environment_settings(BASE, dict(proxies), stream, verify, cert)
    theirs = requests.Session.merge_environment_settings(session, BASE, dict(proxies), stream, verify, cert)
    assert ours == theirs


class Recorder(http.server.BaseHTTPRequestHandler):
    """Two pages of sources; the first answer sets a cookie, as a load balancer may."""

    seen: List[Tuple[str, Dict[str, str]]] = []

    def do_GET(self) -> None:  # noqa: N802  # http.server's name
        Recorder.seen.append((self.path, {k.lower(): v for k, v in self.headers.items()}))
        cursor = parse_qs(urlsplit(self.path).query).get("pagination[cursor]")
        items = [{"id": "s3"}] if cursor else [{"id": "s1"}, {"id": "s2"}]
        body = json.dumps(
            {"data": {"sources": items, "pagination": {"next": None if cursor else "Mg==", "totalEntries": 3}}}
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        if not cursor:
            self.send_header("Set-Cookie", "AWSALB=sticky; Path=/")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def recorder() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def listing_on_the_wire(base_url: str) -> Tuple[List[List[Any]], List[Tuple[str, Dict[str, str]]]]:
    Recorder.seen = []
    client = SegmentClient(base_url, "sgp_token")
    pages = list(client.pages("sources", "sources", 2))
    for _, headers in Recorder.seen:  # the connection's own, not the request's
        headers.pop("host", None)
    return pages, Recorder.seen


def test_a_listing_sends_the_same_requests_and_cookies_as_requests_would(recorder, monkeypatch):
    pages, ours = listing_on_the_wire(recorder)
    monkeypatch.setattr(SegmentSession, "prepare_request", requests.Session.prepare_request)
    pages_by_requests, theirs = listing_on_the_wire(recorder)
    assert pages == pages_by_requests == [[{"id": "s1"}, {"id": "s2"}], [{"id": "s3"}]]
    assert ours == theirs
    assert "cookie" not in ours[0][1] and ours[1][1]["cookie"] == "AWSALB=sticky"  # the server's cookie went back
    assert ours[0][1]["authorization"] == "Bearer sgp_token"


def test_the_sessions_response_hooks_still_see_every_answer(recorder):
    client = SegmentClient(recorder, "sgp_token")
    answered: List[int] = []
    client._rest.session.hooks["response"].append(lambda response, **_: answered.append(response.status_code))
    assert len(list(client.pages("sources", "sources", 2))) == 2
    assert answered == [200, 200]
