#pragma once

// Private to net: conversion between Beast messages and net::Request / net::Response.
// Only the translation units that already use Beast include this.

#include <boost/beast/http/message.hpp>
#include <boost/beast/http/string_body.hpp>
#include <string>

#include "net/http.hpp"

namespace kaisar::net {

using BeastRequest = boost::beast::http::request<boost::beast::http::string_body>;
using BeastResponse = boost::beast::http::response<boost::beast::http::string_body>;

// Moves the body out of `message`; its header stays usable (for a WebSocket accept).
Request to_request(BeastRequest& message, std::string remote_ip);

// Adds Content-Type when missing, Content-Length, "Server: kaisar" and the Connection
// header. Headers carrying CR, LF or NUL are dropped. For HEAD the body is left out but
// Content-Length still describes it.
BeastResponse to_beast(Response&& response, bool keep_alive, bool head_request);

}  // namespace kaisar::net
