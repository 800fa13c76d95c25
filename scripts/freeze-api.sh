#!/usr/bin/env bash
# Records vigil.v1 as released: writes the descriptors of proto/vigil/v1 to
# proto/frozen/vigil_v1.descriptor.textproto (a google.protobuf.
# FileDescriptorSet in text form). tests/api_freeze_test.cc checks the
# generated API against it: every released field, enum value and method must
# still be there with the same number, name and type (additive changes only).
# Run it after an additive change, and commit the file with the change.
set -euo pipefail
cd "$(dirname "$0")/.."
out=proto/frozen/vigil_v1.descriptor.textproto
tmp=$(mktemp)
trap 'rm -f "$tmp"' EXIT
protoc -I proto --descriptor_set_out="$tmp" proto/vigil/v1/*.proto
{
  echo "# vigil.v1 as released: written by scripts/freeze-api.sh, checked by tests/api_freeze_test.cc."
  echo "# proto-file: google/protobuf/descriptor.proto"
  echo "# proto-message: google.protobuf.FileDescriptorSet"
  protoc --decode=google.protobuf.FileDescriptorSet google/protobuf/descriptor.proto < "$tmp"
} > "$out"
echo "freeze-api: wrote $out ($(grep -c 'name:' "$out") names)"
