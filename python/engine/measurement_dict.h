// A Measurement as plain Python values for coupling.measure's xarray.Dataset: every field the
// HDF5 log holds, under the log's names (NAME and NAME_avg), with its axes, units, description and
// float64 values, and the coordinates of every axis (docs/hdf5-schema.md).
#pragma once

#include "coupling/engine/measurement.h"

#include <pybind11/pybind11.h>

namespace coupling::python {

/// {"variables": {name: (axes, tensor, units, description)}, "coordinates": {axis: values},
///  "labels": {axis: [label, ...]}, "attributes": {...}}; the attributes include the headline line
///  and its scalars (headline_k, headline_m, headline_m_null, headline_lss, headline_norm_growth_rate).
pybind11::dict measurement_dict(const Measurement& m);

}  // namespace coupling::python
