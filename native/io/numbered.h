// Objects JavaScript names by number. A prototype method finds its C++ object through
// napi_unwrap, a private-symbol property lookup in V8's runtime (~600 instructions a call); the
// per-request and per-connection calls of a class instead go through a `calls` object of plain
// functions that take the object's number first and find it in a table (H2Session.calls,
// BatchReader.calls). Plain functions shared by every object also let each call site see one
// target, which TurboFan calls directly.
#pragma once
#include <napi.h>

#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include "io/js_util.h"

namespace strait {

// One class's objects by slot, for one thread (a worker's objects are its own: each class keeps
// a thread_local table). A slot is taken once the object is complete and given back by its
// destructor, which runs only once JavaScript holds the object no more, so a number JavaScript
// holds always finds its object. The number is the slot plus the slot's generation above bit 20:
// it never names a later object that reused the slot.
template <typename T>
class NumberTable {
 public:
  static constexpr uint64_t kSpan = uint64_t(1) << 20;

  // A slot for `o` (into *slot, for Release) and the number that names it.
  double Take(T* o, uint32_t* slot) {
    uint32_t s;
    if (!free_.empty()) {
      s = free_.back();
      free_.pop_back();
    } else {
      s = static_cast<uint32_t>(slots_.size());
      slots_.push_back(nullptr);
      gens_.push_back(0);
      numbers_.push_back(-1);
    }
    slots_[s] = o;
    numbers_[s] = static_cast<double>(s + kSpan * ++gens_[s]);
    *slot = s;
    return numbers_[s];
  }

  void Release(uint32_t s, const T* o) {
    if (s >= slots_.size() || slots_[s] != o) return;
    slots_[s] = nullptr;
    numbers_[s] = -1;
    free_.push_back(s);
  }

  // The object named `n`, or null. Integer arithmetic (std::fmod took ~140 instructions a call);
  // a number out of range or with a fraction finds nothing through the equality check.
  T* Find(double n) const {
    const uint64_t s = n >= 0 && n < 9007199254740992.0 ? static_cast<uint64_t>(n) & (kSpan - 1) : UINT64_MAX;
    return s < slots_.size() && numbers_[s] == n ? slots_[s] : nullptr;
  }

 private:
  std::vector<T*> slots_;
  std::vector<uint32_t> gens_;
  std::vector<double> numbers_;  // -1 for a free slot
  std::vector<uint32_t> free_;
};

// A function of a `calls` object: `M` of the object `find` gets for the first argument, given
// the rest (at most N of them read). Errors name the object ("H2Session.calls: no session has
// the number 5").
template <typename T, Napi::Value (T::*M)(const Args&), size_t N>
napi_value CallNumbered(napi_env env, napi_callback_info cb, T* (*find)(double), const char* calls, const char* noun) {
  Args args(env, cb, 1, N);
  try {
    double n = 0;
    if (napi_get_value_double(env, args.Raw(0), &n) != napi_ok)
      throw Napi::TypeError::New(env, std::string(calls) + ": the " + noun + " number must be a number");
    T* o = find(n);
    if (!o) {
      char b[32];
      snprintf(b, sizeof b, "%.17g", n);
      throw Napi::TypeError::New(env, std::string(calls) + ": no " + noun + " has the number " + b);
    }
    return (o->*M)(args);
  } catch (const Napi::Error& e) {
    e.ThrowAsJavaScriptException();
    return nullptr;
  }
}

// calls[name] = a plain function running `cb`.
inline void SetCall(Napi::Env env, Napi::Object calls, const char* name, napi_callback cb) {
  napi_value f;
  NAPI_THROW_IF_FAILED(env, napi_create_function(env, name, NAPI_AUTO_LENGTH, cb, nullptr, &f), );
  calls.Set(name, f);
}

}  // namespace strait
