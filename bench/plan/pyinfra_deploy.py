"""The benchmark plan for pyinfra: the same work as minipaas.yaml under /opt/bench-pyinfra."""

from pathlib import Path

from pyinfra import host
from pyinfra.operations import files, systemd
from pyinfra.operations.util import any_changed

TOOL = "pyinfra"
BASE = "/opt/bench-pyinfra"
TEMPLATES = Path(__file__).parent / "templates"
ctx = {"tool": TOOL, "base": BASE, "ports": [8081, 8082, 8083], "inventory_hostname": host.name}

for d in ["", "/conf", "/data", "/logs", "/run", "/bin", "/etc"]:
    files.directory(name=f"directory {BASE}{d}", path=f"{BASE}{d}", mode="755")

files.link(name="current release link", path=f"{BASE}/current", target=f"{BASE}/bin")

files.template(name="application config", src=str(TEMPLATES / "app.conf.j2"),
               dest=f"{BASE}/conf/app.conf", mode="644", **ctx)
files.template(name="environment file", src=str(TEMPLATES / "app.env.j2"),
               dest=f"{BASE}/conf/app.env", mode="600", **ctx)
files.template(name="log rotation", src=str(TEMPLATES / "logrotate.conf.j2"),
               dest=f"{BASE}/conf/logrotate.conf", mode="644", **ctx)

units = [
    files.template(name=f"service unit {i}", src=str(TEMPLATES / "bench.service.j2"),
                   dest=f"/etc/systemd/system/bench-{TOOL}-{i}.service", mode="644",
                   item=i, **ctx)
    for i in range(1, 6)
]
systemd.daemon_reload(name="reload systemd when units changed", _if=any_changed(*units))

for i in range(1, 6):
    systemd.service(name=f"service {i}", service=f"bench-{TOOL}-{i}.service",
                    running=True, enabled=True)

for regexp, line in [
    (r"^max_conns\s*=", "max_conns = 512"),
    (r"^max_files\s*=", "max_files = 4096"),
    (r"^timeout\s*=", "timeout = 30"),
    (r"^workers\s*=", "workers = 4"),
]:
    files.line(name=f"limits {line}", path=f"{BASE}/etc/limits.conf", line=regexp, replace=line)
