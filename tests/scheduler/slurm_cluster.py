"""A real single-node Slurm (munged + slurmctld + slurmd) for tests, started as the recipe says.

Recipe ("Slurm, one node, no systemd", from the project's notes on real components; all of it is here). slurmctld binds
0.0.0.0:6817 whatever the config says, so the daemons run in a private network namespace held
open by a ``sleep`` process; clients reach them through ``nsenter -t PID -n`` (the adapter's
``command_prefix``). Two fake GPUs are character devices made with mknod. Every process is a
``ManagedProcess`` and is stopped by its PID.
"""
from __future__ import annotations

import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from tests.realcomponents import ManagedProcess, require_binary, unavailable

SLURM_CONF = """\
ClusterName=cwtest
SlurmctldHost=localhost(127.0.0.1)
SlurmUser=root
SlurmdUser=root
SlurmctldPort=6817
SlurmdPort=6818
CommunicationParameters=NoInAddrAny
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={root}/munge/munge.socket
StateSaveLocation={root}/state
SlurmdSpoolDir={root}/spool
SlurmctldPidFile={root}/slurmctld.pid
SlurmdPidFile={root}/slurmd.pid
SlurmctldLogFile={root}/log/slurmctld.log
SlurmdLogFile={root}/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
MpiDefault=none
SchedulerType=sched/backfill
SchedulerParameters=sched_interval=1
ReturnToService=2
RebootProgram=/bin/true
GresTypes=gpu
NodeName=localhost NodeAddr=127.0.0.1 CPUs=2 RealMemory=1000 Gres=gpu:2 State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
MailProg=/bin/true
"""

GRES_CONF = "NodeName=localhost Name=gpu File={root}/fakedev/nvidia[0-1]\n"


class SlurmStartError(RuntimeError):
    """The machine has the binaries but Slurm could not be started here (reason in the text)."""


