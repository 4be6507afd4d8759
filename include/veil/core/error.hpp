// The typed exception hierarchy of veil. Every error that reaches the CLI is one of these and is
// printed as a single line; nothing from outside the process is ever checked with assert().
#pragma once

#include <stdexcept>
#include <string>

namespace veil {

// Base of every veil error.
class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// A caller passed a value outside what the API or a CLI option accepts.
class InvalidArgument : public Error {
 public:
  using Error::Error;
};

// Bytes from outside the process (a model, key, dataset, ciphertext, frame) do not parse.
class MalformedInput : public Error {
 public:
  using Error::Error;
};

// Well-formed input that veil does not support (an ONNX op, an attribute value, a dtype).
class Unsupported : public Error {
 public:
  using Error::Error;
};

// Authentication failed, a fingerprint or hash does not match, a key belongs to another model.
class IntegrityError : public Error {
 public:
  using Error::Error;
};

// A peer broke the protocol: wrong version, unexpected frame, disconnect, timeout.
class ProtocolError : public Error {
 public:
  using Error::Error;
};

// The operating system refused a file or socket operation.
class IoError : public Error {
 public:
  using Error::Error;
};

}  // namespace veil
