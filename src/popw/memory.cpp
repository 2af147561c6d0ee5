#include "popw/memory.hpp"

#include <new>
#include <string>

#include "crypto/keccak.hpp"
#include "popw/parallel.hpp"

namespace kaisar::popw {

namespace {

constexpr std::uint32_t kFnvPrime = 0x01000193;

inline std::uint32_t fnv(std::uint32_t a, std::uint32_t b) noexcept { return (a * kFnvPrime) ^ b; }

inline std::uint32_t lo32(std::uint64_t v) noexcept { return static_cast<std::uint32_t>(v); }
inline std::uint32_t hi32(std::uint64_t v) noexcept { return static_cast<std::uint32_t>(v >> 32); }

std::string str(std::uint64_t v) { return std::to_string(v); }

}  // namespace

Result<void> check_fill(const MemoryFill& fill) noexcept {
  if (fill.cache_bytes < kMinCacheBytes || fill.cache_bytes > kMaxCacheBytes || fill.cache_bytes % kItemBytes != 0) {
    return fail(ErrorCode::kInvalidArgument, "cache_bytes must be a multiple of 64 between " + str(kMinCacheBytes) +
                                                 " and " + str(kMaxCacheBytes) + ", got " + str(fill.cache_bytes));
  }
  if (fill.bytes < fill.cache_bytes || fill.bytes > kMaxMemoryBytes || fill.bytes % kItemBytes != 0) {
    return fail(ErrorCode::kInvalidArgument, "bytes must be a multiple of 64 between cache_bytes and " +
                                                 str(kMaxMemoryBytes) + ", got " + str(fill.bytes));
  }
  return {};
}

Result<void> check_query(const MemoryQuery& query, std::uint64_t items) noexcept {
  if (query.starts.empty() || query.starts.size() > kMaxWalks) {
    return fail(ErrorCode::kInvalidArgument,
                "starts must hold 1 to " + str(kMaxWalks) + " walks, got " + str(query.starts.size()));
  }
  if (query.steps == 0 || query.steps > kMaxSteps) {
    return fail(ErrorCode::kInvalidArgument, "steps must be between 1 and " + str(kMaxSteps) + ", got " + str(query.steps));
  }
  for (std::size_t k = 0; k < query.starts.size(); ++k) {
    if (query.starts[k] >= items) {
      return fail(ErrorCode::kInvalidArgument, "starts: walk " + str(k) + " starts at item " + str(query.starts[k]) +
                                                   ", beyond the dataset's " + str(items) + " items");
    }
  }
  return {};
}

Result<MemoryCache> MemoryCache::derive(const MemoryFill& fill) {
  if (auto ok = check_fill(fill); !ok) return std::unexpected(ok.error());
  std::vector<MemoryItem> entries(fill.cache_bytes / kItemBytes);
  const ChaChaBlock first = chacha20_block(fill.seed, 0, {0x4D, 0, 0});  // 'M'
  for (std::size_t w = 0; w < 16; ++w) {
    entries[0][w] = static_cast<std::uint32_t>(first[4 * w]) | static_cast<std::uint32_t>(first[4 * w + 1]) << 8 |
                    static_cast<std::uint32_t>(first[4 * w + 2]) << 16 |
                    static_cast<std::uint32_t>(first[4 * w + 3]) << 24;
  }
  for (std::size_t i = 1; i < entries.size(); ++i) {
    entries[i] = entries[i - 1];
    chacha20_core(entries[i]);
  }
  return MemoryCache(std::move(entries), fill.bytes / kItemBytes);
}

MemoryItem MemoryCache::item(std::uint64_t j) const noexcept {
  const std::uint64_t m = entries_.size();
  MemoryItem s = entries_[j % m];
  s[0] ^= lo32(j);
  s[1] ^= hi32(j);
  chacha20_core(s);
  for (std::uint32_t r = 0; r < kMixParents; ++r) {
    const MemoryItem& parent = entries_[fnv(lo32(j) ^ r, s[r % 16]) % m];
    for (std::size_t w = 0; w < 16; ++w) s[w] = fnv(s[w], parent[w]);
  }
  chacha20_core(s);
  return s;
}

Walk::Walk(std::uint64_t items, std::uint64_t start) noexcept : items_(items), start_(start), index_(start) {
  acc_[0] = lo32(start);
  acc_[1] = hi32(start);
  chacha20_core(acc_);
}

void Walk::step(const MemoryItem& item) noexcept {
  const std::uint32_t t = steps_++;
  for (std::size_t w = 0; w < 16; ++w) acc_[w] = fnv(acc_[w] ^ t, item[w]);
  index_ = ((static_cast<std::uint64_t>(acc_[t % 16]) << 32) | acc_[(t + 8) % 16]) % items_;
}

Hash32 Walk::digest() const noexcept {
  std::array<std::uint8_t, 64 + 8 + 4> data{};
  std::size_t at = 0;
  auto put = [&](std::uint64_t v, int bytes) {
    for (int b = 0; b < bytes; ++b) data[at++] = static_cast<std::uint8_t>(v >> (8 * b));
  };
  for (std::uint32_t w : acc_) put(w, 4);
  put(start_, 8);
  put(steps_, 4);
  return crypto::keccak256(ByteView(data));
}

Result<MemoryProver> MemoryProver::fill(const MemoryFill& fill, unsigned threads) {
  auto cache = MemoryCache::derive(fill);
  if (!cache) return std::unexpected(cache.error());
  const auto start = std::chrono::steady_clock::now();
  std::vector<MemoryItem> dataset;
  try {
    dataset.resize(cache->items());
  } catch (const std::bad_alloc&) {
    return fail(ErrorCode::kUnavailable, "cannot allocate " + str(fill.bytes) + " bytes for the memory check");
  } catch (const std::length_error&) {
    return fail(ErrorCode::kUnavailable, "cannot allocate " + str(fill.bytes) + " bytes for the memory check");
  }
  parallel_for(dataset.size(), thread_count(threads), [&](std::size_t begin, std::size_t end) {
    for (std::size_t j = begin; j < end; ++j) dataset[j] = cache->item(j);
  });
  return MemoryProver(std::move(dataset), std::chrono::steady_clock::now() - start);
}

Result<MemoryAnswer> MemoryProver::answer(const MemoryQuery& query, unsigned threads) const {
  if (auto ok = check_query(query, dataset_.size()); !ok) return std::unexpected(ok.error());
  MemoryAnswer answer;
  answer.digests.resize(query.starts.size());
  parallel_for(query.starts.size(), thread_count(threads), [&](std::size_t begin, std::size_t end) {
    for (std::size_t k = begin; k < end; ++k) {
      answer.digests[k] = walk_digest(dataset_.size(), query.starts[k], query.steps,
                                      [&](std::uint64_t j) -> const MemoryItem& { return dataset_[j]; });
    }
  });
  return answer;
}

MemoryQuery draw_memory_query(std::uint64_t items, std::size_t walks, std::uint32_t steps, ChaChaRng& rng) {
  MemoryQuery query;
  query.steps = steps;
  query.starts.reserve(walks);
  for (std::size_t k = 0; k < walks; ++k) query.starts.push_back(rng.below(items));
  return query;
}

Result<void> memory_verify(const MemoryCache& cache, const MemoryQuery& query, const MemoryAnswer& answer,
                           std::span<const std::size_t> sampled) {
  if (auto ok = check_query(query, cache.items()); !ok) return ok;
  if (answer.digests.size() != query.starts.size()) {
    return fail(ErrorCode::kInvalidArgument, "digests: " + str(answer.digests.size()) + " digests for " +
                                                 str(query.starts.size()) + " walks");
  }
  for (std::size_t k : sampled) {
    if (k >= query.starts.size()) {
      return fail(ErrorCode::kInvalidArgument, "sampled walk " + str(k) + " is not in the query");
    }
    const Hash32 expected = walk_digest(cache.items(), query.starts[k], query.steps,
                                        [&](std::uint64_t j) { return cache.item(j); });
    if (expected != answer.digests[k]) {
      return fail(ErrorCode::kInvalidArgument,
                  "digests: walk " + str(k) + " (start " + str(query.starts[k]) + ") has a wrong digest");
    }
  }
  return {};
}

}  // namespace kaisar::popw
