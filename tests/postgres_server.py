"""A throwaway PostgreSQL server on 127.0.0.1 for the tests: started, used, stopped.

PostgreSQL refuses to run as root, so when the tests run as root the server runs as the
`postgres` system user (created by Debian's postgresql package, which .ci/run installs).
"""

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from dataclasses import dataclass
from typing import List, Optional

PASSWORD = "pg-test-password-5f1c"


@dataclass
class PostgresServer:
    port: int
    data_dir: str
    bin_dir: str
    run_as: Optional[str]

    @property
    def dsn(self) -> str:
        return f"postgresql://postgres:{PASSWORD}@127.0.0.1:{self.port}/postgres"

    def stop(self) -> None:
        _run(
            self.run_as,
            [os.path.join(self.bin_dir, "pg_ctl"), "-D", self.data_dir, "-m", "immediate", "stop"],
            check=False,
        )
        shutil.rmtree(os.path.dirname(self.data_dir), ignore_errors=True)


def find_bin_dir() -> str:
    initdb = shutil.which("initdb")
    if initdb:
        return os.path.dirname(initdb)
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4]))
    if not candidates:
        raise RuntimeError(
            "PostgreSQL server binaries (initdb, pg_ctl) were not found. Install them with"
            " `apt-get install postgresql` (as .ci/run does) to run the PostgreSQL tests."
        )
    return os.path.dirname(candidates[-1])


def start() -> PostgresServer:
    bin_dir = find_bin_dir()
    run_as = "postgres" if os.geteuid() == 0 else None
    root = tempfile.mkdtemp(prefix="segment-pg-")
    data_dir = os.path.join(root, "data")
    pwfile = os.path.join(root, "pw")
    with open(pwfile, "w") as f:
        f.write(PASSWORD)
    if run_as:
        user = pwd.getpwnam(run_as)
        os.chmod(root, 0o700)
        for path in (root, pwfile):
            os.chown(path, user.pw_uid, user.pw_gid)
    _run(
        run_as,
        [
            os.path.join(bin_dir, "initdb"),
            "-D",
            data_dir,
            "-U",
            "postgres",
            "--pwfile",
            pwfile,
            "-A",
            "scram-sha-256",
            "--no-sync",
            "-E",
            "UTF8",
        ],
    )
    port = _free_port()
    options = f"-c listen_addresses=127.0.0.1 -p {port} -k {root}"
    options += " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
    _run(
        run_as,
        [
            os.path.join(bin_dir, "pg_ctl"),
            "-D",
            data_dir,
            "-o",
            options,
            "-l",
            os.path.join(root, "log"),
            "-w",
            "start",
        ],
    )
    return PostgresServer(port=port, data_dir=data_dir, bin_dir=bin_dir, run_as=run_as)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run(run_as: Optional[str], cmd: List[str], check: bool = True) -> None:
    if run_as:
        cmd = ["runuser", "-u", run_as, "--", *cmd]
    result = subprocess.run(cmd, capture_output=True, text=True, cwd="/")
    if check and result.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
