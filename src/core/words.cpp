#include "core/words.hpp"

#include <cctype>

namespace kaisar {

namespace {

bool separator(char ch) {
  return std::isspace(static_cast<unsigned char>(ch)) || ch == '-' || ch == '/' || ch == '_';
}

}  // namespace

std::vector<std::string> lower_words(std::string_view text) {
  std::vector<std::string> out;
  std::string word;
  for (char ch : text) {
    if (separator(ch)) {
      if (!word.empty()) out.push_back(std::move(word));
      word.clear();
    } else {
      word.push_back(static_cast<char>(std::tolower(static_cast<unsigned char>(ch))));
    }
  }
  if (!word.empty()) out.push_back(std::move(word));
  return out;
}

bool has_words(std::string_view text, std::span<const std::string> words) {
  constexpr std::size_t kMaxWords = 64;
  std::string_view found[kMaxWords];
  std::size_t n = 0;
  std::size_t i = 0;
  while (i < text.size() && n < kMaxWords) {
    while (i < text.size() && separator(text[i])) ++i;
    const std::size_t start = i;
    while (i < text.size() && !separator(text[i])) ++i;
    if (i > start) found[n++] = text.substr(start, i - start);
  }
  if (words.empty()) return n == 0;
  if (words.size() > n) return false;
  auto same = [](std::string_view a, const std::string& b) {
    if (a.size() != b.size()) return false;
    for (std::size_t k = 0; k < a.size(); ++k) {
      if (std::tolower(static_cast<unsigned char>(a[k])) != static_cast<unsigned char>(b[k])) return false;
    }
    return true;
  };
  for (std::size_t start = 0; start + words.size() <= n; ++start) {
    bool all = true;
    for (std::size_t k = 0; k < words.size() && all; ++k) all = same(found[start + k], words[k]);
    if (all) return true;
  }
  return false;
}

}  // namespace kaisar
