"""What a pin covers: canonical JSON (RFC 8785), tool hash, package identity; a diff's words."""

from __future__ import annotations

import json
from pathlib import Path

from mcp_peers import (  # noqa: F401 (fixtures are found by name)
    npm_peers_fixture,
)

from turnout.mcp.canonical import canonical_json, tool_hash
from turnout.mcp.changes import egress_changes, package_change, tool_changes
from turnout.mcp.config import ServerSpec
from turnout.mcp.identity import resolve_identity, split_npm_spec


def test_canonical_json_matches_the_rfc_8785_example() -> None:
    value = json.loads(
        '{"numbers": [333333333.33333329, 1E30, 4.50, 2e-3, 0.000000000000000000000000001],'
        ' "string": "\\u20ac$\\u000F\\u000aA\'\\u0042\\u0022\\u005c\\\\\\"\\/",'
        ' "literals": [null, true, false]}'
    )
    assert canonical_json(value) == (
        '{"literals":[null,true,false],"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27],'
        '"string":"€$\\u000f\\nA\'B\\"\\\\\\\\\\"/"}'
    )


def test_canonical_json_sorts_keys_by_utf16_code_units() -> None:
    keys = ["\u20ac", "\r", "\ufb33", "1", "\U0001f600", "\u0080", "\u00f6"]
    out = canonical_json(dict.fromkeys(keys, 0))
    order = [k for k in json.loads("[" + out[1:-1].replace(":0", "") + "]")]
    assert order == ["\r", "1", "\u0080", "\u00f6", "\u20ac", "\U0001f600", "\ufb33"]


TOOL = {
    "name": "send_email",
    "title": "Send",
    "description": "Send an email.",
    "inputSchema": {"type": "object", "properties": {"to": {"type": "string"}}},
    "annotations": {"destructiveHint": False},
}


def test_the_tool_hash_covers_what_the_model_reads_and_nothing_else() -> None:
    base = tool_hash(TOOL)
    reordered = json.loads(json.dumps(TOOL, sort_keys=True))
    assert tool_hash(reordered) == base
    assert tool_hash({**TOOL, "_meta": {"x": 1}, "icons": [], "execution": {}}) == base
    assert tool_hash({**TOOL, "outputSchema": None}) == base  # null is absent
    for key, value in (
        ("title", "Send!"),
        ("description", "Send an email. Quietly."),
        ("inputSchema", {"type": "object", "properties": {"to": {"type": "number"}}}),
        ("outputSchema", {"type": "object"}),
        ("annotations", {"destructiveHint": True}),
    ):
        assert tool_hash({**TOOL, key: value}) != base, key


def test_a_diff_names_schema_changes_the_way_a_reviewer_would() -> None:
    changed = json.loads(json.dumps(TOOL))
    changed["inputSchema"]["properties"]["bcc"] = {"type": "string"}
    changed["inputSchema"]["required"] = ["to", "bcc"]
    changed["inputSchema"]["properties"]["to"]["enum"] = ["a@x"]
    assert tool_changes(TOOL, changed) == [
        "inputSchema gained property `bcc`",
        'inputSchema property `to` gained enum ["a@x"]',
        "inputSchema now requires `bcc`",
        "inputSchema now requires `to`",
    ]


def test_package_and_egress_changes_in_words() -> None:
    old = {"kind": "npm", "name": "postmark-mcp", "version": "1.0.15", "integrity": "a"}
    assert (
        package_change(old, {**old, "version": "1.0.16"}) == "package postmark-mcp 1.0.15 → 1.0.16"
    )
    assert package_change(old, {**old, "integrity": "b"}) == (
        "package postmark-mcp 1.0.15: same version, different integrity"
    )
    shape = {"host": "api.postmarkapp.com", "method": "POST", "path": "/email", "keys": ["To"]}
    assert egress_changes("send_email", [shape], [{**shape, "keys": ["Bcc", "To"]}]) == [
        "send_email now sends field `Bcc` to api.postmarkapp.com (POST /email)"
    ]
    assert egress_changes("send_email", [shape], [{**shape, "host": "evil.example"}]) == [
        "send_email now sends POST /email to evil.example with fields To"
    ]


def test_package_identity_is_read_from_disk_before_launch(tmp_path: Path) -> None:
    package = tmp_path / "node_modules" / "@scope" / "srv"
    package.mkdir(parents=True)
    (package / "package.json").write_text('{"name": "@scope/srv", "version": "1.2.3"}')
    (package / "index.js").write_text("// v1")
    lock = {"packages": {"node_modules/@scope/srv": {"integrity": "sha512-abc"}}}
    (tmp_path / "node_modules" / ".package-lock.json").write_text(json.dumps(lock))
    spec = ServerSpec("s", "stdio", "node", (str(package / "index.js"),))
    first = resolve_identity(spec)
    assert {k: first[k] for k in ("kind", "name", "version", "integrity")} == {
        "kind": "npm",
        "name": "@scope/srv",
        "version": "1.2.3",
        "integrity": "sha512-abc",
    }
    (package / "index.js").write_text("// v1, patched in place")
    assert resolve_identity(spec)["files"] != first["files"]  # local tampering shows too
    npx = ServerSpec("s", "stdio", "npx", ("-y", "@scope/srv@1.2.3"), cwd=str(tmp_path))
    assert resolve_identity(npx)["integrity"] == "sha512-abc"
    assert split_npm_spec("@scope/srv@1.2.3") == ("@scope/srv", "1.2.3")
    script = tmp_path / "server.py"
    script.write_text("print()")
    assert resolve_identity(ServerSpec("p", "stdio", "python3", (str(script),)))["kind"] == "file"
    assert resolve_identity(ServerSpec("r", "http", url="https://x.example/mcp")) == {
        "kind": "remote",
        "url": "https://x.example/mcp",
    }
