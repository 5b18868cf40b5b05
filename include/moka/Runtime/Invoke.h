//===- Invoke.h - Calls into compiled functions through the C ABI -*- C++
//-*-===//
//
// The entry points the C ABI functions that `mokac` generates call. Each
// generated `NAME_f(const moka_tensor *, ..., moka_tensor *, ...)` stores its
// tensor pointers in an array and calls mokaInvoke with the signature of
// `@f` and a "packed" function that unpacks memref descriptors and calls the
// compiled body.
//
//===----------------------------------------------------------------------===//

#ifndef MOKA_RUNTIME_INVOKE_H
#define MOKA_RUNTIME_INVOKE_H

#include <cstdint>

extern "C" {

/// Calls a compiled function. `signature` is the function's name and tensor
/// types, `name(f32[?x768],i64[4])->(f32[?x768])`; `tensors` holds the
/// moka_tensor pointers of the arguments followed by those of the results.
/// `packed` receives the address of the result descriptors (when there are
/// results) followed by the addresses of the argument descriptors. Validates
/// every argument, runs the function, and hands the results to the caller;
/// returns a moka_status.
int32_t mokaInvoke(const char *signature, void **tensors,
                   void (*packed)(void **));

/// Called by compiled code when a run-time check fails: unwinds to the
/// mokaInvoke of this thread, which returns MOKA_ERROR_RUNTIME_CHECK with
/// `message`. Outside such a call (a check on an OpenMP worker thread), it
/// prints the message and aborts.
[[noreturn]] void mokaCheckFailed(const char *message);

/// Whether `ptr` is a live block of the caching allocator.
bool mokaAllocOwns(void *ptr);
}

#endif // MOKA_RUNTIME_INVOKE_H
