"""``trader web``: a read-only dashboard of a deployment (see ``docs/architecture.md``).

It reads the store and the daemon's status snapshot and nothing else: no engine,
no kernel, no gateway; it can neither trade nor change state.
"""
