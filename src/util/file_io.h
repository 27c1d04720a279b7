#pragma once
// Whole-file reads, memory maps, and atomic writes (temporary name in the same folder, then rename), so a
// failed command never leaves a half-written output behind.
#include <cstdint>
#include <filesystem>
#include <functional>
#include <span>
#include <string>
#include <vector>

namespace fpq {

std::vector<uint8_t> read_file_bytes(const std::filesystem::path& path);
std::string read_file_text(const std::filesystem::path& path);

// Writes via `writer` into "<path>.tmp-<pid>" and renames it over `path` once writer returns; on any
// exception the temporary is removed and the exception propagates.
void write_file_atomic(const std::filesystem::path& path, const std::function<void(std::FILE*)>& writer);
void write_file_atomic(const std::filesystem::path& path, std::span<const uint8_t> bytes);

// Fails (one line naming `what` and the problem) unless `path` can become a file (`folder`: a folder, replacing
// one there) with its parent folder present and writable. Commands call it before long work, so a mistyped output path does not cost the run.
void check_output_path(const std::filesystem::path& path, const char* what, bool folder = false);

// Writes `f(tmp_dir)` into a temporary directory beside `dir`, then renames it to `dir` (replacing an
// existing one). The temporary directory is removed on failure.
void write_dir_atomic(const std::filesystem::path& dir, const std::function<void(const std::filesystem::path&)>& f);

// Read-only memory map of a whole file.
class MappedFile {
 public:
  MappedFile() = default;
  explicit MappedFile(const std::filesystem::path& path);
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;
  MappedFile(MappedFile&& o) noexcept;
  MappedFile& operator=(MappedFile&& o) noexcept;

  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }
  std::span<const uint8_t> bytes() const { return {data_, size_}; }
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
};

}  // namespace fpq
