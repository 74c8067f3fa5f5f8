"""The client parses the API's bodies with orjson where that gives what `requests`' parser gives, and
with `requests` everywhere else: over real HTTP, every body reads the same either way."""

import http.server
import json
import threading
from typing import Any, Iterator, List

import pytest

from segment_source import client as client_module
from segment_source.client import SegmentClient
from segment_source.errors import UnexpectedResponseError

PLAIN = {"name": 'Ünïcode ✓ \u0000 \\ "quoted"', "n": 922337203685477580, "f": 0.1, "e": 1.5e308, "z": -0.0}


def page(item_json: str) -> str:
    return '{"data": {"sources": [%s], "pagination": {"next": null, "totalEntries": 1}}}' % item_json


# (body, Content-Type): each a body orjson must not parse, or parses to the same as requests
BODIES = {
    "plain UTF-8": (page(json.dumps(PLAIN, ensure_ascii=False)).encode(), "application/json"),
    "integers beyond 64 bits": (page('{"big": 18446744073709551623, "neg": -9223372036854775809}').encode(), None),
    "a byte-order mark": (b"\xef\xbb\xbf" + page('{"id": "s1"}').encode(), "application/json"),
    "NaN": (page('{"nan": NaN, "inf": -Infinity}').encode(), "application/json"),
    "a number beyond a double": (page('{"huge": 1e400, "tiny": -1e-400}').encode(), "application/json"),
    "a lone surrogate": (page('{"name": "\\ud800 alone"}').encode(), "application/json"),
    # UTF-8 bytes under another declared charset: requests decodes them as declared
    "another declared charset": (page('{"name": "café"}').encode(), "application/json; charset=ISO-8859-1"),
    "UTF-16 with no charset": (page('{"name": "snow ☃"}').encode("utf-16-le"), "text/plain"),
}


class Answer(http.server.BaseHTTPRequestHandler):
    body = b""
    content_type: Any = None

    def do_GET(self) -> None:  # noqa: N802  # http.server's name
        self.send_response(200)
        if Answer.content_type:
            self.send_header("Content-Type", Answer.content_type)
        self.send_header("Content-Length", str(len(Answer.body)))
        self.end_headers()
        self.wfile.write(Answer.body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def server() -> Iterator[str]:
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Answer)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join()


def listed(base_url: str) -> List[Any]:
    return [item for items in SegmentClient(base_url, "sgp_token").pages("sources", "sources", 200) for item in items]


def outcome(base_url: str) -> Any:
    """The items listed, or the error the run would report."""
    try:
        return listed(base_url)
    except UnexpectedResponseError as ex:
        return str(ex)


def same(a: Any, b: Any) -> bool:
    """Equal, NaN included (NaN is not equal to itself), and of the same types (1 is not 1.0)."""
    return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True) and repr(a) == repr(b)


@pytest.mark.parametrize("kind", list(BODIES))
def test_every_body_reads_as_requests_reads_it(kind, server, monkeypatch):
    Answer.body, Answer.content_type = BODIES[kind]
    ours = outcome(server)
    monkeypatch.setattr(client_module, "_fast_json", lambda response: client_module._NOT_PARSED)
    theirs = outcome(server)
    assert ours and same(ours, theirs)


def test_integers_beyond_64_bits_stay_exact(server):
    Answer.body, Answer.content_type = BODIES["integers beyond 64 bits"]
    assert listed(server) == [{"big": 18446744073709551623, "neg": -9223372036854775809}]


def test_a_plain_utf8_page_is_parsed_by_orjson(server, monkeypatch):
    """The fast path is taken where it can be: otherwise the comparison above proves nothing."""
    parsed_by_requests: List[int] = []
    real_json = client_module.requests.Response.json

    def counted(response: Any, **kwargs: Any) -> Any:
        parsed_by_requests.append(1)
        return real_json(response, **kwargs)

    monkeypatch.setattr(client_module.requests.Response, "json", counted)
    Answer.body, Answer.content_type = BODIES["plain UTF-8"]
    assert listed(server) == [PLAIN]
    assert parsed_by_requests == []
    Answer.body, Answer.content_type = BODIES["a byte-order mark"]
    assert listed(server) == [{"id": "s1"}]
    assert parsed_by_requests == [1]
