#include <gtest/gtest.h>

#include <boost/json.hpp>

#include <condition_variable>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <sstream>

#include "core/protocol.hpp"
#include "process.hpp"
#include "crypto/eip191.hpp"
#include "podman.hpp"
#include "provider/deployer.hpp"
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

TEST(Inventory, GpusAreGivenWholeAndOnlyOnce) {
  const std::vector<Gpu> all = {Gpu{"NVIDIA H100 80GB HBM3", 80ULL << 30, "GPU-a", "550"},
                                Gpu{"NVIDIA GeForce RTX 4090", 24ULL << 30, "GPU-b", "550"},
                                Gpu{"NVIDIA GeForce RTX 4090", 24ULL << 30, "GPU-c", "550"}};
  EXPECT_EQ(pick_gpus(all, {}, 2), (std::vector<std::string>{"GPU-a", "GPU-b"}));
  // Of a model: its GPUs only.
  EXPECT_EQ(pick_gpus(all, {}, 2, "RTX_4090"), (std::vector<std::string>{"GPU-b", "GPU-c"}));
  EXPECT_EQ(pick_gpus(all, {}, 1, "h100"), std::vector<std::string>{"GPU-a"});
  EXPECT_FALSE(pick_gpus(all, {}, 2, "H100"));
  EXPECT_FALSE(pick_gpus(all, {"GPU-b"}, 2, "RTX 4090"));
  EXPECT_FALSE(pick_gpus(all, {}, 1, "A100"));
  EXPECT_FALSE(pick_gpus(all, {}, 1, "4090 RTX"));
  EXPECT_EQ(pick_gpus(all, {"GPU-a"}, 2), (std::vector<std::string>{"GPU-b", "GPU-c"}));
  EXPECT_EQ(pick_gpus(all, {"GPU-b"}, 0), std::vector<std::string>{});
  EXPECT_FALSE(pick_gpus(all, {"GPU-a", "GPU-c"}, 2));
  EXPECT_FALSE(pick_gpus(all, {}, 4));
  EXPECT_FALSE(pick_gpus({}, {}, 1));
}

TEST(Inventory, SamplesGpuUtilisationByUuid) {
  ::unsetenv("FAKE_NVML_FAIL");
  GpuSampler sampler(fake_nvml());
  ASSERT_TRUE(sampler.available());
  auto first = sampler.sample("GPU-00000000-0000-0000-0000-000000000000");
  ASSERT_TRUE(first);
  EXPECT_EQ(first->utilization_percent, 37u);
  EXPECT_EQ(first->memory_used_bytes, 1ull << 30);
  auto second = sampler.sample("GPU-11111111-1111-1111-1111-111111111111");
  ASSERT_TRUE(second);
  EXPECT_EQ(second->utilization_percent, 90u);
  EXPECT_FALSE(sampler.sample("GPU-not-here"));

  GpuSampler none("/nonexistent/libnvidia-ml.so.1");
  EXPECT_FALSE(none.available());
  EXPECT_FALSE(none.sample("GPU-00000000-0000-0000-0000-000000000000"));
  ::setenv("FAKE_NVML_FAIL", "1", 1);
  GpuSampler failing(fake_nvml());
  ::unsetenv("FAKE_NVML_FAIL");
  EXPECT_FALSE(failing.available());
}

