"""Deny by default: every string in settings is masked unless known safe; structured strings are
opened and only their secret parts masked; fingerprints need a key the warehouse does not hold."""

import json
from collections import Counter

import pytest

from segment_source.endpoints import BY_TABLE
from segment_source.redaction import Redactor, fingerprint, mask, redact_item, redact_text, token_key

KEY = "test-key"
SECRET = "s3cr3t-Value"


def redact(settings, keep=frozenset(), tally=None):
    return Redactor(KEY, keep, tally).value(settings, "settings", ("destinations", "settings"))


def marker(value: str) -> str:
    return f"<redacted:{fingerprint(value, KEY)}>"


@pytest.mark.parametrize(
    "name", ["pass", "pwd", "passcode", "auth", "bearer", "key", "sig", "refresh", "cookie", "x", "apiKey", "notes"]
)
def test_a_string_under_any_name_is_masked_unless_known_safe(name):
    assert redact({name: "hunter2"}) == {name: marker("hunter2")}


@pytest.mark.parametrize(
    "name, value",
    [
        ("region", "us-west-2"),
        ("endpoint", "north_america"),
        ("hostname", "pg.internal.example.com"),
        ("channels", "#data-alerts"),
        ("username", "ops@example.com"),
        ("roleAddress", "arn:aws:iam::874699288871:role/segment-kinesis"),
        ("measurementId", "G-4DX8QB1XJ7"),
        ("portalId", "4213312"),
        ("method", "POST"),
        ("encoding", "HEX"),
        ("@path", "$.properties.total"),
        ("newName", "order_id"),
        ("name", "Main warehouse"),
    ],
)
def test_non_secret_names_users_query_are_kept(name, value):
    assert redact({name: value}) == {name: value}


def test_a_safe_name_does_not_carry_a_secret_in_an_odd_shape():
    out = redact({"host": "loader:hunter2@db.example.com", "region": "us-east-1 password=hunter2"})
    assert "hunter2" not in json.dumps(out)


def test_booleans_numbers_null_empty_and_segment_masks_are_kept():
    settings = {"a": True, "b": 5432, "c": 1.5, "d": None, "e": "", "f": "••••••••••dada", "g": [False, 0]}
    assert redact(settings) == settings


def test_placeholders_are_references_not_values():
    settings = {"apiKey": "${settings.apiKey}", "email": "{{properties.email}}"}
    assert redact(settings) == settings


@pytest.mark.parametrize(
    "value, kept",
    [
        (json.dumps({"type": "service_account", "private_key": SECRET, "client_email": "a@b.iam"}), "a@b.iam"),
        (json.dumps({"host": "db", "password": SECRET}), '"host": "db"'),
        (f"host=db.internal port=5432 dbname=app user=loader password={SECRET} sslmode=require", "dbname=app"),
        (f"host=db.internal password='{SECRET}'", "host=db.internal"),
        (f"jdbc:sqlserver://db.example.com:1433;databaseName=app;user=loader;password={SECRET};", "user=loader"),
        (f"jdbc:postgresql://db.example.com:5432/app?user=loader&password={SECRET}&ssl=true", "user=loader"),
        (f"jdbc:oracle:thin:loader/{SECRET}@//db.example.com:1521/svc", "loader/"),
        (f"Driver={{ODBC Driver 18}};Server=tcp:db,1433;Uid=loader;Pwd={{{SECRET}}};", "Uid=loader"),
        (f"Data Source=db;Initial Catalog=app;User ID=loader;Password={SECRET};", "User ID=loader"),
        (f"postgresql://loader:{SECRET}@db.example.com:5432/app", "@db.example.com:5432/app"),
        (f"https://{SECRET}:@api.example.com/v1", "@api.example.com/v1"),
        (f"https://hooks.example.com/in?sig={SECRET}&k=v", "https://hooks.example.com/in?sig="),
        (f"https://app.example.com/cb#access_token={SECRET}", "#access_token="),
        ("https://hooks.slack.com/services/T0000/B0000/Xk29dLq81mZp0aQw7RtY3vBn", "/services/T0000/B0000/"),
        (f"Authorization: Bearer {SECRET}", "Authorization: Bearer <redacted:"),
        (f"X-Team: data\nCookie: session={SECRET}; theme=dark", "Cookie: session=<redacted:"),
        (f"Bearer {SECRET}", "Bearer <redacted:"),
        (f"Basic {SECRET}", "Basic <redacted:"),
        (f"pg_dump --user loader --password {SECRET}", "--user loader --password <redacted:"),
    ],
)
def test_structured_strings_keep_their_structure_and_lose_their_secret(value, kept):
    out = redact({"x": value})["x"]
    assert SECRET not in out
    assert kept in out


def test_header_lists_of_every_shape_keep_the_header_names():
    settings = {
        "a": [{"key": "X-Api-Key", "value": SECRET}],
        "b": [{"header": "Authorization", "value": f"Bearer {SECRET}"}],
        "c": [{"name": "X-Auth", "value": SECRET}],
        "d": [["Authorization", f"Bearer {SECRET}"], ["X-Team", "data"]],
        "e": {"X-Auth": SECRET, "Authorization": f"Bearer {SECRET}"},
    }
    out = redact(settings)
    assert SECRET not in json.dumps(out)
    assert out["a"][0]["key"] == "X-Api-Key" and out["b"][0]["header"] == "Authorization"
    assert out["c"][0]["name"] == "X-Auth" and out["d"][1][0] == "X-Team"
    assert out["e"]["Authorization"].startswith("Bearer <redacted:")


