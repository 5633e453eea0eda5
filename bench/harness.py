"""The provision speed benchmark: no-op re-runs of the same plan with minipaas, Ansible and
pyinfra on the first 1, 10, 30 nodes of a lab, next to N plain `ssh true` in parallel.

Run through bench/provision.sh, which builds minipaas, prepares the Python tools and the lab.
Wall time is the median of the measured runs; each tool first applies the plan once (warm-up),
so every measured run is a no-op, and the harness checks that it changed nothing.
Peak memory: minipaas's max RSS from `/usr/bin/time -v`; for Ansible and pyinfra the largest sum
of RSS over their whole process tree, sampled every 50 ms.
On 1 host, the harness also counts the processes (and threads) each run started on the node: the
last PID the node's PID namespace handed out, read from its /proc/loadavg before and after the
run, less what reading it costs. Deterministic where times are not: the work a run gives a node.
"""

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
PLAN = ROOT / "bench" / "plan"
PAGE = os.sysconf("SC_PAGE_SIZE")


class Lab:
    """The lab inventory written by `minipaas lab up`: hosts in file order, key, known_hosts."""

    def __init__(self, path: Path):
        # `lab up --name NAME` writes inventories/NAME.yaml; its containers are NAME-HOST.
        self.name = path.stem
        raw = yaml.safe_load(path.read_text())
        a = raw["all"]
        self.user = a.get("user", "root")
        self.key = (path.parent / a["key"]).resolve()
        self.known_hosts = (path.parent / a["known_hosts"]).resolve()
        self.hosts = []
        for group in (raw.get("groups") or {}).values():
            for name, h in ((group or {}).get("hosts") or {}).items():
                self.hosts.append((name, h["address"], int(h["port"])))

    def write_inventories(self, n: int, out: Path):
        """minipaas YAML, Ansible INI and pyinfra inventories for the first `n` hosts."""
        out.mkdir(parents=True, exist_ok=True)
        hosts = self.hosts[:n]
        mp = {
            "all": {"user": self.user, "key": str(self.key), "known_hosts": str(self.known_hosts)},
            "groups": {"nodes": {"hosts": {h: {"address": a, "port": p} for h, a, p in hosts}}},
        }
        (out / "minipaas.yaml").write_text(yaml.safe_dump(mp, sort_keys=False))
        ini = ["[nodes]"]
        ini += [f"{h} ansible_host={a} ansible_port={p}" for h, a, p in hosts]
        ini += [
            "",
            "[all:vars]",
            f"ansible_user={self.user}",
            f"ansible_ssh_private_key_file={self.key}",
            "ansible_python_interpreter=/usr/bin/python3",
            "ansible_ssh_common_args='-o UserKnownHostsFile="
            f"{self.known_hosts} -o StrictHostKeyChecking=yes'",
        ]
        (out / "ansible.ini").write_text("\n".join(ini) + "\n")
        py = ["hosts = ["]
        for h, a, p in hosts:
            data = {
                "ssh_hostname": a,
                "ssh_port": p,
                "ssh_user": self.user,
                "ssh_key": str(self.key),
                "ssh_known_hosts_file": str(self.known_hosts),
                "ssh_strict_host_key_checking": "yes",
            }
            py.append(f"    ({h!r}, {data!r}),")
        py.append("]")
        (out / "pyinfra_inventory.py").write_text("\n".join(py) + "\n")


def tree_rss(root: int) -> int:
    """Sum of RSS (bytes) of `root` and all its descendants, found through /proc children."""
    total, todo = 0, [root]
    while todo:
        pid = todo.pop()
        try:
            with open(f"/proc/{pid}/statm") as f:
                total += int(f.read().split()[1]) * PAGE
            for tid in os.listdir(f"/proc/{pid}/task"):
                with open(f"/proc/{pid}/task/{tid}/children") as f:
                    todo.extend(int(c) for c in f.read().split())
        except (FileNotFoundError, ProcessLookupError, ValueError):
            continue
    return total


class Sampler(threading.Thread):
    """Largest tree RSS of a process while it runs, sampled every 50 ms."""

    def __init__(self, pid: int):
        super().__init__(daemon=True)
        self.pid, self.peak, self.done = pid, 0, threading.Event()

    def run(self):
        while not self.done.is_set():
            self.peak = max(self.peak, tree_rss(self.pid))
            self.done.wait(0.05)


def timed(cmd, env=None, sample=False):
    """Runs `cmd`; returns (seconds, peak tree RSS bytes or 0, rc, stdout, stderr)."""
    start = time.monotonic()
    p = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    s = Sampler(p.pid) if sample else None
    if s:
        s.start()
    out, err = p.communicate()
    wall = time.monotonic() - start
    if s:
        s.done.set()
        s.join()
    return wall, (s.peak if s else 0), p.returncode, out, err