// A Deployer against a private Podman service, on a machine with the two stand-in GPUs.
TEST(Deployer, GivesEachLeaseItsOwnGpusAndReportsTheirUse) {
  ::unsetenv("FAKE_NVML_FAIL");
  ::setenv("KAISAR_NVML_LIBRARY", fake_nvml().c_str(), 1);
  const std::string dir = testing::make_temp_dir("deployer-gpus");
  struct RemovedLast {  // destroyed after the Podman service that uses the directory
    std::string path;
    ~RemovedLast() {
      std::error_code ec;
      fs::remove_all(path, ec);
    }
  } removed_last{dir};
  testing::PodmanService podman(dir + "/engine");
  ASSERT_TRUE(podman.ok()) << podman.output();
  runtime::DockerClient engine(podman.socket());
  {
    std::ifstream in(testing::static_httpd_rootfs(dir), std::ios::binary);
    std::stringstream bytes;
    bytes << in.rdbuf();
    const std::string tar = bytes.str();
    ASSERT_TRUE(engine.import_rootfs(as_bytes(tar), "localhost/kaisar/httpd", "test"));
  }
  const std::string first = "GPU-00000000-0000-0000-0000-000000000000";
  const std::string second = "GPU-11111111-1111-1111-1111-111111111111";

  // A lease container that already holds the first GPU (its label says so; no device is
  // attached: this machine has none).
  runtime::ContainerSpec held;
  held.image = "localhost/kaisar/httpd:test";
  held.command = {"/httpd"};
  held.labels = {{"kaisar.lease", "lease-holding"}, {"kaisar.gpus", first}};
  auto id = engine.create(held);
  ASSERT_TRUE(id) << id.error().message;
  ASSERT_TRUE(engine.start(*id));

  std::mutex mutex;
  std::condition_variable cv;
  std::vector<boost::json::object> reports;
  std::string logged;
  LeasePolicy policy;
  policy.local_images = {"localhost/kaisar/httpd:test"};
  policy.log = [&](const std::string& line) {
    std::lock_guard lock(mutex);
    logged += line + "\n";
  };
  Deployer deployer(podman.socket(), "", [&](const boost::json::object& m) {
    std::lock_guard lock(mutex);
    reports.push_back(m);
    cv.notify_all();
  }, {Gpu{"NVIDIA H100 80GB HBM3", 80ULL << 30, first, "550"}, Gpu{"NVIDIA GeForce RTX 4090", 24ULL << 30, second, "550"}},
     policy);
  auto wait_for = [&](const std::string& type, const std::string& lease) {
    std::unique_lock lock(mutex);
    std::optional<boost::json::object> found;
    cv.wait_for(lock, std::chrono::seconds{60}, [&] {
      for (const auto& r : reports) {
        // Progress (state "deploying") comes before the outcome: wait for the outcome.
        if (r.at("type").as_string() == type && r.at("lease_id").as_string() == lease &&
            !(r.contains("state") && r.at("state").as_string() == "deploying")) {
          found = r;
        }
      }
      return found.has_value();
    });
    return found;
  };

  // Usage: the held GPU's utilisation and memory, read through NVML by uuid.
  deployer.report_usage();
  auto usage = wait_for("lease_usage", "lease-holding");
  ASSERT_TRUE(usage);
  const auto& gpus = usage->at("gpus").as_array();
  ASSERT_EQ(gpus.size(), 1u) << boost::json::serialize(*usage);
  EXPECT_EQ(gpus[0].at("uuid").as_string(), first);
  EXPECT_EQ(gpus[0].at("utilization_percent").to_number<int>(), 37);
  EXPECT_EQ(gpus[0].at("memory_used_bytes").to_number<std::uint64_t>(), 1ull << 30);

  // Two GPUs while one is held: refused with the reason, nothing created.
  deployer.deploy(boost::json::object{{"id", "lease-two"}, {"image", "localhost/kaisar/httpd:test"}, {"gpus", 2},
                                      {"cpus", 1}, {"memory_gb", 1}, {"command", boost::json::array{"/httpd"}}});
  auto two = wait_for("lease_status", "lease-two");
  ASSERT_TRUE(two);
  EXPECT_EQ(two->at("state").as_string(), "failed");
  EXPECT_NE(two->at("reason").as_string().find("asks for 2 GPUs; this machine has 2, 1 in use"), std::string::npos)
      << two->at("reason").as_string();
  EXPECT_TRUE(engine.list("kaisar.lease", "lease-two").value().empty());

  // The H100 by name while the held one is it: refused.
  deployer.deploy(boost::json::object{{"id", "lease-h100"}, {"image", "localhost/kaisar/httpd:test"}, {"gpus", 1},
                                      {"gpu_model", "H100"}, {"cpus", 1}, {"memory_gb", 1}});
  auto h100 = wait_for("lease_status", "lease-h100");
  ASSERT_TRUE(h100);
  EXPECT_NE(h100->at("reason").as_string().find("of model 'H100'"), std::string::npos) << h100->at("reason").as_string();

  // One GPU: the free one, asked of Podman as a CDI device by its uuid (Podman then says it
  // cannot resolve it when starting, there being no NVIDIA CDI specification here). The
  // renter hears that the engine refused; the engine's words are logged for the operator.
  deployer.deploy(boost::json::object{{"id", "lease-one"}, {"image", "localhost/kaisar/httpd:test"}, {"gpus", 1},
                                      {"cpus", 1}, {"memory_gb", 1}, {"command", boost::json::array{"/httpd"}}});
  auto one = wait_for("lease_status", "lease-one");
  ASSERT_TRUE(one);
  EXPECT_EQ(one->at("state").as_string(), "failed");
  EXPECT_TRUE(one->at("reason").as_string().starts_with("the container engine could not")) << one->at("reason").as_string();
  {
    std::lock_guard lock(mutex);
    EXPECT_NE(logged.find("nvidia.com/gpu=" + second), std::string::npos) << logged;
  }
  EXPECT_TRUE(engine.networks("kaisar.lease", "lease-one").value().empty());
  EXPECT_TRUE(engine.list("kaisar.lease", "lease-one").value().empty());
  ::unsetenv("KAISAR_NVML_LIBRARY");
  (void)engine.remove(*id);
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
