#pragma once

#include <map>
#include <memory>
#include <string>

#include "process.hpp"

namespace kaisar::testing {

// A Podman API service private to one test directory: its own containers.conf (runc, no
// default ulimits, cgroupfs, file events), its own storage (vfs, root and runroot in DIR),
// listening on DIR/podman.sock. The user's own Podman storage is never touched.
class PodmanService {
 public:
  explicit PodmanService(const std::string& dir);
  ~PodmanService();
  PodmanService(const PodmanService&) = delete;
  PodmanService& operator=(const PodmanService&) = delete;

  bool ok() const { return ok_; }
  const std::string& socket() const { return socket_; }
  std::string output() { return process_ ? process_->output() : std::string{}; }

 private:
  std::string dir_;
  std::string socket_;
  std::map<std::string, std::string> env_;
  bool ok_ = false;
  std::unique_ptr<ChildProcess> process_;
};

// A root filesystem tarball holding only the static test HTTP server as /httpd.
std::string static_httpd_rootfs(const std::string& dir);

}  // namespace kaisar::testing
