// Checks as OneNode and checkers run them: the prover and checker sessions end to end, the
// evidence both judge, and the EIP-712 attestations that carry the verdicts.
#include <gtest/gtest.h>

#include <boost/json.hpp>

#include "core/hardware.hpp"
#include "crypto/random.hpp"
#include "popw/attestation.hpp"
#include "popw/evidence.hpp"
#include "popw/message.hpp"
#include "popw/session.hpp"

namespace kaisar::popw {
namespace {

namespace json = boost::json;
using namespace std::chrono_literals;

CheckParams small_check(std::string hardware_class = "cpu:2", std::uint32_t allowance_ms = 30000) {
  CheckParams p;
  p.hardware_class = std::move(hardware_class);
  p.n = 128;
  p.samples = 16;
  p.memory_bytes = 1 << 20;
  p.memory_walks = 64;
  p.memory_steps = 16;
  p.allowance_ms = allowance_ms;
  return p;
}

// Runs one whole check between a checker session and a prover session; `tamper` may change
// each of the provider's answers on the way.
CheckerSession run_check(const CheckParams& params,
                         const std::function<void(json::object&)>& tamper = [](json::object&) {}) {
  CheckerSession checker(params);
  ProverSession prover;
  json::object message = checker.start();
  for (int i = 0; i < 8; ++i) {
    json::object answer = prover.handle(message);
    tamper(answer);
    auto next = checker.on_answer(answer);
    if (!next || !*next) break;
    message = std::move(**next);
  }
  return checker;
}

TEST(Session, AnHonestProviderPassesAndEveryJudgeAgrees) {
  auto checker = run_check(small_check());
  ASSERT_TRUE(checker.finished());
  auto verdict = checker.verdict();
  ASSERT_TRUE(verdict) << verdict.error().message;
  EXPECT_TRUE(verdict->passed) << verdict->reason;
  EXPECT_TRUE(verdict->audit_ok && verdict->deadline_ok && verdict->memory_ok);
  EXPECT_GT(verdict->ops_per_second, 0U);
  // The evidence survives JSON (as OneNode stores it and a second checker gets it) and
  // the exact recomputation agrees with the fingerprints.
  auto copy = Evidence::from_json(json::parse(json::serialize(checker.evidence().to_json())));
  ASSERT_TRUE(copy) << copy.error().message;
  EXPECT_EQ(copy->root_hex(), checker.evidence().root_hex());
  auto exact = judge(*copy, /*exact=*/true);
  ASSERT_TRUE(exact);
  EXPECT_TRUE(exact->passed) << exact->reason;
}

// A prover faster than the clock can tell: every step seen at the same microsecond. The
// honest answer passes (it used to fail when the work took under one tick of the clock).
TEST(Session, WorkFasterThanTheClockCanTellPasses) {
  const CheckParams params = small_check("cpu:1", /*allowance_ms=*/0);
  Evidence evidence(params);
  ProverSession prover;
  CheckerSession checker(params);
  json::object message = checker.start();
  for (int i = 0; i < 8 && !message.empty(); ++i) {
    ASSERT_TRUE(evidence.record(true, message, 1000us));
    json::object answer = prover.handle(message);
    ASSERT_TRUE(evidence.record(false, answer, 1000us));
    auto next = checker.on_answer(answer);
    ASSERT_TRUE(next);
    message = *next ? std::move(**next) : json::object{};
  }
  ASSERT_TRUE(evidence.complete());
  EXPECT_EQ(evidence.commit_seconds(), 0.0);
  auto verdict = judge(evidence);
  ASSERT_TRUE(verdict) << verdict.error().message;
  EXPECT_TRUE(verdict->passed) << verdict->reason;
  EXPECT_EQ(verdict->ops_per_second, static_cast<std::uint64_t>(2.0 * 128 * 128 * 128 / kClockTick));
}

TEST(Session, AlteredRowsAndWrongWalksFail) {
  // One value of one opened row changed (its Merkle proof then fails too).
  auto checker = run_check(small_check(), [](json::object& answer) {
    if (answer.at("type").as_string() != "openings") return;
    auto parsed = audit_answer_from_json(answer);
    ASSERT_TRUE(parsed);
    parsed->openings[3].values[5] += 1;
    answer = to_json(*parsed);
  });
  auto verdict = checker.verdict();
  ASSERT_TRUE(verdict);
  EXPECT_FALSE(verdict->passed);
  EXPECT_FALSE(verdict->audit_ok);
  EXPECT_NE(verdict->reason.find("audit"), std::string::npos) << verdict->reason;

  // Memory answers made up: the recomputed walks differ.
  auto guessed = run_check(small_check(), [](json::object& answer) {
    if (answer.at("type").as_string() != "memory_answer") return;
    auto parsed = memory_answer_from_json(answer);
    ASSERT_TRUE(parsed);
    for (auto& d : parsed->digests) d = crypto::random_hash();
    answer = to_json(*parsed);
  });
  auto v2 = guessed.verdict();
  ASSERT_TRUE(v2);
  EXPECT_TRUE(v2->audit_ok);
  EXPECT_FALSE(v2->memory_ok);
  EXPECT_FALSE(v2->passed);
}

TEST(Session, ACpuClaimingAnH100MissesTheDeadline) {
  auto checker = run_check(small_check("H100 SXM", /*allowance_ms=*/0));
  auto verdict = checker.verdict();
  ASSERT_TRUE(verdict) << verdict.error().message;
  EXPECT_TRUE(verdict->audit_ok);  // the work is right, only far too slow
  EXPECT_FALSE(verdict->deadline_ok);
  EXPECT_FALSE(verdict->passed);
  EXPECT_NE(verdict->reason.find("H100"), std::string::npos) << verdict->reason;
}

TEST(Session, AProviderThatRefusesFails) {
  auto checker = run_check(small_check(), [](json::object& answer) {
    if (answer.at("type").as_string() == "commit") answer = json::object{{"type", "error"}, {"message", "busy"}};
  });
  EXPECT_TRUE(checker.finished());
  EXPECT_TRUE(checker.evidence().provider_refused());
  auto verdict = checker.verdict();
  ASSERT_TRUE(verdict);
  EXPECT_FALSE(verdict->passed);
  EXPECT_NE(verdict->reason.find("busy"), std::string::npos);
}

TEST(Evidence, StepsComeInOrderFromTheRightSide) {
  Evidence e(small_check());
  const json::object challenge{{"type", "challenge"}, {"seed", to_hex(crypto::random_hash())}, {"n", 128}};
  // The provider cannot speak first; nor may the checker send a commit.
  EXPECT_EQ(e.record(false, json::object{{"type", "commit"}, {"root", to_hex(Hash32{})}, {"elapsed_us", 1}}, 0us).error().code,
            ErrorCode::kConflict);
  EXPECT_EQ(e.record(true, json::object{{"type", "audit"}, {"rows", json::array{1}}}, 0us).error().code, ErrorCode::kConflict);
  // Another size than the check's is refused.
  json::object wrong_n = challenge;
  wrong_n["n"] = 256;
  EXPECT_EQ(e.record(true, wrong_n, 0us).error().code, ErrorCode::kInvalidArgument);
  ASSERT_TRUE(e.record(true, challenge, 10us));
  EXPECT_EQ(e.next_step(), "commit");
  const json::object commit{{"type", "commit"}, {"root", to_hex(Hash32{})}, {"elapsed_us", 1}};
  // A step timed before the one it answers is refused (a negative duration).
  EXPECT_EQ(e.record(false, commit, 9us).error().code, ErrorCode::kInvalidArgument);
  ASSERT_TRUE(e.record(false, commit, 15us));
  // Audits must sample exactly `samples` distinct rows below n.
  json::array dup;
  for (int i = 0; i < 16; ++i) dup.push_back(i == 15 ? 0 : i);
  EXPECT_EQ(e.record(true, json::object{{"type", "audit"}, {"rows", dup}}, 16us).error().code, ErrorCode::kInvalidArgument);
  json::array few{1, 2, 3};
  EXPECT_EQ(e.record(true, json::object{{"type", "audit"}, {"rows", few}}, 16us).error().code, ErrorCode::kInvalidArgument);
  EXPECT_EQ(e.seed_hex(), challenge.at("seed").as_string());
  EXPECT_FALSE(e.complete());
  // Stored evidence is replayed through the same checks.
  json::object stored = e.to_json();
  stored["steps"].as_array()[0].as_object()["message"].as_object()["n"] = 64;
  EXPECT_FALSE(Evidence::from_json(stored));
  EXPECT_FALSE(Evidence::from_json(json::parse(R"({"params":{"class":"cpu:2"},"steps":[]})")));
  EXPECT_FALSE(Evidence::from_json(json::parse(R"([1,2])")));
}

TEST(CheckParams, PlannedFromTheClaimedHardware) {
  Hardware cpu_only;
  cpu_only.cpu_cores = 8;
  PlanOptions options;
  options.target_seconds = 1;
  auto p = plan_check(cpu_only, options);
  EXPECT_EQ(p.hardware_class, "cpu:8");
  EXPECT_EQ(p.n % 64, 0U);
  EXPECT_EQ(p.memory_bytes, 256ULL << 20);
  Hardware gpu = cpu_only;
  gpu.gpus.push_back(Gpu{});
  gpu.gpus.back().name = "NVIDIA GeForce RTX 4090";
  gpu.gpus.back().vram_bytes = 24ULL << 30;
  auto g = plan_check(gpu, options);
  EXPECT_EQ(hardware_class_of(g.hardware_class).value().name, g.hardware_class);
  EXPECT_NE(g.hardware_class.find("4090"), std::string::npos);
  EXPECT_EQ(g.memory_bytes, (24ULL << 30) / 10 * 9 / 64 * 64);
  EXPECT_GT(g.n, p.n);  // a GPU gets more work for the same target time
  auto round = check_params_from_json(to_json(g));
  ASSERT_TRUE(round);
  EXPECT_EQ(*round, g);
  for (const char* bad : {R"({"class":"cpu:0","n":128,"samples":1,"memory_bytes":0,"memory_walks":0,"memory_steps":0,"allowance_ms":0})",
                          R"({"class":"TPU","n":128,"samples":1,"memory_bytes":0,"memory_walks":0,"memory_steps":0,"allowance_ms":0})",
                          R"({"class":"cpu:2","n":100,"samples":1,"memory_bytes":0,"memory_walks":0,"memory_steps":0,"allowance_ms":0})",
                          R"({"class":"cpu:2","n":128,"samples":0,"memory_bytes":0,"memory_walks":0,"memory_steps":0,"allowance_ms":0})",
                          R"({"class":"cpu:2","n":128,"samples":1,"memory_bytes":100,"memory_walks":1,"memory_steps":1,"allowance_ms":0})"}) {
    EXPECT_FALSE(check_params_from_json(json::parse(bad))) << bad;
  }
}

// --- attestations ---------------------------------------------------------------------------

Attestation sample_attestation(const crypto::PrivateKey& checker) {
  Attestation a;
  a.provider = crypto::PrivateKey::generate().address();
  a.checker = checker.address();
  a.epoch = 7;
  a.check_id = crypto::random_hash();
  a.seed = crypto::random_hash();
  a.root = crypto::random_hash();
  a.ops_per_second = 123456789012ULL;
  a.memory_bytes = 1 << 20;
  a.memory_passed = true;
  a.passed = true;
  return a;
}

TEST(Attestation, SignedByItsCheckerAndNothingElse) {
  const auto checker = crypto::PrivateKey::generate();
  const AttestationDomain domain{31337, crypto::PrivateKey::generate().address()};
  const Attestation a = sample_attestation(checker);
  auto sig = sign_attestation(checker, a, domain);
  ASSERT_TRUE(sig);
  EXPECT_TRUE(verify_attestation(a, *sig, domain));
  // Any altered field, another chain or contract: the signature no longer fits.
  Attestation altered = a;
  altered.passed = false;
  EXPECT_EQ(verify_attestation(altered, *sig, domain).error().code, ErrorCode::kUnauthenticated);
  altered = a;
  altered.root[0] ^= 1;
  EXPECT_FALSE(verify_attestation(altered, *sig, domain));
  EXPECT_FALSE(verify_attestation(a, *sig, AttestationDomain{1, domain.verifying_contract}));
  // Signed by someone who is not the named checker.
  const auto forger = crypto::PrivateKey::generate();
  EXPECT_FALSE(sign_attestation(forger, a, domain));  // refuses to sign in another's name
  auto digest = attestation_digest(a, domain);
  ASSERT_TRUE(digest);
  EXPECT_FALSE(verify_attestation(a, forger.sign_digest(*digest), domain));
}

TEST(Attestation, JsonIsStrict) {
  const auto checker = crypto::PrivateKey::generate();
  const Attestation a = sample_attestation(checker);
  auto back = attestation_from_json(to_json(a));
  ASSERT_TRUE(back);
  EXPECT_EQ(*back, a);
  json::object extra = to_json(a);
  extra["more"] = 1;
  EXPECT_FALSE(attestation_from_json(extra));
  for (const char* field : {"provider", "checkId", "opsPerSecond", "passed"}) {
    json::object missing = to_json(a);
    missing.erase(field);
    missing["x"] = 1;
    auto r = attestation_from_json(missing);
    ASSERT_FALSE(r);
    EXPECT_NE(r.error().message.find(field), std::string::npos) << r.error().message;
  }
  json::object bad = to_json(a);
  bad["epoch"] = -1;
  EXPECT_FALSE(attestation_from_json(bad));
  bad = to_json(a);
  bad["seed"] = "0x1234";
  EXPECT_FALSE(attestation_from_json(bad));
}

}  // namespace
}  // namespace kaisar::popw
