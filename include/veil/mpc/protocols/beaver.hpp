// Products of shared values with Beaver triples dealt by the helper. The helper derives every
// triple component from the seeds it shares with the client and with the server, so it sends
// only the correction term of the product (to the server); nothing is precomputed or stored.
// Results carry the sum of the operands' fractional bits: call truncate() afterwards.
#pragma once

#include "veil/mpc/kernels/ring_kernels.hpp"
#include "veil/mpc/party.hpp"
#include "veil/mpc/ring.hpp"

namespace veil::mpc {

// z = x * y elementwise, both shared (Beaver, CRYPTO'91). Bytes: 8n from the helper and 16n
// between client and server; one round.
RingTensor mul(Party& p, const RingTensor& x, const RingTensor& y);

// Linear layers whose weights the server holds in the clear. The client's share X_c is
// multiplied with W via a "bilinear triple" (A from the client-helper seed, B from the
// server-helper seed, helper sends the server C - C_c with C = op(A, B)); the server's own share
// needs no triple: op(X_s, W) is local. Bytes: 8|X| (client->server) + 8|W| (server->client) +
// 8|Y| (helper->server), one round; each party evaluates op once.
//
// y[M,N] = x[M,K] * w[K,N]; `w` holds data at the server only (others pass its shape).
RingTensor matmul_server_weights(Party& p, const RingTensor& x, const RingTensor& w,
                                 int threads = 1);
// y = conv(x, w) with x NCHW shared and w OIHW at the server. The geometry is public.
RingTensor conv2d_server_weights(Party& p, const RingTensor& x, const RingTensor& w,
                                 const Conv2dGeometry& g, int threads = 1);

}  // namespace veil::mpc