def test_argument_lists_keep_their_flags():
    out = redact({"args": ["--host", "db.internal", "--password", SECRET, "--token=" + SECRET, "-p", SECRET]})
    assert out["args"][:3] == ["--host", "db.internal", "--password"]
    assert out["args"][4].startswith("--token=<redacted:") and out["args"][5] == "-p"
    assert SECRET not in json.dumps(out)


def test_free_text_is_masked_whole_unless_it_describes_then_secrets_inside_are_masked():
    out = redact({"notes": f"our api token is {SECRET}", "description": f"Rotate it. The password is {SECRET}."})
    assert out["notes"] == marker(f"our api token is {SECRET}")
    assert out["description"].startswith("Rotate it. The password is <redacted:") and SECRET not in out["description"]


def test_secrets_are_masked_at_any_depth_and_inside_lists():
    out = redact({"connections": [{"extra": [{"auth": SECRET}], "region": "us-east-1"}], "tokens": ["", SECRET]})
    assert out == {
        "connections": [{"extra": [{"auth": marker(SECRET)}], "region": "us-east-1"}],
        "tokens": ["", marker(SECRET)],
    }


def test_a_setting_listed_in_keep_settings_is_kept_as_it_is():
    keep = frozenset({("destinations", "settings", "hooks", "token")})
    out = redact({"hooks": [{"token": "visible"}], "token": "hidden"}, keep)
    assert out == {"hooks": [{"token": "visible"}], "token": marker("hidden")}


def test_function_code_keeps_its_text_and_loses_the_literals_that_may_be_secrets():
    code = (
        "const pwd = 'hunter2'\n"
        "// our api token is hunter3\n"
        "await fetch('https://api.example.com/v1/events?token=hunter4', {\n"
        "  method: 'POST',\n"
        "  headers: { Authorization: 'Bearer hunter5', 'Content-Type': 'application/json' },\n"
        "})\n"
        "Segment.track({ event: 'Order Synced' })\n"
        "const header = 'Bearer ' + TOKEN; const lookup = `Bearer ${API_KEY}`\n"
        "sign(event, 'hunter6')\n"
    )
    out = redact_item({"id": "f", "code": code}, BY_TABLE["function_code"], KEY)["code"]
    assert [s for s in ("hunter2", "hunter3", "hunter4", "hunter5", "hunter6") if s in out] == []
    for kept in ("method: 'POST'", "'Content-Type': 'application/json'", "event: 'Order Synced'", "${API_KEY}"):
        assert kept in out
    assert "'Bearer ' + TOKEN" in out and "https://api.example.com/v1/events?token=" in out


def test_write_keys_are_masked_one_by_one():
    out = redact_item({"id": "s1", "writeKeys": ["wk1", "wk2"]}, BY_TABLE["sources"], KEY)
    assert out["writeKeys"] == [mask("wk1", KEY), mask("wk2", KEY)]
    assert out["id"] == "s1"


def test_every_settings_like_field_of_the_surface_is_redacted():
    transformation = {"id": "t", "hashPropertiesConfiguration": {"algorithm": "SHA256", "key": SECRET}}
    function = {"id": "f", "settings": [{"name": "apiKey", "type": "STRING", "value": SECRET}]}
    subscription = {"id": "s", "settings": {"headers": {"X-Auth": SECRET}}}
    for table, item in (
        ("transformations", transformation),
        ("function_code", function),
        ("destination_subscriptions", subscription),
    ):
        assert SECRET not in json.dumps(redact_item(item, BY_TABLE[table], KEY)), table
    assert redact_item(transformation, BY_TABLE["transformations"], KEY)["hashPropertiesConfiguration"][
        "algorithm"
    ] == ("SHA256")


def test_a_fingerprint_changes_when_the_secret_changes_and_only_then():
    assert mask("s3cret", KEY) == mask("s3cret", KEY)
    assert mask("s3cret", KEY) != mask("s3cret2", KEY)
    assert mask("s3cret", KEY).startswith("<redacted:")


def test_the_default_key_comes_from_the_token_the_same_on_every_machine():
    assert token_key("sgp_token_a") == token_key("sgp_token_a")
    assert token_key("sgp_token_a") != token_key("sgp_token_b")
    assert "sgp_token_a" not in token_key("sgp_token_a")


def test_error_snippets_are_masked_with_a_key_of_this_process_only():
    snippet = redact_text('{"data": {"settings": {"pass": "hunter2", "region": "eu"}}')
    assert "hunter2" not in snippet and '"region": "eu"' in snippet
    assert fingerprint("hunter2", "error-snippet") not in snippet


def test_the_tally_counts_each_leaf_by_the_rule_that_decided_it():
    tally: Counter = Counter()
    redact({"region": "eu", "pwd": "x", "ok": True, "dsn": "host=db password=x"}, tally=tally)
    assert tally == {
        ("kept", "name:place"): 1,
        ("masked", "deny"): 1,
        ("kept", "boolean"): 1,
        ("partly masked", "structure:dsn"): 1,
    }
