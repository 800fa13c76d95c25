// google.protobuf.Timestamp from and to absl::Time, and RFC 3339 text (the
// form the store keeps times in).
#ifndef VIGIL_SERVER_COMMON_TIMESTAMP_H_
#define VIGIL_SERVER_COMMON_TIMESTAMP_H_

#include <string>

#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "google/protobuf/timestamp.pb.h"

namespace vigil {

inline google::protobuf::Timestamp ToTimestamp(absl::Time t) {
  google::protobuf::Timestamp ts;
  const int64_t seconds = absl::ToUnixSeconds(t);
  ts.set_seconds(seconds);
  ts.set_nanos(static_cast<int32_t>(absl::ToInt64Nanoseconds(t - absl::FromUnixSeconds(seconds))));
  return ts;
}

inline absl::Time FromTimestamp(const google::protobuf::Timestamp& ts) {
  return absl::FromUnixSeconds(ts.seconds()) + absl::Nanoseconds(ts.nanos());
}

// RFC 3339 in UTC with the fraction it has ("2026-12-04T19:43:05.123456Z").
inline std::string Rfc3339(absl::Time t) { return absl::FormatTime(absl::RFC3339_full, t, absl::UTCTimeZone()); }

// The Timestamp of RFC 3339 text; an empty Timestamp when it is not one.
inline google::protobuf::Timestamp TimestampOfRfc3339(absl::string_view text) {
  absl::Time t;
  std::string error;
  if (text.empty() || !absl::ParseTime(absl::RFC3339_full, text, &t, &error)) {
    return google::protobuf::Timestamp();
  }
  return ToTimestamp(t);
}

}  // namespace vigil

#endif  // VIGIL_SERVER_COMMON_TIMESTAMP_H_
