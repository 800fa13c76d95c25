#!/usr/bin/env bash
# Checks deploy/ without a container engine (none runs on these machines):
# the manifests parse and declare what they must, the Dockerfile has its
# stages and runs as non-root, and the systemd unit names the server.
#
# One replica (deploy/k8s, deploy/docker-compose.yml): every kind present,
# native gRPC probes on the plaintext health-only port, hardened pod and
# container, pinned image, 0400 secret volumes, metrics not published.
#
# Replicas on PostgreSQL (deploy/k8s-replicas, deploy/docker-compose.replicas.yml):
#  - the Deployment: the same hardening and probes; replicas >= 2; a rolling
#    update with maxUnavailable 0 and maxSurge >= 1; a preStop sleep and
#    --shutdown_grace_seconds that fit within terminationGracePeriodSeconds;
#    --db read with --fromenv=db from FLAGS_db, which comes from a Secret via
#    secretKeyRef, and no database URI inline anywhere in the pod spec;
#  - a PodDisruptionBudget with minAvailable 1 or maxUnavailable 1 whose
#    selector selects the Deployment's pods;
#  - Services selecting the pods that publish neither metrics nor the
#    health-only port; a NetworkPolicy allowing egress to PostgreSQL (5432);
#  - the example Secret holds keys the Deployment references, a placeholder
#    password, and a URI with sslmode=verify-full and no password in it;
#  - compose: a postgres:15 service on an internal network with no published
#    port, two or more vigil services with identical flags sharing one env
#    file (FLAGS_db, --fromenv=db), no URI inline, health checks, starting
#    after the database is healthy, publishing nothing; one proxy publishing
#    the gRPC and HTTP ports on loopback, whose Envoy config routes each port
#    to every replica and checks each with grpc.health.v1 on its health port;
#  - the env examples carry placeholders, never a password in the URI; the
#    runtime image has libpq.
# What is NOT checked here: building or running the image, applying the
# manifests to a cluster, running Envoy or PostgreSQL (Envoy's own
# `--mode validate` runs when an envoy binary is installed).
set -euo pipefail
cd "$(dirname "$0")/.."
python3 - <<'PY'
import sys, yaml, glob, re, os, shutil, subprocess

problems = []


def load_dir(pattern):
    docs = []
    for path in sorted(glob.glob(pattern)):
        with open(path) as f:
            docs += [(path, d) for d in yaml.safe_load_all(f) if d]
    return docs


def flag_value(args, name):
    """The last value of --name=VALUE in args (the one that wins), or None."""
    values = [a.split("=", 1)[1] for a in args if a.startswith(f"--{name}=")]
    return values[-1] if values else None


def port_of(address):
    return int(address.rsplit(":", 1)[1])


URI = re.compile(r"postgres(ql)?://", re.I)


def check_pod(dep, where):
    """The hardening and probes every Vigil Deployment must have."""
    pod = dep["spec"]["template"]["spec"]
    c = pod["containers"][0]
    for probe in ["livenessProbe", "readinessProbe"]:
        if "grpc" not in c.get(probe, {}):
            problems.append(f"{where}: {probe} is not a native gRPC probe")
    psc = pod.get("securityContext", {})
    if not psc.get("runAsNonRoot"):
        problems.append(f"{where}: the pod does not run as non-root")
    if psc.get("seccompProfile", {}).get("type") != "RuntimeDefault":
        problems.append(f"{where}: the pod has no RuntimeDefault seccomp profile")
    if pod.get("automountServiceAccountToken") is not False:
        problems.append(f"{where}: the pod mounts a service-account token")
    csc = c.get("securityContext", {})
    if csc.get("capabilities", {}).get("drop") != ["ALL"]:
        problems.append(f"{where}: the container does not drop all capabilities")
    if csc.get("allowPrivilegeEscalation") is not False or not csc.get("readOnlyRootFilesystem"):
        problems.append(f"{where}: the container allows privilege escalation or a writable root filesystem")
    image = c.get("image", "")
    if ":" not in image or image.endswith(":latest"):
        problems.append(f"{where}: the image '{image}' is not pinned to a release")
    for v in pod.get("volumes", []):
        if "secret" in v and v["secret"].get("defaultMode") != 0o400:
            problems.append(f"{where}: secret volume {v['name']} is not mode 0400")
    args = c.get("args", [])
    for flag in ["--tokens_file", "--tls_cert", "--tls_key", "--kb"]:
        if not any(a.startswith(flag) for a in args):
            problems.append(f"{where}: the container does not pass {flag}")
    # The probes reach the plaintext health-only listener, not the TLS one.
    health = flag_value(args, "health_listen")
    if health is None:
        problems.append(f"{where}: the container has no --health_listen for its probes")
    else:
        for probe in ["livenessProbe", "readinessProbe"]:
            if c.get(probe, {}).get("grpc", {}).get("port") != port_of(health):
                problems.append(f"{where}: {probe} does not probe the health-only port {port_of(health)}")
    return pod, c, args


