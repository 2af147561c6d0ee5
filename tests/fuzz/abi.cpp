// ABI decoder against a few fixed parameter lists. Static-only lists must re-encode to the
// input byte for byte; dynamic ones must re-encode to something that decodes to the same value.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "eth/abi.hpp"

namespace {

constexpr std::string_view kTypes[] = {
    "(uint256,address,bool,bytes4,int8)",
    "(uint8[3],(uint16,bytes32),int256)",
    "(bytes,string,uint256[])",
    "((bytes,string)[],uint64[2][],bool)",
    "(string[][],(uint256,bytes)[2])",
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const kaisar::ByteView input(data, size);
  for (std::string_view text : kTypes) {
    auto type = kaisar::eth::AbiType::parse(text);
    if (!type) std::abort();
    auto value = kaisar::eth::abi_decode(*type, input);
    if (!value) continue;
    auto again = kaisar::eth::abi_encode(*type, *value);
    if (!again) std::abort();
    if (!type->is_dynamic()) {
      if (again->size() != size || !std::equal(again->begin(), again->end(), input.begin())) std::abort();
    } else {
      auto round_trip = kaisar::eth::abi_decode(*type, *again);
      if (!round_trip || !(*round_trip == *value)) std::abort();
    }
  }
  return 0;
}
