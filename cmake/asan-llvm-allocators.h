// Force-included into every moka source of the sanitizer build. LLVM's
// BumpPtrAllocator poisons its slabs with ASan when the code that inlines it
// is instrumented; moka's instrumented copies and libLLVM/libMLIR's
// uninstrumented copies then disagree about what is poisoned, and ordinary
// allocations read as use-after-poison. Debian's LLVM is not instrumented,
// so moka leaves the manual poisoning off: ASan still checks every access
// of moka's code against malloc's redzones.
#include <sanitizer/asan_interface.h>
#define __asan_poison_memory_region(p, size) ((void)(p), (void)(size))
#define __asan_unpoison_memory_region(p, size) ((void)(p), (void)(size))
