#include "veil/core/io.hpp"

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <optional>

#include "veil/core/error.hpp"
#include "veil/core/temporaries.hpp"

namespace veil {

namespace fs = std::filesystem;

namespace {

void (*g_write_hook)(const fs::path&) = nullptr;

// Blocks SIGTERM, SIGINT and SIGHUP in this thread for its lifetime: between mkstemp and the
// temporary's registration a signal would leave a file the handler does not know about.
class FatalSignalsBlocked {
 public:
  FatalSignalsBlocked() {
    sigset_t set;
    sigemptyset(&set);
    for (int s : {SIGTERM, SIGINT, SIGHUP}) sigaddset(&set, s);
    ::pthread_sigmask(SIG_BLOCK, &set, &old_);
  }
  ~FatalSignalsBlocked() { ::pthread_sigmask(SIG_SETMASK, &old_, nullptr); }
  FatalSignalsBlocked(const FatalSignalsBlocked&) = delete;
  FatalSignalsBlocked& operator=(const FatalSignalsBlocked&) = delete;

 private:
  sigset_t old_;
};

}  // namespace

namespace detail {
void set_write_hook_for_testing(void (*hook)(const fs::path& temporary)) { g_write_hook = hook; }
}  // namespace detail

std::vector<uint8_t> read_file(const fs::path& path, uint64_t max_bytes) {
  std::error_code ec;
  if (!fs::is_regular_file(path, ec))
    throw IoError("cannot read '" + path.string() + "': not a regular file or does not exist");
  uint64_t size = fs::file_size(path, ec);
  if (ec) throw IoError("cannot read '" + path.string() + "': " + ec.message());
  if (size > max_bytes)
    throw MalformedInput("'" + path.string() + "' is " + std::to_string(size) +
                         " bytes, more than the limit of " + std::to_string(max_bytes));
  std::ifstream in(path, std::ios::binary);
  if (!in) throw IoError("cannot open '" + path.string() + "': " + std::strerror(errno));
  std::vector<uint8_t> bytes(static_cast<size_t>(size));
  if (size && !in.read(reinterpret_cast<char*>(bytes.data()), static_cast<std::streamsize>(size)))
    throw IoError("cannot read '" + path.string() + "'");
  return bytes;
}

std::string read_text_file(const fs::path& path, uint64_t max_bytes) {
  auto bytes = read_file(path, max_bytes);
  return {bytes.begin(), bytes.end()};
}

void write_all(int fd, std::span<const uint8_t> bytes, const std::string& what) {
  size_t done = 0;
  while (done < bytes.size()) {
    ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) throw IoError("cannot write " + what + ": " + std::strerror(errno));
    done += static_cast<size_t>(n);
  }
}

void write_all(int fd, const std::string& text, const std::string& what) {
  write_all(fd, std::span(reinterpret_cast<const uint8_t*>(text.data()), text.size()), what);
}

void write_file_atomic(const fs::path& path, std::span<const uint8_t> bytes, unsigned mode) {
  fs::path dir = path.parent_path();
  if (dir.empty()) dir = ".";
  std::string tmpl = (dir / ("." + path.filename().string() + ".tmp.XXXXXX")).string();
  std::vector<char> name(tmpl.begin(), tmpl.end());
  name.push_back('\0');
  int fd = -1, err = 0;
  std::optional<PendingTemporary> pending;  // removed by the signal handler until renamed
  {
    FatalSignalsBlocked blocked;
    fd = ::mkstemp(name.data());
    err = errno;
    if (fd >= 0) pending.emplace(name.data());
  }
  if (fd < 0) throw IoError("cannot write '" + path.string() + "': " + std::strerror(err));
  std::string tmp(name.data());
  if (g_write_hook) g_write_hook(tmp);
  auto fail = [&](const std::string& what) {
    int err = errno;
    ::close(fd);
    ::unlink(tmp.c_str());
    throw IoError("cannot write '" + path.string() + "': " + what + ": " + std::strerror(err));
  };
  size_t done = 0;
  while (done < bytes.size()) {
    ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      fail("write");
    }
    done += static_cast<size_t>(n);
  }
  if (::fchmod(fd, static_cast<mode_t>(mode)) != 0) fail("chmod");
  if (::fsync(fd) != 0) fail("fsync");
  if (::close(fd) != 0) {
    int err = errno;
    ::unlink(tmp.c_str());
    throw IoError("cannot write '" + path.string() + "': close: " + std::strerror(err));
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    int err = errno;
    ::unlink(tmp.c_str());
    throw IoError("cannot write '" + path.string() + "': rename: " + std::strerror(err));
  }
}

void write_file_atomic(const fs::path& path, const std::string& text) {
  write_file_atomic(
      path, std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(text.data()), text.size()));
}

}  // namespace veil
