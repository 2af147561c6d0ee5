#include <gtest/gtest.h>

#include <boost/json.hpp>

#include <cmath>
#include <set>
#include <string>

#include "popw/audit.hpp"
#include "popw/chacha20.hpp"
#include "popw/deadline.hpp"
#include "popw/matrix.hpp"
#include "popw/memory.hpp"
#include "popw/message.hpp"

namespace kaisar::popw {
namespace {

namespace json = boost::json;

Hash32 seed_of(std::uint8_t tag) {
  Hash32 h{};
  for (std::size_t i = 0; i < h.size(); ++i) h[i] = static_cast<std::uint8_t>(tag * 31 + i * 7 + 1);
  return h;
}

// --- ChaCha20 and matrices -------------------------------------------------------------

TEST(ChaCha20, Rfc8439BlockFunctionVector) {
  // RFC 8439 §2.3.2: key 00..1f, nonce 00:00:00:09:00:00:00:4a:00:00:00:00, counter 1.
  Hash32 key{};
  for (std::size_t i = 0; i < key.size(); ++i) key[i] = static_cast<std::uint8_t>(i);
  const ChaChaBlock block = chacha20_block(key, 1, {0x09000000, 0x4a000000, 0});
  EXPECT_EQ(to_hex(block, false),
            "10f1e7e4d13b5915500fdd1fa32071c4c7d1f4c733c068030422aa9ac3d46c4e"
            "d2826446079faa0914c2d705d98b02a2b5129cd1de164eb9cbd083e8a2503c4e");
}

TEST(ChaCha20, KeystreamMatchesBlocks) {
  const Hash32 key = seed_of(3);
  Bytes stream(64 * 19 + 5);
  chacha20_keystream(key, {1, 2, 3}, 7, stream);
  for (std::uint32_t b = 0; b < 20; ++b) {
    const ChaChaBlock block = chacha20_block(key, 7 + b, {1, 2, 3});
    for (std::size_t i = 0; i < 64 && 64 * b + i < stream.size(); ++i) ASSERT_EQ(stream[64 * b + i], block[i]);
  }
}

TEST(Matrix, RowsAreKeystreamAndDeterministic) {
  const Hash32 seed = seed_of(1);
  std::vector<std::int8_t> row(128);
  matrix_row(seed, Matrix::kA, 5, row);
  const ChaChaBlock first = chacha20_block(seed, 0, {0x41, 5, 0});
  for (std::size_t i = 0; i < 64; ++i) EXPECT_EQ(static_cast<std::uint8_t>(row[i]), first[i]);
  const auto a = generate_matrix(seed, Matrix::kA, 128, 2);
  EXPECT_TRUE(std::equal(row.begin(), row.end(), a.begin() + 5 * 128));
  EXPECT_EQ(a, generate_matrix(seed, Matrix::kA, 128, 1));
  EXPECT_NE(a, generate_matrix(seed, Matrix::kB, 128, 1));
  EXPECT_NE(a, generate_matrix(seed_of(2), Matrix::kA, 128, 1));
}

TEST(Matrix, EntriesCoverTheFullInt8Range) {
  const auto b = generate_matrix(seed_of(4), Matrix::kB, 256);
  std::set<int> seen(b.begin(), b.end());
  EXPECT_EQ(seen.size(), 256U);
  EXPECT_EQ(*seen.begin(), -128);
  EXPECT_EQ(*seen.rbegin(), 127);
}

TEST(Matrix, SizeLimits) {
  EXPECT_TRUE(check_size(64));
  EXPECT_TRUE(check_size(16384));
  EXPECT_TRUE(check_size(192));
  for (std::uint32_t bad : {0U, 32U, 100U, 16448U}) {
    auto r = check_size(bad);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().code, ErrorCode::kInvalidArgument);
  }
}

TEST(Matrix, KernelNames) {
  for (Kernel k : {Kernel::kNaive, Kernel::kSimd, Kernel::kBlas}) EXPECT_EQ(*kernel_from_name(kernel_name(k)), k);
  EXPECT_FALSE(kernel_from_name("cuda"));
}

TEST(Matrix, AllKernelsAreBitIdentical) {
  // `make setup` installs OpenBLAS: the blas kernel must really be OpenBLAS here.
  ASSERT_TRUE(blas_available());
  std::uint8_t tag = 10;
  for (std::uint32_t n : {64U, 128U, 192U, 256U, 320U, 448U}) {
    const Hash32 seed = seed_of(tag++);
    const auto a = generate_matrix(seed, Matrix::kA, n);
    const auto b = generate_matrix(seed, Matrix::kB, n);
    const auto reference = multiply(Kernel::kNaive, a, b, n);
    EXPECT_EQ(multiply(Kernel::kSimd, a, b, n, 1), reference) << "n = " << n;
    EXPECT_EQ(multiply(Kernel::kSimd, a, b, n, 3), reference) << "n = " << n;
    EXPECT_EQ(multiply(Kernel::kBlas, a, b, n, 2), reference) << "n = " << n;
  }
}

TEST(Matrix, ExtremeValuesStayExact) {
  // All −128: every product is 2^14 and each entry n·2^14, the largest magnitude possible.
  constexpr std::uint32_t n = 320;
  const std::vector<std::int8_t> a(n * n, -128);
  const std::vector<std::int8_t> b(n * n, -128);
  for (Kernel k : {Kernel::kNaive, Kernel::kSimd, Kernel::kBlas}) {
    const auto c = multiply(k, a, b, n);
    EXPECT_TRUE(std::all_of(c.begin(), c.end(), [](std::int32_t v) { return v == std::int32_t{n} * 16384; }))
        << kernel_name(k);
  }
}

// --- Commitment and audit --------------------------------------------------------------

TEST(Audit, RowLeafEncoding) {
  const std::vector<std::int32_t> values = {1, -1};
  // uint32 BE row || SHA-256(01000000 ffffffff) (checked with sha256sum).
  EXPECT_EQ(to_hex(row_leaf(0x01020304, values), false),
            "01020304b15348c8f462384c01e83b6d499c6faf3f96808f5aa07c6bab4b65b36b4445d4");
}

struct Honest {
  Challenge challenge;
  Prover prover;
};

Honest honest(std::uint32_t n, std::uint8_t tag) {
  Challenge c{seed_of(tag), n};
  auto p = Prover::compute(c, best_kernel());
  EXPECT_TRUE(p);
  return {c, std::move(*p)};
}

TEST(Audit, HonestProviderPassesBothVerifiers) {
  auto [challenge, prover] = honest(192, 40);
  ChaChaRng rng(seed_of(41));
  const auto rows = sample_rows(challenge.n, 16, rng);
  EXPECT_EQ(std::set<std::uint32_t>(rows.begin(), rows.end()).size(), 16U);
  auto answer = prover.answer({rows});
  ASSERT_TRUE(answer);
  auto auditor = Auditor::prepare(challenge, rng);
  ASSERT_TRUE(auditor);
  EXPECT_TRUE(auditor->verify(prover.root(), rows, *answer));
  EXPECT_TRUE(verify_rows_exact(challenge, prover.root(), rows, *answer));
  auto from_os = Auditor::prepare(challenge);
  ASSERT_TRUE(from_os);
  EXPECT_TRUE(from_os->verify(prover.root(), rows, *answer));
}

TEST(Audit, ProverRootMatchesIndependentTree) {
  auto [challenge, prover] = honest(64, 42);
  const auto a = generate_matrix(challenge.seed, Matrix::kA, 64);
  const auto b = generate_matrix(challenge.seed, Matrix::kB, 64);
  const auto c = multiply(Kernel::kNaive, a, b, 64);
  std::vector<Hash32> leaves;
  for (std::uint32_t i = 0; i < 64; ++i) {
    leaves.push_back(crypto::merkle_leaf_hash(row_leaf(i, std::span(c).subspan(i * 64, 64))));
  }
  EXPECT_EQ(prover.root(), crypto::MerkleTree(leaves).root());
}

void expect_rejected(const Result<void>& r, std::string_view words) {
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, ErrorCode::kInvalidArgument);
  EXPECT_NE(r.error().message.find(words), std::string::npos) << r.error().message;
}

