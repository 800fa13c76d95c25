#!/usr/bin/env python3
"""Screens proposed medications for one patient with Vigil's
DecisionSupport.CheckMedications (a server-streaming RPC) and prints each
alert as it arrives, then the closing summary.

By default the patient takes warfarin and ibuprofen is proposed, which raises
the MAJOR warfarin/ibuprofen bleeding interaction. --with_silperisone also
proposes silperisone and gives the patient severe chronic kidney disease
(ICD-10-CM N18.4, eGFR 24), which adds renal contraindications.

    PYTHONPATH=gen python3 check_medications.py --target 127.0.0.1:50051
    PYTHONPATH=gen python3 check_medications.py --with_silperisone
    PYTHONPATH=gen python3 check_medications.py --patient patient.json --propose ibuprofen

Exit status: 0 when the check completed (with or without alerts), 1 when the
call failed or the stream ended without its summary, 2 on a usage error.
"""

from __future__ import annotations

import argparse
import sys
from typing import List, Optional

import grpc
from google.protobuf import json_format

import vigil_common
from vigil.v1 import alert_pb2, decision_support_pb2, decision_support_pb2_grpc, patient_pb2

ICD10CM = "http://hl7.org/fhir/sid/icd-10-cm"
LOINC = "http://loinc.org"
EGFR_LOINC = "62238-1"
EGFR_UNIT = "mL/min/{1.73_m2}"


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    vigil_common.add_connection_args(parser)
    patient = parser.add_argument_group("patient")
    patient.add_argument("--patient", metavar="FILE", help="patient context as JSON (a vigil.v1.Patient); the flags below add to it")
    patient.add_argument("--patient_id", default="", help="the patient's id (default: example-patient, or the file's)")
    patient.add_argument(
        "--current", action="append", metavar="DRUG", help="a current medication (repeatable; default: warfarin without --patient)"
    )
    patient.add_argument("--condition", action="append", default=[], metavar="ICD10CM", help="an ICD-10-CM condition code (repeatable)")
    patient.add_argument("--egfr", type=float, help="an eGFR result in mL/min/{1.73_m2}")
    patient.add_argument(
        "--with_silperisone",
        action="store_true",
        help="also propose silperisone, for a patient with severe chronic kidney disease (N18.4, eGFR 24)",
    )
    parser.add_argument(
        "--propose", action="append", metavar="DRUG", help="a proposed medication (repeatable; default: ibuprofen)"
    )
    parser.add_argument("--as_of", default="", help="the date of the check, YYYY-MM-DD (default: the server's today)")
    parser.add_argument("--details", action="store_true", help="also print each alert's evidence, detail and recommendation")
    parser.add_argument(
        "--batch",
        type=int,
        default=0,
        metavar="N",
        help="ask for alerts in batches of at most N (max_alerts_per_message; the last batch carries the summary)",
    )
    return parser.parse_args(argv)


def build_request(args: argparse.Namespace) -> decision_support_pb2.CheckMedicationsRequest:
    """The CheckMedicationsRequest the flags describe."""
    request = decision_support_pb2.CheckMedicationsRequest(as_of=args.as_of)
    if args.patient:
        try:
            with open(args.patient, encoding="utf-8") as handle:
                json_format.Parse(handle.read(), request.patient)
        except (OSError, json_format.ParseError) as error:
            raise SystemExit(f"error: cannot read --patient {args.patient}: {error}") from error
    patient = request.patient
    if args.patient_id or not patient.id:
        patient.id = args.patient_id or "example-patient"
    current = args.current if args.current is not None else ([] if args.patient else ["warfarin"])
    for drug in current:
        patient.medications.add(drug=drug)
    conditions = list(args.condition)
    egfr = args.egfr
    if args.with_silperisone:
        conditions.append("N18.4")
        egfr = 24.0 if egfr is None else egfr
    for code in conditions:
        patient.conditions.add(code=patient_pb2.Coding(system=ICD10CM, code=code))
    if egfr is not None:
        patient.labs.add(code=patient_pb2.Coding(system=LOINC, code=EGFR_LOINC, display="eGFR"), value=egfr, unit=EGFR_UNIT)
    proposed = args.propose if args.propose is not None else ["ibuprofen"]
    if args.with_silperisone:
        proposed = proposed + ["silperisone"]
    for index, drug in enumerate(proposed, start=1):
        request.proposed_medications.add(drug=drug, order_id=f"order-{index}")
    request.max_alerts_per_message = args.batch
    return request


def print_alert(alert: alert_pb2.Alert, details: bool) -> None:
    """One alert: severity, kind, drugs and summary on one line (the id and rule below)."""
    drugs = f"  [{', '.join(alert.drug_ids)}]" if alert.drug_ids else ""
    print(f"{vigil_common.severity_label(alert.severity)}  {vigil_common.kind_label(alert.kind)}{drugs}  {alert.summary}")
    print(f"    alert {alert.id}" + (f", rule {alert.rule_id}" if alert.rule_id else ""))
    if details:
        for evidence in alert.evidence:
            print(f"    - {evidence.description}")
        if alert.detail:
            print(f"    Why: {alert.detail}")
        if alert.recommendation:
            print(f"    Do: {alert.recommendation}")
    sys.stdout.flush()


def print_summary(summary: decision_support_pb2.CheckSummary) -> None:
    """The closing summary of the stream."""
    print(
        f"summary: {summary.alert_count} alert(s); screened: {', '.join(summary.screened_drug_ids) or '-'}; "
        f"knowledge base {summary.knowledge_base_version[:12]}; "
        f"screening {'complete' if summary.complete else 'INCOMPLETE (no alert is not proof of safety)'}"
    )
    if summary.unresolved_references:
        print(f"unresolved: {', '.join(summary.unresolved_references)}")


def check(args: argparse.Namespace) -> int:
    """Runs the check and prints the stream; the exit status."""
    request = build_request(args)
    with vigil_common.open_channel(args) as channel:
        stub = decision_support_pb2_grpc.DecisionSupportStub(channel)
        proposed = ", ".join(m.drug for m in request.proposed_medications) or "(none: review of the current list)"
        current = ", ".join(m.drug for m in request.patient.medications) or "-"
        print(f"checking patient {request.patient.id}: current {current}; proposed {proposed}")
        stream = stub.CheckMedications(request, metadata=vigil_common.call_metadata(args), timeout=args.timeout)
        got_summary = False
        try:
            for response in stream:
                which = response.WhichOneof("result")
                if which == "alert":
                    print_alert(response.alert, args.details)
                elif which == "alert_batch":  # only when asked for (--batch)
                    for alert in response.alert_batch.alerts:
                        print_alert(alert, args.details)
                    if response.alert_batch.HasField("summary"):
                        print_summary(response.alert_batch.summary)
                        got_summary = True
                elif which == "summary":
                    print_summary(response.summary)
                    got_summary = True
        except grpc.RpcError as error:
            print(f"error: CheckMedications failed: {vigil_common.describe_error(error)}", file=sys.stderr)
            return vigil_common.EXIT_ERROR
    if not got_summary:
        print("error: the stream ended without its summary: the check was cut short", file=sys.stderr)
        return vigil_common.EXIT_ERROR
    return vigil_common.EXIT_OK


def main(argv: Optional[List[str]] = None) -> int:
    """Entry point."""
    return check(parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