def selects(selector, labels):
    match = (selector or {}).get("matchLabels") or {}
    return bool(match) and all(labels.get(k) == v for k, v in match.items())


# ---- One replica: deploy/k8s ------------------------------------------------
docs = load_dir("deploy/k8s/*.yaml")
kinds = {d["kind"]: d for _, d in docs}
for kind in ["Deployment", "Service", "ConfigMap", "Secret", "PodDisruptionBudget"]:
    if kind not in kinds:
        problems.append(f"deploy/k8s: no {kind} manifest")
dep = kinds.get("Deployment")
if dep:
    _, _, args = check_pod(dep, "deploy/k8s")
    if not any(a.startswith("--db") for a in args):
        problems.append("deploy/k8s: the container does not pass --db")
svc = kinds.get("Service")
if svc and any(p.get("port") == 9090 or p.get("name") == "metrics" for p in svc["spec"]["ports"]):
    problems.append("deploy/k8s: the Service publishes the metrics port")
if "NetworkPolicy" not in kinds:
    problems.append("deploy/k8s: no NetworkPolicy manifest")

# ---- Replicas on PostgreSQL: deploy/k8s-replicas ------------------------------
rdocs = load_dir("deploy/k8s-replicas/*.yaml")
by_kind = {}
for _, d in rdocs:
    by_kind.setdefault(d["kind"], []).append(d)
W = "deploy/k8s-replicas"
for kind in ["Deployment", "Service", "Secret", "PodDisruptionBudget", "NetworkPolicy"]:
    if kind not in by_kind:
        problems.append(f"{W}: no {kind} manifest")
rdep = (by_kind.get("Deployment") or [None])[0]
pod_labels = {}
if rdep:
    pod, c, args = check_pod(rdep, W)
    spec = rdep["spec"]
    pod_labels = spec["template"]["metadata"].get("labels", {})
    if not selects(spec.get("selector"), pod_labels):
        problems.append(f"{W}: the Deployment's selector does not select its own pods")
    if int(spec.get("replicas", 1)) < 2:
        problems.append(f"{W}: the Deployment runs {spec.get('replicas', 1)} replica(s), fewer than 2")
    strategy = spec.get("strategy", {})
    rolling = strategy.get("rollingUpdate", {})
    if strategy.get("type", "RollingUpdate") != "RollingUpdate":
        problems.append(f"{W}: the Deployment's strategy is {strategy.get('type')}, not RollingUpdate")
    if rolling.get("maxUnavailable") != 0 or not isinstance(rolling.get("maxSurge"), int) or rolling["maxSurge"] < 1:
        problems.append(f"{W}: the rolling update is not maxUnavailable 0 / maxSurge >= 1")
    # Stopping: preStop sleep, then SIGTERM and the server's grace period,
    # all before the kubelet's SIGKILL.
    grace = flag_value(args, "shutdown_grace_seconds")
    grace = int(grace) if grace is not None else 10
    pre = c.get("lifecycle", {}).get("preStop", {})
    sleep = 0
    if "sleep" in pre:
        sleep = int(pre["sleep"].get("seconds", 0))
    elif "exec" in pre:
        cmd = pre["exec"].get("command", [])
        if cmd and cmd[0].endswith("sleep") and len(cmd) == 2:
            sleep = int(cmd[1])
    if sleep <= 0:
        problems.append(f"{W}: no preStop sleep: the pod may stop accepting before it leaves the endpoints")
    tgps = int(pod.get("terminationGracePeriodSeconds", 30))
    if tgps <= sleep + grace:
        problems.append(f"{W}: terminationGracePeriodSeconds {tgps} does not exceed preStop {sleep} s "
                        f"+ --shutdown_grace_seconds {grace}")
    # The database URI: only from a Secret.
    if flag_value(args, "db") is not None:
        problems.append(f"{W}: the container passes --db inline; read it with --fromenv=db from a Secret")
    if "db" not in (flag_value(args, "fromenv") or "").split(",") + (flag_value(args, "tryfromenv") or "").split(","):
        problems.append(f"{W}: the container does not read --db with --fromenv=db")
    env = {e["name"]: e for e in c.get("env", [])}
    ref = env.get("FLAGS_db", {}).get("valueFrom", {}).get("secretKeyRef")
    if not ref:
        problems.append(f"{W}: FLAGS_db does not come from a Secret (secretKeyRef)")
    for e in c.get("env", []):
        if "value" in e and (URI.search(str(e["value"])) or e["name"] in ("FLAGS_db", "PGPASSWORD")):
            problems.append(f"{W}: env {e['name']} is written inline; take it from a Secret")
    spec_text = yaml.safe_dump(spec["template"])
    if URI.search(spec_text):
        problems.append(f"{W}: a database URI is written in the pod spec")
    # The Secret the Deployment reads exists with those keys.
    secrets = {s["metadata"]["name"]: s for s in by_kind.get("Secret", [])}
    refs = [e["valueFrom"]["secretKeyRef"] for e in c.get("env", []) if "secretKeyRef" in e.get("valueFrom", {})]
    for r in refs:
        s = secrets.get(r["name"])
        data = {**(s or {}).get("stringData", {}), **(s or {}).get("data", {})} if s else {}
        if s is None or r["key"] not in data:
            problems.append(f"{W}: no example Secret {r['name']} with key {r['key']}")
    if ref and ref["name"] in secrets:
        data = secrets[ref["name"]].get("stringData", {})
        uri = str(data.get(ref["key"], ""))
        if "sslmode=verify-full" not in uri:
            problems.append(f"{W}: the example URI does not use sslmode=verify-full")
        if re.match(r"postgres(ql)?://[^/@]*:[^/@]*@", uri) or "password=" in uri:
            problems.append(f"{W}: the example URI carries a password")
        for key, value in data.items():
            if "password" in key and "REPLACE-ME" not in str(value):
                problems.append(f"{W}: the example Secret's {key} is not an obvious placeholder")
