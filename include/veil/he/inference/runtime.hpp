// Running a compiled program: the owner encrypts the weights, the data source encrypts an input,
// the untrusted machine evaluates with the public evaluation keys only, the owner decrypts.
#pragma once

#include <optional>
#include <span>
#include <vector>

#include "veil/he/ciphertext.hpp"
#include "veil/he/context.hpp"
#include "veil/he/encoder.hpp"
#include "veil/he/evaluator.hpp"
#include "veil/he/inference/program.hpp"
#include "veil/he/keys.hpp"
#include "veil/he/seeded_ciphertext.hpp"

namespace veil::he {

struct EncryptedLinear {
  // Absent where the weights are all zero; kept seeded (c_0 and the seed of c_1), expanded
  // just before each product.
  std::vector<std::optional<SeededCiphertext>> terms;
  Ciphertext bias;
};

// The model's encrypted part: its public layout and one EncryptedLinear per linear layer.
struct EncryptedProgram {
  ProgramLayout layout;
  std::vector<EncryptedLinear> linears;
};

// Symmetric (secret-key) encryption: the ciphertexts keep the seed of their uniform half, so a
// stored weight costs one polynomial. Each term is encrypted at its layer's level and scale q_l.
EncryptedProgram encrypt_program(const CompiledProgram& program, const ContextPtr& ctx,
                                 const SecretKey& secret);

// One image's features, laid out for the first layer and encrypted with the public key.
std::vector<Ciphertext> encrypt_features(const ProgramLayout& layout, const ContextPtr& ctx,
                                         const PublicKey& pub, std::span<const double> x);

// Counters of one evaluation (for reports and tests).
struct RunStats {
  size_t products = 0, rotations = 0, relinearizations = 0, rescales = 0;
};

class ProgramRunner {
 public:
  // `galois` must hold every step of program.layout.rotation_steps() (checked).
  ProgramRunner(ContextPtr ctx, const EncryptedProgram& program, const RelinKeys& relin,
                const GaloisKeys& galois);

  // Encrypted features (input_vectors() ciphertexts at the top level): ciphertext x ciphertext.
  Ciphertext run(const std::vector<Ciphertext>& input, RunStats* stats = nullptr) const;
  // Plaintext features: the first layer multiplies encrypted weights by plaintexts.
  Ciphertext run_plain(std::span<const double> x, RunStats* stats = nullptr) const;

 private:
  Ciphertext linear(size_t index, const std::vector<Ciphertext>* x_ct,
                    std::span<const double> x_plain, RunStats& stats) const;
  Ciphertext square(const SquareLayout& s, const Ciphertext& x, RunStats& stats) const;
  Ciphertext run_from(size_t layer, Ciphertext x, RunStats& stats) const;

  ContextPtr ctx_;
  const EncryptedProgram& program_;
  const RelinKeys& relin_;
  const GaloisKeys& galois_;
  Evaluator eval_;
  CkksEncoder encoder_;
};

// The first `count` slots of an output ciphertext.
std::vector<double> decrypt_output(const ContextPtr& ctx, const SecretKey& secret,
                                   const Ciphertext& ct, size_t count);

}  // namespace veil::he
