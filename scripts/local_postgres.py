"""A throwaway PostgreSQL server on 127.0.0.1 (for the tests' ``postgres`` fixture and
``benchmarks/bench_study.py``): initdb in a temporary folder, a free port, trust authentication for
the role ``gdlab``. PostgreSQL refuses to run as root, so as root it runs as the ``postgres`` user
(runuser). Needs PostgreSQL's server programs (Debian: ``apt-get install postgresql``) and
``psycopg[binary]`` (SQLAlchemy's ``postgresql://`` driver)."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path


def server_programs() -> Path | None:
    """The folder of PostgreSQL's server programs (Debian: /usr/lib/postgresql/<version>/bin), or None."""
    found = shutil.which("initdb")
    if found:
        return Path(found).resolve().parent
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parts[-3]))
    return versions[-1].parent if versions else None


@dataclass(frozen=True)
class Postgres:
    url: str  # postgresql://gdlab@127.0.0.1:PORT (add /<database>)
    root: Path

    def database(self, name: str) -> str:
        """Create database ``name``; its URL."""
        import psycopg

        with psycopg.connect(f"{self.url}/postgres", autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return f"{self.url}/{name}"


@contextlib.contextmanager
def running(timeout_s: float = 60.0) -> Iterator[Postgres]:
    """Start a server, yield it, stop it and remove its files. RuntimeError if PostgreSQL is missing
    or does not start."""
    import psycopg

    bindir = server_programs()
    if bindir is None:
        raise RuntimeError("PostgreSQL is not installed (apt-get install postgresql)")
    root = Path(tempfile.mkdtemp(prefix="gdlab-pg-"))  # not under a private tmp: the postgres user must reach it
    as_user: list[str] = []
    if os.geteuid() == 0:
        import pwd

        user = pwd.getpwnam("postgres")
        os.chown(root, user.pw_uid, user.pw_gid)
        as_user = ["runuser", "-u", "postgres", "--"]
    data = root / "data"
    server = log = None
    try:
        initdb = [str(bindir / "initdb"), "-D", str(data), "-U", "gdlab", "--auth=trust", "-E", "UTF8", "--no-sync"]
        subprocess.run([*as_user, *initdb], check=True, capture_output=True)
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        settings = ["listen_addresses=127.0.0.1", f"unix_socket_directories={root}", "fsync=off"]
        settings += ["max_connections=300", "synchronous_commit=off", "full_page_writes=off"]
        log = open(root / "server.log", "w")  # noqa: SIM115 (closed below)
        options = [arg for setting in settings for arg in ("-c", setting)]
        server = subprocess.Popen(
            [*as_user, str(bindir / "postgres"), "-D", str(data), "-p", str(port), *options],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        url = f"postgresql://gdlab@127.0.0.1:{port}"
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                psycopg.connect(f"{url}/postgres", connect_timeout=2).close()
                break
            except psycopg.OperationalError:
                if server.poll() is not None or time.monotonic() > deadline:
                    tail = (root / "server.log").read_text()[-3000:]
                    raise RuntimeError(f"PostgreSQL did not start:\n{tail}") from None
                time.sleep(0.2)
        yield Postgres(url, root)
    finally:
        if server is not None:
            server.terminate()
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                server.kill()
        if log is not None:
            log.close()
        shutil.rmtree(root, ignore_errors=True)
