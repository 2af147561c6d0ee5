#pragma once

#include <sys/types.h>

#include <chrono>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace kaisar::testing {

struct RunResult {
  int exit_code = -1;  // 128 + signal when killed by a signal
  std::string out;
  std::string err;
};

// Runs argv[0] (searched in PATH) with the given arguments, optional stdin text and extra
// environment, and waits for it. No shell is involved.
RunResult run_process(const std::vector<std::string>& argv, const std::string& stdin_text = {},
                      const std::map<std::string, std::string>& env = {},
                      std::chrono::milliseconds timeout = std::chrono::seconds{60});

// A long-running child (a kaisar server, anvil). stdout and stderr are captured; the
// destructor sends SIGTERM and, after 5 s, SIGKILL.
class ChildProcess {
 public:
  ChildProcess(const std::vector<std::string>& argv, const std::map<std::string, std::string>& env = {});
  ~ChildProcess();
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;

  pid_t pid() const { return pid_; }
  // Waits for a stdout line starting with `prefix`; returns the rest of that line.
  std::optional<std::string> wait_for_line(const std::string& prefix,
                                           std::chrono::milliseconds timeout = std::chrono::seconds{20});
  // Sends `signal` and waits for exit; returns the exit code (128 + signal if killed).
  int stop(int signal, std::chrono::milliseconds timeout = std::chrono::seconds{10});
  bool running();
  // Everything read from stdout / stderr so far (stdout is only read by wait_for_line).
  std::string output();

 private:
  void pump(std::chrono::milliseconds timeout);
  pid_t pid_ = -1;
  int out_fd_ = -1;
  int err_fd_ = -1;
  std::string out_;
  std::string err_;
  std::size_t consumed_ = 0;
  std::optional<int> exit_code_;
};

// The repository root and the build tree ($KAISAR_SOURCE_DIR / $KAISAR_BINARY_DIR override
// the paths the build was configured with).
std::string source_dir();
std::string binary_dir();
// Path of a tool installed into the repo's node_modules/.bin (cast, anvil).
std::string node_tool(const std::string& name);
// Path of the built kaisar binary.
std::string kaisar_binary();
// A local anvil chain. `port` 0 picks a free port; `state_file` (when set) is loaded at
// start and written at exit, so a restarted anvil keeps its chain.
struct Anvil {
  std::unique_ptr<ChildProcess> process;
  std::string url;  // empty when anvil did not start
  int port = 0;
};
Anvil start_anvil(int port = 0, const std::string& state_file = {}, const std::vector<std::string>& extra_args = {});

// A fresh empty directory under the build tree, removed by the caller if wanted.
std::string make_temp_dir(const std::string& prefix);

}  // namespace kaisar::testing
