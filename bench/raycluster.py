"""A throwaway Ray cluster on loopback addresses, for tests and benchmarks.

Ray replaces ``127.0.0.1`` with the machine's network address, so nodes run on
``127.0.0.2``, ``127.0.0.3``, ... (which it keeps). Every node is started with
``ray start`` under one private temp folder, without token authentication (loopback
only), and :meth:`LoopbackRayCluster.stop` ends exactly the processes under that folder
(and their children): never ``ray stop``, which would end every Ray process on the machine.

>>> with LoopbackRayCluster(nodes=2) as c:
...     c.address      # "127.0.0.2:PORT", for --cluster
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RAY = str(Path(sys.executable).with_name("ray"))


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


class LoopbackRayCluster:
    """Head on 127.0.0.2 plus ``nodes - 1`` worker nodes on 127.0.0.3, ... with ``cpus`` CPU slots each.

    ``node_env`` gives extra environment variables per node index (0 = head), e.g. a
    ``WORKBENCH_PATH_MAP`` for one node. ``env`` is what clients of the cluster should
    use (no token authentication).
    """

    def __init__(self, nodes: int = 2, *, cpus: int = 1, node_env: dict[int, dict[str, str]] | None = None):
        self.n_nodes = nodes
        self.cpus = cpus
        self.node_env = node_env or {}
        self.temp_dir = Path(tempfile.mkdtemp(prefix="wbray-", dir="/tmp"))  # short: Ray puts sockets here
        self.head_ip = "127.0.0.2"
        self.port = free_port()
        self.client_port = free_port()
        self.env = {**os.environ, "RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0"}
        # Ray gives a Ray Client's server 30 s to answer; a 2-core machine running the whole
        # test suite can need longer to start one
        self.env.setdefault("RAY_CLIENT_SERVER_CHECK_CHANNEL_TIMEOUT_S", "90")
        self.started: list[str] = []  # node ips

    @property
    def address(self) -> str:
        """GCS address: for a driver on a node of the cluster (``--cluster HOST:PORT``)."""
        return f"{self.head_ip}:{self.port}"

    @property
    def client_address(self) -> str:
        """Ray Client address (``--cluster ray://HOST:PORT``)."""
        return f"ray://{self.head_ip}:{self.client_port}"

    def _ray_start(self, index: int, args: list[str]) -> None:
        env = {**self.env, **self.node_env.get(index, {})}
        common = [
            f"--num-cpus={self.cpus}",
            "--num-gpus=0",
            "--disable-usage-stats",
            f"--dashboard-agent-listen-port={free_port()}",
            f"--metrics-export-port={free_port()}",
            f"--runtime-env-agent-port={free_port()}",
        ]
        out = subprocess.run([RAY, "start", *args, *common], env=env, capture_output=True, text=True, timeout=180)
        if out.returncode != 0:
            raise RuntimeError(f"ray start failed ({out.returncode}):\n{out.stdout[-2000:]}\n{out.stderr[-2000:]}")

    def start(self) -> LoopbackRayCluster:
        self._ray_start(
            0,
            [
                "--head",
                f"--node-ip-address={self.head_ip}",
                f"--port={self.port}",
                f"--ray-client-server-port={self.client_port}",
                "--include-dashboard=false",
                f"--dashboard-port={free_port()}",
                f"--temp-dir={self.temp_dir}",
            ],
        )
        self.started.append(self.head_ip)
        for i in range(1, self.n_nodes):
            self.add_node(i)
        return self

    def add_node(self, index: int) -> str:
        """Start node ``index`` (1 -> 127.0.0.3, ...) and join it to the head; returns its address."""
        ip = f"127.0.0.{2 + index}"
        self._ray_start(index, [f"--address={self.address}", f"--node-ip-address={ip}"])
        self.started.append(ip)
        return ip

    def pids(self, marker: str | None = None) -> list[int]:
        """Processes started for this cluster (their command line names its temp folder), children included.

        ``marker`` narrows to processes whose command line also contains it (e.g. a node's address).
        """
        procs: dict[int, tuple[int, str]] = {}
        for d in Path("/proc").iterdir():
            if not d.name.isdigit():
                continue
            try:
                cmd = (d / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
                ppid = int((d / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            procs[int(d.name)] = (ppid, cmd)
        me, ancestors = os.getpid(), set()
        while me in procs and me not in ancestors:  # never this process or the ones that started it
            ancestors.add(me)
            me = procs[me][0]
        ours = (str(self.temp_dir), f"--address={self.address}")  # the client server names only the address
        roots = {
            p
            for p, (_, cmd) in procs.items()
            if p not in ancestors and any(m in cmd for m in ours) and (marker is None or marker in cmd)
        }
        out, frontier = set(roots), set(roots)
        while frontier:
            frontier = {p for p, (pp, _) in procs.items() if pp in frontier and p not in out}
            out |= frontier
        return sorted(out)

    def logs(self, pattern: str = "ray_client_server*.err", tail: int = 2000) -> str:
        """The end of each of this cluster's Ray log files matching ``pattern``, for a failing test's message."""
        parts = []
        for f in sorted(self.temp_dir.glob(f"session_*/logs/{pattern}")):
            with contextlib.suppress(OSError):
                parts.append(f"--- {f.name}\n{f.read_text(errors='replace')[-tail:]}")
        return "\n".join(parts)

    def kill_node(self, ip: str) -> None:
        """SIGKILL every process of the node at ``ip`` (raylet and its workers), as if the server died."""
        for pid in self.pids(marker=f"={ip}"):
            _signal(pid, signal.SIGKILL)

    def stop(self) -> None:
        """End every process of this cluster (SIGTERM, then SIGKILL after 5 s) and remove its temp folder."""
        pids = self.pids()
        for pid in pids:
            _signal(pid, signal.SIGTERM)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and any(_alive(p) for p in pids):
            time.sleep(0.1)
        for pid in pids:
            if _alive(pid):
                _signal(pid, signal.SIGKILL)
        shutil.rmtree(self.temp_dir, ignore_errors=True)

    def __enter__(self) -> LoopbackRayCluster:
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc) -> None:
        self.stop()


def _signal(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, sig)


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"
