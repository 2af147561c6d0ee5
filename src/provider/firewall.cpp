#include "provider/firewall.hpp"

#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <chrono>
#include <filesystem>
#include <thread>
#include <vector>

#include "core/image_reference.hpp"

extern char** environ;

namespace kaisar::provider {

namespace {

std::string element_list(const auto& ranges) {
  std::string out;
  for (const auto& r : ranges) out += (out.empty() ? "" : ", ") + std::string(r);
  return out;
}

// Runs `argv` with `input` on its stdin and returns its exit status and what it wrote.
Result<std::pair<int, std::string>> run(const std::vector<std::string>& argv, const std::string& input) {
  int in[2];
  int out[2];
  if (::pipe2(in, O_CLOEXEC) != 0) return fail(ErrorCode::kInternal, std::string("pipe: ") + std::strerror(errno));
  if (::pipe2(out, O_CLOEXEC) != 0) {
    ::close(in[0]);
    ::close(in[1]);
    return fail(ErrorCode::kInternal, std::string("pipe: ") + std::strerror(errno));
  }
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, in[0], 0);
  posix_spawn_file_actions_adddup2(&actions, out[1], 1);
  posix_spawn_file_actions_adddup2(&actions, out[1], 2);
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  pid_t pid = 0;
  const int spawned = posix_spawn(&pid, argv[0].c_str(), &actions, nullptr, args.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  ::close(in[0]);
  ::close(out[1]);
  if (spawned != 0) {
    ::close(in[1]);
    ::close(out[0]);
    return fail(ErrorCode::kUnavailable, argv[0] + ": " + std::strerror(spawned));
  }
  // nft reads its whole program before it answers, so writing first cannot deadlock. A
  // program that exits without reading would raise SIGPIPE, which kills the process: block
  // it in this thread while writing and take back the one the write may have raised.
  sigset_t pipe_signal;
  sigset_t previous;
  sigemptyset(&pipe_signal);
  sigaddset(&pipe_signal, SIGPIPE);
  ::pthread_sigmask(SIG_BLOCK, &pipe_signal, &previous);
  const bool was_pending = [&] {
    sigset_t pending;
    return ::sigpending(&pending) == 0 && sigismember(&pending, SIGPIPE) == 1;
  }();
  std::size_t written = 0;
  bool broken = false;
  while (written < input.size()) {
    const ssize_t n = ::write(in[1], input.data() + written, input.size() - written);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      broken = n < 0 && errno == EPIPE;
      break;
    }
    written += static_cast<std::size_t>(n);
  }
  if (broken && !was_pending) {
    const timespec now{0, 0};
    while (::sigtimedwait(&pipe_signal, nullptr, &now) < 0 && errno == EINTR) {
    }
  }
  ::pthread_sigmask(SIG_SETMASK, &previous, nullptr);
  ::close(in[1]);
  std::string text;
  char buffer[4096];
  while (true) {
    const ssize_t n = ::read(out[0], buffer, sizeof buffer);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    if (text.size() < 16384) text.append(buffer, static_cast<std::size_t>(n));
  }
  ::close(out[0]);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  return std::pair{WIFEXITED(status) ? WEXITSTATUS(status) : 128, text};
}

std::string nft_binary() {
  // Where nft lives when it is not in sbin; tests point it at a failing program.
  if (const char* forced = std::getenv("KAISAR_NFT"); forced != nullptr && *forced != '\0') return forced;
  for (const char* path : {"/usr/sbin/nft", "/sbin/nft", "/usr/bin/nft"}) {
    if (std::filesystem::exists(path)) return path;
  }
  return {};
}

Result<void> nft(const std::string& program) {
  const std::string binary = nft_binary();
  if (binary.empty()) return fail(ErrorCode::kUnavailable, "nft is not installed (Debian: apt-get install nftables)");
  auto r = run({binary, "-f", "-"}, program);
  if (!r) return std::unexpected(r.error());
  if (r->first != 0) {
    std::string said = r->second.substr(0, 600);
    while (!said.empty() && (said.back() == '\n' || said.back() == ' ')) said.pop_back();
    return fail(ErrorCode::kUnavailable, "nft exited with " + std::to_string(r->first) + ": " + said);
  }
  return {};
}

}  // namespace

std::string firewall_ruleset() {
  const std::string table = "inet " + std::string(kFirewallTable);
  const std::string lease = "\"" + std::string(kLeaseBridgePrefix) + "*\"";
  // "add" then "delete": the delete cannot fail, and the whole file is one transaction.
  return "add table " + table + "\n" +
         "delete table " + table + "\n" +
         "table " + table + " {\n"
         "  set internal4 { type ipv4_addr; flags interval; elements = { " + element_list(kInternalIpv4) + " } }\n"
         "  set internal6 { type ipv6_addr; flags interval; elements = { " + element_list(kInternalIpv6) + " } }\n"
         "  chain input {\n"
         "    type filter hook input priority filter - 10; policy accept;\n"
         "    iifname " + lease + " ct state established,related accept\n"
         "    iifname " + lease + " counter drop comment \"a lease reaches nothing of this host\"\n"
         "  }\n"
         "  chain forward {\n"
         "    type filter hook forward priority filter - 10; policy accept;\n"
         "    iifname " + lease + " oifname " + lease + " counter drop comment \"no lease reaches another\"\n"
         "    oifname " + lease + " ct state established,related accept\n"
         "    oifname " + lease + " counter drop comment \"nothing opens a connection into a lease\"\n"
         "    iifname " + lease + " ct state established,related accept\n"
         "    iifname " + lease + " ip daddr @internal4 counter drop comment \"no private, loopback, link-local\"\n"
         "    iifname " + lease + " ip6 daddr @internal6 counter drop comment \"no ULA, link-local\"\n"
         "  }\n"
         "}\n";
}

Result<void> install_firewall() {
  // Agents (and tests) on one host may load it at the same moment; the kernel then refuses
  // one of two transactions, which a second try resolves.
  Result<void> loaded;
  for (int attempt = 0; attempt < 3; ++attempt) {
    loaded = nft(firewall_ruleset());
    if (loaded || loaded.error().message.find("exited with") == std::string::npos) return loaded;
    std::this_thread::sleep_for(std::chrono::milliseconds{50 * (attempt + 1)});
  }
  return loaded;
}

Result<void> remove_firewall() {
  const std::string table = "inet " + std::string(kFirewallTable);
  return nft("add table " + table + "\ndelete table " + table + "\n");
}

}  // namespace kaisar::provider
