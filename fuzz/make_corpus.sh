#!/usr/bin/env bash
# Regenerates the binary seed corpora of the request fuzzers from the readable
# requests in fuzz/seeds/<target>/*.textproto: each is encoded with protoc as
# the wire bytes a client would send, into fuzz/corpus/<target>/<name>.pb.
# Rerun it after editing a seed or the API protos, and commit the output.
set -euo pipefail
cd "$(dirname "$0")"
PROTO_DIR=../proto

encode() {  # target message proto-file
  local target=$1 message=$2 proto=$3
  mkdir -p "corpus/$target"
  rm -f "corpus/$target"/*.pb
  for seed in "seeds/$target"/*.textproto; do
    protoc -I "$PROTO_DIR" --encode="$message" "$proto" <"$seed" \
      >"corpus/$target/$(basename "$seed" .textproto).pb"
  done
}

encode check_request vigil.v1.CheckMedicationsRequest vigil/v1/decision_support.proto
encode put_patient vigil.v1.PutPatientRequest vigil/v1/patients.proto
echo "fuzz corpora regenerated: $(ls corpus/check_request corpus/put_patient | grep -c '\.pb$') seeds"