TEST(Audit, TamperedAnswersAreRejectedByBothVerifiers) {
  auto [challenge, prover] = honest(128, 43);
  ChaChaRng rng(seed_of(44));
  const std::vector<std::uint32_t> rows = {3, 77, 100};
  const AuditAnswer good = *prover.answer({rows});
  const Auditor auditor = *Auditor::prepare(challenge, rng);
  auto both = [&](const std::vector<std::uint32_t>& r, const AuditAnswer& a, const Hash32& root,
                  std::string_view words) {
    expect_rejected(auditor.verify(root, r, a), words);
    expect_rejected(verify_rows_exact(challenge, root, r, a), words);
  };

  AuditAnswer bad_proof = good;
  bad_proof.openings[1].proof[2][0] ^= 1;
  both(rows, bad_proof, prover.root(), "row 77: the Merkle proof");

  Hash32 other_root = prover.root();
  other_root[31] ^= 1;
  both(rows, good, other_root, "row 3: the Merkle proof");

  AuditAnswer wrong_index = good;
  wrong_index.openings[2] = *prover.open(101);
  both(rows, wrong_index, prover.root(), "opening 2 is for row 101, but row 100 was requested");

  AuditAnswer relabelled = good;
  relabelled.openings[0].row = 4;  // row 4's label on row 3's values and proof
  both({4, 77, 100}, relabelled, prover.root(), "row 4: the Merkle proof");

  AuditAnswer altered = good;
  altered.openings[1].values[5] += 1;
  both(rows, altered, prover.root(), "row 77: the Merkle proof");

  both({3, 77, 3}, *prover.answer({{3, 77, 3}}), prover.root(), "row 3 is requested twice");

  AuditAnswer duplicated = good;
  duplicated.openings[2] = duplicated.openings[1];
  both(rows, duplicated, prover.root(), "opening 2 is for row 77");

  AuditAnswer short_answer = good;
  short_answer.openings.pop_back();
  both(rows, short_answer, prover.root(), "2 openings for 3 requested rows");

  AuditAnswer short_row = good;
  short_row.openings[0].values.pop_back();
  both(rows, short_row, prover.root(), "row 3: 127 values, expected n = 128");

  both({3, 77, 128}, good, prover.root(), "row 128 is out of range");
  both({}, AuditAnswer{}, prover.root(), "no rows requested");
}

