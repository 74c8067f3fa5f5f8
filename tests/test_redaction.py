"""Secrets are masked wherever they hide in settings; what carries no secret is kept."""

from segment_source.redaction import is_secret_name, mask, redact_item, redact_settings

KEY = "workspace-key"


def test_secret_looking_names_are_recognised():
    for name in (
        "apiKey",
        "api_key",
        "secretId",
        "clientSecret",
        "password",
        "token",
        "refreshToken",
        "privateKey",
        "private_key_id",
        "accessKeyId",
        "secretAccessKey",
        "writeKeys",
        "appKey",
        "webhook",
        "Authorization",
        ".../config/apiKey",
    ):
        assert is_secret_name(name), name
    for name in ("region", "name", "key", "value", "portalId", "stream", "primaryKey", "hostname", "measurementId"):
        assert not is_secret_name(name), name


def test_secrets_are_masked_at_any_depth_and_inside_lists():
    settings = {
        "apiKey": "plain-1",
        "region": "us-west-2",
        "nested": {"deeper": [{"clientSecret": "plain-2", "label": "x"}]},
        "credentials": {"type": "service_account", "private_key": "plain-3"},
        "headers": [{"key": "Authorization", "value": "Bearer plain-4"}, {"key": "X-Team", "value": "data"}],
        "url": "https://user:plain-5@example.com/hook?token=plain-6&team=data",
    }
    out = redact_settings(settings, KEY)
    text = repr(out)
    for n in range(1, 7):
        assert f"plain-{n}" not in text
    assert out["region"] == "us-west-2"
    assert out["nested"]["deeper"][0]["label"] == "x"
    assert out["headers"][1] == {"key": "X-Team", "value": "data"}
    assert "team=data" in out["url"]


def test_values_segment_already_masks_stay_as_they_are():
    assert redact_settings({"apiKey": "••••••••••dada"}, KEY) == {"apiKey": "••••••••••dada"}


def test_a_fingerprint_changes_when_the_secret_changes_and_only_then():
    assert mask("s3cret", KEY) == mask("s3cret", KEY)
    assert mask("s3cret", KEY) != mask("s3cret2", KEY)
    assert mask("s3cret", KEY).startswith("<redacted:")


def test_empty_null_and_boolean_settings_are_kept():
    assert redact_settings({"token": "", "password": None, "useToken": True}, KEY) == {
        "token": "",
        "password": None,
        "useToken": True,
    }


def test_write_keys_are_masked_one_by_one():
    out = redact_item({"id": "s1", "writeKeys": ["wk1", "wk2"]}, ["writeKeys"], [], KEY)
    assert len(out["writeKeys"]) == 2
    assert all(v.startswith("<redacted:") for v in out["writeKeys"])
    assert out["id"] == "s1"
