// Unit tests of the per-caller limits (server/security/rate_limiter.h): a
// caller's token bucket, and the slots one caller may hold at once.
#include "server/security/rate_limiter.h"

#include "absl/time/time.h"
#include "gtest/gtest.h"

namespace vigil {
namespace {

TEST(RateLimiterTest, BurstThenRateAndCallersAreIndependent) {
  RateLimiter limiter(/*per_second=*/2, /*burst=*/3);
  const absl::Time t0 = absl::FromUnixSeconds(1000);
  for (int i = 0; i < 3; ++i) {
    EXPECT_TRUE(limiter.Admit("a", t0).ok()) << i;
  }
  EXPECT_EQ(limiter.Admit("a", t0).code(), absl::StatusCode::kResourceExhausted);
  EXPECT_TRUE(limiter.Admit("b", t0).ok());
  // Half a second later, one more token (2 a second).
  EXPECT_TRUE(limiter.Admit("a", t0 + absl::Milliseconds(500)).ok());
  EXPECT_EQ(limiter.Admit("a", t0 + absl::Milliseconds(500)).code(), absl::StatusCode::kResourceExhausted);
}

TEST(CallerSlotsTest, OneCallerCannotHoldMoreThanItsShare) {
  CallerSlots slots(2, "checks in flight");
  EXPECT_TRUE(slots.Acquire("ehr").ok());
  EXPECT_TRUE(slots.Acquire("ehr").ok());
  const auto refused = slots.Acquire("ehr");
  EXPECT_EQ(refused.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_NE(refused.message().find("checks in flight"), absl::string_view::npos) << refused.message();
  // Another caller is not affected.
  EXPECT_TRUE(slots.Acquire("pharmacy").ok());
  // A released slot can be taken again.
  slots.Release("ehr");
  EXPECT_TRUE(slots.Acquire("ehr").ok());
  EXPECT_EQ(slots.Acquire("ehr").code(), absl::StatusCode::kResourceExhausted);
}

TEST(CallerSlotsTest, ZeroMeansNoLimit) {
  CallerSlots slots(0, "subscriptions");
  for (int i = 0; i < 1000; ++i) {
    EXPECT_TRUE(slots.Acquire("ehr").ok());
  }
}

}  // namespace
}  // namespace vigil
