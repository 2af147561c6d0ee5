#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <span>
#include <vector>

#include "core/bytes.hpp"
#include "core/error.hpp"
#include "popw/chacha20.hpp"
#include "popw/matrix.hpp"

namespace kaisar::popw {

// The memory phase (docs/popw.md §6): the provider fills `bytes` of memory with dataset
// items derived from a seed, then answers data-dependent random walks over them. Each item
// costs kMixParents reads of a cache to compute but one read to look up, so a provider that
// keeps only part of the dataset answers wrong or slowly.

inline constexpr std::uint64_t kItemBytes = 64;
inline constexpr std::uint32_t kMixParents = 64;
inline constexpr std::uint64_t kMinCacheBytes = std::uint64_t{64} << 10;
inline constexpr std::uint64_t kMaxCacheBytes = std::uint64_t{1} << 30;
inline constexpr std::uint64_t kMaxMemoryBytes = std::uint64_t{256} << 30;
inline constexpr std::size_t kMaxWalks = 65536;
inline constexpr std::uint32_t kMaxSteps = std::uint32_t{1} << 20;

using MemoryItem = std::array<std::uint32_t, 16>;  // 64 bytes, words little-endian

struct MemoryFill {
  ChallengeSeed seed{};
  std::uint64_t bytes = 0;        // dataset size: multiple of 64, cache_bytes ≤ bytes ≤ kMaxMemoryBytes
  std::uint64_t cache_bytes = 0;  // multiple of 64 in [kMinCacheBytes, kMaxCacheBytes]

  friend bool operator==(const MemoryFill&, const MemoryFill&) = default;
};

struct MemoryQuery {
  std::vector<std::uint64_t> starts;  // 1..kMaxWalks item indices
  std::uint32_t steps = 0;            // 1..kMaxSteps

  friend bool operator==(const MemoryQuery&, const MemoryQuery&) = default;
};

struct MemoryAnswer {
  std::vector<Hash32> digests;  // one per start, in order

  friend bool operator==(const MemoryAnswer&, const MemoryAnswer&) = default;
};

Result<void> check_fill(const MemoryFill& fill) noexcept;
// The query's shape and every start < items.
Result<void> check_query(const MemoryQuery& query, std::uint64_t items) noexcept;

// The cache: bytes/64 entries from a sequential ChaCha20 chain over the seed. Enough to
// compute any dataset item; what a checker holds.
class MemoryCache {
 public:
  static Result<MemoryCache> derive(const MemoryFill& fill);

  std::uint64_t items() const noexcept { return items_; }
  // Dataset item j (j < items()): kMixParents data-dependent cache reads.
  MemoryItem item(std::uint64_t j) const noexcept;

 private:
  MemoryCache(std::vector<MemoryItem> entries, std::uint64_t items) : entries_(std::move(entries)), items_(items) {}

  std::vector<MemoryItem> entries_;
  std::uint64_t items_;
};

// One random walk: read item index(), fold it in with step(), repeat `steps` times, then
// digest(). The next index depends on the contents of the items read so far.
class Walk {
 public:
  Walk(std::uint64_t items, std::uint64_t start) noexcept;

  std::uint64_t index() const noexcept { return index_; }
  void step(const MemoryItem& item) noexcept;
  Hash32 digest() const noexcept;

 private:
  MemoryItem acc_{};
  std::uint64_t items_;
  std::uint64_t start_;
  std::uint64_t index_;
  std::uint32_t steps_ = 0;
};

// The digest of the walk from `start`; item_of(j) supplies dataset item j.
template <class ItemOf>
Hash32 walk_digest(std::uint64_t items, std::uint64_t start, std::uint32_t steps, ItemOf&& item_of) {
  Walk walk(items, start);
  for (std::uint32_t t = 0; t < steps; ++t) walk.step(item_of(walk.index()));
  return walk.digest();
}

// The provider's side: holds the whole dataset in memory.
class MemoryProver {
 public:
  // Fails with kUnavailable when the memory cannot be allocated. threads: 0 = all cores.
  static Result<MemoryProver> fill(const MemoryFill& fill, unsigned threads = 0);

  std::chrono::duration<double> fill_elapsed() const noexcept { return fill_elapsed_; }
  Result<MemoryAnswer> answer(const MemoryQuery& query, unsigned threads = 0) const;

 private:
  MemoryProver(std::vector<MemoryItem> dataset, std::chrono::duration<double> elapsed)
      : dataset_(std::move(dataset)), fill_elapsed_(elapsed) {}

  std::vector<MemoryItem> dataset_;
  std::chrono::duration<double> fill_elapsed_;
};

// The checker's query: `walks` starts uniform in [0, items).
MemoryQuery draw_memory_query(std::uint64_t items, std::size_t walks, std::uint32_t steps, ChaChaRng& rng);

// Recomputes the walks at positions `sampled` of the query from the cache alone and
// compares digests; also checks the answer's shape. The error names the first bad walk.
Result<void> memory_verify(const MemoryCache& cache, const MemoryQuery& query, const MemoryAnswer& answer,
                           std::span<const std::size_t> sampled);

}  // namespace kaisar::popw
