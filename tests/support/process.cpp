#include "process.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <stdexcept>
#include <thread>

extern char** environ;

namespace kaisar::testing {

namespace {

std::vector<std::string> merged_env(const std::map<std::string, std::string>& extra) {
  std::map<std::string, std::string> all;
  for (char** e = environ; *e != nullptr; ++e) {
    std::string kv = *e;
    auto eq = kv.find('=');
    if (eq != std::string::npos) all[kv.substr(0, eq)] = kv.substr(eq + 1);
  }
  for (const auto& [k, v] : extra) all[k] = v;
  std::vector<std::string> out;
  for (const auto& [k, v] : all) out.push_back(k + "=" + v);
  return out;
}

std::vector<char*> c_strings(std::vector<std::string>& v) {
  std::vector<char*> out;
  for (auto& s : v) out.push_back(s.data());
  out.push_back(nullptr);
  return out;
}

struct Spawned {
  pid_t pid;
  int in_fd, out_fd, err_fd;
};

Spawned spawn(const std::vector<std::string>& argv_in, const std::map<std::string, std::string>& env_in, bool with_stdin) {
  int in[2], out[2], err[2];
  if (pipe2(in, O_CLOEXEC) != 0 || pipe2(out, O_CLOEXEC) != 0 || pipe2(err, O_CLOEXEC) != 0) {
    throw std::runtime_error("pipe failed");
  }
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  if (with_stdin) {
    posix_spawn_file_actions_adddup2(&fa, in[0], 0);
  } else {
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  }
  posix_spawn_file_actions_adddup2(&fa, out[1], 1);
  posix_spawn_file_actions_adddup2(&fa, err[1], 2);
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  sigset_t none;
  sigemptyset(&none);
  posix_spawnattr_setsigmask(&attr, &none);
  sigset_t def;
  sigemptyset(&def);
  sigaddset(&def, SIGPIPE);
  sigaddset(&def, SIGTERM);
  sigaddset(&def, SIGINT);
  posix_spawnattr_setsigdefault(&attr, &def);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
  auto argv = argv_in;
  auto env = merged_env(env_in);
  auto cargv = c_strings(argv);
  auto cenv = c_strings(env);
  pid_t pid = -1;
  int rc = posix_spawnp(&pid, cargv[0], &fa, &attr, cargv.data(), cenv.data());
  posix_spawn_file_actions_destroy(&fa);
  posix_spawnattr_destroy(&attr);
  close(in[0]);
  close(out[1]);
  close(err[1]);
  if (rc != 0) {
    close(in[1]);
    close(out[0]);
    close(err[0]);
    throw std::runtime_error("cannot start " + argv_in.at(0) + ": " + std::strerror(rc));
  }
  if (!with_stdin) {
    close(in[1]);
    in[1] = -1;
  }
  return {pid, in[1], out[0], err[0]};
}

int decode_status(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return -1;
}

}  // namespace

RunResult run_process(const std::vector<std::string>& argv, const std::string& stdin_text,
                      const std::map<std::string, std::string>& env, std::chrono::milliseconds timeout) {
  ::signal(SIGPIPE, SIG_IGN);
  auto sp = spawn(argv, env, true);
  RunResult r;
  std::size_t written = 0;
  if (stdin_text.empty()) {
    close(sp.in_fd);
    sp.in_fd = -1;
  } else {
    fcntl(sp.in_fd, F_SETFL, O_NONBLOCK);
  }
  auto deadline = std::chrono::steady_clock::now() + timeout;
  int open_outputs = 2;
  while (open_outputs > 0) {
    pollfd fds[3];
    int n = 0;
    if (sp.out_fd >= 0) fds[n++] = {sp.out_fd, POLLIN, 0};
    if (sp.err_fd >= 0) fds[n++] = {sp.err_fd, POLLIN, 0};
    if (sp.in_fd >= 0) fds[n++] = {sp.in_fd, POLLOUT, 0};
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      kill(sp.pid, SIGKILL);
      break;
    }
    poll(fds, static_cast<nfds_t>(n), static_cast<int>(left.count()));
    for (int i = 0; i < n; ++i) {
      if (fds[i].revents == 0) continue;
      if (fds[i].fd == sp.in_fd) {
        ssize_t w = write(sp.in_fd, stdin_text.data() + written, stdin_text.size() - written);
        if (w > 0) written += static_cast<std::size_t>(w);
        if (w < 0 || written == stdin_text.size()) {
          close(sp.in_fd);
          sp.in_fd = -1;
        }
        continue;
      }
      char buf[65536];
      ssize_t got = read(fds[i].fd, buf, sizeof buf);
      if (got > 0) {
        (fds[i].fd == sp.out_fd ? r.out : r.err).append(buf, static_cast<std::size_t>(got));
      } else {
        close(fds[i].fd);
        if (fds[i].fd == sp.out_fd) sp.out_fd = -1; else sp.err_fd = -1;
        --open_outputs;
      }
    }
  }
  for (int fd : {sp.in_fd, sp.out_fd, sp.err_fd}) if (fd >= 0) close(fd);
  int status = 0;
  waitpid(sp.pid, &status, 0);
  r.exit_code = decode_status(status);
  return r;
}

ChildProcess::ChildProcess(const std::vector<std::string>& argv, const std::map<std::string, std::string>& env) {
  ::signal(SIGPIPE, SIG_IGN);
  auto sp = spawn(argv, env, false);
  pid_ = sp.pid;
  out_fd_ = sp.out_fd;
  err_fd_ = sp.err_fd;
  fcntl(out_fd_, F_SETFL, O_NONBLOCK);
  fcntl(err_fd_, F_SETFL, O_NONBLOCK);
}

