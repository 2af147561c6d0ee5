#pragma once

// Shared by tests that check Ethereum encodings: the fixed vectors in
// shared/testvectors/eth.json, and `cast` (Foundry, from node_modules) as the independent
// implementation to compare against.
#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include "process.hpp"

namespace kaisar::testing {

inline boost::json::value load_eth_vectors() {
  const std::filesystem::path path = std::filesystem::path(source_dir()) / ".." / "shared" / "testvectors" / "eth.json";
  std::ifstream in(path);
  if (!in) {
    ADD_FAILURE() << "test vector file missing: " << path;
    return {};
  }
  std::stringstream text;
  text << in.rdbuf();
  return boost::json::parse(text.str());
}

// The named list of vectors; records a failure when it is missing or empty.
inline const boost::json::array& eth_vector_list(const boost::json::value& vectors, std::string_view name) {
  static const boost::json::array empty;
  const auto* obj = vectors.if_object();
  const boost::json::value* list = obj != nullptr ? obj->if_contains(name) : nullptr;
  if (list == nullptr || !list->is_array() || list->get_array().empty()) {
    ADD_FAILURE() << "eth.json has no '" << name << "' vectors";
    return empty;
  }
  return list->get_array();
}

inline std::string trim_line_end(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r' || s.back() == ' ')) s.pop_back();
  return s;
}

// Runs cast with the given arguments and returns its trimmed stdout; records a failure on a
// non-zero exit.
inline std::string cast(std::vector<std::string> args) {
  args.insert(args.begin(), node_tool("cast"));
  const RunResult result = run_process(args);
  EXPECT_EQ(result.exit_code, 0) << "cast " << args[1] << " failed: " << result.err;
  return trim_line_end(result.out);
}

}  // namespace kaisar::testing
