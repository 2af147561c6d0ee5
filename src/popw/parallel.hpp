#pragma once

#include <algorithm>
#include <cstddef>
#include <thread>
#include <vector>

namespace kaisar::popw {

// Runs fn(begin, end) over [0, count) split into `threads` contiguous parts, one per
// std::thread (the calling thread takes the first). Internal to popw.
template <class Fn>
void parallel_for(std::size_t count, unsigned threads, Fn&& fn) {
  const std::size_t parts = std::max<std::size_t>(1, std::min<std::size_t>(threads, count));
  if (parts == 1) {
    fn(std::size_t{0}, count);
    return;
  }
  std::vector<std::jthread> workers;
  workers.reserve(parts - 1);
  for (std::size_t p = 1; p < parts; ++p) {
    workers.emplace_back([&fn, p, parts, count] { fn(count * p / parts, count * (p + 1) / parts); });
  }
  fn(std::size_t{0}, count / parts);
}

}  // namespace kaisar::popw
