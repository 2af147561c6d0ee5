#include <gtest/gtest.h>

#include <algorithm>
#include <map>

#include "onenode/query.hpp"

namespace kaisar::onenode {
namespace {

using Row = std::map<std::string, FieldValue, std::less<>>;

FieldReader reader(const Row& row) {
  return [&row](std::string_view field) -> std::optional<FieldValue> {
    auto it = row.find(field);
    if (it == row.end()) return std::nullopt;
    return it->second;
  };
}

const Row k4090{{"gpu_name", std::string("NVIDIA GeForce RTX 4090")},
                {"num_gpus", 2.0},
                {"gpu_ram", 24.0},
                {"price_hour", 1.2},
                {"reliability", 0.99},
                {"country", std::string("DE")},
                {"verified", true}};
const Row kH100{{"gpu_name", std::string("NVIDIA H100 80GB HBM3")},
                {"num_gpus", 8.0},
                {"gpu_ram", 80.0},
                {"price_hour", 20.0},
                {"reliability", 0.95},
                {"country", std::string("US")},
                {"verified", false}};

bool match(std::string_view q, const Row& row) {
  auto parsed = parse_query(q);
  EXPECT_TRUE(parsed) << q << ": " << parsed.error().message;
  return parsed && parsed->matches(reader(row));
}

TEST(Query, TheIssueExampleSelectsTheRightOffer) {
  const std::string q =
      "gpu_name=RTX_4090 num_gpus>=2 gpu_ram>=24 price_hour<=1.5 reliability>=0.98 country=DE verified=true";
  EXPECT_TRUE(match(q, k4090));
  EXPECT_FALSE(match(q, kH100));
}

TEST(Query, OperatorsListsQuotesAndWords) {
  EXPECT_TRUE(match("gpu_name=h100", kH100));
  EXPECT_TRUE(match("gpu_name=\"H100 80GB\"", kH100));
  EXPECT_FALSE(match("gpu_name=H10", kH100));  // words, not prefixes
  EXPECT_TRUE(match("country=FR,DE,NL", k4090));
  EXPECT_FALSE(match("country!=FR,DE", k4090));
  EXPECT_TRUE(match("num_gpus > 1 num_gpus < 3", k4090));  // spaces around operators
  EXPECT_TRUE(match("num_gpus==2", k4090));
  EXPECT_TRUE(match("num_gpus!=3", k4090));
  EXPECT_TRUE(match("verified=no", kH100));
  EXPECT_TRUE(match("", kH100));  // no condition: everything
  // A field the offer lacks matches only !=.
  EXPECT_FALSE(match("disk>=10", k4090));
  EXPECT_TRUE(match("region!=eu", k4090));
}

TEST(Query, ErrorsNameThePositionAndWhatWasExpected) {
  struct Case {
    std::string query;
    std::string expect;
  };
  for (const Case& c : std::vector<Case>{
           {"gpu_nam=RTX_4090", "at position 0: unknown field 'gpu_nam'"},
           {"num_gpus>=two", "at position 10: 'num_gpus' needs a number"},
           {"num_gpus 2", "at position 9: expected an operator"},
           {"num_gpus>=", "at position 10: expected a value for 'num_gpus', found the end of the query"},
           {"gpu_name<RTX", "at position 8: 'gpu_name' takes only = or !="},
           {"verified=maybe", "needs true or false"},
           {"gpu_name=\"RTX", "unterminated"},
           {"num_gpus=1,2", "only text fields take a list"},
           {"=5", "at position 0: expected a field name"},
           {"num_gpus>=2price_hour<1", "at position 10: 'num_gpus' needs a number, found '2price_hour'"},
           {"gpu_name=\"x\"num_gpus>1", "at position 12: expected a space"},
       }) {
    auto r = parse_query(c.query);
    ASSERT_FALSE(r) << c.query;
    EXPECT_EQ(r.error().code, ErrorCode::kInvalidArgument);
    EXPECT_NE(r.error().message.find(c.expect), std::string::npos) << c.query << " → " << r.error().message;
  }
  EXPECT_FALSE(parse_query(std::string(3000, 'a')));
  std::string many;
  for (int i = 0; i < 40; ++i) many += "num_gpus>=1 ";
  EXPECT_FALSE(parse_query(many));
  EXPECT_FALSE(parse_query("gpu_name=\"a\x01\""));
}

TEST(Query, SortKeysOrderOffers) {
  auto by_price = parse_sort("price_hour");
  ASSERT_TRUE(by_price);
  EXPECT_TRUE(sort_before(*by_price, reader(k4090), reader(kH100)));
  auto by_gpus_desc = parse_sort("-num_gpus,price_hour");
  ASSERT_TRUE(by_gpus_desc);
  EXPECT_TRUE(sort_before(*by_gpus_desc, reader(kH100), reader(k4090)));
  auto suffix = parse_sort("reliability-");
  ASSERT_TRUE(suffix);
  EXPECT_TRUE((*suffix)[0].descending);
  // Missing values go last either way.
  Row empty;
  EXPECT_TRUE(sort_before(*by_price, reader(kH100), reader(empty)));
  EXPECT_FALSE(sort_before(*by_price, reader(empty), reader(kH100)));
  EXPECT_FALSE(parse_sort("cheapness"));
  EXPECT_FALSE(parse_sort("price_hour,"));
  EXPECT_FALSE(parse_sort(""));
}

TEST(Query, EveryFieldHasAType) {
  EXPECT_GE(offer_fields().size(), 15U);
  for (const auto& f : offer_fields()) EXPECT_FALSE(f.help.empty()) << f.name;
}

}  // namespace
}  // namespace kaisar::onenode
