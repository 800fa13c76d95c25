"""Shared plumbing of the Vigil Python examples: connection flags, the channel,
the bearer token, and readable error and enum labels.

The generated modules (``vigil.v1.*_pb2``, ``vigil.v1.*_pb2_grpc`` and
``google.rpc.*_pb2``) must be importable: generate them with protoc and
grpc_python_plugin into a folder and put that folder on PYTHONPATH (see
README.md).
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import List, Sequence, Tuple

import grpc

try:
    from google.rpc import error_details_pb2, status_pb2
    from vigil.v1 import alert_pb2
except ImportError as error:  # pragma: no cover - depends on the environment
    sys.stderr.write(
        f"error: cannot import the generated Vigil stubs ({error}).\n"
        "Generate them and put their folder on PYTHONPATH, for example:\n"
        "  protoc -I proto --python_out=gen --grpc_out=gen \\\n"
        "    --plugin=protoc-gen-grpc=/usr/bin/grpc_python_plugin \\\n"
        "    proto/vigil/v1/*.proto proto/google/rpc/*.proto\n"
        "  PYTHONPATH=gen python3 examples/python/check_medications.py\n"
    )
    sys.exit(2)

# Exit statuses shared by the examples.
EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2

Metadata = List[Tuple[str, str]]


def add_connection_args(parser: argparse.ArgumentParser) -> None:
    """Adds the flags that say where the server is and how to authenticate."""
    group = parser.add_argument_group("connection")
    group.add_argument(
        "--target",
        default=os.environ.get("VIGIL_SERVER", "127.0.0.1:50051"),
        help="server address HOST:PORT (default: $VIGIL_SERVER or 127.0.0.1:50051)",
    )
    group.add_argument("--ca_cert", default="", help="use TLS, trusting this CA bundle (PEM)")
    group.add_argument("--cert", default="", help="client certificate for mutual TLS (PEM); with --key")
    group.add_argument("--key", default="", help="the client certificate's private key (PEM)")
    group.add_argument(
        "--server_name",
        default="",
        help="TLS: the name to expect in the server certificate, when it differs from the target host",
    )
    group.add_argument(
        "--token",
        default=os.environ.get("VIGIL_TOKEN", ""),
        help="bearer token (default: $VIGIL_TOKEN); sent as 'authorization: Bearer TOKEN'. "
        "Sent only over TLS or to this machine, unless --insecure",
    )
    group.add_argument(
        "--insecure",
        action="store_true",
        help="allow sending the token without TLS to another machine (a network you trust only)",
    )
    group.add_argument("--timeout", type=float, default=10.0, help="deadline of each unary call, seconds (default 10)")


def is_local_target(target: str) -> bool:
    """True when `target` names this machine (loopback or a Unix socket)."""
    for scheme in ("dns:///", "dns:", "ipv4:", "ipv6:"):
        if target.startswith(scheme):
            target = target[len(scheme):]
            break
    if target.startswith(("unix:", "unix-abstract:")):
        return True
    if target.startswith("["):
        host = target[1:target.find("]")] if "]" in target else target[1:]
    else:
        host = target.rsplit(":", 1)[0] if ":" in target else target
    return host == "localhost" or host.startswith("127.") or host == "::1"


def _read(path: str) -> bytes:
    with open(path, "rb") as handle:
        return handle.read()


def open_channel(args: argparse.Namespace, extra_options: Sequence[Tuple[str, object]] = ()) -> grpc.Channel:
    """Opens the channel the connection flags describe: plaintext by default,
    TLS with --ca_cert (and mutual TLS with --cert/--key).

    Refuses, like the C++ client, to send a token in plaintext to another
    machine unless --insecure is given. Raises SystemExit on a usage error.
    """
    tls = bool(args.ca_cert or args.cert)
    if bool(args.cert) != bool(args.key):
        raise SystemExit("error: --cert and --key go together")
    if args.token and not tls and not args.insecure and not is_local_target(args.target):
        raise SystemExit(
            f"error: refusing to send a token without TLS to {args.target}: anyone on the network could read "
            "and replay it. Use --ca_cert (TLS), or --insecure on a network you trust."
        )
    options: List[Tuple[str, object]] = list(extra_options)
    if args.server_name:
        options.append(("grpc.ssl_target_name_override", args.server_name))
    if not tls:
        return grpc.insecure_channel(args.target, options=options)
    try:
        credentials = grpc.ssl_channel_credentials(
            root_certificates=_read(args.ca_cert) if args.ca_cert else None,
            private_key=_read(args.key) if args.key else None,
            certificate_chain=_read(args.cert) if args.cert else None,
        )
    except OSError as error:
        raise SystemExit(f"error: cannot read a TLS file: {error}") from error
    return grpc.secure_channel(args.target, credentials, options=options)


def call_metadata(args: argparse.Namespace) -> Metadata:
    """The metadata of every call: the bearer token, when there is one.

    The server reads the 'authorization' metadata key and expects
    "Bearer TOKEN" (server/security/auth.cc); without --tokens_file (development
    mode) it needs none.
    """
    return [("authorization", f"Bearer {args.token}")] if args.token else []


def describe_error(error: grpc.RpcError) -> str:
    """One line for a failed call: the status code, the message and, for
    INVALID_ARGUMENT, the offending fields the server names in the
    google.rpc.BadRequest of the status details (grpc-status-details-bin)."""
    code = error.code() if isinstance(error, grpc.Call) else None
    details = error.details() if isinstance(error, grpc.Call) else str(error)
    text = f"{code.name if code else 'UNKNOWN'}: {details}"
    trailers: Sequence[Tuple[str, object]] = ()
    if isinstance(error, grpc.Call):
        trailers = error.trailing_metadata() or ()
    for key, value in trailers:
        if key != "grpc-status-details-bin" or not isinstance(value, bytes):
            continue
        status = status_pb2.Status.FromString(value)
        for detail in status.details:
            bad_request = error_details_pb2.BadRequest()
            if detail.Unpack(bad_request):
                for violation in bad_request.field_violations:
                    text += f"\n  field {violation.field}: {violation.description}"
    return text


def severity_label(severity: int) -> str:
    """"MAJOR" for SEVERITY_MAJOR, and so on."""
    return alert_pb2.Severity.Name(severity).removeprefix("SEVERITY_")


def kind_label(kind: int) -> str:
    """"DRUG_INTERACTION" for ALERT_KIND_DRUG_INTERACTION, and so on."""
    return alert_pb2.AlertKind.Name(kind).removeprefix("ALERT_KIND_")


def parse_severity(text: str) -> int:
    """The Severity value named `text` ("major" or "SEVERITY_MAJOR")."""
    name = text.upper()
    if not name.startswith("SEVERITY_"):
        name = "SEVERITY_" + name
    try:
        return alert_pb2.Severity.Value(name)
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"unknown severity {text!r}") from error

