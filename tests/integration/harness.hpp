#pragma once

// Starts real `kaisar` processes on port 0 and talks to them as users would.
#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <thread>

#include "crypto/eip191.hpp"
#include "net/client.hpp"
#include "process.hpp"

namespace kaisar::testing {

namespace json = boost::json;

struct Reply {
  int status = 0;
  json::value body;
  std::string raw;
};

inline Reply call(const std::string& method, const std::string& url, const std::string& body = {},
                  const net::Headers& headers = {}) {
  auto r = net::http_request(method, url, body, headers);
  Reply out;
  if (!r) {
    ADD_FAILURE() << method << " " << url << ": " << r.error().message;
    return out;
  }
  out.status = r->status;
  out.raw = r->body;
  boost::system::error_code ec;
  out.body = json::parse(r->body, ec);
  return out;
}

inline std::string error_code_of(const Reply& r) {
  if (!r.body.is_object()) return "<not json: " + r.raw + ">";
  auto* e = r.body.as_object().if_contains("error");
  if (e == nullptr || !e->is_object()) return "<no error object>";
  return std::string(e->as_object().at("code").as_string());
}

template <class Pred>
bool eventually(Pred pred, std::chrono::milliseconds timeout = std::chrono::seconds{15}) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (pred()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds{100});
  }
  return pred();
}

inline void write_text(const std::string& path, const std::string& text) {
  std::ofstream f(path);
  f << text;
}

// A `kaisar onenode` process on a free port with its own data dir.
class OneNodeProcess {
 public:
  // `listen`: port 0 picks a free one; a restart passes the old address to keep the URL.
  explicit OneNodeProcess(std::string data_dir, std::vector<std::string> extra = {},
                          const std::string& listen = "127.0.0.1:0")
      : data_(std::move(data_dir)) {
    std::vector<std::string> argv = {kaisar_binary(), "onenode", "--listen", listen, "--data", data_,
                                     "--heartbeat-interval", "1"};
    argv.insert(argv.end(), extra.begin(), extra.end());
    process_ = std::make_unique<ChildProcess>(argv);
    auto line = process_->wait_for_line("listening on ");
    if (!line) throw std::runtime_error("onenode did not start:\n" + process_->output());
    url_ = *line;
    if (!eventually([&] {
          auto r = net::http_request("GET", url_ + "/readyz");
          return r && r->status == 200;
        })) {
      throw std::runtime_error("onenode never became ready");
    }
  }
  const std::string& url() const { return url_; }
  ChildProcess& process() { return *process_; }
  // SIGTERM and the exit code (0 = clean shutdown).
  int stop() { return process_->stop(SIGTERM); }

 private:
  std::string data_;
  std::string url_;
  std::unique_ptr<ChildProcess> process_;
};

// Signs in with `key` through the API; returns the bearer token.
inline std::string sign_in(const std::string& url, const crypto::PrivateKey& key) {
  auto nonce = call("POST", url + "/api/v1/auth/nonce",
                    json::serialize(json::object{{"address", key.address().to_checksum()}}));
  EXPECT_EQ(nonce.status, 200) << nonce.raw;
  std::string message(nonce.body.at("message").as_string());
  auto sig = crypto::personal_sign(key, message);
  auto login = call("POST", url + "/api/v1/auth/login",
                    json::serialize(json::object{{"message", message}, {"signature", sig.to_hex()}}));
  EXPECT_EQ(login.status, 200) << login.raw;
  return login.status == 200 ? std::string(login.body.at("token").as_string()) : std::string{};
}

}  // namespace kaisar::testing
