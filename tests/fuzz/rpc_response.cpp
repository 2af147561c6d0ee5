// JSON-RPC responses are untrusted bytes from the node: whatever comes back, the client
// returns a value or an error and never crashes. The first input byte picks the call.
#include <cstddef>
#include <cstdint>
#include <string>

#include "eth/rpc.hpp"

namespace {

class CannedTransport final : public kaisar::eth::RpcTransport {
 public:
  explicit CannedTransport(std::string body) : body_(std::move(body)) {}
  kaisar::Result<std::string> post(std::string_view) override { return body_; }

 private:
  std::string body_;
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  using namespace kaisar::eth;
  CannedTransport transport(std::string(reinterpret_cast<const char*>(data) + 1, size - 1));
  RpcClient rpc(transport, 64 * 1024);
  const kaisar::Hash32 hash{};
  switch (data[0] % 7) {
    case 0: (void)rpc.chain_id(); break;
    case 1: (void)rpc.get_transaction_receipt(hash); break;
    case 2: (void)rpc.get_logs(LogFilter{}); break;
    case 3: (void)rpc.get_block(BlockId::latest()); break;
    case 4: (void)rpc.estimate_fees(); break;
    case 5: (void)rpc.call(CallRequest{}); break;
    default: {
      const RpcCall calls[] = {{"eth_chainId", {}}, {"eth_blockNumber", {}}};
      (void)rpc.batch(calls);
    }
  }
  return 0;
}