class SingleNodeSlurm:
    """Start with ``start()``, stop with ``stop()``; ``prefix`` runs a command in its namespace."""

    node = "localhost"

    def __init__(self) -> None:
        # Not pytest's tmp_path: munged runs as the munge user and must traverse the directory,
        # and pytest's temporary directories are private to root.
        self.root = Path(tempfile.mkdtemp(prefix="cw-slurm-"))
        os.chmod(self.root, 0o755)
        self.processes: list[ManagedProcess] = []
        self.namespace: ManagedProcess | None = None
        self.env = {**os.environ, "SLURM_CONF": str(self.root / "etc" / "slurm.conf")}

    @property
    def prefix(self) -> list[str]:
        assert self.namespace is not None
        return ["nsenter", "-t", str(self.namespace.pid), "-n"]

    def _start(self, argv: list[str], name: str) -> ManagedProcess:
        process = ManagedProcess(argv, self.root / "log" / f"{name}.out", env={"SLURM_CONF": self.env["SLURM_CONF"]})
        self.processes.append(process)
        return process

    def start(self, timeout: float = 60.0) -> None:
        for sub in ("etc", "state", "spool", "log", "fakedev", "munge", "jobs"):
            (self.root / sub).mkdir()
        os.chmod(self.root / "log", 0o777)
        os.chmod(self.root / "jobs", 0o777)
        (self.root / "etc" / "slurm.conf").write_text(SLURM_CONF.format(root=self.root))
        (self.root / "etc" / "gres.conf").write_text(GRES_CONF.format(root=self.root))
        for index in range(2):
            subprocess.run(["mknod", str(self.root / "fakedev" / f"nvidia{index}"), "c", "1", "3"], check=True)
        self._start_munge()
        self.namespace = self._start(
            ["unshare", "--net", "sh", "-c", "ip link set lo up && exec sleep infinity"], "netns")
        self._wait_namespace()
        # Without a second loopback address glibc cannot resolve 127.0.0.1 and both daemons exit.
        self._run(self.prefix + ["ip", "addr", "add", "127.0.0.2/8", "dev", "lo"])
        self._start(self.prefix + ["slurmctld", "-D"], "slurmctld")
        self._start(self.prefix + ["slurmd", "-D", "-N", self.node], "slurmd")
        self._wait_node_ready(timeout)

    def complete_reboot(self) -> None:
        """What a finished reboot looks like to slurmctld (RebootProgram is /bin/true here): slurmd
        registers again reporting a boot after the request; ``slurmd -b`` ("report node rebooted
        when daemon restarted") is Slurm's own switch for testing this."""
        slurmd = next(p for p in self.processes if "slurmd" in p.argv)
        slurmd.stop(timeout=15)
        self.processes.remove(slurmd)
        self._start(self.prefix + ["slurmd", "-D", "-b", "-N", self.node], "slurmd-rebooted")

    def _start_munge(self) -> None:
        munge_dir = self.root / "munge"
        shutil.copy("/etc/munge/munge.key", munge_dir / "munge.key")
        user = pwd.getpwnam("munge")
        for path in (munge_dir, munge_dir / "munge.key"):
            os.chown(path, user.pw_uid, user.pw_gid)
        os.chmod(munge_dir, 0o755)  # 0700 makes munged refuse to start
        os.chmod(munge_dir / "munge.key", 0o600)
        socket = munge_dir / "munge.socket"
        self._start([
            "setpriv", "--reuid=munge", "--regid=munge", "--init-groups", "munged", "-F",
            f"--socket={socket}", f"--key-file={munge_dir / 'munge.key'}",
            f"--log-file={munge_dir / 'munged.log'}", f"--pid-file={munge_dir / 'munged.pid'}",
            f"--seed-file={munge_dir / 'munged.seed'}",
        ], "munged")
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if socket.exists():
                credential = subprocess.run(["munge", "-S", str(socket), "-n"], capture_output=True, timeout=10)
                check = subprocess.run(["unmunge", "-S", str(socket)], input=credential.stdout,
                                       capture_output=True, timeout=10)
                if credential.returncode == 0 and check.returncode == 0:
                    return
            time.sleep(0.2)
        raise SlurmStartError(f"munged did not start:\n{self.processes[-1].log_tail()}")

    def _wait_namespace(self) -> None:
        assert self.namespace is not None
        own = os.readlink("/proc/self/ns/net")
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.namespace.popen.poll() is not None:
                raise SlurmStartError(f"cannot create a network namespace:\n{self.namespace.log_tail()}")
            try:
                if os.readlink(f"/proc/{self.namespace.pid}/ns/net") != own:
                    return
            except OSError:
                pass
            time.sleep(0.05)
        raise SlurmStartError("network namespace did not appear")

    def _run(self, argv: list[str], timeout: float = 30) -> subprocess.CompletedProcess:
        result = subprocess.run(argv, capture_output=True, text=True, env=self.env, timeout=timeout)
        if result.returncode != 0:
            raise SlurmStartError(f"{argv} failed ({result.returncode}): {result.stderr.strip()}")
        return result

    def run(self, *argv: str, check: bool = True, timeout: float = 30) -> subprocess.CompletedProcess:
        """Run a Slurm client (sbatch, scontrol, ...) inside the namespace."""
        result = subprocess.run(self.prefix + list(argv), capture_output=True, text=True, env=self.env,
                                timeout=timeout, cwd=self.root / "jobs")
        if check and result.returncode != 0:
            raise AssertionError(f"{argv} failed ({result.returncode}): {result.stderr.strip()}")
        return result

    def _wait_node_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        last = ""
        while time.monotonic() < deadline:
            for process in self.processes:
                if process.popen.poll() is not None:
                    raise SlurmStartError(
                        f"{process.argv} exited with {process.popen.returncode}:\n{process.log_tail()}\n"
                        f"{self.log_tail()}")
            result = subprocess.run(self.prefix + ["sinfo", "-h", "-N", "-o", "%T"], capture_output=True,
                                    text=True, env=self.env, timeout=15)
            last = (result.stdout + result.stderr).strip()
            if result.returncode == 0 and last.lower().startswith("idle"):
                return
            time.sleep(0.5)
        raise SlurmStartError(f"node not idle after {timeout}s (last: {last!r})\n{self.log_tail()}")

    def log_tail(self, chars: int = 3000) -> str:
        tails = []
        for name in ("slurmctld.log", "slurmd.log"):
            path = self.root / "log" / name
            if path.exists():
                tails.append(f"--- {name}\n{path.read_text(errors='replace')[-chars:]}")
        return "\n".join(tails)

    def stop(self) -> None:
        if self.namespace is not None and self.namespace.popen.poll() is None:
            # Jobs still running when slurmd stops leave their slurmstepd behind (re-parented to
            # init), so cancel them first and give slurmd a moment to reap them.
            subprocess.run(self.prefix + ["scancel", "--user=root"], env=self.env, capture_output=True, timeout=15)
            time.sleep(1)
        # Reverse order: slurmd and slurmctld before the namespace holder and munged.
        for process in reversed(self.processes):
            try:
                process.stop(timeout=15)
            except Exception:  # noqa: BLE001 - keep stopping the others
                pass
        for pid in self._stray_pids():
            _terminate(pid)
        shutil.rmtree(self.root, ignore_errors=True)

    def _stray_pids(self) -> list[int]:
        """PIDs of processes started by this cluster's daemons that outlived them.

        Found by this cluster's own SLURM_CONF path in their environment (slurmstepd and job
        steps inherit it), so nothing belonging to anyone else can match.
        """
        marker = f"SLURM_CONF={self.env['SLURM_CONF']}".encode()
        strays = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit() or int(entry.name) == os.getpid():
                continue
            try:
                environ = (entry / "environ").read_bytes()
            except OSError:
                continue
            if marker in environ.split(b"\0"):
                strays.append(int(entry.name))
        return strays


def _terminate(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGTERM)
        for _ in range(50):
            os.kill(pid, 0)
            time.sleep(0.1)
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


class ToolSpy:
    """Wraps an adapter's command runner to record the arguments of every call of one Slurm tool
    (``scontrol``, ``scancel``) that really ran."""

    def __init__(self, runner, tool: str) -> None:
        self.runner = runner
        self.tool = tool
        self.calls: list[list[str]] = []

    def run(self, tool, args, timeout):
        if tool == self.tool:
            self.calls.append(list(args))
        return self.runner.run(tool, args, timeout)


SLURM_BINARIES = ("slurmctld", "slurmd", "squeue", "sinfo", "scontrol", "sbatch", "munged", "munge",
                  "unshare", "nsenter", "ip")


def started_slurm():
    """A running single-node Slurm for a test module, stopped afterwards; skips (or fails under
    CI=true) where this machine cannot run one. Use as ``yield from started_slurm()``."""
    for binary in SLURM_BINARIES:
        require_binary(binary)
    cluster = SingleNodeSlurm()
    try:
        cluster.start()
    except (SlurmStartError, OSError) as exc:
        cluster.stop()
        unavailable(f"single-node Slurm cannot start here: {exc}")
    yield cluster
    cluster.stop()
