// Input sharing, output reconstruction and the local (communication-free) operations on
// additive shares x = x_client + x_server (mod 2^64). Every function is called by all three
// parties with the same public arguments; the helper passes and gets shape-only tensors.
#pragma once

#include <vector>

#include "veil/mpc/party.hpp"
#include "veil/mpc/ring.hpp"

namespace veil::mpc {

// Client-owned value: the client's share is x - PRG_cs, the server's PRG_cs, drawn from the
// client-server seed, so nothing is sent. `x` must hold data at the client (others: shape).
RingTensor share_client_input(Party& p, const RingTensor& x);
// Server-owned value (e.g. a weight used as a shared operand), the same way.
RingTensor share_server_input(Party& p, const RingTensor& x);

// The server sends its share to the client; the client returns the value, the others a
// shape-only tensor. Only the client learns the output.
RingTensor reveal_to_client(Party& p, const RingTensor& x);

// Local operations on shares (shape-only tensors pass through on the helper).
RingTensor add(const RingTensor& a, const RingTensor& b);
RingTensor sub(const RingTensor& a, const RingTensor& b);
RingTensor mul_public(const RingTensor& a, uint64_t c);
// Concatenation along `axis` (negative counts from the end), as ONNX Concat: every other
// dimension must agree.
RingTensor concat(const std::vector<const RingTensor*>& parts, int64_t axis);

// Adds a public constant (the client adds it to its share).
RingTensor add_public(const Party& p, const RingTensor& a, uint64_t c);
// Adds a server-private bias per channel (dimension 1 of `a`): the server adds bias[c] to its
// share. `bias` holds data at the server only.
RingTensor add_server_channel_bias(const Party& p, const RingTensor& a, const RingTensor& bias);

// Local probabilistic truncation by `bits` (SecureML, Mohassel & Zhang S&P 2017, Thm 1): the
// client shifts its share, the server negates, shifts and negates back. The result is off by
// at most one unit in the last place, except with probability about |x| / 2^63.
RingTensor truncate(const Party& p, const RingTensor& x, int bits);

}  // namespace veil::mpc
