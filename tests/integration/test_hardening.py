# SPDX-License-Identifier: MIT
"""Integration tests of the daemon's defences (issue 16): one daemon per port and per data
directory, bounded request memory, per-address connection caps and request deadlines,
TLS, and path hygiene."""

import json
import os
import socket
import subprocess
import tempfile
import time

import wn
from wn import assert_eq, assert_problem, test


def run_second(argv, timeout=30):
    """Run a winnowd that should refuse to start; (exit code, stderr text)."""
    r = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True,
                       env=wn.child_env(), timeout=timeout * wn.SLOW)
    return r.returncode, r.stderr.decode("utf-8", "replace")


@test
def a_second_daemon_on_the_same_data_directory_exits():
    with wn.Daemon() as d:
        code, err = run_second([wn.WINNOWD, "--listen", "127.0.0.1:0", "--data-dir", d.data_dir])
        assert code != 0, "second daemon on the same data directory exited 0:\n" + err
        assert "in use by another winnowd" in err and d.data_dir in err, err
        assert "pid %d" % d.proc.pid in err, "the holder's pid is not named:\n" + err
        # the first one still serves, and its data directory is untouched by the attempt
        assert_eq(d.request("GET", "/readyz")[0], 200, "first daemon after the attempt")
    # the lock goes with the process: a restart on the same directory works
    with wn.Daemon() as d:
        d.stop()
        d.start()
        assert_eq(d.request("GET", "/livez")[0], 200, "restart on the same directory")


@test
def a_second_daemon_on_a_busy_port_exits():
    with wn.Daemon() as d:
        other = tempfile.mkdtemp(prefix="winnow-port-")
        try:
            code, err = run_second([wn.WINNOWD, "--listen", "127.0.0.1:%d" % d.port,
                                    "--data-dir", other])
        finally:
            subprocess.run(["rm", "-rf", other])
        assert code != 0, "second daemon on a busy port exited 0:\n" + err
        assert "cannot listen on 127.0.0.1:%d" % d.port in err, err
        assert "in use" in err, err
        # every request still reaches the one daemon that holds the port
        for _ in range(6):
            assert_eq(d.request("GET", "/livez")[0], 200, "first daemon")


if __name__ == "__main__":
    wn.main()
