#include "veil/split/scheme.hpp"

#include "veil/core/error.hpp"
#include "veil/split/darknight.hpp"
#include "veil/split/hardened.hpp"
#include "veil/split/plain.hpp"
#include "veil/split/shadownet.hpp"
#include "veil/split/slalom.hpp"

namespace veil::split {

const char* scheme_name(SchemeKind kind) {
  switch (kind) {
    case SchemeKind::Plain:
      return "plain";
    case SchemeKind::ShadowNet:
      return "shadownet";
    case SchemeKind::Slalom:
      return "slalom";
    case SchemeKind::DarkNight:
      return "darknight";
    case SchemeKind::Hardened:
      return "hardened";
  }
  return "?";
}

SchemeKind parse_scheme(const std::string& name) {
  for (SchemeKind k : {SchemeKind::Plain, SchemeKind::ShadowNet, SchemeKind::Slalom,
                       SchemeKind::DarkNight, SchemeKind::Hardened})
    if (name == scheme_name(k)) return k;
  throw InvalidArgument("split: unknown scheme '" + name +
                        "' (plain, shadownet, slalom, darknight or hardened)");
}

std::unique_ptr<LayerScheme> make_layer_scheme(SchemeKind kind, const LinearLayer& layer,
                                               const SchemeOptions& options) {
  switch (kind) {
    case SchemeKind::Plain:
      return make_plain(layer, options);
    case SchemeKind::ShadowNet:
      return make_shadownet(layer, options);
    case SchemeKind::Slalom:
      return make_slalom(layer, options);
    case SchemeKind::DarkNight:
      return make_darknight(layer, options);
    case SchemeKind::Hardened:
      return make_hardened(layer, options);
  }
  throw InvalidArgument("split: unknown scheme");
}

}  // namespace veil::split
