#!/usr/bin/env python3
"""Stores a patient's context with Vigil's Patients.PutPatient and prints the
alerts the change raised and resolved, and the event number of its last feed
event. Each raised alert is a RAISED event of the alert feed (see
feed_subscriber.py).

By default the patient takes warfarin and ibuprofen, which raises the MAJOR
warfarin/ibuprofen interaction:

    PYTHONPATH=gen python3 put_patient.py --patient_id ward-3-bed-12
    PYTHONPATH=gen python3 put_patient.py --patient_id ward-3-bed-12 --current warfarin
        (ibuprofen stopped: the interaction alert is RESOLVED)

Exit status: 0 when the patient was stored, 1 when the call failed, 2 on a
usage error.
"""

from __future__ import annotations

import argparse
import sys
from typing import List, Optional

import grpc
from google.protobuf import json_format

import vigil_common
from vigil.v1 import alert_pb2, patient_pb2, patients_pb2, patients_pb2_grpc

ICD10CM = "http://hl7.org/fhir/sid/icd-10-cm"


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    vigil_common.add_connection_args(parser)
    parser.add_argument("--patient", metavar="FILE", help="patient context as JSON (a vigil.v1.Patient); the flags below add to it")
    parser.add_argument("--patient_id", default="", help="the patient's id (required unless the file has one)")
    parser.add_argument(
        "--current",
        action="append",
        metavar="DRUG",
        help="a current medication (repeatable; default: warfarin and ibuprofen without --patient)",
    )
    parser.add_argument("--condition", action="append", default=[], metavar="ICD10CM", help="an ICD-10-CM condition code (repeatable)")
    return parser.parse_args(argv)


def build_patient(args: argparse.Namespace) -> patient_pb2.Patient:
    """The Patient the flags describe."""
    patient = patient_pb2.Patient()
    if args.patient:
        try:
            with open(args.patient, encoding="utf-8") as handle:
                json_format.Parse(handle.read(), patient)
        except (OSError, json_format.ParseError) as error:
            raise SystemExit(f"error: cannot read --patient {args.patient}: {error}") from error
    if args.patient_id:
        patient.id = args.patient_id
    if not patient.id:
        raise SystemExit("error: --patient_id is required")
    current = args.current if args.current is not None else ([] if args.patient else ["warfarin", "ibuprofen"])
    for drug in current:
        patient.medications.add(drug=drug)
    for code in args.condition:
        patient.conditions.add(code=patient_pb2.Coding(system=ICD10CM, code=code))
    return patient


def describe(alert: alert_pb2.Alert) -> str:
    """One line for an alert."""
    return (
        f"{vigil_common.severity_label(alert.severity)}  {vigil_common.kind_label(alert.kind)}"
        f"  [{', '.join(alert.drug_ids)}]  {alert.summary}  ({alert.id})"
    )


def main(argv: Optional[List[str]] = None) -> int:
    """Entry point."""
    args = parse_args(argv)
    patient = build_patient(args)
    with vigil_common.open_channel(args) as channel:
        stub = patients_pb2_grpc.PatientsStub(channel)
        try:
            response = stub.PutPatient(
                patients_pb2.PutPatientRequest(patient=patient),
                metadata=vigil_common.call_metadata(args),
                timeout=args.timeout,
            )
        except grpc.RpcError as error:
            print(f"error: PutPatient failed: {vigil_common.describe_error(error)}", file=sys.stderr)
            return vigil_common.EXIT_ERROR
    print(f"{'created' if response.created else 'updated'} patient {patient.id}")
    for alert in response.raised:
        print(f"raised: {describe(alert)}")
    for alert in response.resolved:
        print(f"resolved: {describe(alert)}")
    print(f"active alerts: {len(response.active)}")
    print(f"last event number: {response.last_event_number}")
    return vigil_common.EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
