"""Trusted signer configuration: precedence, file syntax, duplicates and errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from releasesim.model.crypto import ReleaseSigner
from releasesim.model.errors import SignerConfigError
from releasesim.model.signers import (
    DEFAULT_SIGNERS_FILE,
    ENV_SIGNERS,
    ENV_SIGNERS_FILE,
    load_signer_config,
    parse_signer_list,
)

KEYS = [ReleaseSigner.derived(f"config-{i}").public_key for i in range(4)]
A, B, C, D = KEYS


def _write_default(cwd: Path, text: str) -> Path:
    path = cwd / DEFAULT_SIGNERS_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("inline", "file_keys", "default_keys", "expected_keys", "expected_source"),
    [
        ("A", "B", "C", "A", ENV_SIGNERS),
        (None, "B", "C", "B", ENV_SIGNERS_FILE),
        (None, None, "C", "C", str(DEFAULT_SIGNERS_FILE)),
        ("", "B", "C", "B", ENV_SIGNERS_FILE),  # an empty variable is "not set"
        ("  \n ", None, "C", "C", str(DEFAULT_SIGNERS_FILE)),
        (None, None, None, "", "no signers configured"),
    ],
    ids=["env-wins", "file-beats-default", "default", "empty-env", "blank-env", "nothing"],
)
def test_precedence(tmp_path, inline, file_keys, default_keys, expected_keys, expected_source):
    named = {"A": A, "B": B, "C": C}
    env: dict[str, str] = {}
    if inline is not None:
        env[ENV_SIGNERS] = named.get(inline, inline)
    if file_keys is not None:
        (tmp_path / "signers.txt").write_text(named[file_keys] + "\n")
        env[ENV_SIGNERS_FILE] = "signers.txt"  # relative: resolved against cwd
    if default_keys is not None:
        _write_default(tmp_path, named[default_keys] + "\n")
    config = load_signer_config(env, cwd=tmp_path)
    assert config.signers == tuple(named[k] for k in expected_keys)
    assert config.source.startswith(expected_source)


def test_signers_file_may_be_absolute(tmp_path):
    path = tmp_path / "elsewhere" / "keys.txt"
    path.parent.mkdir()
    path.write_text(f"{B}\n{C}\n")
    config = load_signer_config({ENV_SIGNERS_FILE: str(path)}, cwd=tmp_path / "nowhere")
    assert config.signers == (B, C)
    assert str(path) in config.source


def test_environment_is_not_read_when_an_explicit_mapping_is_given(tmp_path, monkeypatch):
    monkeypatch.setenv(ENV_SIGNERS, A)
    assert load_signer_config({}, cwd=tmp_path).signers == ()
    assert load_signer_config(None, cwd=tmp_path).signers == (A,)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (f"{A},{B}", (A, B)),
        (f"{A}\n{B}\n", (A, B)),
        (f"{A}, {B} ,\n\n{C}", (A, B, C)),
        (f"{A}\r\n{B}\r\n", (A, B)),
        (f"# trusted release signers\n\n{A}  # build farm 1\n   \n#{B}\n{C}", (A, C)),
        (f"{A.upper()}\n{B}", (A, B)),
        (f"{A}\n{A.upper()}\n{B}\n{A}", (A, B)),  # duplicates in any case removed
        (f"{B}\n{A}\n{B.upper()}", (B, A)),  # first occurrence keeps its place
        ("# nothing here\n\n", ()),
        ("", ()),
        (",,,\n,", ()),
    ],
    ids=[
        "commas", "newlines", "mixed-separators", "crlf", "comments-and-blanks", "uppercase",
        "duplicates", "first-kept", "only-comments", "empty", "only-separators",
    ],
)
def test_parse_signer_list(text, expected):
    assert parse_signer_list(text, "test") == expected


@pytest.mark.parametrize(
    ("text", "line", "token", "bad"),
    [
        (f"{A},nothex", 1, 2, "nothex"),
        (f"{A}\n# comment\n{B}\n{C[:-2]}", 4, 3, C[:-2]),
        (f"0x{A[2:]}", 1, 1, "0x"),
        (f"{A}\n{B} {C}zz", 2, 3, C + "zz"),
    ],
    ids=["bad-second-token", "short-key-line-4", "0x-prefix", "too-long"],
)
def test_invalid_token_names_source_line_and_position(tmp_path, text, line, token, bad):
    with pytest.raises(SignerConfigError) as info:
        parse_signer_list(text, "my-source")
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith("my-source:")
    assert f"line {line}" in message
    assert f"token {token}" in message
    assert bad[:20] in message


@pytest.mark.parametrize("where", ["env", "file", "default"])
def test_invalid_token_error_names_each_source(tmp_path, where):
    text = f"{A}\nbogus\n"
    env: dict[str, str] = {}
    if where == "env":
        env[ENV_SIGNERS] = text
        expected = ENV_SIGNERS
    elif where == "file":
        (tmp_path / "s.txt").write_text(text)
        env[ENV_SIGNERS_FILE] = "s.txt"
        expected = f"{ENV_SIGNERS_FILE}=s.txt"
    else:
        _write_default(tmp_path, text)
        expected = str(DEFAULT_SIGNERS_FILE)
    with pytest.raises(SignerConfigError, match="line 2") as info:
        load_signer_config(env, cwd=tmp_path)
    assert str(info.value).startswith(expected + ":")
    assert "bogus" in str(info.value)


@pytest.mark.parametrize("problem", ["missing", "directory", "not-utf8"])
def test_unreadable_signers_file(tmp_path, problem):
    path = tmp_path / "signers.txt"
    if problem == "directory":
        path.mkdir()
    elif problem == "not-utf8":
        path.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(SignerConfigError) as info:
        load_signer_config({ENV_SIGNERS_FILE: str(path)}, cwd=tmp_path)
    message = str(info.value)
    assert "\n" not in message
    assert ENV_SIGNERS_FILE in message
    assert str(path) in message
    assert "cannot read" in message


def test_unreadable_default_file(tmp_path):
    (tmp_path / DEFAULT_SIGNERS_FILE).mkdir(parents=True)
    with pytest.raises(SignerConfigError, match="release_signers.txt"):
        load_signer_config({}, cwd=tmp_path)


def test_empty_configuration_file_gives_an_empty_set(tmp_path):
    _write_default(tmp_path, "# no signers yet\n")
    config = load_signer_config({}, cwd=tmp_path)
    assert config.signers == ()
    assert config.source == str(DEFAULT_SIGNERS_FILE)


def test_signer_set_round_trips_with_key_order(tmp_path):
    env = {ENV_SIGNERS: ",".join([D, C, B, A])}
    assert load_signer_config(env, cwd=tmp_path).signers == (D, C, B, A)