TEST(Audit, WrongValuesUnderAConsistentTreeFailTheFingerprint) {
  auto [challenge, prover] = honest(64, 45);
  std::vector<std::int32_t> product(prover.commitment().product().begin(), prover.commitment().product().end());
  product[9 * 64 + 13] += 1;  // one wrong entry in row 9, committed honestly
  const Commitment lying(64, product);
  const std::vector<std::uint32_t> rows = {8, 9};
  const AuditAnswer answer = *lying.answer({rows});
  ChaChaRng rng(seed_of(46));
  expect_rejected(Auditor::prepare(challenge, rng)->verify(lying.root(), rows, answer),
                  "row 9: the values are not this row of A·B");
  expect_rejected(verify_rows_exact(challenge, lying.root(), rows, answer), "row 9: the values are not this row");
  EXPECT_TRUE(Auditor::prepare(challenge, rng)->verify(lying.root(), {{8}}, *lying.answer({{8}})));
}

// A lazy provider writes garbage into each row with probability f and commits to it
// consistently. With s distinct rows audited, it passes with probability (1 − f)^s.
TEST(Audit, LazyProviderIsAcceptedAtTheRateSamplingPredicts) {
  constexpr std::uint32_t n = 64;
  constexpr std::uint32_t s = 8;
  constexpr int kTrials = 300;
  auto [challenge, prover] = honest(n, 47);
  const auto truth = prover.commitment().product();
  for (double f : {0.1, 0.3}) {
    ChaChaRng rng(seed_of(static_cast<std::uint8_t>(48 + f * 10)));
    int passed = 0;
    for (int trial = 0; trial < kTrials; ++trial) {
      std::vector<std::int32_t> product(truth.begin(), truth.end());
      for (std::uint32_t i = 0; i < n; ++i) {
        if (static_cast<double>(rng.below(1'000'000)) >= f * 1e6) continue;
        for (std::uint32_t k = 0; k < n; ++k) product[i * n + k] = static_cast<std::int32_t>(rng.next());
      }
      const Commitment lazy(n, std::move(product), 1);
      const auto rows = sample_rows(n, s, rng);  // drawn after the root exists
      const AuditAnswer answer = *lazy.answer({rows});
      const bool fingerprint = Auditor::prepare(challenge, rng)->verify(lazy.root(), rows, answer).has_value();
      const bool exact = verify_rows_exact(challenge, lazy.root(), rows, answer).has_value();
      ASSERT_EQ(fingerprint, exact) << "trial " << trial;
      passed += fingerprint ? 1 : 0;
    }
    const double p = std::pow(1 - f, s);
    const double sigma = std::sqrt(kTrials * p * (1 - p));
    EXPECT_NEAR(passed, kTrials * p, 4 * sigma) << "f = " << f;
  }
}

