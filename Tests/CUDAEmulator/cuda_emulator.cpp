// A CPU emulator of the NVIDIA libraries ifcn loads at run time (libcuda.so.1, libnvrtc.so.13,
// libcudnn.so.9, libnccl.so.2), for testing the whole CUDA backend where no GPU is: the Swift code, the C
// shim (Sources/CCUDA) and every one of ifcn's own CUDA kernels run for real, on the host.
//
// - Driver API: device memory is host memory, each allocation ending at a PROT_NONE guard page, so a
//   kernel or copy that runs past the end of a buffer stops the process with SIGSEGV (or, with
//   IFCN_CUDA_EMULATOR_GUARD=front, starting after one, for accesses below the start); streams are
//   synchronous, but for a stream that has carried nothing but host-to-device copies (a copy engine's, as the
//   CUDA backend's uploads ahead): its copies land only once ordered before the work that reads them (below,
//   "copy streams"); events read the host clock. The device is "ifcn CUDA emulator (CPU)", sm_90, 16 GiB;
//   IFCN_CUDA_EMULATOR_DEVICES=N shows N of them, so ranks can each have their own.
// - Kernels: the very source ifcn hands to NVRTC, compiled as host C++ with cuda_builtins.h and
//   registered by name (scripts/cuda_emulator.sh generates the table). cuLaunchKernel runs the grid block
//   by block; the threads of a block run on fibers (own stacks, switched in user space) that switch at
//   __syncthreads(), in a fixed order, so a launch is deterministic. A kernel that never synchronises
//   (learned from its first block) runs its threads as plain calls.
// - NVRTC: accepts only the source the emulator was built from (anything else is a compile error
//   telling to rebuild the emulator); the "cubin" is a tag that only this emulator's driver loads.
// - cuDNN: the Nd convolution API on the descriptors ifcn sets (any strides, NCHW or NHWC filters,
//   float or bfloat16 data), computed directly with double sums; float data under CUDNN_DEFAULT_MATH
//   or CUDNN_TENSOR_OP_MATH is rounded to TF32 first, as the tensor cores would. Two algorithms per
//   direction: 0 deterministic without workspace, 1 "non-deterministic" needing a workspace of the
//   output's size (same arithmetic, reported at half its measured time, so that a choice of the fastest
//   takes it); a call given less workspace than its algorithm needs fails, as does one under another math
//   type than the algorithm was listed with (algorithm_math). Find...Ex writes the output
//   (as cuDNN does) and reports measured times. Two variables stage what a GPU meets at the paper's size
//   (algorithm_workspace below): a deterministic algorithm needing more than ifcn's first workspace, or none.
// - NCCL: float32 averages between processes of one host, through files (end of this file).
// - IFCN_CUDA_EMULATOR_COMPUTE=edges runs the paper's sizes in seconds, without their arithmetic: every call is
//   checked as always (launch shapes, parameters, copy and operand ranges, descriptors, workspaces, the
//   asynchronous copies' rules), but a kernel runs only the blocks at the corners of its grid (the first and
//   last block of each axis; a grid-stride loop's other blocks, which may hold a buffer's end, do not run),
//   cuDNN's convolutions, fills and device-to-device copies move no data, and fresh device memory is left zero
//   (untouched, so it costs no host memory). Results are meaningless; what it shows is that every call of a step
//   at that size is valid, and what it allocates.
//
// Not emulated: NCCL's transport and reduction order, concurrency between streams beyond the copy streams' late
// landing (work queued on another stream before a copy runs at once, so a copy that overwrites what that work
// still reads is not caught), real timings, cuDNN's own algorithms and rounding.
#include "cuda_builtins.h"
#include "kernel_table.h"

#include <sys/mman.h>
#include <ucontext.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

ifcn_emulator_dim3 ifcn_emulator_block_index, ifcn_emulator_thread_index, ifcn_emulator_grid_size,
    ifcn_emulator_block_size;

// From the generated kernel table (scripts/cuda_emulator.sh).
extern const ifcn_emulator_kernel ifcn_emulator_kernels[];
extern const int ifcn_emulator_kernel_count;
extern const char ifcn_emulator_kernel_source[];

