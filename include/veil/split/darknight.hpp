// DarkNight (Hashemi et al., MICRO 2021): a group of inputs and a noise vector mixed over Z_P by a
// secret invertible matrix; a redundant coded query checks integrity.
#pragma once

#include <cstdint>
#include <memory>

#include "veil/core/random.hpp"
#include "veil/split/field_matrix.hpp"
#include "veil/split/scheme.hpp"

namespace veil::split {

// A batch is mixed in groups of K <= 8 images (each group with its own matrix and noise); each of
// a group's K+1 (+ verify_rounds) encodings is its own payload [1, input_shape...], groups in
// order. The accelerator gets the quantised weights in the clear: DarkNight hides the inputs,
// not the model, and only from accelerators that do not collude (docs/SPLIT.md).
std::unique_ptr<LayerScheme> make_darknight(const LinearLayer& layer, const SchemeOptions& options);

// A secret mixing matrix for k images and one noise vector: uniform among the invertible
// (k+1) x (k+1) matrices over Z_P whose last column (each encoding's noise coefficient) has no
// zero, so that every encoding on its own is uniformly distributed.
FieldMatrix darknight_mixing_matrix(AesCtrPrg& prg, int64_t k);

}  // namespace veil::split