class Fail(Exception):
    pass


class PidCounter:
    """Processes started on one lab node, from the last PID its namespace handed out (the last
    field of /proc/loadavg, which is per PID namespace)."""

    def __init__(self, container: str):
        self.container = container
        # Reading the counter through `docker exec` takes PIDs of its own; measured, not assumed.
        costs = []
        for _ in range(3):
            a = self.last_pid()
            costs.append(self.last_pid() - a)
        self.cost = min(costs)

    def last_pid(self) -> int:
        out = subprocess.run(["docker", "exec", self.container, "cat", "/proc/loadavg"],
                             capture_output=True, text=True, check=True).stdout
        return int(out.split()[4])

    def count(self, fn):
        """Runs `fn`; returns its result and the PIDs the node handed out meanwhile."""
        before = self.last_pid()
        result = fn()
        return result, self.last_pid() - before - self.cost


def check(ok: bool, what: str, out: str, err: str):
    if not ok:
        raise Fail(f"{what}\n--- stdout (tail)\n{out[-3000:]}\n--- stderr (tail)\n{err[-3000:]}")


class Tools:
    def __init__(self, args, inv: Path, n: int):
        self.args, self.inv, self.n = args, inv, n
        self.env = dict(os.environ, ANSIBLE_CONFIG=str(inv.parent / "ansible.cfg"))
        cp = inv.parent.parent / "cp"
        cp.mkdir(exist_ok=True)
        (inv.parent / "ansible.cfg").write_text(
            "[defaults]\nhost_key_checking = True\ngathering = explicit\n"
            "interpreter_python = /usr/bin/python3\nretry_files_enabled = False\n"
            "[ssh_connection]\npipelining = True\n"
            f"control_path_dir = {cp}\n"
            "ssh_args = -o ControlMaster=auto -o ControlPersist=60s\n"
        )

    def minipaas(self, noop: bool):
        cmd = ["/usr/bin/time", "-v", str(self.args.minipaas), "provision", "-i",
               str(self.inv / "minipaas.yaml"), "--format", "json", str(PLAN / "minipaas.yaml")]
        wall, _, rc, out, err = timed(cmd)
        check(rc == 0, f"minipaas exited {rc}", out, err)
        recap = json.loads(out)["hosts"]
        check(len(recap) == self.n, f"minipaas reported {len(recap)} hosts, not {self.n}", out, err)
        if noop:
            changed = sum(h["changed"] for h in recap.values())
            check(changed == 0, f"minipaas no-op run changed {changed}", out, err)
        m = re.search(r"Maximum resident set size \(kbytes\): (\d+)", err)
        check(m is not None, "no max RSS from /usr/bin/time", out, err)
        return wall, int(m.group(1)) * 1024

    def ansible(self, noop: bool):
        cmd = [str(self.args.venv / "bin" / "ansible-playbook"), "-i",
               str(self.inv / "ansible.ini"), "-f", str(self.n), str(PLAN / "ansible.yaml")]
        wall, peak, rc, out, err = timed(cmd, env=self.env, sample=True)
        check(rc == 0, f"ansible-playbook exited {rc}", out, err)
        recap = re.findall(r"^\S+\s+: ok=\d+\s+changed=(\d+)", out, re.M)
        check(len(recap) == self.n, f"ansible recap has {len(recap)} hosts", out, err)
        if noop:
            check(all(c == "0" for c in recap), "ansible no-op run changed something", out, err)
        return wall, peak

    def pyinfra(self, noop: bool):
        cmd = [str(self.args.venv / "bin" / "pyinfra"), "-y", "--parallel", str(self.n),
               str(self.inv / "pyinfra_inventory.py"), str(PLAN / "pyinfra_deploy.py")]
        wall, peak, rc, out, err = timed(cmd, sample=True)
        check(rc == 0, f"pyinfra exited {rc}", out, err)
        if noop:
            # The results table ends with `Grand total  OPS  SUCCESS  ERROR  NO-CHANGE`, where
            # "Success" counts operations that changed something.
            m = re.search(r"Grand total\s+(\d+)\s+(\S+)\s+(\S+)\s+(\d+)", out + err)
            check(m is not None and m[2] in ("-", "0") and m[3] in ("-", "0") and m[1] == m[4],
                  "pyinfra no-op run changed something (or printed no summary)", out, err)
        return wall, peak

    def ssh(self):
        lab = self.args.lab
        start = time.monotonic()
        procs = [
            subprocess.Popen(
                ["ssh", "-i", str(lab.key), "-o", f"UserKnownHostsFile={lab.known_hosts}",
                 "-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes",
                 "-o", "ControlMaster=no", "-o", "ControlPath=none", "-p", str(p),
                 f"{lab.user}@{a}", "true"],
                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
            for _, a, p in lab.hosts[: self.n]
        ]
        errs = [(p.wait(), p.stderr.read()) for p in procs]
        wall = time.monotonic() - start
        bad = [e for rc, e in errs if rc != 0]
        check(not bad, f"{len(bad)} of {self.n} `ssh true` failed", "", "\n".join(bad))
        return wall, 0


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--inventory", type=Path, required=True, help="the lab's inventory")
    ap.add_argument("--minipaas", type=Path, required=True)
    ap.add_argument("--venv", type=Path, required=True)
    ap.add_argument("--hosts", default="1,10,30")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--tools", default="minipaas,ansible,pyinfra",
                    help="which tools to measure (N x `ssh true` always runs)")
    ap.add_argument("--out", type=Path, required=True, help="work directory (inventories, results)")
    args = ap.parse_args()
    args.lab = Lab(args.inventory)
    counts = [int(x) for x in args.hosts.split(",")]
    tools = [t for t in ("minipaas", "ansible", "pyinfra") if t in args.tools.split(",")]
    if max(counts) > len(args.lab.hosts):
        sys.exit(f"the lab has {len(args.lab.hosts)} nodes; {max(counts)} needed")
    rows = []
    pids = {}
    # The machine's 1-minute load average after every measured run, per host count.
    loads = {}
    for n in counts:
        inv = args.out / f"{n}-hosts"
        args.lab.write_inventories(n, inv)
        t = Tools(args, inv, n)
        runs = {k: [] for k in ["ssh"] + tools}
        mem = {k: [] for k in tools}
        counter = PidCounter(f"{args.lab.name}-{args.lab.hosts[0][0]}") if n == 1 else None
        print(f"== {n} host(s): warm-up (apply) runs", flush=True)
        for name in tools:
            wall, _ = getattr(t, name)(noop=False)
            print(f"   {name} apply: {wall:.2f} s", flush=True)
        for r in range(args.runs):
            # Interleaved, so load from elsewhere on the machine spreads over every tool.
            for name in ["ssh"] + tools:
                run = t.ssh if name == "ssh" else lambda: getattr(t, name)(noop=True)
                (wall, peak), started = counter.count(run) if counter else (run(), None)
                runs[name].append(wall)
                if started is not None:
                    pids.setdefault(name, []).append(started)
                if name in mem:
                    mem[name].append(peak)
                loads.setdefault(n, []).append(os.getloadavg()[0])
                print(f"   run {r + 1} {name}: {wall:.2f} s"
                      + (f", peak {peak / 2**20:.1f} MB" if peak else "")
                      + (f", {started} PIDs on the node" if started is not None else ""),
                      flush=True)
        med = {k: statistics.median(v) for k, v in runs.items()}
        peak = {k: max(v) for k, v in mem.items()}
        rows.append((n, med, peak, runs))

    names = {"minipaas": "minipaas", "ansible": "Ansible", "pyinfra": "pyinfra"}
    others = [k for k in tools if k != "minipaas"]
    mb = lambda b: f"{b / 2**20:.1f} MB"  # noqa: E731
    head = ["hosts", "N × `ssh true`"] + [names[k] for k in tools]
    if "minipaas" in tools:
        head += [f"{names[k]} ÷ minipaas" for k in others]
    head += [f"{names[k]} peak RSS" + (" (sum)" if k != "minipaas" else "") for k in tools]
    head += ["load average (1 min)"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---:|" * (len(head) - 1) + "---|"]
    for n, med, peak, _ in rows:
        cells = [str(n), f"{med['ssh']:.2f} s"] + [f"{med[k]:.2f} s" for k in tools]
        if "minipaas" in tools:
            cells += [f"{med[k] / med['minipaas']:.1f}×" for k in others]
        cells += [mb(peak[k]) for k in tools]
        lo = loads[n]
        cells += [f"{min(lo):.1f}–{max(lo):.1f}"]
        lines.append("| " + " | ".join(cells) + " |")
    if pids:
        lines += ["", "Processes (and threads) started on the node per no-op run, 1 host, every run:"]
        for k, v in pids.items():
            label = "N × `ssh true`" if k == "ssh" else names[k]
            lines.append(f"- {label}: " + ", ".join(str(x) for x in v))
    raw = ["", f"Wall times are medians of {args.runs} no-op runs; every run:"]
    for n, _, _, runs in rows:
        for k, v in runs.items():
            raw.append(f"- {n} host(s), {k}: " + ", ".join(f"{x:.2f}" for x in v) + " s")
    table = "\n".join(lines + raw)
    print()
    print(table)
    (args.out / "results.md").write_text(table + "\n")
    print(f"\n(also in {args.out / 'results.md'})")


if __name__ == "__main__":
    try:
        main()
    except Fail as e:
        sys.exit(f"benchmark failed: {e}")