// --- Deadlines -------------------------------------------------------------------------

HardwareClass gpu_class(std::string_view name) {
  auto c = find_gpu_class(name);
  EXPECT_TRUE(c) << name;
  return c.value_or(HardwareClass{});
}

std::chrono::duration<double> honest_time(const HardwareClass& c, std::uint32_t n) {
  return std::chrono::duration<double>(2.0 * std::pow(double(n), 3) / c.int8_ops_per_s());
}

TEST(Deadline, NvmlNamesFindTheirClasses) {
  EXPECT_EQ(gpu_class("NVIDIA H100 80GB HBM3").name, "H100 SXM");
  EXPECT_EQ(gpu_class("NVIDIA H100 PCIe").name, "H100 PCIe");
  EXPECT_EQ(gpu_class("NVIDIA A100-SXM4-80GB").name, "A100 80GB");
  EXPECT_EQ(gpu_class("NVIDIA A100 80GB PCIe").name, "A100 80GB");
  EXPECT_EQ(gpu_class("NVIDIA A100-PCIE-40GB").name, "A100 40GB");
  EXPECT_EQ(gpu_class("NVIDIA L40S").name, "L40S");
  EXPECT_EQ(gpu_class("NVIDIA GeForce RTX 4090").name, "RTX 4090");
  EXPECT_EQ(gpu_class("NVIDIA GeForce RTX 3090").name, "RTX 3090");
  EXPECT_EQ(gpu_class("NVIDIA A10").name, "A10");
  EXPECT_EQ(gpu_class("Tesla T4").name, "T4");
  EXPECT_EQ(gpu_class("rtx_4090").name, "RTX 4090");
  EXPECT_EQ(gpu_class("h100 sxm").name, "H100 SXM");
  EXPECT_FALSE(find_gpu_class("NVIDIA GeForce RTX 4090 Laptop GPU"));
  EXPECT_FALSE(find_gpu_class("NVIDIA H100 NVL"));
  EXPECT_FALSE(find_gpu_class("NVIDIA A10G"));
  EXPECT_FALSE(find_gpu_class("NVIDIA GeForce GTX 1080"));
  EXPECT_EQ(gpu_classes().size(), 9U);
}

TEST(Deadline, HonestTimesPassAndSlowerClassesFail) {
  for (const HardwareClass& c : gpu_classes()) {
    const std::uint32_t n = choose_n(c, std::chrono::seconds(2));
    EXPECT_TRUE(compute_verdict(c, n, honest_time(c, n) * 1.1).pass) << c.name;  // 10% slow still passes
    EXPECT_FALSE(compute_verdict(c, n, honest_time(c, n) * 1.25).pass) << c.name;
  }
  const HardwareClass cpu = cpu_class(16);
  EXPECT_TRUE(compute_verdict(cpu, 1024, honest_time(cpu, 1024)).pass);
  // A 16-core CPU's honest time is nowhere near an RTX 4090.
  const auto v = compute_verdict(gpu_class("RTX 4090"), 1024, honest_time(cpu, 1024));
  EXPECT_FALSE(v.pass);
  EXPECT_LT(v.measured, v.expected / 100);
}

TEST(Deadline, NeighbouringModelsAreSeparated) {
  struct Pair {
    const char* real;
    const char* claimed;
  };
  // Compute phase: the real card's honest time against the claimed class.
  for (auto [real, claimed] : {Pair{"H100 PCIe", "H100 SXM"}, Pair{"RTX 3090", "RTX 4090"}, Pair{"T4", "A10"},
                               Pair{"A100 80GB", "H100 PCIe"}, Pair{"RTX 4090", "L40S"} /* see below */}) {
    const auto r = gpu_class(real);
    const auto c = gpu_class(claimed);
    const bool separated = r.int8_ops_per_s() < c.int8_ops_per_s() * (1 - kTolerance);
    EXPECT_EQ(compute_verdict(c, 8192, honest_time(r, 8192)).pass, !separated) << real << " as " << claimed;
    if (std::string(claimed) != "L40S") {
      EXPECT_TRUE(separated) << real << " as " << claimed;
    }
  }
  // Within 1/(1−ε) of each other by compute: told apart by the memory phase instead.
  for (auto [real, claimed] : {Pair{"A10", "RTX 3090"}, Pair{"A100 40GB", "A100 80GB"}}) {
    const auto r = gpu_class(real);
    const auto c = gpu_class(claimed);
    EXPECT_TRUE(compute_verdict(c, 8192, honest_time(r, 8192)).pass) << real << " as " << claimed;
    const std::uint64_t walks = 65536;
    const std::uint32_t steps = 4096;
    const auto honest = std::chrono::duration<double>(double(walks) * steps / r.lookups_per_s());
    EXPECT_TRUE(memory_verdict(r, walks, steps, honest).pass) << real;
    EXPECT_FALSE(memory_verdict(c, walks, steps, honest).pass) << real << " as " << claimed;
  }
}

