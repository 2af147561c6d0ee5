#pragma once

#include <functional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "core/error.hpp"

namespace kaisar::provider {

// The addresses a registry host name resolves to (getaddrinfo by default).
using HostResolver = std::function<Result<std::vector<std::string>>(const std::string& host)>;
Result<std::vector<std::string>> resolve_host(const std::string& host);

// Which image a lease may run, as the fully qualified reference the engine gets: one from a
// registry that is not this machine or its network (by name, literal or what the name
// resolves to), or a local image (localhost/…) the operator listed in `local_images`.
// Errors are for the renter: they name the image, never an address of the provider's.
Result<std::string> admit_image(std::string_view image, const std::set<std::string>& local_images,
                                const HostResolver& resolve = resolve_host);

}  // namespace kaisar::provider
