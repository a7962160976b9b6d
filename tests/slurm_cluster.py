"""A real single-node SLURM (Debian's Slurm 22.05) with accounting and fake GPUs, for the cluster tests.

    with LocalSlurm(tmp_dir, gpus=2) as cluster:
        subprocess.run(["sbatch", ...], env=cluster.env)

Starts, in a private directory and on free ports, as root: `munged` (as the munge user, private socket),
MariaDB (`mariadbd`, private data directory) with `slurmdbd` on top, then `slurmctld` and `slurmd`. Accounting is
real, so `sacct` works as on a cluster and the slurm executor plugin's default status check is exercised.
GPUs are simulated for scheduling: `Gres=gpu:N` with one distinct character device per GPU in gres.conf
(AutoDetect=off); SLURM then sets CUDA_VISIBLE_DEVICES per job. Every daemon is stopped by its PID on exit,
also when the body raises. Needs root and the Debian packages in `PACKAGES` (`install_packages()`).
"""

from __future__ import annotations

import fcntl
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

PACKAGES = ("slurmctld", "slurmd", "slurm-client", "slurmdbd", "munge", "mariadb-server")
COMMANDS = ("slurmctld", "slurmd", "slurmdbd", "sbatch", "sacct", "sacctmgr", "munged", "mariadbd",
            "mariadb-install-db")
FAKE_GPU_DEVICES = ("/dev/null", "/dev/zero", "/dev/full", "/dev/random")
#: One test cluster per machine at a time: they share munged's socket and configless slurmd's /run/slurm/conf.
LOCK_FILE = Path("/run/lock/score-geometry-slurm-test.lock")


def missing_commands() -> list[str]:
    return [c for c in COMMANDS if shutil.which(c) is None and not Path(f"/usr/sbin/{c}").exists()]


def install_packages(timeout: float = 900) -> None:
    """apt-get install the Debian packages (root only); daemons are not started by the packages here."""
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-qq"], check=False, capture_output=True, env=env, timeout=timeout)
    subprocess.run(["apt-get", "install", "-y", "-qq", *PACKAGES], check=True, capture_output=True, env=env,
                   timeout=timeout)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _which(cmd: str) -> str:
    return shutil.which(cmd) or f"/usr/sbin/{cmd}"