TEST(Deadline, ChooseNHitsTheTarget) {
  const HardwareClass cpu = cpu_class(2);
  const std::uint32_t n = choose_n(cpu, std::chrono::seconds(1));
  EXPECT_EQ(n % kStepN, 0U);
  EXPECT_LE(honest_time(cpu, n).count(), 1.0);
  EXPECT_GT(honest_time(cpu, n + kStepN).count(), 1.0);
  EXPECT_EQ(choose_n(gpu_class("H100 SXM"), std::chrono::seconds(10)), kMaxN);
  EXPECT_EQ(choose_n(cpu, std::chrono::microseconds(1)), kMinN);
}

TEST(Deadline, WorkFasterThanTheClockCanTellPasses) {
  // 0 µs measured: at least as fast as any class, and the rate is a lower bound (work/1 µs).
  for (const auto& c : {cpu_class(1), gpu_class("H100 SXM")}) {
    const auto v = compute_verdict(c, kMaxN, std::chrono::seconds(0));
    EXPECT_TRUE(v.pass) << c.name;
    EXPECT_DOUBLE_EQ(v.measured, 2.0 * kMaxN * kMaxN * kMaxN / kClockTick);
    EXPECT_TRUE(memory_verdict(c, 4096, 64, std::chrono::seconds(0)).pass) << c.name;
  }
  EXPECT_FALSE(compute_verdict(cpu_class(1), 64, std::chrono::duration<double>(-1e-6)).pass);
}

TEST(Deadline, MemoryLatencyBoundsFewWalks) {
  const auto h100 = gpu_class("H100 SXM");
  // 16 walks of 10^5 dependent steps cannot finish faster than 10^5 latencies.
  const auto v = memory_verdict(h100, 16, 100000, std::chrono::duration<double>(0.1));
  EXPECT_TRUE(v.pass);
  EXPECT_NEAR(v.expected, 16 / h100.memory_latency_s, 1);
}

// --- Memory phase ----------------------------------------------------------------------

constexpr std::uint64_t kTestMemory = std::uint64_t{16} << 20;
constexpr std::uint64_t kTestCache = std::uint64_t{256} << 10;

MemoryFill test_fill(std::uint8_t tag) { return MemoryFill{seed_of(tag), kTestMemory, kTestCache}; }

TEST(Memory, HonestProverPasses) {
  const MemoryFill fill = test_fill(60);
  auto prover = MemoryProver::fill(fill);
  ASSERT_TRUE(prover);
  auto cache = MemoryCache::derive(fill);
  ASSERT_TRUE(cache);
  EXPECT_EQ(cache->items(), kTestMemory / 64);
  ChaChaRng rng(seed_of(61));
  const MemoryQuery query = draw_memory_query(cache->items(), 64, 64, rng);
  auto answer = prover->answer(query);
  ASSERT_TRUE(answer);
  const std::vector<std::size_t> sampled = {0, 9, 31, 63};
  EXPECT_TRUE(memory_verify(*cache, query, *answer, sampled));
  MemoryAnswer altered = *answer;
  altered.digests[9][0] ^= 1;
  expect_rejected(memory_verify(*cache, query, altered, sampled), "walk 9 (start ");
  // Another seed's cache expects other digests.
  expect_rejected(memory_verify(*MemoryCache::derive(test_fill(62)), query, *answer, sampled), "walk 0");
  MemoryAnswer truncated = *answer;
  truncated.digests.pop_back();
  expect_rejected(memory_verify(*cache, query, truncated, sampled), "63 digests for 64 walks");
}