namespace {

[[noreturn]] void fatal(const std::string &message) {
    std::fprintf(stderr, "ifcn CUDA emulator: %s\n", message.c_str());
    std::fflush(stderr);
    std::abort();
}

std::mutex big_lock;  // every entry point: the emulated device runs one call at a time

// ------------------------------------------------------------------ memory with guard pages

struct Allocation {
    void *mapping;
    size_t mapped;
    size_t bytes;
};
std::map<uintptr_t, Allocation> allocations;  // by the address handed out
size_t allocated_bytes = 0;
const size_t total_bytes = size_t(16) << 30;

size_t page_size() {
    static const size_t p = size_t(sysconf(_SC_PAGESIZE));
    return p;
}

// IFCN_CUDA_EMULATOR_GUARD=front puts the guard page before each buffer (which then starts on a page), to
// catch accesses below index 0; by default it follows the buffer (which ends within 15 bytes of it).
bool guard_in_front() {
    static const bool front = [] {
        const char *v = std::getenv("IFCN_CUDA_EMULATOR_GUARD");
        return v && std::strcmp(v, "front") == 0;
    }();
    return front;
}

// IFCN_CUDA_EMULATOR_COMPUTE=edges (see the top of this file); anything else, or unset, computes everything.
bool edges_only() {
    static const bool edges = [] {
        const char *v = std::getenv("IFCN_CUDA_EMULATOR_COMPUTE");
        if (v && std::strcmp(v, "edges") != 0 && std::strcmp(v, "all") != 0)
            fatal(std::string("IFCN_CUDA_EMULATOR_COMPUTE=") + v + ": expected edges or all");
        return v && std::strcmp(v, "edges") == 0;
    }();
    return edges;
}

void *guarded_alloc(size_t bytes, Allocation *out) {
    const size_t page = page_size();
    const size_t rounded = (std::max<size_t>(bytes, 1) + 15) / 16 * 16;
    const size_t body = (rounded + page - 1) / page * page;
    const size_t mapped = body + page;
    void *m = mmap(nullptr, mapped, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (m == MAP_FAILED) return nullptr;
    char *base = static_cast<char *>(m);
    char *p;
    if (guard_in_front()) {
        mprotect(base, page, PROT_NONE);
        p = base + page;
    } else {
        mprotect(base + body, page, PROT_NONE);
        p = base + body - rounded;
    }
    // Not zero: code that reads memory it never wrote sees all bits set, a NaN as float32, bfloat16 or double
    // (-1 as an integer), which spreads into every result it touches. Large regions (cuDNN workspaces of
    // gigabytes) stay untouched, so they cost no host memory.
    if (rounded <= (size_t(64) << 20) && !edges_only()) std::memset(p, 0xFF, rounded);
    *out = Allocation{m, mapped, bytes};
    return p;
}

// ------------------------------------------------------------------ kernels on fibers

// A fiber switch saves what the C ABI asks a callee to keep. On x86-64 that is six registers, the stack
// pointer and the SSE and x87 control words (a few nanoseconds); elsewhere ucontext, whose switches also
// save the signal mask (a system call each).
#if defined(__x86_64__)
extern "C" void ifcn_emulator_switch(void **save_stack, void *load_stack);
asm(R"(
    .text
    .globl ifcn_emulator_switch
    .hidden ifcn_emulator_switch
    .type ifcn_emulator_switch, @function
ifcn_emulator_switch:
    pushq %rbp
    pushq %rbx
    pushq %r12
    pushq %r13
    pushq %r14
    pushq %r15
    subq $8, %rsp
    stmxcsr (%rsp)
    fnstcw 4(%rsp)
    movq %rsp, (%rdi)
    movq %rsi, %rsp
    ldmxcsr (%rsp)
    fldcw 4(%rsp)
    addq $8, %rsp
    popq %r15
    popq %r14
    popq %r13
    popq %r12
    popq %rbx
    popq %rbp
    ret
    .size ifcn_emulator_switch, .-ifcn_emulator_switch
)");
#endif

struct Fiber {
    char *stack;
    bool done;
    ifcn_emulator_dim3 thread;
#if defined(__x86_64__)
    void *saved;  // its stack pointer while switched out
#else
    ucontext_t context;
#endif
};

Fiber *current_fiber = nullptr;
bool synchronised = false;  // whether a thread of the running block called __syncthreads
void (*running_launch)(void **) = nullptr;
void **running_params = nullptr;
const size_t fiber_stack_bytes = 256 * 1024;
std::vector<Fiber> fibers;
#if defined(__x86_64__)
void *scheduler_saved;
#else
ucontext_t scheduler_context;
#endif

void to_scheduler(Fiber &f) {
#if defined(__x86_64__)
    ifcn_emulator_switch(&f.saved, scheduler_saved);
#else
    swapcontext(&f.context, &scheduler_context);
#endif
}

void to_fiber(Fiber &f) {
#if defined(__x86_64__)
    ifcn_emulator_switch(&scheduler_saved, f.saved);
#else
    swapcontext(&scheduler_context, &f.context);
#endif
}

void fiber_main() {
    running_launch(running_params);
    current_fiber->done = true;
    to_scheduler(*current_fiber);
    fatal("a finished fiber was resumed");
}

// Makes `f` start fiber_main on its own stack at its next switch.
void restart(Fiber &f) {
#if defined(__x86_64__)
    // From the top (16-byte aligned): a zero return address for fiber_main, fiber_main's address for the
    // switch's `ret`, six zero registers, then the control words (MXCSR 0x1f80, x87 0x037f: the defaults).
    uintptr_t top = (uintptr_t(f.stack) + fiber_stack_bytes) & ~uintptr_t(15);
    auto *words = reinterpret_cast<uint64_t *>(top);
    words[-1] = 0;
    words[-2] = uint64_t(uintptr_t(&fiber_main));
    for (int i = 3; i <= 8; i++) words[-i] = 0;
    words[-9] = uint64_t(0x1f80) | (uint64_t(0x037f) << 32);
    f.saved = &words[-9];
#else
    getcontext(&f.context);
    f.context.uc_stack.ss_sp = f.stack;
    f.context.uc_stack.ss_size = fiber_stack_bytes;
    f.context.uc_link = nullptr;
    makecontext(&f.context, fiber_main, 0);
#endif
}

struct KernelEntry {
    const ifcn_emulator_kernel *kernel;
    int synchronises;  // -1 unknown, 0 never (threads run as plain calls), 1 yes (fibers)
};
std::map<std::string, KernelEntry> kernel_table;
const char *running_kernel = "";

void run_block_on_fibers(const ifcn_emulator_dim3 &block) {
    const unsigned threads = block.x * block.y * block.z;
    if (fibers.size() < threads) {
        const size_t old = fibers.size();
        fibers.resize(threads);
        for (size_t i = old; i < threads; i++) {
            fibers[i].stack = static_cast<char *>(std::malloc(fiber_stack_bytes));
            if (!fibers[i].stack) fatal("out of host memory for fiber stacks");
        }
    }
    unsigned t = 0;
    for (unsigned z = 0; z < block.z; z++)
        for (unsigned y = 0; y < block.y; y++)
            for (unsigned x = 0; x < block.x; x++, t++) {
                Fiber &f = fibers[t];
                f.done = false;
                f.thread = {x, y, z};
                restart(f);
            }
    // Round robin: each round runs every live thread up to its next barrier (or its end), so no
    // thread passes a barrier before every other thread has reached it.
    for (bool live = true; live;) {
        live = false;
        for (unsigned i = 0; i < threads; i++) {
            Fiber &f = fibers[i];
            if (f.done) continue;
            current_fiber = &f;
            ifcn_emulator_thread_index = f.thread;
            to_fiber(f);
            if (!f.done) live = true;
        }
    }
    current_fiber = nullptr;
}

bool run_block_plainly(const ifcn_emulator_dim3 &block) {
    for (unsigned z = 0; z < block.z; z++)
        for (unsigned y = 0; y < block.y; y++)
            for (unsigned x = 0; x < block.x; x++) {
                ifcn_emulator_thread_index = {x, y, z};
                running_launch(running_params);
            }
    return true;
}

}  // namespace

void ifcn_emulator_misaligned(const void *p, unsigned bytes) {
    char address[32];
    std::snprintf(address, sizeof address, "%p", p);
    fatal(std::string("kernel ") + running_kernel + ": a " + std::to_string(bytes) + "-byte access at " + address +
          ", not aligned to " + std::to_string(bytes) + " bytes (CUDA_ERROR_MISALIGNED_ADDRESS on a GPU)");
}

void ifcn_emulator_syncthreads() {
    if (!current_fiber)
        fatal(std::string("kernel ") + running_kernel +
              " called __syncthreads() in a block after its first block ran without any: the emulator runs such "
              "kernels without fibers");
    synchronised = true;
    to_scheduler(*current_fiber);
}

// ------------------------------------------------------------------ driver API

extern "C" {
typedef int CUresult;
typedef unsigned long long CUdeviceptr;
enum {
    CUDA_SUCCESS = 0,
    CUDA_ERROR_INVALID_VALUE = 1,
    CUDA_ERROR_OUT_OF_MEMORY = 2,
    CUDA_ERROR_INVALID_IMAGE = 200,
    CUDA_ERROR_INVALID_DEVICE = 101,
    CUDA_ERROR_NOT_FOUND = 500,
    CUDA_ERROR_INVALID_HANDLE = 400,
};

static const char emulated_cubin_tag[] = "ifcn-cuda-emulator-cubin";

CUresult cuGetErrorString(CUresult code, const char **s) {
    switch (code) {
    case CUDA_SUCCESS: *s = "no error"; break;
    case CUDA_ERROR_INVALID_VALUE: *s = "invalid argument (emulator)"; break;
    case CUDA_ERROR_OUT_OF_MEMORY: *s = "out of memory (emulator)"; break;
    case CUDA_ERROR_INVALID_IMAGE: *s = "device kernel image is invalid (emulator: not its own cubin)"; break;
    case CUDA_ERROR_INVALID_DEVICE: *s = "invalid device ordinal (emulator)"; break;
    case CUDA_ERROR_INVALID_HANDLE: *s = "invalid resource handle (emulator)"; break;
    case CUDA_ERROR_NOT_FOUND: *s = "named symbol not found (emulator)"; break;
    default: *s = nullptr; return CUDA_ERROR_INVALID_VALUE;
    }
    return CUDA_SUCCESS;
}

CUresult cuInit(unsigned) {
    std::lock_guard<std::mutex> g(big_lock);
    if (kernel_table.empty()) {
        for (int i = 0; i < ifcn_emulator_kernel_count; i++)
            kernel_table[ifcn_emulator_kernels[i].name] = KernelEntry{&ifcn_emulator_kernels[i], -1};
    }
    return CUDA_SUCCESS;
}
CUresult cuDriverGetVersion(int *v) { *v = 13000; return CUDA_SUCCESS; }
// IFCN_CUDA_EMULATOR_DEVICES=N (1 to 8, default 1) GPUs, told apart by their PCI bus (the ordinal): ranks on
// different emulated GPUs may use NCCL. They share the host's memory and the 16 GiB count.
static int device_count() {
    static const int n = [] {
        const char *v = std::getenv("IFCN_CUDA_EMULATOR_DEVICES");
        const int k = v ? std::atoi(v) : 1;
        return k >= 1 && k <= 8 ? k : 1;
    }();
    return n;
}
CUresult cuDeviceGetCount(int *c) { *c = device_count(); return CUDA_SUCCESS; }
CUresult cuDeviceGet(int *d, int ordinal) {
    if (ordinal < 0 || ordinal >= device_count()) return CUDA_ERROR_INVALID_DEVICE;
    *d = ordinal;
    return CUDA_SUCCESS;
}
CUresult cuDeviceGetName(char *name, int len, int) {
    std::snprintf(name, size_t(len), "ifcn CUDA emulator (CPU)");
    return CUDA_SUCCESS;
}
CUresult cuDeviceGetAttribute(int *value, int attribute, int device) {
    switch (attribute) {
    case 16: *value = 1; break;        // multiprocessors
    case 75: *value = 9; break;        // compute capability major
    case 76: *value = 0; break;        // minor
    case 33: *value = device; break;   // PCI bus
    default: *value = 0; break;        // PCI domain, device
    }
    return CUDA_SUCCESS;
}
CUresult cuDeviceTotalMem_v2(size_t *bytes, int) { *bytes = total_bytes; return CUDA_SUCCESS; }
static int primary_context_tags[8];
CUresult cuDevicePrimaryCtxRetain(void **context, int device) {
    if (device < 0 || device >= device_count()) return CUDA_ERROR_INVALID_DEVICE;
    *context = &primary_context_tags[device];
    return CUDA_SUCCESS;
}
CUresult cuCtxSetCurrent(void *context) {
    const bool known = context >= static_cast<void *>(&primary_context_tags[0]) &&
                       context < static_cast<void *>(&primary_context_tags[device_count()]);
    return known || context == nullptr ? CUDA_SUCCESS : CUDA_ERROR_INVALID_HANDLE;
}
CUresult cuMemGetInfo_v2(size_t *free_bytes, size_t *total) {
    std::lock_guard<std::mutex> g(big_lock);
    *total = total_bytes;
    *free_bytes = total_bytes - std::min(allocated_bytes, total_bytes);
    return CUDA_SUCCESS;
}
CUresult cuMemAlloc_v2(CUdeviceptr *p, size_t bytes) {
    std::lock_guard<std::mutex> g(big_lock);
    if (bytes == 0) return CUDA_ERROR_INVALID_VALUE;
    if (allocated_bytes + bytes > total_bytes) return CUDA_ERROR_OUT_OF_MEMORY;
    Allocation a;
    void *q = guarded_alloc(bytes, &a);
    if (!q) return CUDA_ERROR_OUT_OF_MEMORY;
    allocations[uintptr_t(q)] = a;
    allocated_bytes += bytes;
    *p = CUdeviceptr(uintptr_t(q));
    return CUDA_SUCCESS;
}
CUresult cuMemFree_v2(CUdeviceptr p) {
    std::lock_guard<std::mutex> g(big_lock);
    auto it = allocations.find(uintptr_t(p));
    if (it == allocations.end()) return CUDA_ERROR_INVALID_VALUE;
    munmap(it->second.mapping, it->second.mapped);
    allocated_bytes -= it->second.bytes;
    allocations.erase(it);
    return CUDA_SUCCESS;
}
// Copies between the device and pinned host memory are asynchronous on a GPU: the host may touch that memory
// again only once a stream or event synchronisation covers the copy. The emulator runs everything at once, so it
// checks the rule instead. Each such copy gets a number in the stream's order of work; an event records the
// number reached; cuEventSynchronize and cuStreamSynchronize complete the copies up to theirs.
// - Host to device: the source's contents are remembered, and every later call checks that the host has not
//   changed them before the copy was waited for (it would have sent the new data, or half of it).
// - Device to host: the destination holds all bits set (a NaN) until the copy is waited for, and only then the
//   data, taken when the copy was queued; a host that reads too early reads NaN.
std::map<uintptr_t, size_t> pinned_blocks;  // cuMemAllocHost's blocks: start -> bytes
unsigned long long work_sequence = 0;       // numbers stream-ordered operations
struct PendingUpload { const unsigned char *source; std::vector<unsigned char> sent; unsigned long long sequence; };
struct PendingDownload { unsigned char *destination; std::vector<unsigned char> data; unsigned long long sequence; };
std::vector<PendingUpload> pending_uploads;
std::vector<PendingDownload> pending_downloads;

static bool is_pinned(const void *p, size_t bytes) {
    auto it = pinned_blocks.upper_bound(uintptr_t(p));
    if (it == pinned_blocks.begin()) return false;
    --it;
    return uintptr_t(p) >= it->first && uintptr_t(p) + bytes <= it->first + it->second;
}
// Called at every entry point that takes the lock: a pinned source changed under a pending upload is fatal.
static void check_pending_uploads(const char *call) {
    for (const auto &u : pending_uploads)
        if (std::memcmp(u.source, u.sent.data(), u.sent.size()) != 0)
            fatal(std::string(call) + ": pinned host memory at " + std::to_string(uintptr_t(u.source)) + " (" +
                  std::to_string(u.sent.size()) + " bytes) was written while its cuMemcpyHtoDAsync had not been " +
                  "waited for (no stream or event synchronisation since)");
}
static void complete_through(unsigned long long sequence, const char *call) {
    check_pending_uploads(call);
    std::vector<PendingUpload> uploads;
    for (auto &u : pending_uploads) if (u.sequence > sequence) uploads.push_back(std::move(u));
    pending_uploads.swap(uploads);
    std::vector<PendingDownload> downloads;
    for (auto &d : pending_downloads) {
        if (d.sequence <= sequence) std::memcpy(d.destination, d.data.data(), d.data.size());
        else downloads.push_back(std::move(d));
    }
    pending_downloads.swap(downloads);
}
static bool overlaps_pending(const void *p, size_t bytes) {
    const uintptr_t lo = uintptr_t(p), hi = lo + bytes;
    for (const auto &u : pending_uploads)
        if (lo < uintptr_t(u.source) + u.sent.size() && uintptr_t(u.source) < hi) return true;
    for (const auto &d : pending_downloads)
        if (lo < uintptr_t(d.destination) + d.data.size() && uintptr_t(d.destination) < hi) return true;
    return false;
}

CUresult cuMemAllocHost_v2(void **p, size_t bytes) {
    std::lock_guard<std::mutex> g(big_lock);
    *p = std::malloc(std::max<size_t>(bytes, 1));
    if (!*p) return CUDA_ERROR_OUT_OF_MEMORY;
    pinned_blocks[uintptr_t(*p)] = std::max<size_t>(bytes, 1);
    return CUDA_SUCCESS;
}
CUresult cuMemFreeHost(void *p) {
    std::lock_guard<std::mutex> g(big_lock);
    check_pending_uploads("cuMemFreeHost");
    auto it = pinned_blocks.find(uintptr_t(p));
    if (it == pinned_blocks.end()) return CUDA_ERROR_INVALID_VALUE;
    if (overlaps_pending(p, it->second)) fatal("cuMemFreeHost: a copy to or from this pinned memory was not waited for");
    pinned_blocks.erase(it);
    std::free(p);
    return CUDA_SUCCESS;
}

// A copy or fill must lie inside one allocation.
static void check_range(CUdeviceptr p, size_t bytes, const char *call) {
    auto it = allocations.upper_bound(uintptr_t(p));
    if (it == allocations.begin()) fatal(std::string(call) + ": address not in device memory");
    --it;
    if (uintptr_t(p) + bytes > it->first + it->second.bytes)
        fatal(std::string(call) + ": " + std::to_string(bytes) + " bytes at offset " +
              std::to_string(uintptr_t(p) - it->first) + " run past an allocation of " +
              std::to_string(it->second.bytes) + " bytes");
}
// Copy streams: on a GPU a copy queued on another stream than the kernels' may land in device memory at any time
// until the kernels' stream waits for it (cuStreamWaitEvent on an event recorded after it) or the host
// synchronises with it. A stream that has carried only host-to-device copies so far is taken for a copy engine's:
// each of its copies fills the destination with all bits set (NaN) when queued and writes the data only when such
// a wait or synchronisation covers it, so work that reads the destination without waiting reads NaN. Any other
// work queued on such a stream lands its copies first and ends its copy-only status.
struct emulated_stream {
    bool copies_only = true;
    struct Deferred { unsigned char *destination; std::vector<unsigned char> data; unsigned long long sequence; };
    std::vector<Deferred> deferred;
};
static void land_copies(void *stream, unsigned long long through) {
    if (!stream) return;
    auto *s = static_cast<emulated_stream *>(stream);
    std::vector<emulated_stream::Deferred> later;
    for (auto &d : s->deferred) {
        if (d.sequence <= through) std::memcpy(d.destination, d.data.data(), d.data.size());
        else later.push_back(std::move(d));
    }
    s->deferred.swap(later);
}
// Work other than a host-to-device copy queued on `stream`.
static void queue_work(void *stream) {
    if (!stream) return;
    land_copies(stream, ~0ull);
    static_cast<emulated_stream *>(stream)->copies_only = false;
}
CUresult cuMemcpyHtoDAsync_v2(CUdeviceptr dst, const void *src, size_t bytes, void *stream) {
    std::lock_guard<std::mutex> g(big_lock);
    check_pending_uploads("cuMemcpyHtoDAsync");
    check_range(dst, bytes, "cuMemcpyHtoDAsync");
    auto *copies = static_cast<emulated_stream *>(stream);
    work_sequence++;
    if (copies && copies->copies_only) {
        const auto *p = static_cast<const unsigned char *>(src);
        copies->deferred.push_back({reinterpret_cast<unsigned char *>(uintptr_t(dst)),
                                    std::vector<unsigned char>(p, p + bytes), work_sequence});
        std::memset(reinterpret_cast<void *>(uintptr_t(dst)), 0xFF, bytes);
    } else {
        std::memcpy(reinterpret_cast<void *>(uintptr_t(dst)), src, bytes);
    }
    if (is_pinned(src, bytes)) {
        const auto *p = static_cast<const unsigned char *>(src);
        pending_uploads.push_back({p, std::vector<unsigned char>(p, p + bytes), work_sequence});
    }
    return CUDA_SUCCESS;
}
CUresult cuMemcpyDtoHAsync_v2(void *dst, CUdeviceptr src, size_t bytes, void *stream) {
    std::lock_guard<std::mutex> g(big_lock);
    check_pending_uploads("cuMemcpyDtoHAsync");
    queue_work(stream);
    check_range(src, bytes, "cuMemcpyDtoHAsync");
    work_sequence++;
    if (is_pinned(dst, bytes)) {
        const auto *p = reinterpret_cast<const unsigned char *>(uintptr_t(src));
        pending_downloads.push_back({static_cast<unsigned char *>(dst), std::vector<unsigned char>(p, p + bytes), work_sequence});
        std::memset(dst, 0xFF, bytes);
    } else {
        std::memcpy(dst, reinterpret_cast<const void *>(uintptr_t(src)), bytes);
    }
    return CUDA_SUCCESS;
}
CUresult cuMemcpyDtoDAsync_v2(CUdeviceptr dst, CUdeviceptr src, size_t bytes, void *stream) {
    std::lock_guard<std::mutex> g(big_lock);
    check_pending_uploads("cuMemcpyDtoDAsync");
    queue_work(stream);
    check_range(dst, bytes, "cuMemcpyDtoDAsync (destination)");
    check_range(src, bytes, "cuMemcpyDtoDAsync (source)");
    if (!edges_only())
        std::memmove(reinterpret_cast<void *>(uintptr_t(dst)), reinterpret_cast<const void *>(uintptr_t(src)), bytes);
    return CUDA_SUCCESS;
}
CUresult cuMemsetD32Async(CUdeviceptr dst, unsigned value, size_t count, void *stream) {
    std::lock_guard<std::mutex> g(big_lock);
    check_pending_uploads("cuMemsetD32Async");
    queue_work(stream);
    check_range(dst, count * 4, "cuMemsetD32Async");
    unsigned *p = reinterpret_cast<unsigned *>(uintptr_t(dst));
    if (!edges_only())
        for (size_t i = 0; i < count; i++) p[i] = value;
    return CUDA_SUCCESS;
}
CUresult cuStreamCreate(void **stream, unsigned) {
    std::lock_guard<std::mutex> g(big_lock);
    *stream = new emulated_stream;
    return CUDA_SUCCESS;
}
CUresult cuStreamSynchronize(void *stream) {
    std::lock_guard<std::mutex> g(big_lock);
    land_copies(stream, ~0ull);
    complete_through(work_sequence, "cuStreamSynchronize");
    return CUDA_SUCCESS;
}

struct emulated_event {
    std::chrono::steady_clock::time_point at;
    bool recorded;
    unsigned long long sequence;  // the stream's work it follows
    void *stream;                 // the stream of its last record
};
CUresult cuEventCreate(void **event, unsigned) {
    *event = new emulated_event{{}, false, 0, nullptr};
    return CUDA_SUCCESS;
}
CUresult cuEventRecord(void *event, void *stream) {
    std::lock_guard<std::mutex> g(big_lock);
    check_pending_uploads("cuEventRecord");
    auto *e = static_cast<emulated_event *>(event);
    e->at = std::chrono::steady_clock::now();
    e->recorded = true;
    e->sequence = work_sequence;
    e->stream = stream;
    return CUDA_SUCCESS;
}
// `stream` waits for the work before the event's last record: the copies that work holds land now.
CUresult cuStreamWaitEvent(void *, void *event, unsigned flags) {
    std::lock_guard<std::mutex> g(big_lock);
    if (flags != 0) return CUDA_ERROR_INVALID_VALUE;
    auto *e = static_cast<emulated_event *>(event);
    if (e->recorded) land_copies(e->stream, e->sequence);
    return CUDA_SUCCESS;
}
CUresult cuEventSynchronize(void *event) {
    std::lock_guard<std::mutex> g(big_lock);
    auto *e = static_cast<emulated_event *>(event);
    if (!e->recorded) return CUDA_SUCCESS;  // as the driver: an event never recorded is complete
    land_copies(e->stream, e->sequence);
    complete_through(e->sequence, "cuEventSynchronize");
    return CUDA_SUCCESS;
}
CUresult cuEventDestroy_v2(void *event) { delete static_cast<emulated_event *>(event); return CUDA_SUCCESS; }
CUresult cuEventElapsedTime_v2(float *ms, void *start, void *end) {
    auto *a = static_cast<emulated_event *>(start), *b = static_cast<emulated_event *>(end);
    if (!a->recorded || !b->recorded) return CUDA_ERROR_INVALID_HANDLE;
    *ms = std::chrono::duration<float, std::milli>(b->at - a->at).count();
    return CUDA_SUCCESS;
}

static int module_tag;
CUresult cuModuleLoadData(void **module, const void *image) {
    if (std::memcmp(image, emulated_cubin_tag, sizeof emulated_cubin_tag) != 0) return CUDA_ERROR_INVALID_IMAGE;
    *module = &module_tag;
    return CUDA_SUCCESS;
}
CUresult cuModuleGetFunction(void **function, void *module, const char *name) {
    std::lock_guard<std::mutex> g(big_lock);
    if (module != &module_tag) return CUDA_ERROR_INVALID_HANDLE;
    auto it = kernel_table.find(name);
    if (it == kernel_table.end()) return CUDA_ERROR_NOT_FOUND;
    *function = &it->second;
    return CUDA_SUCCESS;
}
CUresult cuLaunchKernel(void *function, unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned by, unsigned bz,
                        unsigned shared_bytes, void *stream, void **params, void **extra) {
    std::lock_guard<std::mutex> g(big_lock);
    check_pending_uploads("cuLaunchKernel");
    queue_work(stream);
    work_sequence++;
    auto *entry = static_cast<KernelEntry *>(function);
    if (!entry || extra || shared_bytes) return CUDA_ERROR_INVALID_VALUE;
    if (gx == 0 || gy == 0 || gz == 0 || gy > 65535 || gz > 65535 || bx * by * bz == 0 || bx * by * bz > 1024)
        return CUDA_ERROR_INVALID_VALUE;
    running_launch = entry->kernel->launch;
    running_params = params;
    running_kernel = entry->kernel->name;
    const ifcn_emulator_dim3 block{bx, by, bz};
    ifcn_emulator_grid_size = {gx, gy, gz};
    ifcn_emulator_block_size = block;
    // Under IFCN_CUDA_EMULATOR_COMPUTE=edges only the first and last block of each axis: from the last, a step
    // of (extent - 1) to the end.
    const bool edges = edges_only();
    const auto next = [edges](unsigned i, unsigned extent) { return edges && i == 0 && extent > 2 ? extent - 1 : i + 1; };
    for (unsigned z = 0; z < gz; z = next(z, gz))
        for (unsigned y = 0; y < gy; y = next(y, gy))
            for (unsigned x = 0; x < gx; x = next(x, gx)) {
                ifcn_emulator_block_index = {x, y, z};
                if (entry->synchronises == 0) {
                    run_block_plainly(block);
                } else {
                    synchronised = false;
                    run_block_on_fibers(block);
                    if (entry->synchronises < 0) entry->synchronises = synchronised ? 1 : 0;
                }
            }
    return CUDA_SUCCESS;
}

// ------------------------------------------------------------------ NVRTC

struct emulated_program {
    bool same_source;
    std::string log;
};
const char *nvrtcGetErrorString(int code) {
    return code == 0 ? "NVRTC_SUCCESS" : code == 6 ? "NVRTC_ERROR_COMPILATION" : "NVRTC_ERROR (emulator)";
}
int nvrtcVersion(int *major, int *minor) {
    // Not a real NVRTC version, so the emulator's tag never lands in a real run's cubin cache entry.
    *major = 0;
    *minor = 1;
    return 0;
}
int nvrtcCreateProgram(void **program, const char *source, const char *, int, const char *const *, const char *const *) {
    auto *p = new emulated_program{std::strcmp(source, ifcn_emulator_kernel_source) == 0, ""};
    if (!p->same_source)
        p->log = "ifcn CUDA emulator: this source differs from the kernels the emulator was built from; "
                 "rebuild it (scripts/cuda_emulator.sh)\n";
    *program = p;
    return 0;
}
int nvrtcCompileProgram(void *program, int, const char *const *) {
    return static_cast<emulated_program *>(program)->same_source ? 0 : 6;
}
int nvrtcGetProgramLogSize(void *program, size_t *size) {
    *size = static_cast<emulated_program *>(program)->log.size() + 1;
    return 0;
}
int nvrtcGetProgramLog(void *program, char *log) {
    const std::string &s = static_cast<emulated_program *>(program)->log;
    std::memcpy(log, s.c_str(), s.size() + 1);
    return 0;
}
int nvrtcGetCUBINSize(void *, size_t *size) { *size = sizeof emulated_cubin_tag; return 0; }
int nvrtcGetCUBIN(void *, char *cubin) { std::memcpy(cubin, emulated_cubin_tag, sizeof emulated_cubin_tag); return 0; }
int nvrtcDestroyProgram(void **program) {
    delete static_cast<emulated_program *>(*program);
    *program = nullptr;
    return 0;
}

// ------------------------------------------------------------------ cuDNN (Nd convolution API)

enum {
    CUDNN_STATUS_SUCCESS = 0,
    CUDNN_STATUS_BAD_PARAM = 2000,
    CUDNN_STATUS_NOT_SUPPORTED = 3000,
    CUDNN_STATUS_ALLOC_FAILED = 4001,
};
enum { DATA_FLOAT = 0, DATA_BFLOAT16 = 9, FORMAT_NCHW = 0, FORMAT_NHWC = 1, CROSS_CORRELATION = 1 };
enum { MATH_DEFAULT = 0, MATH_TENSOR_OP = 1, MATH_FMA = 3 };

struct emulated_tensor {
    int type = -1, rank = 0;
    int dims[8] = {}, strides[8] = {};
};
struct emulated_filter {
    int type = -1, format = 0, rank = 0;
    int dims[8] = {};
};
struct emulated_convolution {
    int spatial = 0;
    int pad[3] = {}, stride[3] = {}, dilation[3] = {};
    int mode = -1, compute_type = -1, math = MATH_DEFAULT;
};
struct emulated_algo_perf {
    int algo;
    int status;
    float time;
    size_t memory;
    int determinism;
    int math_type;
    int reserved[3];
};

size_t cudnnGetVersion(void) { return 90000; }
const char *cudnnGetErrorString(int code) {
    switch (code) {
    case CUDNN_STATUS_SUCCESS: return "CUDNN_STATUS_SUCCESS";
    case CUDNN_STATUS_BAD_PARAM: return "CUDNN_STATUS_BAD_PARAM (emulator)";
    case CUDNN_STATUS_NOT_SUPPORTED: return "CUDNN_STATUS_NOT_SUPPORTED (emulator)";
    case CUDNN_STATUS_ALLOC_FAILED: return "CUDNN_STATUS_ALLOC_FAILED (emulator)";
    default: return "unknown cuDNN status (emulator)";
    }
}
static int handle_tag;
int cudnnCreate(void **handle) { *handle = &handle_tag; return 0; }
int cudnnSetStream(void *, void *) { return 0; }
int cudnnCreateTensorDescriptor(void **d) { *d = new emulated_tensor; return 0; }
int cudnnDestroyTensorDescriptor(void *d) { delete static_cast<emulated_tensor *>(d); return 0; }
int cudnnSetTensorNdDescriptor(void *d, int type, int rank, const int *dims, const int *strides) {
    if ((type != DATA_FLOAT && type != DATA_BFLOAT16) || rank != 5) return CUDNN_STATUS_NOT_SUPPORTED;
    auto *t = static_cast<emulated_tensor *>(d);
    t->type = type;
    t->rank = rank;
    for (int i = 0; i < rank; i++) {
        if (dims[i] <= 0 || strides[i] <= 0) return CUDNN_STATUS_BAD_PARAM;
        t->dims[i] = dims[i];
        t->strides[i] = strides[i];
    }
    return 0;
}
int cudnnCreateFilterDescriptor(void **d) { *d = new emulated_filter; return 0; }
int cudnnDestroyFilterDescriptor(void *d) { delete static_cast<emulated_filter *>(d); return 0; }
int cudnnSetFilterNdDescriptor(void *d, int type, int format, int rank, const int *dims) {
    if ((type != DATA_FLOAT && type != DATA_BFLOAT16) || rank != 5 || (format != FORMAT_NCHW && format != FORMAT_NHWC))
        return CUDNN_STATUS_NOT_SUPPORTED;
    auto *f = static_cast<emulated_filter *>(d);
    f->type = type;
    f->format = format;
    f->rank = rank;
    for (int i = 0; i < rank; i++) {
        if (dims[i] <= 0) return CUDNN_STATUS_BAD_PARAM;
        f->dims[i] = dims[i];
    }
    return 0;
}
int cudnnCreateConvolutionDescriptor(void **d) { *d = new emulated_convolution; return 0; }
int cudnnDestroyConvolutionDescriptor(void *d) { delete static_cast<emulated_convolution *>(d); return 0; }
int cudnnSetConvolutionNdDescriptor(void *d, int spatial, const int *pad, const int *stride, const int *dilation,
                                    int mode, int compute_type) {
    if (spatial != 3 || mode != CROSS_CORRELATION || compute_type != DATA_FLOAT) return CUDNN_STATUS_NOT_SUPPORTED;
    auto *c = static_cast<emulated_convolution *>(d);
    c->spatial = spatial;
    for (int i = 0; i < 3; i++) {
        if (pad[i] < 0 || stride[i] <= 0 || dilation[i] <= 0) return CUDNN_STATUS_BAD_PARAM;
        c->pad[i] = pad[i];
        c->stride[i] = stride[i];
        c->dilation[i] = dilation[i];
    }
    c->mode = mode;
    c->compute_type = compute_type;
    return 0;
}
int cudnnSetConvolutionMathType(void *d, int math) {
    if (math != MATH_DEFAULT && math != MATH_TENSOR_OP && math != MATH_FMA) return CUDNN_STATUS_BAD_PARAM;
    static_cast<emulated_convolution *>(d)->math = math;
    return 0;
}

}  // extern "C"

namespace {

float bf16_to_float(uint16_t b) {
    const uint32_t u = uint32_t(b) << 16;
    float f;
    std::memcpy(&f, &u, 4);
    return f;
}

uint16_t float_to_bf16(float f) {
    uint32_t u;
    std::memcpy(&u, &f, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u) return uint16_t((u >> 16) | 0x40);  // quiet NaN
    return uint16_t((u + 0x7fffu + ((u >> 16) & 1)) >> 16);
}

// TF32: 10 explicit mantissa bits, round to nearest even (as the tensor cores' conversion).
float to_tf32(float f) {
    uint32_t u;
    std::memcpy(&u, &f, 4);
    if ((u & 0x7f800000u) == 0x7f800000u) return f;
    u = (u + 0xfffu + ((u >> 13) & 1)) & ~0x1fffu;
    std::memcpy(&f, &u, 4);
    return f;
}

// One operand of a convolution: element (n, c, d, h, w) of a tensor or (k, c, d, h, w) of a filter.
struct Operand {
    const char *base;
    int type;
    long long strides[5];
    bool tf32;