class LocalSlurm:
    """Context manager: a running one-node cluster named `cluster_name`; `env` points clients at it."""

    def __init__(self, root: str | os.PathLike, *, gpus: int = 2, cpus: int | None = None, mem_mb: int = 8000,
                 cluster_name: str = "sgtest", account: str = "sgtest"):
        self.root = Path(root)
        self.gpus, self.cpus, self.mem_mb = gpus, cpus or os.cpu_count() or 1, mem_mb
        self.cluster_name, self.account = cluster_name, account
        self.node = socket.gethostname().split(".")[0]
        self.pids: dict[str, int] = {}
        self._children: list[subprocess.Popen] = []
        self.ports = {name: _free_port() for name in ("slurmctld", "slurmd", "slurmdbd", "mysql")}
        self.conf = self.root / "slurm.conf"
        self.env = {**os.environ, "SLURM_CONF": str(self.conf)}

    # --- life cycle ----------------------------------------------------------------------------------
    def __enter__(self) -> "LocalSlurm":
        LOCK_FILE.parent.mkdir(parents=True, exist_ok=True)
        self._lock = open(LOCK_FILE, "w")
        fcntl.flock(self._lock, fcntl.LOCK_EX)  # waits for another session's cluster to stop
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            self.root.chmod(0o755)  # munged runs as the munge user and must reach its directory
            self._write_configs()
            self._start_munge()
            self._start_mariadb()
            # slurmdbd reads slurmdbd.conf from the directory of $SLURM_CONF
            self._start("slurmdbd", [_which("slurmdbd")], self.root / "slurmdbd.pid")
            self._wait_for(lambda: self._port_open(self.ports["slurmdbd"]), "slurmdbd to listen")
            self._sacctmgr("add", "cluster", self.cluster_name)
            self._sacctmgr("add", "account", self.account, f"cluster={self.cluster_name}")
            self._sacctmgr("add", "user", "root", f"account={self.account}", f"cluster={self.cluster_name}")
            self._start("slurmctld", [_which("slurmctld"), "-f", str(self.conf)], self.root / "slurmctld.pid")
            # Configless slurmd: it fetches the config from slurmctld and caches it under /run/slurm/conf,
            # where the commands inside jobs find it (the executor's job step drops $SLURM_CONF).
            self._start("slurmd", [_which("slurmd"), "--conf-server", f"127.0.0.1:{self.ports['slurmctld']}",
                                   "-N", self.node], self.root / "slurmd.pid")
            self._wait_for(self._node_idle, "the node to become idle")
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def stop(self) -> None:
        """Cancel every job, SIGTERM every daemon this object started (by PID, newest first), SIGKILL what is
        left, and kill job processes of this cluster that outlived slurmd (slurmstepd and its children)."""
        if "slurmctld" in self.pids:
            subprocess.run(["scancel", "--full", "--user", "root"], env=self.env, capture_output=True)
            deadline = time.time() + 15
            while time.time() < deadline and subprocess.run(
                    ["squeue", "-h"], env=self.env, capture_output=True, text=True).stdout.strip():
                time.sleep(0.5)
        for name, pid in reversed(list(self.pids.items())):
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        deadline = time.time() + 20
        for name, pid in reversed(list(self.pids.items())):
            while _alive(pid) and time.time() < deadline:
                time.sleep(0.2)
            if _alive(pid):
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        for proc in self._children:
            proc.wait(timeout=10)
        for pid in self._job_processes():
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        link = Path("/run/slurm/conf")  # configless slurmd's pointer to its cache, if it is ours
        if link.is_symlink() and str(self.root) in os.readlink(link):
            link.unlink()
        if getattr(self, "_lock", None) is not None:
            self._lock.close()  # releases the flock
            self._lock = None
        self._children.clear()
        self.pids.clear()

    def _job_processes(self) -> list[int]:
        """PIDs whose environment points at this cluster's configuration (slurmstepd and job scripts)."""
        marker = str(self.root).encode()
        pids = []
        for proc in Path("/proc").iterdir():
            if not proc.name.isdigit() or int(proc.name) == os.getpid():
                continue
            try:
                env = (proc / "environ").read_bytes()
            except OSError:
                continue
            if b"SLURM_CONF=" + marker in env:
                pids.append(int(proc.name))
        return pids

    # --- queries -------------------------------------------------------------------------------------
    def sacct(self, *fields: str) -> list[dict[str, str]]:
        """All jobs of the cluster's accounting (allocations, not steps) as dicts of `fields`."""
        out = subprocess.run(["sacct", "-a", "-X", "-n", "-P", "--starttime", "2000-01-01", "-o", ",".join(fields)],
                             env=self.env, capture_output=True, text=True, check=True).stdout
        return [dict(zip(fields, line.split("|"))) for line in out.splitlines() if line.strip()]

    # --- internals -----------------------------------------------------------------------------------
    def _write_configs(self) -> None:
        r = self.root
        for d in ("state", "spool", "munge", "log"):
            (r / d).mkdir(exist_ok=True)
        devices = FAKE_GPU_DEVICES[: self.gpus]
        self.conf.write_text(f"""\
ClusterName={self.cluster_name}
SlurmctldHost={self.node}(127.0.0.1)
SlurmctldPort={self.ports['slurmctld']}
SlurmdPort={self.ports['slurmd']}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation={r / 'state'}
SlurmdSpoolDir={r / 'spool'}
SlurmctldPidFile={r / 'slurmctld.pid'}
SlurmdPidFile={r / 'slurmd.pid'}
SlurmctldLogFile={r / 'log' / 'slurmctld.log'}
SlurmdLogFile={r / 'log' / 'slurmd.log'}
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=500
MinJobAge=300
ReturnToService=2
MpiDefault=none
SchedulerType=sched/backfill
JobAcctGatherType=jobacct_gather/linux
JobAcctGatherFrequency=30
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=127.0.0.1
AccountingStoragePort={self.ports['slurmdbd']}
AccountingStorageEnforce=associations
AccountingStorageTRES=gres/gpu
AccountingStoreFlags=job_comment
GresTypes=gpu
SlurmctldParameters=enable_configless
NodeName={self.node} NodeAddr=127.0.0.1 CPUs={self.cpus} RealMemory={self.mem_mb} Gres=gpu:{self.gpus} State=UNKNOWN
PartitionName=main Nodes={self.node} Default=YES MaxTime=INFINITE State=UP
""")
        (r / "gres.conf").write_text("AutoDetect=off\n" + "".join(
            f"NodeName={self.node} Name=gpu File={dev}\n" for dev in devices))
        dbd = r / "slurmdbd.conf"
        dbd.write_text(f"""\
AuthType=auth/munge
DbdHost=localhost
DbdAddr=127.0.0.1
DbdPort={self.ports['slurmdbd']}
SlurmUser=root
PidFile={r / 'slurmdbd.pid'}
LogFile={r / 'log' / 'slurmdbd.log'}
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort={self.ports['mysql']}
StorageUser=slurm
StoragePass=slurm
StorageLoc=slurm_acct_db
""")
        dbd.chmod(0o600)

    def _start_munge(self) -> None:
        """munged on its default socket (Slurm's clients ignore AuthInfo when talking to slurmdbd), as the
        munge user; one that already answers there is used and left alone."""
        if subprocess.run("munge -n | unmunge", shell=True, capture_output=True).returncode == 0:
            return
        run = Path("/run/munge")
        run.mkdir(parents=True, exist_ok=True)
        shutil.chown(run, "munge", "munge")
        pidfile = run / "munged.pid"  # Debian's default locations, which the munge user owns
        pidfile.unlink(missing_ok=True)
        subprocess.run(["runuser", "-u", "munge", "--", _which("munged")], check=True, capture_output=True)
        self._wait_for(lambda: pidfile.exists() and pidfile.read_text().strip(), "munged")
        self.pids["munged"] = int(pidfile.read_text())

    def _start_mariadb(self) -> None:
        data, sock = self.root / "mysql", self.root / "mysql.sock"
        subprocess.run([_which("mariadb-install-db"), f"--datadir={data}", "--user=root", "--auth-root-authentication-method=socket",
                        "--skip-test-db"], check=True, capture_output=True)
        proc = subprocess.Popen([_which("mariadbd"), f"--datadir={data}", f"--socket={sock}", "--user=root",
                                 f"--port={self.ports['mysql']}", "--bind-address=127.0.0.1",
                                 f"--pid-file={self.root / 'mariadb.pid'}", f"--log-error={self.root / 'log' / 'mariadb.log'}",
                                 "--innodb-buffer-pool-size=64M", "--skip-log-bin"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        self.pids["mariadbd"] = proc.pid
        self._children.append(proc)  # reaped in stop()
        self._wait_for(sock.exists, "mariadbd")
        sql = ("CREATE USER IF NOT EXISTS 'slurm'@'127.0.0.1' IDENTIFIED BY 'slurm';"
               "CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED BY 'slurm';"
               "GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1';"
               "GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost';")
        self._wait_for(lambda: subprocess.run(["mariadb", f"--socket={sock}", "-uroot", "-e", sql],
                                              capture_output=True).returncode == 0, "MariaDB to accept SQL")

    def _start(self, name: str, argv: list[str], pidfile: Path) -> None:
        """Start a daemon that forks itself into the background and writes `pidfile`."""
        proc = subprocess.run(argv, capture_output=True, text=True, env=self.env)
        if proc.returncode != 0:
            raise RuntimeError(f"{name} failed to start: {proc.stdout}{proc.stderr}{self._logs()}")
        self._wait_for(lambda: pidfile.exists() and pidfile.read_text().strip(), f"{name} to write its PID")
        self.pids[name] = int(pidfile.read_text())

    def _sacctmgr(self, *args: str) -> None:
        self._wait_for(lambda: subprocess.run(["sacctmgr", "-i", *args], env=self.env, capture_output=True)
                       .returncode == 0 or self._sacctmgr_exists(args), f"sacctmgr {' '.join(args)}")

    def _sacctmgr_exists(self, args) -> bool:
        out = subprocess.run(["sacctmgr", "-i", *args], env=self.env, capture_output=True, text=True)
        return "Nothing new added" in out.stdout + out.stderr or "already exists" in out.stdout + out.stderr

    def _node_idle(self) -> bool:
        out = subprocess.run(["sinfo", "-h", "-o", "%T"], env=self.env, capture_output=True, text=True)
        return out.returncode == 0 and out.stdout.strip() == "idle"

    @staticmethod
    def _port_open(port: int) -> bool:
        with socket.socket() as s:
            return s.connect_ex(("127.0.0.1", port)) == 0

    def _wait_for(self, predicate, what: str, timeout: float = 60) -> None:
        deadline = time.time() + timeout
        while time.time() < deadline:
            if predicate():
                return
            time.sleep(0.25)
        raise TimeoutError(f"timed out waiting for {what}\n{self._logs()}")

    def _logs(self) -> str:
        return "\n".join(f"--- {p.name}\n{p.read_text()[-2000:]}" for p in sorted((self.root / "log").glob("*.log")))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie child of ours counts as gone
        return not os.waitpid(pid, os.WNOHANG)[0]
    except ChildProcessError:
        return True
