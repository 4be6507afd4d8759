#include <gtest/gtest.h>

#include "veil/core/error.hpp"
#include "veil/split/scheme.hpp"

namespace veil::split {
namespace {

TEST(SchemeNames, EveryKindParsesBackAndUnknownNamesAreRefused) {
  for (SchemeKind k : {SchemeKind::Plain, SchemeKind::ShadowNet, SchemeKind::Slalom,
                       SchemeKind::DarkNight, SchemeKind::Hardened})
    EXPECT_EQ(parse_scheme(scheme_name(k)), k);
  EXPECT_THROW(parse_scheme("shadow"), InvalidArgument);
  EXPECT_THROW(parse_scheme(""), InvalidArgument);
}

}  // namespace
}  // namespace veil::split
