"""The trusted release-signer configuration.

Trusted signers come from, in order of precedence: ``TB_RELEASE_SIGNERS`` (comma or
newline separated hex keys), the file named by ``TB_RELEASE_SIGNERS_FILE``, then
``config/release_signers.txt`` relative to the working directory. Unlike the original,
an invalid token is an error naming its source and position; ``#`` comments and blank
lines are allowed; duplicates (in any letter case) are removed, first occurrence kept.

Imports only ``releasesim.model.crypto`` and ``releasesim.model.errors``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from releasesim.model.crypto import parse_public_key
from releasesim.model.errors import MalformedInput, SignerConfigError

ENV_SIGNERS = "TB_RELEASE_SIGNERS"
ENV_SIGNERS_FILE = "TB_RELEASE_SIGNERS_FILE"
DEFAULT_SIGNERS_FILE = Path("config") / "release_signers.txt"
_SEPARATORS = re.compile(r"[,\s]+")


@dataclass(frozen=True, slots=True)
class SignerConfig:
    """The configured signer set and where it came from (for messages)."""

    signers: tuple[str, ...]
    source: str


def parse_signer_list(text: str, source: str) -> tuple[str, ...]:
    """Parse comma/newline separated hex keys; ``#`` starts a comment to the end of line.

    Raises ``SignerConfigError`` naming ``source``, line and token position.
    """
    seen: dict[str, None] = {}
    position = 0
    for lineno, raw_line in enumerate(text.splitlines(), start=1):
        line = raw_line.split("#", 1)[0]
        for token in _SEPARATORS.split(line.strip()):
            if not token:
                continue
            position += 1
            try:
                key = parse_public_key(token, "key")
            except MalformedInput as exc:
                raise SignerConfigError(
                    f"{source}: line {lineno}, token {position}: invalid signer {exc}"
                ) from None
            seen.setdefault(key, None)
    return tuple(seen)


def load_signer_config(
    env: Mapping[str, str] | None = None, cwd: Path | None = None
) -> SignerConfig:
    """Read the trusted signer set by the documented precedence; empty when none is configured."""
    env = os.environ if env is None else env
    inline = env.get(ENV_SIGNERS)
    if inline is not None and inline.strip():
        return SignerConfig(parse_signer_list(inline, ENV_SIGNERS), ENV_SIGNERS)
    file_name = env.get(ENV_SIGNERS_FILE)
    if file_name:
        path = Path(file_name)
        if not path.is_absolute() and cwd is not None:
            path = cwd / path
        return _read_file(path, f"{ENV_SIGNERS_FILE}={file_name}")
    default = (cwd or Path.cwd()) / DEFAULT_SIGNERS_FILE
    if default.exists():
        return _read_file(default, str(DEFAULT_SIGNERS_FILE))
    return SignerConfig((), "no signers configured")


def _read_file(path: Path, label: str) -> SignerConfig:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SignerConfigError(f"{label}: cannot read signer file: {exc}") from None
    return SignerConfig(parse_signer_list(text, label), label)
