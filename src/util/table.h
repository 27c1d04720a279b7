#pragma once
// A result table printed as aligned markdown (readable in a terminal, pasteable into docs).
#include <string>
#include <vector>

namespace fpq {

class Table {
 public:
  explicit Table(std::vector<std::string> header, std::vector<bool> right_align = {});
  void add(std::vector<std::string> row);
  std::string markdown() const;
  size_t rows() const { return rows_.size(); }

 private:
  std::vector<std::string> header_;
  std::vector<bool> right_;
  std::vector<std::vector<std::string>> rows_;
};

}  // namespace fpq
