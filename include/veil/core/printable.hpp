// Strings from outside (model node and tensor names, metadata, key files, configs) shown on a
// terminal or in a log: escaped so that they cannot add lines or drive the terminal.
#pragma once

#include <string>
#include <string_view>

namespace veil {

// `s` with every byte a terminal would act on escaped: \n, \r and \t as such, other C0 controls,
// DEL, C1 controls (U+0080..U+009F, which some terminals obey like ESC sequences), the Unicode
// bidirectional overrides and isolates (U+202A..U+202E, U+2066..U+2069: they reorder what the
// reader sees) and every byte that is not part of well-formed UTF-8 as \xNN. Printable ASCII and
// well-formed UTF-8 otherwise pass unchanged. A backslash is not doubled: the result is for
// people, not to be parsed back, and a literal "\x1b" in a name stays harmless text.
std::string printable(std::string_view s);

}  // namespace veil
