// The shared engine behind DReLU, ReLU, block ReLU and MaxPool (see nonlinear.hpp).
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "veil/mpc/party.hpp"

namespace veil::mpc::detail {

// Client/server pass their shares; the helper passes empty vectors plus the sizes.
// Without a multiplicand (mult == nullptr) returns shares of DReLU(gate[e]) (n_gate values).
// With one returns shares of mult[k] * DReLU(gate[gate_of[k]]) (n_mult values); gate_of empty
// means the identity map (n_mult == n_gate). When the session's DReLU is exact and `mult` is
// the gate itself with the identity map, the opening of the gate doubles as the Beaver opening
// of the multiplicand.
std::vector<uint64_t> sign_gate(Party& p, const std::vector<uint64_t>& gate, size_t n_gate,
                                const std::vector<uint64_t>* mult, size_t n_mult,
                                std::span<const uint32_t> gate_of, bool mult_is_gate);

}  // namespace veil::mpc::detail
