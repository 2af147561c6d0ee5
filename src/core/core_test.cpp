#include <gtest/gtest.h>

#include "core/bytes.hpp"
#include "core/time.hpp"

namespace kaisar {
namespace {

TEST(Hex, RoundTrip) {
  Bytes b{0x00, 0x01, 0xab, 0xff};
  EXPECT_EQ(to_hex(b), "0x0001abff");
  EXPECT_EQ(to_hex(b, false), "0001abff");
  auto back = from_hex("0x0001ABff");
  ASSERT_TRUE(back);
  EXPECT_EQ(*back, b);
  EXPECT_TRUE(from_hex("")->empty());
}

TEST(Hex, RejectsBadInput) {
  EXPECT_FALSE(from_hex("0x123"));
  auto r = from_hex("12zz");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, ErrorCode::kInvalidArgument);
  EXPECT_NE(r.error().message.find("position 2"), std::string::npos);
  EXPECT_FALSE((from_hex_fixed<4>("0x0102")));
  EXPECT_TRUE((from_hex_fixed<2>("0x0102")));
}

TEST(Bytes, ConstantTimeEqual) {
  Bytes a{1, 2, 3}, b{1, 2, 3}, c{1, 2, 4};
  EXPECT_TRUE(equal_constant_time(a, b));
  EXPECT_FALSE(equal_constant_time(a, c));
  EXPECT_FALSE(equal_constant_time(a, Bytes{1, 2}));
}

TEST(Time, FormatAndParse) {
  auto t = from_unix_seconds(1795601096);  // 2026-11-25T10:04:56Z
  EXPECT_EQ(format_rfc3339(t), "2026-11-25T10:04:56Z");
  auto p = parse_rfc3339("2026-11-25T10:04:56Z");
  ASSERT_TRUE(p);
  EXPECT_EQ(*p, t);
  auto q = parse_rfc3339("2026-11-25T11:04:56.123+01:00");
  ASSERT_TRUE(q);
  EXPECT_EQ(*q, t);
  EXPECT_EQ(format_rfc3339(from_unix_seconds(0)), "1970-01-01T00:00:00Z");
}

TEST(Time, RejectsMalformed) {
  for (auto s : {"", "2026-11-25", "2026-13-25T09:24:56Z", "2026-11-25T09:24:56", "2026-11-25T09:24:56Zjunk",
                 "2026-11-25 09:24:56Z", "2026-11-25T09:24:56+0100"}) {
    EXPECT_FALSE(parse_rfc3339(s)) << s;
  }
}

}  // namespace
}  // namespace kaisar