    float at(int a, int b, int d, int h, int w) const {
        const long long i = a * strides[0] + b * strides[1] + d * strides[2] + h * strides[3] + w * strides[4];
        const float v = type == DATA_BFLOAT16 ? bf16_to_float(reinterpret_cast<const uint16_t *>(base)[i])
                                              : reinterpret_cast<const float *>(base)[i];
        return tf32 ? to_tf32(v) : v;
    }
};

Operand tensor_operand(const emulated_tensor &t, const void *p, bool tf32) {
    Operand o{static_cast<const char *>(p), t.type, {}, tf32};
    for (int i = 0; i < 5; i++) o.strides[i] = t.strides[i];
    return o;
}

Operand filter_operand(const emulated_filter &f, const void *p, bool tf32) {
    Operand o{static_cast<const char *>(p), f.type, {}, tf32};
    const long long K = f.dims[0], C = f.dims[1], D = f.dims[2], H = f.dims[3], W = f.dims[4];
    (void)K;
    if (f.format == FORMAT_NCHW) {
        const long long s[5] = {C * D * H * W, D * H * W, H * W, W, 1};
        std::copy(s, s + 5, o.strides);
    } else {
        const long long s[5] = {D * H * W * C, 1, H * W * C, W * C, C};
        std::copy(s, s + 5, o.strides);
    }
    return o;
}

// out = alpha * value + beta * out (out not read when beta == 0, as cuDNN).
void store(void *base, int type, long long index, double value, float alpha, float beta) {
    float v = float(double(alpha) * value);
    if (type == DATA_BFLOAT16) {
        uint16_t *p = static_cast<uint16_t *>(base) + index;
        if (beta != 0.0f) v = v + beta * bf16_to_float(*p);
        *p = float_to_bf16(v);
    } else {
        float *p = static_cast<float *>(base) + index;
        if (beta != 0.0f) v = v + beta * *p;
        *p = v;
    }
}

long long tensor_index(const emulated_tensor &t, int n, int c, int d, int h, int w) {
    return n * (long long)t.strides[0] + c * (long long)t.strides[1] + d * (long long)t.strides[2] +
           h * (long long)t.strides[3] + w * (long long)t.strides[4];
}

long long filter_index(const emulated_filter &f, int k, int c, int d, int h, int w) {
    const long long C = f.dims[1], D = f.dims[2], H = f.dims[3], W = f.dims[4];
    return f.format == FORMAT_NCHW ? (((k * C + c) * D + d) * H + h) * W + w : (((k * D + d) * H + h) * W + w) * C + c;
}

long long tensor_extent(const emulated_tensor &t) {
    long long last = 0;
    for (int i = 0; i < 5; i++) last += (long long)(t.dims[i] - 1) * t.strides[i];
    return last + 1;
}

// Checks the shapes agree; returns the output extent of each spatial axis through `out`.
int check_shapes(const emulated_tensor &x, const emulated_filter &w, const emulated_convolution &c,
                 const emulated_tensor &y) {
    if (x.rank != 5 || y.rank != 5 || w.rank != 5 || c.spatial != 3) return CUDNN_STATUS_BAD_PARAM;
    if (x.type != w.type || y.type != w.type) return CUDNN_STATUS_BAD_PARAM;
    if (x.dims[0] != y.dims[0] || x.dims[1] != w.dims[1] || y.dims[1] != w.dims[0]) return CUDNN_STATUS_BAD_PARAM;
    for (int i = 0; i < 3; i++) {
        const int in = x.dims[2 + i], k = w.dims[2 + i];
        const int outExtent = (in + 2 * c.pad[i] - c.dilation[i] * (k - 1) - 1) / c.stride[i] + 1;
        if (outExtent != y.dims[2 + i]) return CUDNN_STATUS_BAD_PARAM;
    }
    return 0;
}

bool uses_tf32(const emulated_convolution &c, int type) { return type == DATA_FLOAT && c.math != MATH_FMA; }

struct Geometry {
    int N, C, K, D, H, W, OD, OH, OW, KD, KH, KW;
};

Geometry geometry(const emulated_tensor &x, const emulated_filter &w, const emulated_tensor &y) {
    return Geometry{x.dims[0], x.dims[1], w.dims[0], x.dims[2], x.dims[3], x.dims[4], y.dims[2], y.dims[3],
                    y.dims[4], w.dims[2], w.dims[3], w.dims[4]};
}

// Input coordinate of output o through kernel tap k on axis a, or -1 outside the (padded) input.
inline int input_at(const emulated_convolution &c, int a, int o, int k, int extent) {
    const int i = o * c.stride[a] - c.pad[a] + k * c.dilation[a];
    return i >= 0 && i < extent ? i : -1;
}

void forward(const emulated_tensor &xd, const void *x, const emulated_filter &wd, const void *w,
             const emulated_convolution &c, float alpha, float beta, const emulated_tensor &yd, void *y) {
    const bool tf = uses_tf32(c, xd.type);
    const Operand X = tensor_operand(xd, x, tf), Wt = filter_operand(wd, w, tf);
    const Geometry g = geometry(xd, wd, yd);
    for (int n = 0; n < g.N; n++)
        for (int k = 0; k < g.K; k++)
            for (int od = 0; od < g.OD; od++)
                for (int oh = 0; oh < g.OH; oh++)
                    for (int ow = 0; ow < g.OW; ow++) {
                        double s = 0;
                        for (int ch = 0; ch < g.C; ch++)
                            for (int a = 0; a < g.KD; a++) {
                                const int id = input_at(c, 0, od, a, g.D);
                                if (id < 0) continue;
                                for (int b = 0; b < g.KH; b++) {
                                    const int ih = input_at(c, 1, oh, b, g.H);
                                    if (ih < 0) continue;
                                    for (int e = 0; e < g.KW; e++) {
                                        const int iw = input_at(c, 2, ow, e, g.W);
                                        if (iw < 0) continue;
                                        s += double(X.at(n, ch, id, ih, iw)) * double(Wt.at(k, ch, a, b, e));
                                    }
                                }
                            }
                        store(y, yd.type, tensor_index(yd, n, k, od, oh, ow), s, alpha, beta);
                    }
}

void backward_data(const emulated_filter &wd, const void *w, const emulated_tensor &dyd, const void *dy,
                   const emulated_convolution &c, float alpha, float beta, const emulated_tensor &dxd, void *dx) {
    const bool tf = uses_tf32(c, dyd.type);
    const Operand DY = tensor_operand(dyd, dy, tf), Wt = filter_operand(wd, w, tf);
    const Geometry g = geometry(dxd, wd, dyd);
    // Gather form: dx(i) = sum over (k, tap) of dy(o) w(k, c, tap) with o * stride - pad + tap * dilation = i.
    std::vector<double> acc(size_t(g.D) * g.H * g.W);
    for (int n = 0; n < g.N; n++)
        for (int ch = 0; ch < g.C; ch++) {
            std::fill(acc.begin(), acc.end(), 0.0);
            for (int k = 0; k < g.K; k++)
                for (int od = 0; od < g.OD; od++)
                    for (int a = 0; a < g.KD; a++) {
                        const int id = input_at(c, 0, od, a, g.D);
                        if (id < 0) continue;
                        for (int oh = 0; oh < g.OH; oh++)
                            for (int b = 0; b < g.KH; b++) {
                                const int ih = input_at(c, 1, oh, b, g.H);
                                if (ih < 0) continue;
                                for (int ow = 0; ow < g.OW; ow++)
                                    for (int e = 0; e < g.KW; e++) {
                                        const int iw = input_at(c, 2, ow, e, g.W);
                                        if (iw < 0) continue;
                                        acc[(size_t(id) * g.H + ih) * g.W + iw] +=
                                            double(DY.at(n, k, od, oh, ow)) * double(Wt.at(k, ch, a, b, e));
                                    }
                            }
                    }
            for (int d = 0; d < g.D; d++)
                for (int h = 0; h < g.H; h++)
                    for (int ww = 0; ww < g.W; ww++)
                        store(dx, dxd.type, tensor_index(dxd, n, ch, d, h, ww), acc[(size_t(d) * g.H + h) * g.W + ww],
                              alpha, beta);
        }
}

void backward_filter(const emulated_tensor &xd, const void *x, const emulated_tensor &dyd, const void *dy,
                     const emulated_convolution &c, float alpha, float beta, const emulated_filter &dwd, void *dw) {
    const bool tf = uses_tf32(c, xd.type);
    const Operand X = tensor_operand(xd, x, tf), DY = tensor_operand(dyd, dy, tf);
    const Geometry g = geometry(xd, dwd, dyd);
    for (int k = 0; k < g.K; k++)
        for (int ch = 0; ch < g.C; ch++)
            for (int a = 0; a < g.KD; a++)
                for (int b = 0; b < g.KH; b++)
                    for (int e = 0; e < g.KW; e++) {
                        double s = 0;
                        for (int n = 0; n < g.N; n++)
                            for (int od = 0; od < g.OD; od++) {
                                const int id = input_at(c, 0, od, a, g.D);
                                if (id < 0) continue;
                                for (int oh = 0; oh < g.OH; oh++) {
                                    const int ih = input_at(c, 1, oh, b, g.H);
                                    if (ih < 0) continue;
                                    for (int ow = 0; ow < g.OW; ow++) {
                                        const int iw = input_at(c, 2, ow, e, g.W);
                                        if (iw < 0) continue;
                                        s += double(X.at(n, ch, id, ih, iw)) * double(DY.at(n, k, od, oh, ow));
                                    }
                                }
                            }
                        store(dw, dwd.type, filter_index(dwd, k, ch, a, b, e), s, alpha, beta);
                    }
}

size_t element_bytes(int type) { return type == DATA_BFLOAT16 ? 2 : 4; }

size_t tensor_bytes(const emulated_tensor &t) { return size_t(tensor_extent(t)) * element_bytes(t.type); }

size_t filter_bytes(const emulated_filter &f) {
    return size_t(f.dims[0]) * f.dims[1] * f.dims[2] * f.dims[3] * f.dims[4] * element_bytes(f.type);
}

// One convolution problem as the descriptors give it, in a direction: forward writes y from (x, w), backward
// data writes x (dx) from (y (dy), w), backward filter writes w (dw) from (x, y (dy)).
enum Direction { FORWARD, BACKWARD_DATA, BACKWARD_FILTER };
const char *const direction_names[] = {"cudnnConvolutionForward", "cudnnConvolutionBackwardData",
                                       "cudnnConvolutionBackwardFilter"};

struct Problem {
    Direction direction;
    const emulated_tensor &x;
    const emulated_filter &w;
    const emulated_convolution &c;
    const emulated_tensor &y;

