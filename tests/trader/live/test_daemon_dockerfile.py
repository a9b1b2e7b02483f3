"""The Dockerfile (no engine here to build it): the properties the issue asks for."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[3]


def _instructions() -> list[tuple[str, str]]:
    text = (REPO / "Dockerfile").read_text().replace("\\\n", " ")
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def test_dockerfile_runs_the_daemon_as_non_root_with_a_volume_and_healthcheck():
    ins = _instructions()
    kinds = [k for k, _ in ins]
    base = dict(ins)["FROM"]
    assert base.startswith("python:3.11") and "slim" in base
    users = [v for k, v in ins if k == "USER"]
    assert users and users[-1] not in ("root", "0")
    # USER comes before the entrypoint runs: nothing after it switches back to root.
    assert kinds.index("USER") < kinds.index("ENTRYPOINT")
    assert "/var/lib/trader" in dict(ins)["VOLUME"]
    assert '"trader", "run"' in dict(ins)["ENTRYPOINT"]
    health = dict(ins)["HEALTHCHECK"]
    assert '"trader", "status"' in health and "--check" in health
    # Everything the package needs is copied in before it is installed.
    copied = " ".join(v for k, v in ins if k == "COPY")
    for pkg in ("trader", "gateways", "models", "risk", "pyproject.toml", "setup.py",
                "build_backend"):
        assert pkg in copied
    assert (REPO / ".dockerignore").read_text().count(".venv")
