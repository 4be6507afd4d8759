#include "veil/core/output_guard.hpp"

#include <sys/stat.h>

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
    if (out.kind == Kind::Input) continue;
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
  if (force) return;
  for (const auto& f : files_)
    if (f.kind == Kind::Secret && exists_at_all(f.path))
      throw InvalidArgument(named(f.option, f.path) + " exists: refusing to overwrite a " + f.what +
                            " (give --force to replace it)");
}

}  // namespace veil
