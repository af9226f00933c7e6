"""engine.venue.secrets: unsafe files refused; the key never shows in repr/str/format/logs/exceptions."""

from __future__ import annotations

import json
import logging
import os
import pickle
import traceback
from pathlib import Path

import pytest
from eth_account import Account

from engine.venue.secrets import (
    LiveSecrets,
    Secret,
    SecretsError,
    load_live_secrets,
    load_live_secrets_from_env,
    secrets_path,
)

KEY_HEX = "4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318"
AGENT_HEX = "8f2a55949038a9610f50fb23b5883af3b4ecb3c3bb792cbcefbd1542c692be63"
MAIN = "0x" + "ab" * 20
AGENT_ADDRESS = Account.from_key("0x" + AGENT_HEX).address


def _write(tmp_path: Path, payload: object, mode: int = 0o600, raw: str | None = None) -> Path:
    path = tmp_path / "secrets.json"
    path.write_text(raw if raw is not None else json.dumps(payload))
    os.chmod(path, mode)
    return path


def _assert_no_key(text: str) -> None:
    for secret in (KEY_HEX, AGENT_HEX):
        assert secret not in text.lower()
        assert secret[:16] not in text.lower()


def test_load_valid_file_builds_signer_of_the_key(tmp_path: Path) -> None:
    secrets = load_live_secrets(_write(tmp_path, {"secret_key": "0x" + KEY_HEX, "main_address": MAIN}))
    assert secrets.main_address == MAIN
    assert secrets.signing_key().address == Account.from_key("0x" + KEY_HEX).address


def test_agent_key_signs_when_present_and_address_is_checked(tmp_path: Path) -> None:
    payload = {"secret_key": KEY_HEX, "main_address": MAIN, "agent_secret_key": AGENT_HEX}
    secrets = load_live_secrets(_write(tmp_path, payload | {"agent_address": AGENT_ADDRESS}))
    assert secrets.signing_key().address == AGENT_ADDRESS
    with pytest.raises(SecretsError, match="agent_address"):
        load_live_secrets(_write(tmp_path, payload | {"agent_address": MAIN}))


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660, 0o606, 0o700 | 0o004])
def test_group_or_world_accessible_file_is_refused(tmp_path: Path, mode: int) -> None:
    path = _write(tmp_path, {"secret_key": KEY_HEX, "main_address": MAIN}, mode=mode)
    with pytest.raises(SecretsError, match="chmod 600") as info:
        load_live_secrets(path)
    _assert_no_key(str(info.value))


@pytest.mark.parametrize("mode", [0o600, 0o400])
def test_owner_only_file_is_accepted(tmp_path: Path, mode: int) -> None:
    path = _write(tmp_path, {"secret_key": KEY_HEX, "main_address": MAIN}, mode=mode)
    assert load_live_secrets(path).main_address == MAIN


def test_missing_file_and_directory_are_refused(tmp_path: Path) -> None:
    with pytest.raises(SecretsError, match="does not exist"):
        load_live_secrets(tmp_path / "nope.json")
    directory = tmp_path / "dir"
    directory.mkdir(mode=0o700)
    with pytest.raises(SecretsError):
        load_live_secrets(directory)


BAD_FILES = [
    ("not_json", None, f"{KEY_HEX} is my key", "not valid UTF-8 JSON"),
    ("truncated", None, '{"secret_key": "' + KEY_HEX, "not valid UTF-8 JSON"),
    ("list", [KEY_HEX, MAIN], None, "JSON object"),
    ("missing_key", {"main_address": MAIN}, None, "secret_key"),
    ("short_key", {"secret_key": KEY_HEX[:-2], "main_address": MAIN}, None, "secret_key"),
    ("key_not_str", {"secret_key": 12345, "main_address": MAIN}, None, "secret_key"),
    ("bad_address", {"secret_key": KEY_HEX, "main_address": KEY_HEX}, None, "main_address"),
    ("missing_address", {"secret_key": KEY_HEX}, None, "main_address"),
    ("bad_agent", {"secret_key": KEY_HEX, "main_address": MAIN, "agent_secret_key": "0x12"}, None, "agent"),
    ("unknown_field", {"secret_key": KEY_HEX, "main_address": MAIN, "key2": KEY_HEX}, None, "key2"),
    ("key_as_field_name", {"secret_key": KEY_HEX, "main_address": MAIN, KEY_HEX: 1}, None, "unknown field"),
    ("zero_key", {"secret_key": "0" * 64, "main_address": MAIN}, None, "secret_key"),
]


@pytest.mark.parametrize(("name", "payload", "raw", "match"), BAD_FILES, ids=[b[0] for b in BAD_FILES])
def test_malformed_file_is_refused_without_echoing_the_key(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, name: str, payload: object, raw: str | None, match: str
) -> None:
    path = _write(tmp_path, payload, raw=raw)
    logger = logging.getLogger("test.secrets")
    with caplog.at_level(logging.DEBUG), pytest.raises(SecretsError, match=match) as info:
        try:
            load_live_secrets(path)
        except SecretsError:
            logger.exception("loading secrets failed")  # what an outer handler would do
            raise
    rendered = "".join(traceback.format_exception(info.value))
    _assert_no_key(rendered)
    _assert_no_key(repr(info.value))
    _assert_no_key(caplog.text)
    assert info.value.__cause__ is None
    assert info.value.__context__ is None or info.value.__suppress_context__


def test_secrets_never_render_the_key(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    payload = {"secret_key": KEY_HEX, "main_address": MAIN, "agent_secret_key": AGENT_HEX}
    secrets = load_live_secrets(_write(tmp_path, payload))
    logger = logging.getLogger("test.secrets")
    with caplog.at_level(logging.DEBUG):
        logger.info("secrets %s %r", secrets, secrets)
        logger.info("key %s / %r", secrets.secret_key, secrets.agent_secret_key)
        logger.info(f"f-string {secrets.secret_key} {secrets.secret_key!r} {secrets.secret_key:>80}")
        logger.info("signer %s", secrets.signing_key())
    _assert_no_key(caplog.text)
    for text in (
        repr(secrets),
        str(secrets),
        f"{secrets}",
        repr(secrets.secret_key),
        str(secrets.secret_key),
    ):
        _assert_no_key(text)
    assert MAIN in repr(secrets)
    assert "<redacted>" in caplog.text


def test_secrets_refuse_pickling() -> None:
    with pytest.raises(TypeError):
        pickle.dumps(Secret(KEY_HEX))
    with pytest.raises(TypeError):
        pickle.dumps(LiveSecrets(Secret(KEY_HEX), MAIN))


def test_secrets_path_from_env_with_default(tmp_path: Path) -> None:
    assert secrets_path({}) == Path("~/.config/openclaw/ai-quant-secrets.json").expanduser()
    path = _write(tmp_path, {"secret_key": KEY_HEX, "main_address": MAIN})
    assert load_live_secrets_from_env({"AI_QUANT_SECRETS_PATH": str(path)}).main_address == MAIN


def test_symlink_is_refused(tmp_path: Path) -> None:
    target = _write(tmp_path, {"secret_key": KEY_HEX, "main_address": MAIN})
    link = tmp_path / "link.json"
    link.symlink_to(target)
    with pytest.raises(SecretsError, match="cannot be opened"):
        load_live_secrets(link)