ChildProcess::~ChildProcess() {
  if (!exit_code_ && pid_ > 0) {
    kill(pid_, SIGTERM);
    stop(SIGTERM, std::chrono::seconds{5});
    if (!exit_code_) stop(SIGKILL, std::chrono::seconds{5});
  }
  if (out_fd_ >= 0) close(out_fd_);
  if (err_fd_ >= 0) close(err_fd_);
}

void ChildProcess::pump(std::chrono::milliseconds timeout) {
  pollfd fds[2];
  int n = 0;
  if (out_fd_ >= 0) fds[n++] = {out_fd_, POLLIN, 0};
  if (err_fd_ >= 0) fds[n++] = {err_fd_, POLLIN, 0};
  if (n == 0) {
    std::this_thread::sleep_for(timeout);
    return;
  }
  poll(fds, static_cast<nfds_t>(n), static_cast<int>(timeout.count()));
  for (int i = 0; i < n; ++i) {
    if (fds[i].revents == 0) continue;
    char buf[65536];
    ssize_t got;
    while ((got = read(fds[i].fd, buf, sizeof buf)) > 0) {
      (fds[i].fd == out_fd_ ? out_ : err_).append(buf, static_cast<std::size_t>(got));
    }
    if (got == 0) {
      if (fds[i].fd == out_fd_) { close(out_fd_); out_fd_ = -1; } else { close(err_fd_); err_fd_ = -1; }
    }
  }
}

std::optional<std::string> ChildProcess::wait_for_line(const std::string& prefix, std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    for (;;) {
      auto nl = out_.find('\n', consumed_);
      if (nl == std::string::npos) break;
      std::string line = out_.substr(consumed_, nl - consumed_);
      consumed_ = nl + 1;
      if (line.rfind(prefix, 0) == 0) return line.substr(prefix.size());
    }
    if (std::chrono::steady_clock::now() >= deadline) return std::nullopt;
    if (out_fd_ < 0 && !running()) return std::nullopt;
    pump(std::chrono::milliseconds{50});
  }
}

bool ChildProcess::running() {
  if (exit_code_) return false;
  int status = 0;
  pid_t r = waitpid(pid_, &status, WNOHANG);
  if (r == pid_) {
    exit_code_ = decode_status(status);
    return false;
  }
  return true;
}

int ChildProcess::stop(int signal, std::chrono::milliseconds timeout) {
  if (exit_code_) return *exit_code_;
  kill(pid_, signal);
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    pump(std::chrono::milliseconds{20});
    if (!running()) return *exit_code_;
  }
  return -1;
}

std::string ChildProcess::output() {
  pump(std::chrono::milliseconds{0});
  return "stdout:\n" + out_ + "\nstderr:\n" + err_;
}

std::string source_dir() {
  const char* src = std::getenv("KAISAR_SOURCE_DIR");
  return src != nullptr && *src != '\0' ? src : KAISAR_CONFIGURED_SOURCE_DIR;
}

std::string binary_dir() {
  const char* bin = std::getenv("KAISAR_BINARY_DIR");
  return bin != nullptr && *bin != '\0' ? bin : KAISAR_CONFIGURED_BINARY_DIR;
}

std::string node_tool(const std::string& name) {
  // Foundry's npm packages put the native binary in a per-platform package; the .bin entry
  // is a Node wrapper that does not pass SIGKILL on, so the native binary is preferred.
#if defined(__aarch64__)
  const std::string platform = "linux-arm64";
#else
  const std::string platform = "linux-amd64";
#endif
  const std::string native = source_dir() + "/node_modules/@foundry-rs/" + name + "-" + platform + "/bin/" + name;
  if (std::filesystem::exists(native)) return native;
  return source_dir() + "/node_modules/.bin/" + name;
}

Anvil start_anvil(int port, const std::string& state_file, const std::vector<std::string>& extra_args) {
  std::vector<std::string> argv{node_tool("anvil"), "--port", std::to_string(port), "--host", "127.0.0.1"};
  if (!state_file.empty()) {
    argv.push_back("--state");
    argv.push_back(state_file);
  }
  argv.insert(argv.end(), extra_args.begin(), extra_args.end());
  Anvil anvil;
  anvil.process = std::make_unique<ChildProcess>(argv);
  auto listening = anvil.process->wait_for_line("Listening on ");
  if (!listening) return anvil;
  std::string address = *listening;
  while (!address.empty() && (address.back() == '\n' || address.back() == '\r' || address.back() == ' ')) {
    address.pop_back();
  }
  anvil.url = "http://" + address;
  anvil.port = std::atoi(address.substr(address.rfind(':') + 1).c_str());
  // The line can come before the port takes connections: wait until it does.
  for (int i = 0; i < 100; ++i) {
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<std::uint16_t>(anvil.port));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    const bool up = fd >= 0 && ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
    if (fd >= 0) ::close(fd);
    if (up) break;
    std::this_thread::sleep_for(std::chrono::milliseconds{50});
  }
  return anvil;
}

std::string kaisar_binary() { return binary_dir() + "/kaisar"; }

std::string make_temp_dir(const std::string& prefix) {
  std::filesystem::path base = std::filesystem::path(binary_dir()) / "testdata";
  std::filesystem::create_directories(base);
  std::string templ = (base / (prefix + "-XXXXXX")).string();
  if (mkdtemp(templ.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
  return templ;
}

}  // namespace kaisar::testing
