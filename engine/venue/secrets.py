"""Wallet secrets: loading `AI_QUANT_SECRETS_PATH` safely and keeping the key out of every output.

The file is a JSON object:

    {"secret_key": "0x<64 hex>", "main_address": "0x<40 hex>",
     "agent_secret_key": "0x<64 hex>", "agent_address": "0x<40 hex>"}   # the agent pair optional

`secret_key` signs unless `agent_secret_key` is given (an approved agent wallet trading for
`main_address`). If `agent_address` is given it must be the agent key's address.

Refused with SecretsError (a ConfigError: stop at start-up) when the file is not a regular file,
is readable or writable by group or others (0644 refused; `chmod 600`), is not a JSON object, has
unknown or missing fields, or a field is malformed. The permission check uses fstat on the opened
descriptor, so the file checked is the file read. Error messages name the field, never its value;
every error is raised `from None` so no chained exception carries the file's text.

Key material lives in `engine.config.secret.Secret`, whose repr/str/format print `<redacted>` and
which refuses to be pickled; only `reveal()` returns it, and only `signing_key()` needs to call that.
"""

from __future__ import annotations

import json
import os
import re
import stat
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.config.env import ConfigError, env_str
from engine.config.secret import REDACTED, Secret
from engine.venue.exchange_client import SigningKey

ENV_SECRETS_PATH = "AI_QUANT_SECRETS_PATH"
DEFAULT_SECRETS_PATH = "~/.config/openclaw/ai-quant-secrets.json"
MAX_SECRETS_BYTES = 64 * 1024

_KEY_RE = re.compile(r"(0x)?[0-9a-fA-F]{64}")
_ADDRESS_RE = re.compile(r"0x[0-9a-fA-F]{40}")
_NAME_RE = re.compile(r"[a-z_][a-z0-9_]{0,31}")
_FIELDS = frozenset({"secret_key", "main_address", "agent_secret_key", "agent_address"})


class SecretsError(ConfigError):
    """The secrets file is unsafe or malformed; the message names the problem, never a value."""


@dataclass(frozen=True, slots=True, repr=False)
class LiveSecrets:
    """The loaded wallet secrets; addresses are public, keys are `Secret`s."""

    secret_key: Secret
    main_address: str
    agent_secret_key: Secret | None = None
    agent_address: str | None = None

    def signing_key(self) -> SigningKey:
        """Build the signer: the agent key when configured, else the main secret key."""
        key = self.agent_secret_key or self.secret_key
        try:
            return SigningKey.from_hex(key.reveal())
        except Exception:  # any library error could echo the key: replace it
            field_name = "agent_secret_key" if self.agent_secret_key is not None else "secret_key"
            raise SecretsError(f"secrets: {field_name} is not a valid secp256k1 private key") from None

    def __repr__(self) -> str:
        agent = "none" if self.agent_secret_key is None else REDACTED
        return (
            f"LiveSecrets(main_address={self.main_address}, secret_key={REDACTED}, agent_secret_key={agent})"
        )

    __str__ = __repr__

    def __reduce__(self) -> Any:
        raise TypeError("LiveSecrets must not be pickled")


def secrets_path(env: Mapping[str, str] | None = None) -> Path:
    """Return AI_QUANT_SECRETS_PATH (default ~/.config/openclaw/ai-quant-secrets.json), ~ expanded."""
    return Path(env_str(ENV_SECRETS_PATH, DEFAULT_SECRETS_PATH, env)).expanduser()


def _read_private(path: Path) -> bytes:
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except FileNotFoundError:
        raise SecretsError(f"secrets file {path} does not exist") from None
    except OSError as exc:
        raise SecretsError(f"secrets file {path} cannot be opened ({exc.strerror})") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise SecretsError(f"secrets file {path} is not a regular file")
        mode = stat.S_IMODE(info.st_mode)
        if mode & 0o077:
            raise SecretsError(
                f"secrets file {path} has mode {mode:04o}: group/other may access it; run `chmod 600 {path}`"
            )
        if info.st_size > MAX_SECRETS_BYTES:
            raise SecretsError(f"secrets file {path} is larger than {MAX_SECRETS_BYTES} bytes")
        chunks = []
        while chunk := os.read(fd, MAX_SECRETS_BYTES + 1):
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


def _parse(raw: bytes, path: Path) -> dict[str, Any]:
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        # The decoder's message can quote the document: replace it with one that cannot.
        raise SecretsError(f"secrets file {path} is not valid UTF-8 JSON") from None
    if not isinstance(data, dict):
        raise SecretsError(f"secrets file {path} must hold a JSON object")
    # Name unknown fields only when they look like names: a pasted key must not be echoed.
    unknown = sorted(
        key if _NAME_RE.fullmatch(key) else "<unnamed>" for key in map(str, data) if key not in _FIELDS
    )
    if unknown:
        raise SecretsError(f"secrets file {path} has unknown field(s): {', '.join(unknown)}")
    return data


def _key(data: Mapping[str, Any], name: str, path: Path, *, required: bool) -> Secret | None:
    value = data.get(name)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not _KEY_RE.fullmatch(value.strip()):
        raise SecretsError(f"secrets file {path}: {name} must be 64 hex characters (optionally 0x-prefixed)")
    return Secret(value.strip())


def _address(data: Mapping[str, Any], name: str, path: Path, *, required: bool) -> str | None:
    value = data.get(name)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not _ADDRESS_RE.fullmatch(value.strip()):
        raise SecretsError(f"secrets file {path}: {name} must be 0x followed by 40 hex characters")
    return value.strip()


def load_live_secrets(path: str | os.PathLike[str]) -> LiveSecrets:
    """Load and validate the secrets file at `path`; raise SecretsError naming the problem."""
    file_path = Path(path).expanduser()
    data = _parse(_read_private(file_path), file_path)
    secret_key = _key(data, "secret_key", file_path, required=True)
    main_address = _address(data, "main_address", file_path, required=True)
    agent_key = _key(data, "agent_secret_key", file_path, required=False)
    agent_address = _address(data, "agent_address", file_path, required=False)
    assert secret_key is not None and main_address is not None  # required=True never returns None
    secrets = LiveSecrets(secret_key, main_address, agent_key, agent_address)
    signer = secrets.signing_key()  # validates the key is a usable secp256k1 key
    if agent_address is not None and signer.address.lower() != agent_address.lower():
        raise SecretsError(f"secrets file {file_path}: agent_address is not the address of the signing key")
    return secrets


def load_live_secrets_from_env(env: Mapping[str, str] | None = None) -> LiveSecrets:
    """Load the secrets file named by AI_QUANT_SECRETS_PATH (see `secrets_path`)."""
    return load_live_secrets(secrets_path(env))
