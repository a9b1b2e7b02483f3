"""Reading a secret from the file a gateway's config names.

Secrets never live in the YAML: a gateway's config names an environment variable
or a file, and the gateway reads it at start-up.  How an empty or unset variable
is treated is each venue's own rule (its config module); reading the file is the
same everywhere and lives here.  Errors name the config key and the path, never
the value.
"""

from __future__ import annotations

from pathlib import Path


def read_secret_file(path: Path | str, key: str, error: type[Exception]) -> str:
    """The stripped contents of ``path``; ``error`` naming ``key`` when it cannot be read
    or is empty (a blank secret is a mistake, not "none configured")."""
    try:
        value = Path(path).expanduser().read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise error(f"{key}: cannot read {path}: {exc.strerror}") from None
    if not value:
        raise error(f"{key}: {path} is empty")
    return value
