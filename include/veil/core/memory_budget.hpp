// The process-wide bound on the memory a model run may plan for (veil's `--max-memory`). The
// engines compare it with the bytes a run will need, computed from the inferred shapes before
// anything is allocated (veil/model/memory_plan.hpp), so that a tiny model that expands into
// gigabytes (ConstantOfShape, Pad, Reshape of a broadcast) is refused with one line instead of
// driving the machine into swap or the OOM killer.
#pragma once

#include <cstdint>
#include <string>

namespace veil {

// The current budget in bytes: set_memory_budget's value, else a quarter of the physical memory.
uint64_t memory_budget();
void set_memory_budget(uint64_t bytes);

// "2G", "512M", "1.5GiB", "64k", "1000000" (bytes): binary units (k = 1024). Throws
// InvalidArgument for anything else, zero, or more than 2^62 bytes.
uint64_t parse_byte_size(const std::string& text);

// "4.0 GiB", "512.0 MiB", "100 B".
std::string human_bytes(uint64_t bytes);

}  // namespace veil
