"""The keys a gateway knows, by the hash of their secret, kept in memory and re-read from the
store's change counter: the request path never waits on the store, and a key created or
revoked anywhere (the CLI, another replica) shows within one refresh."""

from __future__ import annotations

from turnout.auth.keys import digest
from turnout.store.keys import KeyRecord, KeyStore


class Keyring:
    def __init__(self, store: KeyStore) -> None:
        self.store = store
        self.by_hash: dict[str, KeyRecord] = {}
        self.by_id: dict[str, KeyRecord] = {}
        self.revision = 0

    def refresh(self) -> list[KeyRecord]:
        """Reads what changed since the last refresh (blocking: run it off the event loop)."""
        changed = self.store.changed_since(self.revision)
        for key in changed:
            self.learn(key)
        return changed

    def learn(self, key: KeyRecord) -> None:
        old = self.by_id.get(key.id)
        if old is not None and old.revision > key.revision:
            return  # a newer version already arrived
        if old is not None and old.secret_sha256 != key.secret_sha256:
            self.by_hash.pop(old.secret_sha256, None)  # rotated: the old secret stops working
        self.by_id[key.id] = key
        self.by_hash[key.secret_sha256] = key
        self.revision = max(self.revision, key.revision)

    def find(self, secret: str) -> KeyRecord | None:
        return self.by_hash.get(digest(secret))