pdbs = by_kind.get("PodDisruptionBudget", [])
if pdbs and not any(
        selects(p["spec"].get("selector"), pod_labels)
        and (p["spec"].get("minAvailable") == 1 or p["spec"].get("maxUnavailable") == 1) for p in pdbs):
    problems.append(f"{W}: no PodDisruptionBudget with minAvailable 1 or maxUnavailable 1 selects the pods")
for s in by_kind.get("Service", []):
    name = s["metadata"]["name"]
    sel = s["spec"].get("selector") or {}
    if not sel or any(pod_labels.get(k) != v for k, v in sel.items()):
        problems.append(f"{W}: Service {name} does not select the Vigil pods")
    for p in s["spec"].get("ports", []):
        if p.get("port") in (9090, 8081) or p.get("targetPort") in (9090, 8081, "metrics", "health"):
            problems.append(f"{W}: Service {name} publishes the metrics or health-only port")
egress_ports = [p.get("port") for n in by_kind.get("NetworkPolicy", [])
                for rule in n["spec"].get("egress", []) for p in rule.get("ports", [])]
if by_kind.get("NetworkPolicy") and 5432 not in egress_ports:
    problems.append(f"{W}: the NetworkPolicy does not allow egress to PostgreSQL (5432)")
try:
    readme = open(f"{W}/README.md").read()
    for needle in ["verify-full", "CloudNativePG"]:
        if needle not in readme:
            problems.append(f"{W}/README.md does not mention {needle}")
except FileNotFoundError:
    problems.append(f"{W}: no README.md on running PostgreSQL")

# ---- Compose, one replica ---------------------------------------------------
with open("deploy/docker-compose.yml") as f:
    compose = yaml.safe_load(f)
if "vigil" not in compose.get("services", {}):
    problems.append("docker-compose.yml has no vigil service")
else:
    for p in compose["services"]["vigil"].get("ports", []):
        if not str(p).startswith("127.0.0.1:"):
            problems.append(f"docker-compose.yml publishes {p} beyond loopback")

# ---- Compose, replicas --------------------------------------------------------
C = "docker-compose.replicas.yml"
with open(f"deploy/{C}") as f:
    rc = yaml.safe_load(f)
services = rc.get("services", {})
networks = rc.get("networks", {}) or {}


def image_of(s):
    return str(s.get("image", ""))


