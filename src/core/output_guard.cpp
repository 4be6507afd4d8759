#include "veil/core/output_guard.hpp"

#include <fmt/format.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <optional>
#include <system_error>

#include "veil/core/error.hpp"

namespace veil {

namespace fs = std::filesystem;

namespace {

// A file's identity. stat() follows symlinks, and a hard link shares the inode, so every name
// of one file gets the same identity. A file that does not exist yet is identified by its
// absolute path with the existing directories' symlinks resolved: two outputs to the same new
// file compare equal.
struct Identity {
  std::optional<std::pair<dev_t, ino_t>> inode;
  std::string new_path;

  bool operator==(const Identity& o) const {
    if (inode || o.inode) return inode == o.inode;
    return new_path == o.new_path;
  }
};

Identity identity_of(const fs::path& p) {
  Identity id;
  struct stat st {};
  if (::stat(p.c_str(), &st) == 0) {
    id.inode = std::make_pair(st.st_dev, st.st_ino);
    return id;
  }
  std::error_code ec;
  fs::path abs = fs::weakly_canonical(fs::absolute(p, ec), ec);
  id.new_path = (ec ? fs::absolute(p, ec) : abs).lexically_normal().string();
  return id;
}

bool exists_at_all(const fs::path& p) {  // a dangling symlink counts: something is there
  struct stat st {};
  return ::lstat(p.c_str(), &st) == 0;
}

std::string named(const std::string& option, const fs::path& p) {
  return option + " '" + p.string() + "'";
}

// Where a file named `p` is created: its directory ("." for a bare name).
fs::path directory_of(const fs::path& p) {
  fs::path d = p.parent_path();
  return d.empty() ? fs::path(".") : d;
}

// A directory's name for comparison: "out/keep/" and "out/./keep" are "out/keep".
std::string normal_dir(const fs::path& p) {
  fs::path n = p.lexically_normal();
  if (!n.has_filename() && n.has_relative_path()) n = n.parent_path();
  return n.string();
}

// Why no new entry can be made in `dir` (which must exist), or "" when one can. access() asks
// the kernel with the process's own rights, so a read-only mount (EROFS) counts too.
std::string cannot_write_in(const fs::path& dir) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) return fmt::format("'{}' is not a directory", dir.string());
  if (::access(dir.c_str(), W_OK | X_OK) != 0)
    return fmt::format("cannot write in directory '{}': {}", dir.string(), std::strerror(errno));
  return "";
}

// The same, for a directory that is created (with its parents) when it is missing.
std::string cannot_create(const fs::path& dir) {
  std::error_code ec;
  if (fs::exists(dir, ec)) return cannot_write_in(dir);
  fs::path p = fs::absolute(dir, ec).lexically_normal();
  while (p.has_relative_path() && !fs::exists(p, ec)) p = p.parent_path();
  return cannot_write_in(p);
}

}  // namespace

OutputGuard& OutputGuard::add(File f) {
  if (!f.path.empty()) files_.push_back(std::move(f));
  return *this;
}

OutputGuard& OutputGuard::input(const std::string& option, const fs::path& path) {
  return add({option, path, Kind::Input, ""});
}

OutputGuard& OutputGuard::output(const std::string& option, const fs::path& path) {
  return add({option, path, Kind::Output, ""});
}

OutputGuard& OutputGuard::output_dir(const std::string& option, const fs::path& dir) {
  return add({option, dir, Kind::Directory, ""});
}

OutputGuard& OutputGuard::secret_output(const std::string& option, const fs::path& path,
                                        const std::string& what) {
  return add({option, path, Kind::Secret, what});
}

void OutputGuard::check(bool force) const {
  std::vector<Identity> ids;
  ids.reserve(files_.size());
  for (const auto& f : files_) ids.push_back(identity_of(f.path));
  for (size_t o = 0; o < files_.size(); ++o) {
    const File& out = files_[o];
    if (out.kind == Kind::Input || out.kind == Kind::Directory) continue;
    for (size_t i = 0; i < files_.size(); ++i) {
      const File& other = files_[i];
      if (i == o || !(ids[i] == ids[o])) continue;
      if (other.kind == Kind::Input && ids[i].inode)
        throw InvalidArgument(named(out.option, out.path) + " is the same file as " +
                              named(other.option, other.path) + ": refusing to overwrite an input");
      if (other.kind != Kind::Input && i < o)
        throw InvalidArgument(named(other.option, other.path) + " and " +
                              named(out.option, out.path) +
                              " are the same file: one output would replace the other");
    }
  }
  check_writable();
  if (force) return;
  for (const auto& f : files_)
    if (f.kind == Kind::Secret && exists_at_all(f.path))
      throw InvalidArgument(named(f.option, f.path) + " exists: refusing to overwrite a " + f.what +
                            " (give --force to replace it)");
}

void OutputGuard::check_writable() const {
  std::vector<std::string> created;  // the output directories, as outputs inside them name them
  for (const auto& f : files_)
    if (f.kind == Kind::Directory) {
      if (auto why = cannot_create(f.path); !why.empty())
        throw InvalidArgument(named(f.option, f.path) + ": " + why);
      created.push_back(normal_dir(f.path));
    }
  for (const auto& f : files_) {
    if (f.kind == Kind::Input || f.kind == Kind::Directory) continue;
    std::error_code ec;
    if (fs::is_directory(f.path, ec))
      throw InvalidArgument(named(f.option, f.path) + " is a directory, not a file");
    const fs::path dir = directory_of(f.path);
    if (std::find(created.begin(), created.end(), normal_dir(dir)) != created.end()) continue;
    if (!fs::exists(dir, ec))
      throw InvalidArgument(named(f.option, f.path) + ": directory '" + dir.string() +
                            "' does not exist");
    if (auto why = cannot_write_in(dir); !why.empty())
      throw InvalidArgument(named(f.option, f.path) + ": " + why);
  }
}

}  // namespace veil