    Problem(Direction d, void *xd, void *wd, void *cd, void *yd)
        : direction(d), x(*static_cast<emulated_tensor *>(xd)), w(*static_cast<emulated_filter *>(wd)),
          c(*static_cast<emulated_convolution *>(cd)), y(*static_cast<emulated_tensor *>(yd)) {}

    size_t output_bytes() const {
        return direction == FORWARD ? tensor_bytes(y) : direction == BACKWARD_DATA ? tensor_bytes(x) : filter_bytes(w);
    }

    // The operands must lie inside device allocations.
    void check_buffers(const void *xp, const void *wp, const void *yp) const {
        const std::string call = direction_names[direction];
        check_range(CUdeviceptr(uintptr_t(xp)), tensor_bytes(x), (call + " x").c_str());
        check_range(CUdeviceptr(uintptr_t(wp)), filter_bytes(w), (call + " w").c_str());
        check_range(CUdeviceptr(uintptr_t(yp)), tensor_bytes(y), (call + " y").c_str());
    }

    void compute(const void *xp, const void *wp, const void *yp, float alpha, float beta) const {
        switch (direction) {
        case FORWARD: forward(x, xp, w, wp, c, alpha, beta, y, const_cast<void *>(yp)); break;
        case BACKWARD_DATA: backward_data(w, wp, y, yp, c, alpha, beta, x, const_cast<void *>(xp)); break;
        case BACKWARD_FILTER: backward_filter(x, xp, y, yp, c, alpha, beta, w, const_cast<void *>(wp)); break;
        }
    }
};

// Situations a GPU meets at the paper's size, on demand: IFCN_CUDA_EMULATOR_WORKSPACE_MIB=N makes the
// deterministic algorithm 0 need N MiB of workspace (as cuDNN 9.19's 64->64 backward filter at 128^3 needed
// more than 256 MiB); IFCN_CUDA_EMULATOR_DETERMINISTIC=none reports no algorithm as deterministic.
size_t env_size(const char *name) {
    const char *v = std::getenv(name);
    return v ? size_t(std::strtoull(v, nullptr, 10)) : 0;
}

bool algorithm_deterministic(int algorithm) {
    static const bool none = [] {
        const char *v = std::getenv("IFCN_CUDA_EMULATOR_DETERMINISTIC");
        return v && std::strcmp(v, "none") == 0;
    }();
    return algorithm == 0 && !none;
}

// Algorithm 0 needs no workspace (or IFCN_CUDA_EMULATOR_WORKSPACE_MIB); the "non-deterministic" algorithm 1
// a workspace of its output's size.
size_t algorithm_workspace(int algorithm, size_t output_bytes) {
    static const size_t deterministic = env_size("IFCN_CUDA_EMULATOR_WORKSPACE_MIB") << 20;
    return algorithm == 1 ? output_bytes : deterministic;
}

// The math type an algorithm runs under. cuDNN lists each algorithm with the math type it ran it under, which need
// not be the descriptor's, and a call must run the algorithm under that one (on an H200, cuDNN 9.19 listed bf16
// NCDHW backward data 3->6 at 16x20x24 as running in Find...Ex, then refused it with CUDNN_STATUS_BAD_PARAM under
// the descriptor's tensor-op math). The emulator's model of it: on bfloat16 operands its algorithm 0 is an FMA
// kernel, listed under CUDNN_FMA_MATH whatever the descriptor asks for and refused under any other math type.
int algorithm_math(const Problem &p, int algorithm) {
    return p.x.type == DATA_BFLOAT16 && algorithm == 0 ? int(MATH_FMA) : p.c.math;
}

// A search on bfloat16 operands under FMA math is refused: not cuDNN's behaviour (it would search among its FMA
// kernels alone, which on an H200 chose a weight gradient 6 times slower than the tensor-core one) but ifcn's rule,
// that each search runs under the precision's own math type whatever math type the last pass left on the descriptor.
bool search_refused(const Problem &p) { return p.x.type == DATA_BFLOAT16 && p.c.math == MATH_FMA; }

// cudnnGet...Algorithm_v7: both algorithms, deterministic first, untimed.
int heuristic(const Problem &p, int requested, int *count, emulated_algo_perf *perf) {
    if (int r = check_shapes(p.x, p.w, p.c, p.y)) return r;
    if (search_refused(p)) return CUDNN_STATUS_BAD_PARAM;
    *count = 0;
    for (int a = 0; a < 2 && *count < requested; a++)
        perf[(*count)++] =
            emulated_algo_perf{a, 0, -1.0f, algorithm_workspace(a, p.output_bytes()), algorithm_deterministic(a) ? 1 : 0,
                               algorithm_math(p, a), {}};
    return 0;
}

// cudnnConvolution*: alpha * result + beta * output, with the algorithm's workspace.
int execute(const Problem &p, const void *xp, const void *wp, const void *yp, int algorithm, void *workspace,
            size_t workspace_bytes, const void *alpha, const void *beta) {
    std::lock_guard<std::mutex> g(big_lock);
    if (int r = check_shapes(p.x, p.w, p.c, p.y)) return r;
    if (algorithm < 0 || algorithm > 1 || algorithm_math(p, algorithm) != p.c.math) return CUDNN_STATUS_BAD_PARAM;
    const size_t need = algorithm_workspace(algorithm, p.output_bytes());
    if (workspace_bytes < need) return CUDNN_STATUS_BAD_PARAM;
    if (need) check_range(CUdeviceptr(uintptr_t(workspace)), need, "convolution workspace");
    p.check_buffers(xp, wp, yp);
    if (!edges_only()) p.compute(xp, wp, yp, *static_cast<const float *>(alpha), *static_cast<const float *>(beta));
    return 0;
}

// cudnnFind...Ex: runs each algorithm that fits the workspace (writing the output, as cuDNN does), fastest first;
// algorithm 1, the same arithmetic, is reported at half its time, so that a choice of the fastest takes it.
int find(const Problem &p, const void *xp, const void *wp, const void *yp, int requested, int *count,
         emulated_algo_perf *perf, void *workspace, size_t workspace_bytes) {
    std::lock_guard<std::mutex> g(big_lock);
    if (int r = check_shapes(p.x, p.w, p.c, p.y)) return r;
    if (search_refused(p)) return CUDNN_STATUS_BAD_PARAM;
    if (workspace_bytes) check_range(CUdeviceptr(uintptr_t(workspace)), workspace_bytes, "Find...Ex workspace");
    p.check_buffers(xp, wp, yp);
    std::vector<emulated_algo_perf> found;
    for (int a = 0; a < 2; a++) {
        const size_t need = algorithm_workspace(a, p.output_bytes());
        emulated_algo_perf r{a, 0, -1.0f, need, algorithm_deterministic(a) ? 1 : 0, algorithm_math(p, a), {}};
        if (need > workspace_bytes) {
            r.status = CUDNN_STATUS_ALLOC_FAILED;
        } else {
            if (edges_only()) {
                r.time = 1.0f;  // nothing computed: the deterministic algorithm at 1 ms, the other at half of it
            } else {
                const auto start = std::chrono::steady_clock::now();
                p.compute(xp, wp, yp, 1.0f, 0.0f);
                r.time = std::chrono::duration<float, std::milli>(std::chrono::steady_clock::now() - start).count();
            }
            if (a == 1) r.time *= 0.5f;
        }
        found.push_back(r);
    }
    std::sort(found.begin(), found.end(), [](const emulated_algo_perf &a, const emulated_algo_perf &b) {
        if ((a.status == 0) != (b.status == 0)) return a.status == 0;
        return a.time != b.time ? a.time < b.time : a.algo < b.algo;
    });
    *count = std::min<int>(requested, int(found.size()));
    std::copy(found.begin(), found.begin() + *count, perf);
    return 0;
}

}  // namespace

// cuDNN's entry points: each direction's argument order mapped onto one Problem (x, w, convolution, y).
extern "C" {

int cudnnGetConvolutionForwardAlgorithm_v7(void *, void *xd, void *wd, void *cd, void *yd, int requested, int *count,
                                           emulated_algo_perf *perf) {
    return heuristic(Problem(FORWARD, xd, wd, cd, yd), requested, count, perf);
}
int cudnnGetConvolutionBackwardDataAlgorithm_v7(void *, void *wd, void *dyd, void *cd, void *dxd, int requested,
                                                int *count, emulated_algo_perf *perf) {
    return heuristic(Problem(BACKWARD_DATA, dxd, wd, cd, dyd), requested, count, perf);
}
int cudnnGetConvolutionBackwardFilterAlgorithm_v7(void *, void *xd, void *dyd, void *cd, void *dwd, int requested,
                                                  int *count, emulated_algo_perf *perf) {
    return heuristic(Problem(BACKWARD_FILTER, xd, dwd, cd, dyd), requested, count, perf);
}

int cudnnConvolutionForward(void *, const void *alpha, void *xd, const void *x, void *wd, const void *w, void *cd,
                            int algorithm, void *workspace, size_t workspace_bytes, const void *beta, void *yd,
                            void *y) {
    return execute(Problem(FORWARD, xd, wd, cd, yd), x, w, y, algorithm, workspace, workspace_bytes, alpha, beta);
}
int cudnnConvolutionBackwardData(void *, const void *alpha, void *wd, const void *w, void *dyd, const void *dy,
                                 void *cd, int algorithm, void *workspace, size_t workspace_bytes, const void *beta,
                                 void *dxd, void *dx) {
    return execute(Problem(BACKWARD_DATA, dxd, wd, cd, dyd), dx, w, dy, algorithm, workspace, workspace_bytes, alpha,
                   beta);
}
int cudnnConvolutionBackwardFilter(void *, const void *alpha, void *xd, const void *x, void *dyd, const void *dy,
                                   void *cd, int algorithm, void *workspace, size_t workspace_bytes, const void *beta,
                                   void *dwd, void *dw) {
    return execute(Problem(BACKWARD_FILTER, xd, dwd, cd, dyd), x, dw, dy, algorithm, workspace, workspace_bytes,
                   alpha, beta);
}

int cudnnFindConvolutionForwardAlgorithmEx(void *, void *xd, const void *x, void *wd, const void *w, void *cd,
                                           void *yd, void *y, int requested, int *count, emulated_algo_perf *perf,
                                           void *workspace, size_t workspace_bytes) {
    return find(Problem(FORWARD, xd, wd, cd, yd), x, w, y, requested, count, perf, workspace, workspace_bytes);
}
int cudnnFindConvolutionBackwardDataAlgorithmEx(void *, void *wd, const void *w, void *dyd, const void *dy, void *cd,
                                                void *dxd, void *dx, int requested, int *count,
                                                emulated_algo_perf *perf, void *workspace, size_t workspace_bytes) {
    return find(Problem(BACKWARD_DATA, dxd, wd, cd, dyd), dx, w, dy, requested, count, perf, workspace,
                workspace_bytes);
}
int cudnnFindConvolutionBackwardFilterAlgorithmEx(void *, void *xd, const void *x, void *dyd, const void *dy, void *cd,
                                                  void *dwd, void *dw, int requested, int *count,
                                                  emulated_algo_perf *perf, void *workspace, size_t workspace_bytes) {
    return find(Problem(BACKWARD_FILTER, xd, dwd, cd, dyd), x, dw, dy, requested, count, perf, workspace,
                workspace_bytes);
}

}  // extern "C"

// ------------------------------------------------------------------ NCCL (libnccl.so.2)
//
// Enough of NCCL for ifcn's gradient averaging between processes of one host: the id names a set of files
// (in IFCN_CUDA_EMULATOR_NCCL_DIR, default /dev/shm); ncclCommInitRank waits for every rank to join;
// ncclAllReduce (float32, average) writes this rank's buffer to a file per call, waits for every rank's file of
// that call, sums them in rank order and multiplies by 1 / ranks, as ifcn's MPI path does. A peer that does not
// arrive within 300 s is an error (a GPU's NCCL would hang or report it asynchronously).

namespace {

struct emulated_nccl_comm {
    std::string stem;
    int ranks, rank;
    unsigned long long calls;
};

std::string nccl_folder() {
    const char *v = std::getenv("IFCN_CUDA_EMULATOR_NCCL_DIR");
    if (v && *v) return v;
    return access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
}

bool write_file(const std::string &path, const void *data, size_t bytes) {
    const std::string tmp = path + ".tmp";
    FILE *f = std::fopen(tmp.c_str(), "wb");
    if (!f) return false;
    const bool ok = std::fwrite(data, 1, bytes, f) == bytes;
    if (std::fclose(f) != 0 || !ok) return false;
    return std::rename(tmp.c_str(), path.c_str()) == 0;
}

// Waits until every rank's file `stem-tag-r` exists (polling); false after 300 s.
bool wait_for_ranks(const std::string &stem, const std::string &tag, int ranks) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(300);
    for (int r = 0; r < ranks;) {
        if (access((stem + "-" + tag + "-" + std::to_string(r)).c_str(), R_OK) == 0) {
            r++;
            continue;
        }
        if (std::chrono::steady_clock::now() > deadline) return false;
        usleep(200);
    }
    return true;
}

}  // namespace

