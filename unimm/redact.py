"""Which config keys hold secrets: the one rule the stage cache and the manifest share.

Only a key that names a credential is secret (`api_key`, `hf_token`, `password`, `secret_key`).
A word match is not enough: `max_tokens` and `token_budget` change what a build produces, so they
must enter fingerprints and show in manifests like every other setting.
"""

from __future__ import annotations

import re

_SECRET_KEY = re.compile(
    r"(?:^|[_.-])(?:api_?key|secret(?:_?key)?|private_?key|password|passwd|token|credentials?)$",
    re.IGNORECASE,
)
REDACTED = "***"


def is_secret_key(name: object) -> bool:
    """True when the mapping key `name` names a credential whose value must never be stored."""
    return isinstance(name, str) and _SECRET_KEY.search(name) is not None


def redact(text: str, secret: str | None) -> str:
    """`text` with every occurrence of the secret value replaced: servers quote rejected keys in
    their error messages, which would otherwise be stored with the failure."""
    return text.replace(secret, REDACTED) if secret else text
