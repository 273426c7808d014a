// A coupling measurement shared across the ranks of a data-parallel job: the engine's
// measure() on a slice of the probes per rank, and one all-gather of the per-probe fields of
// the field registry. Every rank gets the single-process result.
#pragma once

#include "coupling/dist/communicator.h"
#include "coupling/engine/measurement.h"

namespace coupling {

/// Every rank calls this with the same model and probes: each measures a contiguous slice of
/// the probes (Jacobians, spectra, coupling matrices, trajectory metrics), and one all-gather
/// gives every rank the single-process result. The randomized spectra are seeded per probe, so
/// the numbers do not depend on the split. The speed-up needs at least as many probes as ranks.
/// A rank whose slice fails rethrows its error; the others throw, naming it (outcome.h).
Measurement measure(ModelAdapter& adapter, const at::Tensor& probe_inputs, const MeasurementOptions& options,
                    Communicator& communicator);

}  // namespace coupling
