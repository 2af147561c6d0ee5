#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>

#include "core/protocol.hpp"
#include "process.hpp"
#include "crypto/eip191.hpp"
#include "provider/identity.hpp"
#include "provider/inventory.hpp"
#include "store/files.hpp"

namespace kaisar::provider {
namespace {

namespace fs = std::filesystem;

fs::path temp_dir(const std::string& name) {
  auto dir = fs::temp_directory_path() / ("kaisar-provider-" + std::to_string(::getpid()) + "-" + name);
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}

std::string fake_nvml() {
  return testing::binary_dir() + "/tests/fakes/libfake_nvml.so";
}

TEST(Inventory, DetectsThisMachine) {
  auto dir = temp_dir("inventory");
  Hardware h = detect_hardware(dir.string());
  EXPECT_FALSE(h.cpu_model.empty());
  EXPECT_GT(h.cpu_cores, 0u);
  EXPECT_GT(h.ram_bytes, 64ull << 20);
  EXPECT_GT(h.disk_bytes, 0u);
  EXPECT_LE(h.disk_free_bytes, h.disk_bytes);
  // The JSON an agent sends passes OneNode's validation unchanged.
  auto back = Hardware::from_json(h.to_json());
  ASSERT_TRUE(back) << back.error().message;
  EXPECT_EQ(back->cpu_cores, h.cpu_cores);
  fs::remove_all(dir);
}

TEST(Inventory, NoNvmlMeansCpuOnly) {
  std::string note;
  auto gpus = detect_nvidia_gpus(&note, "/nonexistent/libnvidia-ml.so.1");
  EXPECT_TRUE(gpus.empty());
  EXPECT_NE(note.find("not found"), std::string::npos) << note;
}

TEST(Inventory, ReadsGpusThroughNvml) {
  ::unsetenv("FAKE_NVML_FAIL");
  std::string note;
  auto gpus = detect_nvidia_gpus(&note, fake_nvml().c_str());
  ASSERT_EQ(gpus.size(), 2u) << note;
  EXPECT_EQ(gpus[0].name, "NVIDIA H100 80GB HBM3");
  EXPECT_EQ(gpus[0].vram_bytes, 85520809984ull);
  EXPECT_EQ(gpus[0].uuid, "GPU-00000000-0000-0000-0000-000000000000");
  EXPECT_EQ(gpus[0].driver, "550.54.15");
  EXPECT_EQ(gpus[1].name, "NVIDIA GeForce RTX 4090");
}

TEST(Inventory, NvmlInitFailureIsReported) {
  ::setenv("FAKE_NVML_FAIL", "1", 1);
  std::string note;
  auto gpus = detect_nvidia_gpus(&note, fake_nvml().c_str());
  ::unsetenv("FAKE_NVML_FAIL");
  EXPECT_TRUE(gpus.empty());
  EXPECT_NE(note.find("nvmlInit failed"), std::string::npos) << note;
}

TEST(Identity, InitThenLoad) {
  auto dir = temp_dir("identity");
  auto owner = crypto::PrivateKey::generate();
  auto init = init_identity(dir.string(), owner, "pw", true, crypto::kLightScrypt);
  ASSERT_TRUE(init) << init.error().message;
  EXPECT_EQ(init->owner, owner.address());
  EXPECT_EQ(fs::status(dir / "node.key").permissions() & fs::perms::all, fs::perms::owner_read | fs::perms::owner_write);
  EXPECT_EQ(fs::status(dir / "owner.json").permissions() & fs::perms::all, fs::perms::owner_read | fs::perms::owner_write);

  auto id = load_identity(dir.string());
  ASSERT_TRUE(id) << id.error().message;
  EXPECT_EQ(id->node_key.address(), init->node);
  EXPECT_EQ(id->owner, owner.address());
  // The binding is the owner's signature over the documented text.
  auto signer = crypto::recover_personal_signer(
      protocol::binding_message(init->node.to_checksum(), owner.address().to_checksum(), id->binding_issued_at),
      id->binding_signature);
  ASSERT_TRUE(signer);
  EXPECT_EQ(*signer, owner.address());

  // Again with the same owner keeps the node key; another owner is refused.
  auto again = init_identity(dir.string(), owner, "pw", false, crypto::kLightScrypt);
  ASSERT_TRUE(again);
  EXPECT_EQ(again->node, init->node);
  auto other = init_identity(dir.string(), crypto::PrivateKey::generate(), "pw", false, crypto::kLightScrypt);
  ASSERT_FALSE(other);
  EXPECT_EQ(other.error().code, ErrorCode::kConflict);
  fs::remove_all(dir);
}

TEST(Identity, MissingOrDamagedFiles) {
  auto dir = temp_dir("damaged");
  auto missing = load_identity(dir.string());
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().code, ErrorCode::kNotFound);
  EXPECT_NE(missing.error().message.find("kaisar provider init"), std::string::npos);

  ASSERT_TRUE(init_identity(dir.string(), crypto::PrivateKey::generate(), "pw", true, crypto::kLightScrypt));
  ASSERT_TRUE(store::write_file_atomic((dir / "node.key").string(), "not a key\n"));
  EXPECT_EQ(load_identity(dir.string()).error().code, ErrorCode::kInvalidArgument);

  // A binding for another node key.
  ASSERT_TRUE(store::write_file_atomic((dir / "node.key").string(), to_hex(crypto::PrivateKey::generate().bytes()) + "\n"));
  auto wrong = load_identity(dir.string());
  ASSERT_FALSE(wrong);
  EXPECT_NE(wrong.error().message.find("another node key"), std::string::npos);

  ASSERT_TRUE(store::write_file_atomic((dir / "binding.json").string(), "{broken"));
  EXPECT_FALSE(load_identity(dir.string()));
  fs::remove_all(dir);
}

}  // namespace
}  // namespace kaisar::provider
