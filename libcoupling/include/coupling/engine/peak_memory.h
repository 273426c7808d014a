// Peak resident memory of this process, as Linux counts it (VmHWM in /proc/self/status): every
// resident page, file-backed ones included. A measurement resets the mark when it starts, so the
// peak it reports is its own (Measurement::peak_rss_mib, logged as /measurement/peak_rss_mib);
// the tools print the peak of the whole process on their last line.
#pragma once

namespace coupling {

/// Starts a new peak at the current resident size (writes 5 to /proc/self/clear_refs), after
/// folding the old one into process_peak_memory_mib(). Where the kernel refuses, the peak keeps
/// counting from the start of the process; returns whether it reset.
bool reset_peak_memory();
/// The peak resident size since the last reset (or the start of the process), in MiB; 0 where
/// /proc/self/status cannot be read.
double peak_memory_mib();
/// The peak resident size since the start of the process, across resets, in MiB.
double process_peak_memory_mib();

}  // namespace coupling
