#!/usr/bin/env bash
# Checks deploy/ without a container engine (none runs on these machines):
# the manifests parse and declare what they must, the Dockerfile has its
# stages and runs as non-root, and the systemd unit names the server.
# What is NOT checked here: building or running the image, applying the
# manifests to a cluster.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 - <<'PY'
import sys, yaml, glob
docs = []
for path in sorted(glob.glob("deploy/k8s/*.yaml")):
    with open(path) as f:
        docs += [(path, d) for d in yaml.safe_load_all(f) if d]
kinds = {d["kind"]: d for _, d in docs}
problems = []
for kind in ["Deployment", "Service", "ConfigMap", "Secret", "PodDisruptionBudget"]:
    if kind not in kinds:
        problems.append(f"no {kind} manifest")
dep = kinds.get("Deployment")
if dep:
    c = dep["spec"]["template"]["spec"]["containers"][0]
    for probe in ["livenessProbe", "readinessProbe"]:
        if "grpc" not in c.get(probe, {}):
            problems.append(f"{probe} is not a native gRPC probe")
    pod = dep["spec"]["template"]["spec"]
    psc = pod.get("securityContext", {})
    if not psc.get("runAsNonRoot"):
        problems.append("the pod does not run as non-root")
    if psc.get("seccompProfile", {}).get("type") != "RuntimeDefault":
        problems.append("the pod has no RuntimeDefault seccomp profile")
    if pod.get("automountServiceAccountToken") is not False:
        problems.append("the pod mounts a service-account token")
    csc = c.get("securityContext", {})
    if csc.get("capabilities", {}).get("drop") != ["ALL"]:
        problems.append("the container does not drop all capabilities")
    if csc.get("allowPrivilegeEscalation") is not False or not csc.get("readOnlyRootFilesystem"):
        problems.append("the container allows privilege escalation or a writable root filesystem")
    image = c.get("image", "")
    if ":" not in image or image.endswith(":latest"):
        problems.append(f"the image '{image}' is not pinned to a release")
    for v in pod.get("volumes", []):
        if "secret" in v and v["secret"].get("defaultMode") != 0o400:
            problems.append(f"secret volume {v['name']} is not mode 0400")
    args = " ".join(c.get("args", []))
    for flag in ["--tokens_file", "--tls_cert", "--tls_key", "--db", "--kb"]:
        if flag not in args:
            problems.append(f"the container does not pass {flag}")
    # The probes reach the plaintext health-only listener, not the TLS one.
    health = [a for a in c.get("args", []) if a.startswith("--health_listen=")]
    if not health:
        problems.append("the container has no --health_listen for its probes")
    else:
        port = int(health[0].rsplit(":", 1)[1])
        for probe in ["livenessProbe", "readinessProbe"]:
            if c.get(probe, {}).get("grpc", {}).get("port") != port:
                problems.append(f"{probe} does not probe the health-only port {port}")
svc = kinds.get("Service")
if svc and any(p.get("port") == 9090 or p.get("name") == "metrics" for p in svc["spec"]["ports"]):
    problems.append("the Service publishes the metrics port")
if "NetworkPolicy" not in kinds:
    problems.append("no NetworkPolicy manifest")
with open("deploy/docker-compose.yml") as f:
    compose = yaml.safe_load(f)
if "vigil" not in compose.get("services", {}):
    problems.append("docker-compose.yml has no vigil service")
else:
    for p in compose["services"]["vigil"].get("ports", []):
        if not str(p).startswith("127.0.0.1:"):
            problems.append(f"docker-compose.yml publishes {p} beyond loopback")
try:
    ignored = open(".dockerignore").read().split()
except FileNotFoundError:
    ignored = []
for needed in ["deploy/secrets", "build", ".git"]:
    if needed not in ignored:
        problems.append(f".dockerignore does not keep {needed} out of the build context")
docker = open("deploy/Dockerfile").read()
for needle in ["FROM debian:bookworm AS build", "FROM debian:bookworm-slim AS runtime", "USER vigil", "scripts/install-deps.sh"]:
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
print(f"deploy check ok: {len(docs)} manifests ({', '.join(sorted(kinds))}), Dockerfile, compose file, systemd unit")
PY