pg = {n: s for n, s in services.items() if image_of(s).startswith("postgres:")}
vigils = {n: s for n, s in services.items()
          if image_of(s).startswith("vigil:") or "Dockerfile" in str((s.get("build") or {}).get("dockerfile", ""))}
if len(pg) != 1:
    problems.append(f"{C}: {len(pg)} postgres services, not one")
for name, s in pg.items():
    if not re.match(r"postgres:15(\.|-|$)", image_of(s)):
        problems.append(f"{C}: {name} is not postgres:15 ('{image_of(s)}')")
    if s.get("ports"):
        problems.append(f"{C}: {name} publishes the database on the host")
    if not any((networks.get(n) or {}).get("internal") for n in s.get("networks", [])):
        problems.append(f"{C}: {name} is on no internal network")
    if "healthcheck" not in s:
        problems.append(f"{C}: {name} has no health check")
    if "POSTGRES_PASSWORD" in (s.get("environment") or {}):
        problems.append(f"{C}: {name} has its password inline")
if len(vigils) < 2:
    problems.append(f"{C}: {len(vigils)} vigil service(s), fewer than 2")
env_files = set()
commands = set()
health_ports = {}
for name, s in vigils.items():
    cmd = [str(a) for a in (s.get("command") or [])]
    commands.add(tuple(cmd))
    ef = s.get("env_file")
    ef = tuple(ef) if isinstance(ef, list) else (ef,)
    env_files.add(ef)
    if flag_value(cmd, "db") is not None or URI.search(" ".join(cmd)) or URI.search(str(s.get("environment", ""))):
        problems.append(f"{C}: {name} has its database URI inline; it belongs in the env file")
    if "db" not in (flag_value(cmd, "fromenv") or "").split(","):
        problems.append(f"{C}: {name} does not read --db with --fromenv=db")
    if s.get("ports"):
        problems.append(f"{C}: {name} publishes ports of its own; clients go through the proxy")
    if "healthcheck" not in s:
        problems.append(f"{C}: {name} has no health check")
    for p in pg:
        if (s.get("depends_on") or {}).get(p, {}).get("condition") != "service_healthy":
            problems.append(f"{C}: {name} does not wait for {p} to be healthy")
    health = flag_value(cmd, "health_listen")
    if health is None:
        problems.append(f"{C}: {name} has no --health_listen")
    else:
        health_ports[name] = port_of(health)
    grace = int(flag_value(cmd, "shutdown_grace_seconds") or 10)
    stop = str(s.get("stop_grace_period", "10s"))
    m = re.fullmatch(r"(\d+)s", stop)
    if not m or int(m.group(1)) <= grace:
        problems.append(f"{C}: {name} stop_grace_period {stop} does not exceed --shutdown_grace_seconds {grace}")
if len(env_files) > 1 or (None,) in env_files:
    problems.append(f"{C}: the vigil services do not share one env file for the database URI")
if len(commands) > 1:
    problems.append(f"{C}: the vigil services run with different flags")
for ef in env_files:
    for path in ef:
        if path is None:
            continue
        example = "deploy/" + os.path.basename(path) + ".example"
        try:
            lines = dict(l.split("=", 1) for l in open(example).read().splitlines() if l and not l.startswith("#"))
        except FileNotFoundError:
            problems.append(f"{C}: no {example} for {path}")
            continue
        if not URI.match(lines.get("FLAGS_db", "")):
            problems.append(f"{example}: no FLAGS_db with a PostgreSQL URI")
        elif re.match(r"postgres(ql)?://[^/@]*:[^/@]*@", lines["FLAGS_db"]):
            problems.append(f"{example}: the URI carries a password")
        if "REPLACE-ME" not in lines.get("PGPASSWORD", ""):
            problems.append(f"{example}: PGPASSWORD is not an obvious placeholder")
# One address in front: a proxy publishing the gRPC and HTTP ports on loopback.
vigil_cmd = list(next(iter(commands))) if commands else []
listen_ports = {p for p in (flag_value(vigil_cmd, "listen"), flag_value(vigil_cmd, "http_listen")) if p}
listen_ports = {port_of(p) for p in listen_ports}
proxies = {n: s for n, s in services.items() if n not in pg and n not in vigils and s.get("ports")}
if len(proxies) != 1:
    problems.append(f"{C}: {len(proxies)} services publish ports; one proxy in front is expected")