TEST(Memory, ItemsDependOnSeedAndIndex) {
  const auto cache = *MemoryCache::derive(test_fill(63));
  const auto other = *MemoryCache::derive(test_fill(64));
  EXPECT_NE(cache.item(5), cache.item(6));
  EXPECT_NE(cache.item(5), other.item(5));
  EXPECT_EQ(cache.item(5), MemoryCache::derive(test_fill(63))->item(5));
}

TEST(Memory, ShortMemoryProverIsCaughtOrSlow) {
  const MemoryFill fill = test_fill(65);
  const MemoryCache cache = *MemoryCache::derive(fill);
  const std::uint64_t items = cache.items();
  // The cheater keeps the first half of the dataset; stored(j) stands for reading it.
  const std::uint64_t half = items / 2;
  auto stored = [&](std::uint64_t j) { return cache.item(j); };

  ChaChaRng rng(seed_of(66));
  constexpr std::size_t kWalks = 32;
  constexpr std::uint32_t kSteps = 64;
  const MemoryQuery query = draw_memory_query(items, kWalks, kSteps, rng);
  const auto sampled = std::vector<std::size_t>{0, 7, 19, 31};

  // Guessing the missing half (zeros) gives wrong digests.
  MemoryAnswer guessed;
  for (auto start : query.starts) {
    guessed.digests.push_back(walk_digest(items, start, kSteps, [&](std::uint64_t j) {
      return j < half ? stored(j) : MemoryItem{};
    }));
  }
  expect_rejected(memory_verify(cache, query, guessed, sampled), "wrong digest");

  // Recomputing the missing half is right, but each recomputed item costs kMixParents
  // cache reads where the honest prover makes one dataset read.
  std::uint64_t reads = 0;
  std::uint64_t recomputed = 0;
  MemoryAnswer recomputing;
  for (auto start : query.starts) {
    recomputing.digests.push_back(walk_digest(items, start, kSteps, [&](std::uint64_t j) {
      if (j < half) {
        ++reads;
        return stored(j);
      }
      ++recomputed;
      reads += kMixParents;
      return cache.item(j);
    }));
  }
  EXPECT_TRUE(memory_verify(cache, query, recomputing, sampled));
  const std::uint64_t honest_reads = kWalks * kSteps;
  EXPECT_GT(recomputed, honest_reads / 3);
  EXPECT_GT(reads, 16 * honest_reads);
}

TEST(Memory, QueryAndFillLimits) {
  expect_rejected(check_fill({seed_of(1), kTestMemory, 1000}), "cache_bytes");
  expect_rejected(check_fill({seed_of(1), kTestCache / 2, kTestCache}), "bytes");
  expect_rejected(check_fill({seed_of(1), kMaxMemoryBytes + 64, kTestCache}), "bytes");
  expect_rejected(check_query({{1, 2}, 0}, 100), "steps");
  expect_rejected(check_query({{1, 200}, 5}, 100), "walk 1 starts at item 200");
  expect_rejected(check_query({{}, 5}, 100), "starts");
}

// --- Messages --------------------------------------------------------------------------

template <class T, class Parse>
void round_trip(const T& value, Parse parse) {
  const std::string text = json::serialize(to_json(value));
  auto v = parse_message(text);
  ASSERT_TRUE(v) << text;
  auto back = parse(*v);
  ASSERT_TRUE(back) << back.error().message;
  EXPECT_EQ(*back, value);
}

TEST(Message, RoundTrips) {
  round_trip(Challenge{seed_of(70), 4096}, challenge_from_json);
  round_trip(Commit{seed_of(71), std::chrono::milliseconds(1234)}, commit_from_json);
  round_trip(AuditRequest{{5, 0, 63}}, audit_request_from_json);
  auto [challenge, prover] = honest(64, 72);
  round_trip(*prover.answer({{0, 63, 7}}), audit_answer_from_json);
  round_trip(test_fill(73), memory_fill_from_json);
  round_trip(MemoryQuery{{0, 4294967295ULL, 12}, 100}, memory_query_from_json);
  round_trip(MemoryAnswer{{seed_of(74), seed_of(75)}}, memory_answer_from_json);
}

