// What a command reads and writes, checked before it does any work, so that no command destroys
// its own input: an output may not be the same file as an input or as another output (same
// device and inode, following symlinks, so another path, a symlink or a hard link to it counts),
// and an output that holds a secret or a private key does not replace an existing file unless
// the user said --force.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

namespace veil {

class OutputGuard {
 public:
  // Each file is named by the option that gave it, for the error message. An empty path (an
  // option not given) is skipped; so is an input that does not exist (the command reports it).
  OutputGuard& input(const std::string& option, const std::filesystem::path& path);
  OutputGuard& output(const std::string& option, const std::filesystem::path& path);
  // An output holding key material (`what`: "private key", "lock key", ...). A file that
  // already exists there is refused unless check() is called with force = true.
  OutputGuard& secret_output(const std::string& option, const std::filesystem::path& path,
                             const std::string& what);

  // Throws InvalidArgument naming both options and paths for an output that is an input or
  // another output, or the option and path of an existing secret output (without force). An
  // alias is refused even with force: the command would destroy what it is reading.
  void check(bool force = false) const;

 private:
  enum class Kind { Input, Output, Secret };
  struct File {
    std::string option;
    std::filesystem::path path;
    Kind kind;
    std::string what;
  };
  OutputGuard& add(File f);
  std::vector<File> files_;
};

}  // namespace veil
