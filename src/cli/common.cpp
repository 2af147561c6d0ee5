#include "cli/common.hpp"

#include <termios.h>
#include <unistd.h>

#include <boost/json.hpp>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <iostream>

#include "crypto/keystore.hpp"
#include "net/client.hpp"
#include "store/files.hpp"

namespace kaisar::cli {

namespace json = boost::json;
namespace fs = std::filesystem;

int exit_code_for(ErrorCode code) {
  switch (code) {
    case ErrorCode::kInvalidArgument: return kExitUsage;
    case ErrorCode::kUnauthenticated:
    case ErrorCode::kPermissionDenied: return kExitAuth;
    case ErrorCode::kNotFound: return kExitNotFound;
    case ErrorCode::kUnavailable:
    case ErrorCode::kTimeout: return kExitUnavailable;
    case ErrorCode::kConflict: return kExitConflict;
    case ErrorCode::kPayloadTooLarge:
    case ErrorCode::kInternal: return kExitError;
  }
  return kExitError;
}

int report(const Error& error, bool as_json) {
  if (as_json) {
    print_json(json::object{{"error", json::object{{"code", error_code_name(error.code)}, {"message", error.message}}}});
  } else {
    std::cerr << "error: " << error.message << "\n";
  }
  return exit_code_for(error.code);
}

namespace {
std::string env_or(const char* name, std::string fallback) {
  const char* v = std::getenv(name);
  return v != nullptr && *v != '\0' ? std::string(v) : std::move(fallback);
}

std::string home() { return env_or("HOME", "/tmp"); }
}  // namespace

std::string xdg_data_dir() {
  const char* x = std::getenv("XDG_DATA_HOME");
  return (x != nullptr && *x == '/' ? fs::path(x) : fs::path(home()) / ".local" / "share") / "kaisar";
}

std::string xdg_config_dir() {
  const char* x = std::getenv("XDG_CONFIG_HOME");
  return ((x != nullptr && *x == '/' ? fs::path(x) : fs::path(home()) / ".config") / "kaisar").string();
}

void ClientOptions::resolve() {
  if (onenode.empty()) onenode = env_or("KAISAR_ONENODE", "http://127.0.0.1:8080");
  while (!onenode.empty() && onenode.back() == '/') onenode.pop_back();
  if (wallet.empty()) wallet = env_or("KAISAR_WALLET", (fs::path(xdg_data_dir()) / "wallet.json").string());
}

Result<std::string> read_password(const std::string& password_file, bool confirm) {
  if (!password_file.empty()) {
    auto text = store::read_file(password_file, 4096);
    if (!text) return fail(ErrorCode::kInvalidArgument, "password file: " + text.error().message);
    std::string p = *text;
    while (!p.empty() && (p.back() == '\n' || p.back() == '\r')) p.pop_back();
    return p;
  }
  if (const char* env = std::getenv("KAISAR_PASSWORD"); env != nullptr && *env != '\0') return std::string(env);
  if (!isatty(STDIN_FILENO)) {
    return fail(ErrorCode::kInvalidArgument,
                "a wallet password is needed: pass --password-file FILE or set KAISAR_PASSWORD");
  }
  auto prompt = [](const char* text) {
    std::cerr << text << std::flush;
    termios old{};
    tcgetattr(STDIN_FILENO, &old);
    termios quiet = old;
    quiet.c_lflag &= ~static_cast<tcflag_t>(ECHO);
    tcsetattr(STDIN_FILENO, TCSANOW, &quiet);
    std::string line;
    std::getline(std::cin, line);
    tcsetattr(STDIN_FILENO, TCSANOW, &old);
    std::cerr << "\n";
    return line;
  };
  std::string first = prompt("Wallet password: ");
  if (confirm && prompt("Repeat password: ") != first) {
    return fail(ErrorCode::kInvalidArgument, "the passwords differ");
  }
  return first;
}

Result<crypto::PrivateKey> unlock_wallet(const ClientOptions& options) {
  auto text = store::read_file(options.wallet, 1 << 16);
  if (!text) {
    return fail(ErrorCode::kNotFound, "no wallet at " + options.wallet +
                                          ": create one with `kaisar wallet new` or pass --wallet FILE");
  }
  auto password = read_password(options.password_file, false);
  if (!password) return std::unexpected(password.error());
  auto key = crypto::keystore_decrypt(*text, *password);
  if (!key) return fail(key.error().code, options.wallet + ": " + key.error().message);
  return key;
}

Result<json::value> api_call(const ClientOptions& options, std::string_view method, std::string_view path,
                             const json::value* body, bool authenticated, const net::Headers& extra_headers) {
  net::Headers headers = extra_headers;
  std::string payload;
  if (body != nullptr) {
    payload = json::serialize(*body);
    headers.emplace_back("content-type", "application/json");
  }
  if (authenticated) {
    auto token = saved_token(options.onenode);
    if (!token) return fail(ErrorCode::kUnauthenticated, "not signed in to " + options.onenode + ": run `kaisar login`");
    headers.emplace_back("authorization", "Bearer " + *token);
  }
  auto res = net::http_request(method, options.onenode + std::string(path), payload, headers);
  if (!res) {
    if (res.error().code == ErrorCode::kUnavailable) {
      return fail(ErrorCode::kUnavailable, "cannot reach OneNode at " + options.onenode + " (" + res.error().message +
                                               "); is it running? (--onenode URL or KAISAR_ONENODE)");
    }
    return std::unexpected(res.error());
  }
  boost::system::error_code ec;
  json::value v = json::parse(res->body, ec);
  if (res->status >= 200 && res->status < 300) {
    if (ec) return fail(ErrorCode::kInternal, "OneNode answered with invalid JSON");
    return v;
  }
  if (!ec && v.is_object()) {
    if (auto* err = v.as_object().if_contains("error"); err != nullptr && err->is_object()) {
      const auto& eo = err->as_object();
      std::string code = eo.contains("code") && eo.at("code").is_string() ? std::string(eo.at("code").as_string()) : "";
      std::string message = eo.contains("message") && eo.at("message").is_string()
                                ? std::string(eo.at("message").as_string())
                                : "request failed";
      ErrorCode c = ErrorCode::kInternal;
      for (auto candidate : {ErrorCode::kInvalidArgument, ErrorCode::kUnauthenticated, ErrorCode::kPermissionDenied,
                             ErrorCode::kNotFound, ErrorCode::kConflict, ErrorCode::kPayloadTooLarge,
                             ErrorCode::kUnavailable, ErrorCode::kTimeout}) {
        if (error_code_name(candidate) == code) c = candidate;
      }
      return fail(c, message);
    }
  }
  return fail(ErrorCode::kInternal, "OneNode answered HTTP " + std::to_string(res->status));
}

namespace {
std::string sessions_path() { return (fs::path(xdg_config_dir()) / "sessions.json").string(); }

json::object load_sessions() {
  auto text = store::read_file(sessions_path(), 1 << 20);
  if (!text) return {};
  boost::system::error_code ec;
  auto v = json::parse(*text, ec);
  if (ec || !v.is_object()) return {};
  return std::move(v.as_object());
}
}  // namespace

std::optional<std::string> saved_token(const std::string& onenode) {
  auto sessions = load_sessions();
  auto* s = sessions.if_contains(onenode);
  if (s == nullptr || !s->is_object()) return std::nullopt;
  auto* token = s->as_object().if_contains("token");
  if (token == nullptr || !token->is_string()) return std::nullopt;
  return std::string(token->as_string());
}

Result<void> save_token(const std::string& onenode, const std::string& token, const std::string& address,
                        const std::string& expires_at) {
  auto sessions = load_sessions();
  sessions[onenode] = json::object{{"token", token}, {"address", address}, {"expires_at", expires_at}};
  return store::write_file_atomic(sessions_path(), json::serialize(sessions) + "\n", 0600);
}

Result<void> forget_token(const std::string& onenode) {
  auto sessions = load_sessions();
  sessions.erase(onenode);
  return store::write_file_atomic(sessions_path(), json::serialize(sessions) + "\n", 0600);
}

void print_table(const std::vector<std::string>& header, const std::vector<std::vector<std::string>>& rows) {
  std::vector<std::size_t> width(header.size());
  for (std::size_t i = 0; i < header.size(); ++i) width[i] = header[i].size();
  for (const auto& r : rows) {
    for (std::size_t i = 0; i < r.size() && i < width.size(); ++i) width[i] = std::max(width[i], r[i].size());
  }
  auto line = [&](const std::vector<std::string>& cells) {
    std::string out;
    for (std::size_t i = 0; i < cells.size() && i < width.size(); ++i) {
      out += cells[i];
      if (i + 1 < cells.size()) out += std::string(width[i] - cells[i].size() + 2, ' ');
    }
    std::cout << out << "\n";
  };
  line(header);
  for (const auto& r : rows) line(r);
}

void print_json(const json::value& v) { std::cout << json::serialize(v) << "\n"; }

std::string human_bytes(std::uint64_t bytes) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
  double v = static_cast<double>(bytes);
  int u = 0;
  while (v >= 1024 && u < 5) {
    v /= 1024;
    ++u;
  }
  char buf[32];
  std::snprintf(buf, sizeof buf, u == 0 ? "%.0f %s" : "%.1f %s", v, units[u]);
  return buf;
}

}  // namespace kaisar::cli
