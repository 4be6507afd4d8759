// --secret S | --passphrase-file P: what protects a key file at rest (lock keys, the HE owner's
// secret key), shared by every command that reads or writes one.
#pragma once

#include <CLI/CLI.hpp>
#include <filesystem>
#include <string>

#include "validators.hpp"
#include "veil/core/error.hpp"
#include "veil/core/output_guard.hpp"
#include "veil/core/sealed_file.hpp"

namespace veil::cli {

struct SecretArgs {
  std::string secret;
  std::string passphrase_file;
  int scrypt_log2n = 15;

  void add(CLI::App* cmd, bool creates) {
    auto* s = cmd->add_option("--secret", secret,
                              creates ? "File with a 32-byte secret protecting the key (created, "
                                        "mode 0600, if absent)"
                                      : "File with the 32-byte secret protecting the key");
    auto* p = cmd->add_option("--passphrase-file", passphrase_file,
                              "File whose first line is a passphrase protecting the key (scrypt)");
    s->excludes(p);
    if (creates)
      cmd->add_option("--scrypt-log2n", scrypt_log2n, "scrypt cost: log2(N), 10..20 (default 15)")
          ->check(in_range(10, 20));
  }

  // The secret is an input, except a --secret that keygen creates: then it is an output that
  // must not be another of the command's files.
  void declare(OutputGuard& guard, bool creates) const {
    std::error_code ec;
    if (creates && !secret.empty() && !std::filesystem::exists(secret, ec))
      guard.output("--secret", secret);
    else
      guard.input("--secret", secret);
    guard.input("--passphrase-file", passphrase_file);
  }

  KeySecret resolve(bool create) const {
    if (secret.empty() == passphrase_file.empty())
      throw InvalidArgument("give exactly one of --secret S or --passphrase-file P");
    if (!secret.empty()) return load_secret_file(secret, create);
    if (scrypt_log2n < 10 || scrypt_log2n > 20)
      throw InvalidArgument("--scrypt-log2n must be in [10, 20]");
    ScryptParams sp;
    sp.log2_n = static_cast<uint8_t>(scrypt_log2n);
    return load_passphrase_file(passphrase_file, sp);
  }
};

}  // namespace veil::cli
