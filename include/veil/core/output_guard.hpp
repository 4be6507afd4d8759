// What a command reads and writes, checked before it does any work, so that no command destroys
// its own input: an output may not be the same file as an input or as another output (same
// device and inode, following symlinks, so another path, a symlink or a hard link to it counts),
// and an output that holds a secret or a private key does not replace an existing file unless
// the user said --force. Every output must also be writable where it is named (its directory
// exists, is a directory and takes new files; the output itself is not a directory), so that
// hours of work do not end in "cannot write".
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
  // A directory the command creates when it is missing (with its parents) and writes outputs
  // into: it must be a directory if it exists, else its nearest existing ancestor must take new
  // entries. Outputs named inside it need no existing directory.
  OutputGuard& output_dir(const std::string& option, const std::filesystem::path& dir);

  // Throws InvalidArgument naming both options and paths for an output that is an input or
  // another output, for an output that cannot be written where it is named (even with force),
  // or the option and path of an existing secret output (without force). An alias is refused
  // even with force: the command would destroy what it is reading.
  void check(bool force = false) const;

 private:
  enum class Kind { Input, Output, Secret, Directory };
  struct File {
    std::string option;
    std::filesystem::path path;
    Kind kind;
    std::string what;
  };
  OutputGuard& add(File f);
  void check_writable() const;
  std::vector<File> files_;
};

}  // namespace veil
