// Umbrella header of veil's RNS-CKKS implementation.
#pragma once

#include "veil/he/ciphertext.hpp"
#include "veil/he/context.hpp"
#include "veil/he/encoder.hpp"
#include "veil/he/encryptor.hpp"
#include "veil/he/evaluator.hpp"
#include "veil/he/key_set.hpp"
#include "veil/he/keys.hpp"
#include "veil/he/precision.hpp"
#include "veil/he/serialization.hpp"
