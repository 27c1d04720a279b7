#include "util/table.h"

#include <algorithm>

#include "util/error.h"

namespace fpq {

Table::Table(std::vector<std::string> header, std::vector<bool> right_align)
    : header_(std::move(header)), right_(std::move(right_align)) {
  right_.resize(header_.size(), false);
}

void Table::add(std::vector<std::string> row) {
  if (row.size() != header_.size()) fail("internal: table row has {} cells, header has {}", row.size(), header_.size());
  rows_.push_back(std::move(row));
}

static size_t display_width(const std::string& s) {
  size_t w = 0;
  for (unsigned char c : s)
    if ((c & 0xC0) != 0x80) ++w;  // count UTF-8 code points
  return w;
}

std::string Table::markdown() const {
  std::vector<size_t> w(header_.size(), 3);
  for (size_t i = 0; i < header_.size(); ++i) w[i] = std::max(w[i], display_width(header_[i]));
  for (const auto& r : rows_)
    for (size_t i = 0; i < r.size(); ++i) w[i] = std::max(w[i], display_width(r[i]));
  auto cell = [&](const std::string& s, size_t i) {
    const std::string pad(w[i] - display_width(s), ' ');
    return right_[i] ? pad + s : s + pad;
  };
  std::string out = "|";
  for (size_t i = 0; i < header_.size(); ++i) out += " " + cell(header_[i], i) + " |";
  out += "\n|";
  for (size_t i = 0; i < header_.size(); ++i)
    out += right_[i] ? " " + std::string(w[i] - 1, '-') + ": |" : " " + std::string(w[i], '-') + " |";
  out += "\n";
  for (const auto& r : rows_) {
    out += "|";
    for (size_t i = 0; i < r.size(); ++i) out += " " + cell(r[i], i) + " |";
    out += "\n";
  }
  return out;
}

}  // namespace fpq