for name, s in proxies.items():
    published = set()
    for p in s.get("ports", []):
        if not str(p).startswith("127.0.0.1:"):
            problems.append(f"{C}: {name} publishes {p} beyond loopback")
        published.add(int(str(p).rsplit(":", 1)[-1]))
    if not listen_ports <= published:
        problems.append(f"{C}: {name} does not publish the replicas' ports {sorted(listen_ports)}")
    configs = [str(v).split(":")[0] for v in s.get("volumes", []) if "envoy" in str(v)]
    if not image_of(s).startswith("envoyproxy/envoy:") or not configs:
        problems.append(f"{C}: {name} is not Envoy with a mounted configuration")
        continue
    path = os.path.normpath(os.path.join("deploy", configs[0]))
    envoy = yaml.safe_load(open(path))
    clusters = {cl["name"]: cl for cl in envoy["static_resources"]["clusters"]}
    routed = {}
    for lis in envoy["static_resources"]["listeners"]:
        port = lis["address"]["socket_address"]["port_value"]
        for chain in lis["filter_chains"]:
            for flt in chain["filters"]:
                cfg = flt.get("typed_config", {})
                if "cluster" in cfg:
                    routed[port] = cfg["cluster"]
    for port in sorted(listen_ports):
        cl = clusters.get(routed.get(port))
        if cl is None:
            problems.append(f"{path}: no listener on {port} routed to a cluster")
            continue
        endpoints = [e["endpoint"] for g in cl["load_assignment"]["endpoints"] for e in g["lb_endpoints"]]
        hosts = {e["address"]["socket_address"]["address"]: e for e in endpoints}
        for v in vigils:
            e = hosts.get(v)
            if e is None:
                problems.append(f"{path}: cluster {cl['name']} does not reach {v}")
            elif e["address"]["socket_address"]["port_value"] != port:
                problems.append(f"{path}: cluster {cl['name']} reaches {v} on another port than {port}")
            elif e.get("health_check_config", {}).get("port_value") != health_ports.get(v):
                problems.append(f"{path}: cluster {cl['name']} does not health-check {v} on its health-only port")
        if not any("grpc_health_check" in h for h in cl.get("health_checks", [])):
            problems.append(f"{path}: cluster {cl['name']} has no grpc.health.v1 health check")
    if shutil.which("envoy"):
        r = subprocess.run(["envoy", "--mode", "validate", "-c", path], capture_output=True, text=True)
        if r.returncode != 0:
            problems.append(f"{path}: envoy --mode validate failed: {r.stdout[-500:]}{r.stderr[-500:]}")

# ---- Image, unit ----------------------------------------------------------------
try:
    ignored = open(".dockerignore").read().split()
except FileNotFoundError:
    ignored = []
for needed in ["deploy/secrets", "build", ".git"]:
    if needed not in ignored:
        problems.append(f".dockerignore does not keep {needed} out of the build context")
docker = open("deploy/Dockerfile").read()
for needle in ["FROM debian:bookworm AS build", "FROM debian:bookworm-slim AS runtime", "USER vigil",
               "scripts/install-deps.sh", "libpq5"]:
    if needle not in docker:
        problems.append(f"Dockerfile lacks '{needle}'")
unit = open("deploy/vigil.service").read()
if "ExecStart=/usr/local/bin/vigil-server" not in unit or "User=vigil" not in unit:
    problems.append("vigil.service does not run vigil-server as user vigil")
for line in ["UMask=0077", "StateDirectoryMode=0700", "CapabilityBoundingSet=", "PrivateDevices=true",
             "ProtectKernelTunables=true", "ProtectKernelModules=true", "ProtectKernelLogs=true",
             "RestrictAddressFamilies=", "SystemCallFilter=@system-service", "NoNewPrivileges=true"]:
    if not any(l.strip().startswith(line) for l in unit.splitlines()):
        problems.append(f"vigil.service lacks {line}")
if problems:
    print("deploy check FAILED:\n  " + "\n  ".join(problems))
    sys.exit(1)
print(f"deploy check ok: {len(docs)} manifests in deploy/k8s ({', '.join(sorted(kinds))}); "
      f"{len(rdocs)} in deploy/k8s-replicas ({rdep['spec']['replicas']} replicas, PDB, "
      f"{len(by_kind.get('Service', []))} Services, URI from Secret); compose: {len(vigils)} replicas "
      f"+ {', '.join(pg)} + {', '.join(proxies)}; Dockerfile, systemd unit")
PY
