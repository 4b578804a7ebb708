"""The registry's pointer documents and its setting, without S3 (tests/integration/test_model_registry.py has S3)."""

from __future__ import annotations

import pytest

from botscore.model.registry import POINTER_FORMAT, RegistryError, parse_pointer
from botscore.settings import SettingsError, load_settings


def test_a_pointer_names_a_version_or_none() -> None:
    assert parse_pointer(b'{"format": "%s", "version": "lr-0123"}' % POINTER_FORMAT.encode(), "p") == "lr-0123"
    assert parse_pointer(b'{"format": "%s", "version": null}' % POINTER_FORMAT.encode(), "p") is None


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        (b"{not json", "model pointer s3://b/production: not valid JSON"),
        (b'{"version": "lr-1"}', f"model pointer s3://b/production: not a {POINTER_FORMAT} document"),
        (
            b'{"format": "%s", "version": "lr-1\\r\\nX: 1"}' % POINTER_FORMAT.encode(),
            "model pointer s3://b/production: version must be null or a model version, got 'lr-1\\r\\nX: 1'",
        ),
    ],
)
def test_a_pointer_that_is_not_one_is_refused_naming_it(raw: bytes, problem: str) -> None:
    with pytest.raises(RegistryError) as info:
        parse_pointer(raw, "s3://b/production")
    assert str(info.value) == problem


def test_the_registry_setting_must_be_an_s3_url_and_becomes_a_folder() -> None:
    assert (
        load_settings(model_registry="s3://bucket/models/bot-score").model_registry == "s3://bucket/models/bot-score/"
    )
    with pytest.raises(SettingsError) as info:
        load_settings(model_registry="/srv/models/")
    assert str(info.value) == (
        "BOTSCORE_MODEL_REGISTRY='/srv/models/': Value error, must be an s3://bucket/prefix/ URL"
    )