extern "C" {

enum { ncclSuccess = 0, ncclSystemError = 2, ncclInvalidArgument = 4 };
struct emulated_nccl_id {
    char internal[128];
};

int ncclGetVersion(int *version) {
    *version = 1;  // "0.0.1": not a real NCCL
    return ncclSuccess;
}
const char *ncclGetErrorString(int code) {
    switch (code) {
    case ncclSuccess: return "no error";
    case ncclSystemError: return "system error (emulator: a peer did not arrive, or a file failed)";
    case ncclInvalidArgument: return "invalid argument (emulator: only float32 averages)";
    default: return "unknown NCCL result (emulator)";
    }
}
int ncclGetUniqueId(emulated_nccl_id *id) {
    std::memset(id->internal, 0, sizeof id->internal);
    const auto now = std::chrono::steady_clock::now().time_since_epoch().count();
    std::snprintf(id->internal, sizeof id->internal, "ifcn-nccl-%d-%llx", int(getpid()), (unsigned long long)now);
    return ncclSuccess;
}
int ncclCommInitRank(void **comm, int ranks, emulated_nccl_id id, int rank) {
    if (ranks < 1 || rank < 0 || rank >= ranks || std::strncmp(id.internal, "ifcn-nccl-", 10) != 0)
        return ncclInvalidArgument;
    auto *c = new emulated_nccl_comm{nccl_folder() + "/" + std::string(id.internal, strnlen(id.internal, 128)), ranks, rank, 0};
    const char joined = 1;
    if (!write_file(c->stem + "-join-" + std::to_string(rank), &joined, 1) || !wait_for_ranks(c->stem, "join", ranks)) {
        delete c;
        return ncclSystemError;
    }
    *comm = c;
    return ncclSuccess;
}
int ncclAllReduce(const void *send, void *recv, size_t count, int datatype, int op, void *comm, void *) {
    auto *c = static_cast<emulated_nccl_comm *>(comm);
    if (datatype != 7 || op != 4 || !c) return ncclInvalidArgument;  // ncclFloat32, ncclAvg
    {
        std::lock_guard<std::mutex> g(big_lock);
        check_range(CUdeviceptr(uintptr_t(send)), count * 4, "ncclAllReduce send buffer");
        check_range(CUdeviceptr(uintptr_t(recv)), count * 4, "ncclAllReduce receive buffer");
    }
    const unsigned long long call = ++c->calls;
    const std::string tag = std::to_string(call);
    if (!write_file(c->stem + "-" + tag + "-" + std::to_string(c->rank), send, count * 4)) return ncclSystemError;
    if (!wait_for_ranks(c->stem, tag, c->ranks)) return ncclSystemError;
    std::vector<float> sum(count), part(count);
    for (int r = 0; r < c->ranks; r++) {
        FILE *f = std::fopen((c->stem + "-" + tag + "-" + std::to_string(r)).c_str(), "rb");
        const bool ok = f && std::fread(r == 0 ? sum.data() : part.data(), 4, count, f) == count;
        if (f) std::fclose(f);
        if (!ok) return ncclSystemError;
        if (r > 0)
            for (size_t i = 0; i < count; i++) sum[i] += part[i];
    }
    const float scale = 1.0f / float(c->ranks);
    for (size_t i = 0; i < count; i++) sum[i] *= scale;
    {
        std::lock_guard<std::mutex> g(big_lock);
        std::memcpy(recv, sum.data(), count * 4);
    }
    // Every rank has read the files of call - 2 once any rank writes call - 1's: this rank's can go.
    if (call > 2) std::remove((c->stem + "-" + std::to_string(call - 2) + "-" + std::to_string(c->rank)).c_str());
    return ncclSuccess;
}
int ncclCommGetAsyncError(void *, int *error) {
    *error = ncclSuccess;
    return ncclSuccess;
}
static int finish(void *comm) {
    auto *c = static_cast<emulated_nccl_comm *>(comm);
    if (!c) return ncclInvalidArgument;
    const std::string mine = "-" + std::to_string(c->rank);
    for (unsigned long long k = c->calls > 1 ? c->calls - 1 : 1; k <= c->calls; k++)
        std::remove((c->stem + "-" + std::to_string(k) + mine).c_str());
    std::remove((c->stem + "-join" + mine).c_str());
    delete c;
    return ncclSuccess;
}
int ncclCommDestroy(void *comm) { return finish(comm); }
int ncclCommAbort(void *comm) { return finish(comm); }

}  // extern "C"
