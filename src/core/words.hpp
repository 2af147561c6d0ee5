#pragma once

#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace kaisar {

// Text matched by words, as GPU models are ("RTX_4090" finds "NVIDIA GeForce RTX 4090").
// Words are separated by white space, '_', '-' and '/'.

// The lower-case words of `text`.
std::vector<std::string> lower_words(std::string_view text);

// Whether `words` (lower-case, as lower_words gives them) appear among the words of `text`
// in a row, ignoring case. No words match only a text without words. Allocates nothing.
bool has_words(std::string_view text, std::span<const std::string> words);

}  // namespace kaisar
