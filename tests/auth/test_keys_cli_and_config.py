"""`turnout keys`, the `auth:` config section, and the rule that keeps a gateway from facing the
network without keys."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import orjson
import pytest
from keys_helpers import create_key, keys_cli

from turnout.auth.bind import UnsafeBind, auth_mode
from turnout.auth.keys import digest
from turnout.config import AuthConfig, ConfigError, parse_config
from turnout.store.keys import open_keys


def test_create_prints_the_key_once_and_stores_only_its_hash(tmp_path: Path) -> None:
    store = tmp_path / "t.db"
    made = create_key(
        store, "--name", "ci", "--models", "a,b", "--rpm", "5", "--tpm", "900",
        "--budget-usd", "2.5", "--budget-period", "7d", "--expires", "90d",
        "--tenant", "team", "--priority", "high", "--metadata", "owner=ops",
    )  # fmt: skip
    secret = made["key"]
    assert secret.startswith("tk-") and len(secret) >= 3 + 22  # ≥ 128 bits of base64url
    assert made["id"].startswith("key_")
    keys = open_keys(f"sqlite:///{store}")
    [stored] = keys.all()
    keys.close()
    assert stored.secret_sha256 == digest(secret)
    assert stored.display == f"tk-…{secret[-4:]}"
    assert (stored.models, stored.rpm, stored.tpm) == (("a", "b"), 5, 900)
    assert (stored.budget_usd, stored.budget_period_s) == (2.5, 7 * 86400)
    assert stored.expires == pytest.approx(stored.created + 90 * 86400)
    assert (stored.tenant, stored.priority, stored.metadata) == ("team", "high", {"owner": "ops"})
    assert secret.encode() not in store.read_bytes()


def test_list_and_show_never_print_the_secret(tmp_path: Path) -> None:
    store = tmp_path / "t.db"
    made = create_key(store, "--name", "svc", "--budget-usd", "1")
    code, listed = keys_cli(store, "list")
    assert code == 0 and made["id"] in listed and made["display"] in listed
    code, shown = keys_cli(store, "show", made["id"])
    assert code == 0 and "svc" in shown and "$0.000000 spent" in shown
    assert made["key"] not in listed + shown


def test_rotate_gives_a_new_secret_and_revoke_marks_the_key(tmp_path: Path) -> None:
    store = tmp_path / "t.db"
    made = create_key(store, "--name", "r")
    code, out = keys_cli(store, "rotate", made["id"], "--json")
    rotated = orjson.loads(out)
    assert code == 0 and rotated["id"] == made["id"] and rotated["key"] != made["key"]
    assert keys_cli(store, "revoke", made["id"])[0] == 0
    code, out = keys_cli(store, "list", "--json")
    [row] = orjson.loads(out)
    assert row["status"] == "revoked" and row["display"] == f"tk-…{rotated['key'][-4:]}"


@pytest.mark.parametrize(
    ("flags", "words"),
    [
        (["--budget-period", "1d"], "budget_period: only with budget_usd"),
        (["--budget-usd", "1", "--budget-period", "fortnight"], "budget_period"),
        (["--alert-at", "0.8"], "alert_at"),
        (["--metadata", "novalue"], "--metadata"),
    ],
)
def test_create_refuses_settings_that_cannot_be(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], flags: list[str], words: str
) -> None:
    code, _ = keys_cli(tmp_path / "t.db", "create", "--name", "x", *flags)
    assert code == 1
    assert words in capsys.readouterr().err


def test_show_of_an_unknown_id_is_an_error(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    create_key(tmp_path / "t.db", "--name", "x")
    assert keys_cli(tmp_path / "t.db", "show", "key_nope")[0] == 1
    assert "key_nope" in capsys.readouterr().err


def test_the_auth_section_is_read_with_defaults_written_down() -> None:
    assert parse_config("{}").auth == AuthConfig()
    cfg = parse_config("auth: {mode: keys, admin_key_env: OPS_KEY, protect: [admin]}")
    assert (cfg.auth.mode, cfg.auth.admin_key_env, cfg.auth.protect) == (
        "keys",
        "OPS_KEY",
        ("admin",),
    )


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ("auth: {mode: open}", "auth.mode"),
        ("auth: {protect: [console]}", "auth.protect[0]"),
        ("auth: {mode: keys, allow_unauthenticated: true}", "auth.allow_unauthenticated"),
        ("auth: {admin_key_env: 'not a name'}", "auth.admin_key_env"),
        ("auth: {keys: []}", "auth.keys"),
    ],
)
def test_a_bad_auth_section_names_the_key(text: str, where: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_config(text, "c.yaml")
    assert err.value.path == where


@pytest.mark.parametrize("host", ["127.0.0.1", "::1", "localhost", "127.0.0.2"])
def test_without_a_mode_loopback_runs_without_keys(host: str) -> None:
    assert auth_mode(AuthConfig(), host) == "none"


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "10.1.2.3", "gateway.internal"])
def test_without_a_mode_any_other_bind_requires_keys(host: str) -> None:
    assert auth_mode(AuthConfig(), host) == "keys"


def test_mode_none_off_loopback_is_refused_unless_allowed_loudly(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with pytest.raises(UnsafeBind, match="allow_unauthenticated"):
        auth_mode(AuthConfig(mode="none"), "0.0.0.0")
    with caplog.at_level(logging.WARNING, "turnout.auth"):
        assert auth_mode(AuthConfig(mode="none", allow_unauthenticated=True), "0.0.0.0") == "none"
    assert "AUTH IS OFF" in caplog.text


def test_serve_refuses_to_start_unauthenticated_on_a_public_bind(tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text(
        "deployments:\n  up: {kind: openai, base_url: 'http://127.0.0.1:9/v1', model: m}\n"
        "models:\n  chat: {deployments: [up]}\n"
        f"store: {{url: 'sqlite:///{tmp_path / 't.db'}'}}\n"
        "auth: {mode: none}\n"
    )
    src = str(Path(__import__("turnout").__file__).parents[1])
    done = subprocess.run(
        [sys.executable, "-m", "turnout", "serve", "--config", str(config), "--host", "0.0.0.0"],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": src},
    )
    assert done.returncode == 2
    assert "refusing to serve without client keys on 0.0.0.0" in done.stderr
