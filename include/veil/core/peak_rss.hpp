// The process's peak resident set size, for the reports that quote memory (`he eval`, `he
// infer`, `relu knapsack`): what the kernel counted (getrusage ru_maxrss), shared libraries and
// all, so it compares with what `/usr/bin/time -v` prints.
#pragma once

namespace veil {

double peak_rss_mb();

}  // namespace veil