TEST(Message, Base64) {
  EXPECT_EQ(base64_encode(as_bytes("")), "");
  EXPECT_EQ(base64_encode(as_bytes("f")), "Zg==");
  EXPECT_EQ(base64_encode(as_bytes("fo")), "Zm8=");
  EXPECT_EQ(base64_encode(as_bytes("foobar")), "Zm9vYmFy");
  EXPECT_EQ(as_string(*base64_decode("Zm8=")), "fo");
  EXPECT_FALSE(base64_decode("Zm9="));  // non-zero bits under the padding
  EXPECT_FALSE(base64_decode("Zm8"));
  EXPECT_FALSE(base64_decode("Zm=8"));
  EXPECT_FALSE(base64_decode("Z!8="));
  EXPECT_FALSE(base64_decode("Zg==Zg=="));
}

template <class Parse>
void rejects(Parse parse, std::string_view text, std::string_view field_name) {
  auto v = parse_message(text);
  ASSERT_TRUE(v) << text;
  auto r = parse(*v);
  ASSERT_FALSE(r) << text;
  EXPECT_EQ(r.error().code, ErrorCode::kInvalidArgument);
  EXPECT_NE(r.error().message.find(field_name), std::string::npos) << text << " → " << r.error().message;
}

const std::string kSeed = "\"0x" + std::string(64, 'a') + "\"";

TEST(Message, ChallengeAndCommitRejectBadInput) {
  rejects(challenge_from_json, "[]", "challenge");
  rejects(challenge_from_json, "{\"n\":64}", "challenge.seed is missing");
  rejects(challenge_from_json, "{\"seed\":" + kSeed + "}", "challenge.n is missing");
  rejects(challenge_from_json, "{\"seed\":\"0xabc\",\"n\":64}", "challenge.seed");
  rejects(challenge_from_json, "{\"seed\":\"" + std::string(64, 'a') + "\",\"n\":64}", "challenge.seed");
  rejects(challenge_from_json, "{\"seed\":\"0x" + std::string(64, 'g') + "\",\"n\":64}", "challenge.seed");
  rejects(challenge_from_json, "{\"seed\":" + kSeed + ",\"n\":100}", "challenge.n");
  rejects(challenge_from_json, "{\"seed\":" + kSeed + ",\"n\":32768}", "challenge.n");
  rejects(challenge_from_json, "{\"seed\":" + kSeed + ",\"n\":-64}", "challenge.n");
  rejects(challenge_from_json, "{\"seed\":" + kSeed + ",\"n\":64.0}", "challenge.n");
  rejects(challenge_from_json, "{\"seed\":" + kSeed + ",\"n\":\"64\"}", "challenge.n");
  rejects(commit_from_json, "{\"elapsed_us\":5}", "commit.root is missing");
  rejects(commit_from_json, "{\"root\":" + kSeed + "}", "commit.elapsed_us is missing");
  rejects(commit_from_json, "{\"root\":" + kSeed + ",\"elapsed_ms\":5}", "commit.elapsed_us is missing");
  rejects(commit_from_json, "{\"root\":" + kSeed + ",\"elapsed_us\":1e3}", "commit.elapsed_us");
  rejects(commit_from_json, "{\"root\":" + kSeed + ",\"elapsed_us\":86400000001}", "commit.elapsed_us");
  rejects(commit_from_json, "{\"root\":7,\"elapsed_us\":5}", "commit.root");
}

