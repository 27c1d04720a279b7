#include "util/file_io.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>

#include "util/error.h"

namespace fpq {
namespace fs = std::filesystem;

std::vector<uint8_t> read_file_bytes(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail("cannot open '{}': {}", path.string(), std::strerror(errno));
  in.seekg(0, std::ios::end);
  const auto size = in.tellg();
  in.seekg(0);
  std::vector<uint8_t> buf(static_cast<size_t>(size));
  if (size > 0 && !in.read(reinterpret_cast<char*>(buf.data()), size)) fail("cannot read '{}'", path.string());
  return buf;
}

std::string read_file_text(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail("cannot open '{}': {}", path.string(), std::strerror(errno));
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

static fs::path temp_sibling(const fs::path& path) {
  return path.parent_path() / (path.filename().string() + ".tmp-" + std::to_string(::getpid()));
}

void write_file_atomic(const fs::path& path, const std::function<void(std::FILE*)>& writer) {
  const fs::path tmp = temp_sibling(path);
  std::FILE* f = std::fopen(tmp.c_str(), "wb");
  if (!f) fail("cannot write '{}': {}", path.string(), std::strerror(errno));
  try {
    writer(f);
    if (std::fflush(f) != 0 || std::ferror(f)) fail("write error on '{}': {}", path.string(), std::strerror(errno));
  } catch (...) {
    std::fclose(f);
    std::error_code ec;
    fs::remove(tmp, ec);
    throw;
  }
  if (std::fclose(f) != 0) {
    std::error_code ec;
    fs::remove(tmp, ec);
    fail("write error on '{}': {}", path.string(), std::strerror(errno));
  }
  std::error_code ec;
  fs::rename(tmp, path, ec);
  if (ec) {
    fs::remove(tmp, ec);
    fail("cannot rename temporary file onto '{}'", path.string());
  }
}

void write_file_atomic(const fs::path& path, std::span<const uint8_t> bytes) {
  write_file_atomic(path, [&](std::FILE* f) {
    if (!bytes.empty() && std::fwrite(bytes.data(), 1, bytes.size(), f) != bytes.size())
      fail("write error on '{}': {}", path.string(), std::strerror(errno));
  });
}

void check_output_path(const fs::path& path, const char* what, bool folder) {
  if (path.empty()) fail("{}: empty output path", what);
  std::error_code ec;
  if (!folder && fs::is_directory(path, ec)) fail("{} '{}' is a folder; name a file", what, path.string());
  const fs::path parent = path.parent_path().empty() ? fs::path(".") : path.parent_path();
  if (folder && fs::exists(path, ec) && !fs::is_directory(path, ec))
    fail("{} '{}' is a file; name a folder", what, path.string());
  if (!fs::is_directory(parent, ec))
    fail("{}: cannot write '{}': folder '{}' does not exist", what, path.string(), parent.string());
  if (::access(parent.c_str(), W_OK) != 0)
    fail("{}: cannot write '{}': folder '{}' is not writable ({})", what, path.string(), parent.string(),
         std::strerror(errno));
}

void write_dir_atomic(const fs::path& dir, const std::function<void(const fs::path&)>& f) {
  const fs::path tmp = temp_sibling(dir);
  std::error_code ec;
  fs::remove_all(tmp, ec);
  fs::create_directories(tmp, ec);
  if (ec) fail("cannot create directory '{}': {}", tmp.string(), ec.message());
  try {
    f(tmp);
  } catch (...) {
    fs::remove_all(tmp, ec);
    throw;
  }
  if (fs::exists(dir)) {
    const fs::path old = dir.parent_path() / (dir.filename().string() + ".old-" + std::to_string(::getpid()));
    fs::rename(dir, old, ec);
    if (ec) {
      fs::remove_all(tmp, ec);
      fail("cannot replace existing directory '{}'", dir.string());
    }
    fs::rename(tmp, dir, ec);
    fs::remove_all(old, ec);
  } else {
    fs::rename(tmp, dir, ec);
  }
  if (ec) {
    fs::remove_all(tmp, ec);
    fail("cannot rename temporary directory onto '{}'", dir.string());
  }
}

MappedFile::MappedFile(const fs::path& path) : path_(path) {
  const int fd = ::open(path.c_str(), O_RDONLY);
  if (fd < 0) fail("cannot open '{}': {}", path.string(), std::strerror(errno));
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    ::close(fd);
    fail("cannot stat '{}'", path.string());
  }
  if (S_ISDIR(st.st_mode)) {
    ::close(fd);
    fail("'{}' is a directory, expected a file", path.string());
  }
  size_ = size_t(st.st_size);
  if (size_ > 0) {
    void* p = ::mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, fd, 0);
    if (p == MAP_FAILED) {
      ::close(fd);
      fail("cannot map '{}': {}", path.string(), std::strerror(errno));
    }
    data_ = static_cast<const uint8_t*>(p);
  }
  ::close(fd);
}

MappedFile::~MappedFile() {
  if (data_) ::munmap(const_cast<uint8_t*>(data_), size_);
}

MappedFile::MappedFile(MappedFile&& o) noexcept : path_(std::move(o.path_)), data_(o.data_), size_(o.size_) {
  o.data_ = nullptr;
  o.size_ = 0;
}

MappedFile& MappedFile::operator=(MappedFile&& o) noexcept {
  if (this != &o) {
    if (data_) ::munmap(const_cast<uint8_t*>(data_), size_);
    path_ = std::move(o.path_);
    data_ = o.data_;
    size_ = o.size_;
    o.data_ = nullptr;
    o.size_ = 0;
  }
  return *this;
}

}  // namespace fpq
