// Thread count of the CPU kernels. oneDNN runs on OpenMP here; small layers (LeNet, batch 1)
// are faster on one thread, and on a loaded machine every extra thread risks a scheduler-tick
// stall at each barrier.
#pragma once

namespace veil::nn {

// Sets the number of threads the kernels started from the calling thread use (OpenMP
// omp_set_num_threads); n <= 0 leaves the setting unchanged. No-op without an OpenMP runtime.
void set_num_threads(int n);
// Threads the next parallel kernel would use (1 without an OpenMP runtime).
int num_threads();

}  // namespace veil::nn
