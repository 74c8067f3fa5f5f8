"""Bad configuration ends before any request, with a message that says what to set and where."""

import datetime
import ssl
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from segment_simulator import SegmentSimulator, generate_workspace
from tests.test_pipeline_script import run_script


@pytest.fixture
def sim():
    with SegmentSimulator(generate_workspace("small")) as simulator:
        yield simulator


def sim_env(sim, **extra):
    return {"SOURCES__SEGMENT_SOURCE__API_KEY": sim.token, "SOURCES__SEGMENT_SOURCE__BASE_URL": sim.url, **extra}


def assert_refused(result, sim, *words):
    assert result.returncode == 2, result.stdout + result.stderr
    for word in words:
        assert word in result.stderr, (word, result.stderr)
    assert "Traceback" not in result.stderr
    assert sim.requests == [], "nothing was requested"


def test_a_malformed_secrets_toml_names_the_file(tmp_path, sim):
    (tmp_path / ".dlt").mkdir()
    (tmp_path / ".dlt" / "secrets.toml").write_text('[sources.segment_source]\napi_key = "unterminated\n')
    assert_refused(run_script(tmp_path, env=sim_env(sim)), sim, "secrets.toml", "line 2", "Fix the file")


def test_a_value_of_the_wrong_type_is_refused(tmp_path, sim):
    assert_refused(run_script(tmp_path, env=sim_env(sim, SOURCES__SEGMENT_SOURCE__HISTORY="maybe")), sim, "history")


def test_a_bad_region_is_refused(tmp_path, sim):
    env = {"SOURCES__SEGMENT_SOURCE__API_KEY": sim.token, "SOURCES__SEGMENT_SOURCE__REGION": "mars"}
    assert_refused(
        run_script(tmp_path, env=env), sim, "region 'mars'", '"us" or "eu"', "SOURCES__SEGMENT_SOURCE__REGION"
    )


def test_an_unknown_destination_is_refused_with_the_choices(tmp_path, sim):
    result = run_script(tmp_path, "--destination", "bigquery", env=sim_env(sim))
    assert (
        result.returncode == 2
        and "duckdb" in result.stderr
        and "postgres" in result.stderr
        and "snowflake" in result.stderr
    )
    assert sim.requests == []


def test_missing_snowflake_credentials_show_the_exact_block(tmp_path, sim):
    assert_refused(
        run_script(tmp_path, "--destination", "snowflake", env=sim_env(sim)),
        sim,
        "[destination.snowflake.credentials]",
        "warehouse =",
    )


def test_a_bad_start_date_is_refused(tmp_path, sim):
    assert_refused(
        run_script(tmp_path, env=sim_env(sim, SOURCES__SEGMENT_SOURCE__START_DATE="last tuesday")),
        sim,
        "start_date",
        "ISO 8601",
    )


def test_plain_http_is_refused_for_any_host_but_this_machine(tmp_path, sim):
    env = {
        "SOURCES__SEGMENT_SOURCE__API_KEY": sim.token,
        "SOURCES__SEGMENT_SOURCE__BASE_URL": "http://api.segmentapis.com",
    }
    assert_refused(run_script(tmp_path, env=env), sim, "plain http", "https://")


class _NoRequests(BaseHTTPRequestHandler):
    seen: "list[str]" = []

    def do_GET(self):  # noqa: N802 - stdlib name
        _NoRequests.seen.append(self.path)
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args):
        pass


def self_signed_certificate(tmp_path):
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_path, key_path


def test_tls_certificates_are_verified(tmp_path):
    cert, key = self_signed_certificate(tmp_path)
    server = HTTPServer(("127.0.0.1", 0), _NoRequests)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        env = {
            "SOURCES__SEGMENT_SOURCE__API_KEY": "sgp_TLS_TOKEN_5a5a",
            "SOURCES__SEGMENT_SOURCE__BASE_URL": f"https://127.0.0.1:{server.server_port}",
        }
        result = run_script(tmp_path, "--resources", "workspace", env=env)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
    assert result.returncode == 1
    assert "TLS certificate" in result.stderr and "could not be verified" in result.stderr
    assert _NoRequests.seen == [], "no request (and no token) went to a server that failed verification"
    assert "sgp_TLS_TOKEN_5a5a" not in result.stderr + result.stdout
