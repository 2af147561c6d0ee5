#include "podman.hpp"

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>

#include <csignal>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

namespace kaisar::testing {

namespace fs = std::filesystem;

namespace {

// The socket file appears before the service accepts on it.
bool accepts(const std::string& path) {
  const int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
  if (fd < 0) return false;
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.size() >= sizeof addr.sun_path) {
    ::close(fd);
    return false;
  }
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  const bool ok = ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
  ::close(fd);
  return ok;
}

void write(const std::string& path, const std::string& text) {
  std::ofstream f(path);
  f << text;
}

}  // namespace

PodmanService::PodmanService(const std::string& dir) : dir_(dir), socket_(dir + "/podman.sock") {
  fs::create_directories(dir);
  write(dir + "/containers.conf",
        "[containers]\ndefault_ulimits = []\n[engine]\nruntime = \"runc\"\ncgroup_manager = \"cgroupfs\"\n"
        "events_logger = \"file\"\nevents_logfile_path = \"" + dir + "/events.log\"\ntmp_dir = \"" + dir +
            "/tmp\"\n[network]\nnetwork_config_dir = \"" + dir + "/net\"\n");
  write(dir + "/storage.conf",
        "[storage]\ndriver = \"vfs\"\ngraphroot = \"" + dir + "/root\"\nrunroot = \"" + dir + "/run\"\n");
  env_ = {{"CONTAINERS_CONF", dir + "/containers.conf"},
          {"CONTAINERS_STORAGE_CONF", dir + "/storage.conf"},
          {"XDG_RUNTIME_DIR", dir + "/xdg"}};
  fs::create_directories(dir + "/xdg");
  fs::create_directories(dir + "/tmp");
  fs::create_directories(dir + "/net");
  process_ = std::make_unique<ChildProcess>(
      std::vector<std::string>{"podman", "system", "service", "--time=0", "unix://" + socket_}, env_);
  for (int i = 0; i < 400 && !ok_; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds{50});
    ok_ = accepts(socket_);
    if (!process_->running()) break;
  }
}

PodmanService::~PodmanService() {
  // Whatever a failed test left behind goes first, so that no container outlives the test.
  run_process({"podman", "rm", "--all", "--force", "--time", "0"}, {}, env_, std::chrono::seconds{60});
  // And its networks: their bridges live on the host, outside the test's directory.
  run_process({"podman", "network", "prune", "--force"}, {}, env_, std::chrono::seconds{60});
  if (process_) process_->stop(SIGTERM);
  process_.reset();
  // Containers' storage stays under the build tree's testdata; vfs leaves no mounts.
}

std::string static_httpd_rootfs(const std::string& dir) {
  const std::string root = dir + "/rootfs";
  fs::create_directories(root + "/tmp");
  fs::copy_file(binary_dir() + "/tests/support/static_httpd", root + "/httpd", fs::copy_options::overwrite_existing);
  const std::string tar = dir + "/rootfs.tar";
  auto r = run_process({"tar", "-C", root, "-cf", tar, "."});
  if (r.exit_code != 0) return {};
  return tar;
}

}  // namespace kaisar::testing
