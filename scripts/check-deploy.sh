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
    if not dep["spec"]["template"]["spec"].get("securityContext", {}).get("runAsNonRoot"):
        problems.append("the pod does not run as non-root")
    args = " ".join(c.get("args", []))
    for flag in ["--tokens_file", "--tls_cert", "--tls_key", "--db", "--kb"]:
        if flag not in args:
            problems.append(f"the container does not pass {flag}")
with open("deploy/docker-compose.yml") as f:
    compose = yaml.safe_load(f)
if "vigil" not in compose.get("services", {}):
    problems.append("docker-compose.yml has no vigil service")
docker = open("deploy/Dockerfile").read()
for needle in ["FROM debian:bookworm AS build", "FROM debian:bookworm-slim AS runtime", "USER vigil", "scripts/install-deps.sh"]:
    if needle not in docker:
        problems.append(f"Dockerfile lacks '{needle}'")
unit = open("deploy/vigil.service").read()
if "ExecStart=/usr/local/bin/vigil-server" not in unit or "User=vigil" not in unit:
    problems.append("vigil.service does not run vigil-server as user vigil")
if problems:
    print("deploy check FAILED:\n  " + "\n  ".join(problems))
    sys.exit(1)
print(f"deploy check ok: {len(docs)} manifests ({', '.join(sorted(kinds))}), Dockerfile, compose file, systemd unit")
PY