TEST(Message, AuditMessagesRejectBadInput) {
  rejects(audit_request_from_json, "{}", "audit.rows is missing");
  rejects(audit_request_from_json, "{\"rows\":[]}", "audit.rows");
  rejects(audit_request_from_json, "{\"rows\":5}", "audit.rows");
  rejects(audit_request_from_json, "{\"rows\":[1,2,1]}", "audit.rows: row 1 is requested twice");
  rejects(audit_request_from_json, "{\"rows\":[1,16384]}", "audit.rows[1]");
  rejects(audit_request_from_json, "{\"rows\":[1,null]}", "audit.rows[1]");
  std::string many = "{\"rows\":[0";
  for (int i = 1; i <= 1024; ++i) many += "," + std::to_string(i);
  rejects(audit_request_from_json, many + "]}", "audit.rows must hold 1 to 1024");

  const std::string values = "\"" + base64_encode(Bytes(256, 0)) + "\"";
  const std::string proof = "[" + kSeed + "]";
  auto opening = [](const std::string& fields) { return "{\"openings\":[{" + fields + "}]}"; };
  EXPECT_TRUE(audit_answer_from_json(*parse_message(opening("\"row\":1,\"values\":" + values + ",\"proof\":" + proof))));
  rejects(audit_answer_from_json, "{}", "openings.openings is missing");
  rejects(audit_answer_from_json, "{\"openings\":[5]}", "openings.openings[0]");
  rejects(audit_answer_from_json, opening("\"values\":" + values + ",\"proof\":" + proof), "openings.openings[0].row is missing");
  rejects(audit_answer_from_json, opening("\"row\":1,\"proof\":" + proof), "openings.openings[0].values is missing");
  rejects(audit_answer_from_json, opening("\"row\":1,\"values\":" + values), "openings.openings[0].proof is missing");
  rejects(audit_answer_from_json, opening("\"row\":1,\"values\":\"AAAA\",\"proof\":" + proof), "openings.openings[0].values");
  rejects(audit_answer_from_json, opening("\"row\":1,\"values\":\"AA!A\",\"proof\":" + proof), "openings.openings[0].values");
  rejects(audit_answer_from_json, opening("\"row\":1,\"values\":[1,2],\"proof\":" + proof), "openings.openings[0].values");
  const std::string huge = "\"" + base64_encode(Bytes(4 * 16384 + 256, 0)) + "\"";
  rejects(audit_answer_from_json, opening("\"row\":1,\"values\":" + huge + ",\"proof\":" + proof), "openings.openings[0].values");
  rejects(audit_answer_from_json, opening("\"row\":1,\"values\":" + values + ",\"proof\":[\"0x12\"]"), "openings.openings[0].proof[0]");
  std::string long_proof = "[" + kSeed;
  for (int i = 0; i < 32; ++i) long_proof += "," + kSeed;
  rejects(audit_answer_from_json, opening("\"row\":1,\"values\":" + values + ",\"proof\":" + long_proof + "]"), "openings.openings[0].proof");
  rejects(audit_answer_from_json, opening("\"row\":99999,\"values\":" + values + ",\"proof\":" + proof), "openings.openings[0].row");
}

TEST(Message, MemoryMessagesRejectBadInput) {
  rejects(memory_fill_from_json, "{\"bytes\":16777216,\"cache_bytes\":262144}", "memory_fill.seed is missing");
  rejects(memory_fill_from_json, "{\"seed\":" + kSeed + ",\"cache_bytes\":262144}", "memory_fill.bytes is missing");
  rejects(memory_fill_from_json, "{\"seed\":" + kSeed + ",\"bytes\":16777216}", "memory_fill.cache_bytes is missing");
  rejects(memory_fill_from_json, "{\"seed\":" + kSeed + ",\"bytes\":16777217,\"cache_bytes\":262144}", "memory_fill.bytes");
  rejects(memory_fill_from_json, "{\"seed\":" + kSeed + ",\"bytes\":274877907008,\"cache_bytes\":262144}", "memory_fill.bytes");
  rejects(memory_fill_from_json, "{\"seed\":" + kSeed + ",\"bytes\":16777216,\"cache_bytes\":64}", "memory_fill.cache_bytes");
  rejects(memory_query_from_json, "{\"steps\":5}", "memory_query.starts is missing");
  rejects(memory_query_from_json, "{\"starts\":[1]}", "memory_query.steps is missing");
  rejects(memory_query_from_json, "{\"starts\":[1],\"steps\":0}", "memory_query.steps");
  rejects(memory_query_from_json, "{\"starts\":[1],\"steps\":1048577}", "memory_query.steps");
  rejects(memory_query_from_json, "{\"starts\":[1,4294967296],\"steps\":5}", "memory_query.starts[1]");
  rejects(memory_query_from_json, "{\"starts\":[],\"steps\":5}", "memory_query.starts");
  rejects(memory_answer_from_json, "{}", "memory_answer.digests is missing");
  rejects(memory_answer_from_json, "{\"digests\":[\"0x00\"]}", "memory_answer.digests[0]");
  rejects(memory_answer_from_json, "{\"digests\":{}}", "memory_answer.digests");
}

TEST(Message, ParseRejectsBadJsonAndOversizedText) {
  auto bad = parse_message("{\"seed\":");
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().code, ErrorCode::kInvalidArgument);
  auto deep = parse_message(std::string(100, '[') + std::string(100, ']'));
  EXPECT_FALSE(deep);
  const std::string big(kMaxMessageBytes + 1, ' ');
  auto huge = parse_message(big);
  ASSERT_FALSE(huge);
  EXPECT_NE(huge.error().message.find("larger than"), std::string::npos);
}

}  // namespace
}  // namespace kaisar::popw
