// Run-time binding to the NVIDIA libraries ifcn uses: the CUDA driver (libcuda.so.1), cuDNN 9
// (libcudnn.so.9), NVRTC (libnvrtc.so.13 / .12) and, for gradient averaging across GPUs, NCCL
// (libnccl.so.2). Nothing here needs CUDA headers or the toolkit
// at build time: the few prototypes and constants are declared in ifcn_cuda.c, the libraries are
// dlopen'ed when a CUDA backend is asked for, and every call returns the library's status code.
#ifndef IFCN_CUDA_H
#define IFCN_CUDA_H

#include <stddef.h>
#include <stdint.h>

typedef unsigned long long ifcn_devptr;

// Libraries: 0 the CUDA driver, 1 cuDNN, 2 NVRTC, 3 NCCL.
// dlopen's `path` (a file or a plain SONAME) and resolves every symbol ifcn needs from it.
// 0 on success; otherwise writes the reason to msg and leaves that library unloaded.
// For cuDNN it also loads the sub-libraries its calls need (libcudnn_graph, _ops, _cnn), from the same
// folder or the loader's paths: cuDNN's dispatcher aborts the process when one is missing.
int ifcn_cuda_open(int library, const char *path, char *msg, int msg_len);
int ifcn_cuda_is_open(int library);
// The symbols ifcn_cuda_open resolves from a library: how many, and each one's name (NULL past the end).
int ifcn_cuda_symbol_count(int library);
const char *ifcn_cuda_symbol_name(int library, int index);
// Absolute path the loader resolved for a library that is open ("" if not).
void ifcn_cuda_resolved_path(int library, char *out, int len);

// ---- driver API (CUresult codes; 0 = CUDA_SUCCESS) ----
const char *ifcn_cu_error_string(int code);
int ifcn_cu_init(void);
int ifcn_cu_driver_version(int *version);
int ifcn_cu_device_count(int *count);
int ifcn_cu_device_name(int ordinal, char *name, int len);
int ifcn_cu_device_attribute(int attribute, int ordinal, int *value);
int ifcn_cu_device_total_mem(int ordinal, size_t *bytes);
// Retains the device's primary context and makes it current on the calling thread.
int ifcn_cu_primary_context(int ordinal, void **context);
// Makes `context` current on the calling thread (cached per thread: cheap to call often).
int ifcn_cu_bind(void *context);
int ifcn_cu_mem_get_info(size_t *free_bytes, size_t *total_bytes);
int ifcn_cu_mem_alloc(ifcn_devptr *pointer, size_t bytes);
int ifcn_cu_mem_free(ifcn_devptr pointer);
int ifcn_cu_mem_alloc_host(void **pointer, size_t bytes);
int ifcn_cu_mem_free_host(void *pointer);
int ifcn_cu_memcpy_htod(ifcn_devptr dst, const void *src, size_t bytes, void *stream);
int ifcn_cu_memcpy_dtoh(void *dst, ifcn_devptr src, size_t bytes, void *stream);
int ifcn_cu_memcpy_dtod(ifcn_devptr dst, ifcn_devptr src, size_t bytes, void *stream);
int ifcn_cu_memset_d32(ifcn_devptr dst, uint32_t value, size_t count, void *stream);
int ifcn_cu_stream_create(void **stream);
int ifcn_cu_stream_synchronize(void *stream);
// Events for timing work on a stream (ifcn bench --profile): created with timing on, recorded on `stream`;
// the elapsed time between two completed events in milliseconds.
int ifcn_cu_event_create(void **event);
int ifcn_cu_event_record(void *event, void *stream);
int ifcn_cu_event_destroy(void *event);
int ifcn_cu_event_elapsed(float *milliseconds, void *start, void *end);
// Events that mark work done without timing it (cheaper to record): the host waits on one with
// ifcn_cu_event_synchronize until the work queued before its record has finished.
int ifcn_cu_event_create_untimed(void **event);
int ifcn_cu_event_synchronize(void *event);
// Work queued on `stream` after this call waits on the device (not the host) until the work queued before the
// event's last record, on its own stream, has finished.
int ifcn_cu_stream_wait_event(void *stream, void *event);
int ifcn_cu_module_load_data(void **module, const void *image);
int ifcn_cu_module_get_function(void **function, void *module, const char *name);
int ifcn_cu_launch(void *function, unsigned grid_x, unsigned grid_y, unsigned grid_z,
                   unsigned block_x, unsigned block_y, unsigned block_z,
                   unsigned shared_bytes, void *stream, void **params);

// ---- NVRTC (nvrtcResult codes; 0 = NVRTC_SUCCESS) ----
const char *ifcn_nvrtc_error_string(int code);
int ifcn_nvrtc_version(int *major, int *minor);
// Compiles `source` to a cubin. On return *cubin (malloc'ed, may be NULL on error) and *log
// (malloc'ed, NUL-terminated, possibly empty) belong to the caller: free them with ifcn_cuda_free.
int ifcn_nvrtc_compile(const char *source, const char *name, const char *const *options, int option_count,
                       void **cubin, size_t *cubin_size, char **log);
void ifcn_cuda_free(void *pointer);

// ---- cuDNN (cudnnStatus_t codes; 0 = CUDNN_STATUS_SUCCESS; ifcn's own failures are negative) ----
#define IFCN_CUDNN_BAD_DIRECTION (-3)
#define IFCN_CUDNN_HOST_OUT_OF_MEMORY (-4)
#define IFCN_CUDNN_BAD_VARIANT (-5)
const char *ifcn_cudnn_error_string(int code);
size_t ifcn_cudnn_version(void);
int ifcn_cudnn_create(void **handle, void *stream);

// A 3x3x3 convolution, padding 1, stride 1, tensors [1, C, D, H, W] and filters [cout, cin, 3, 3, 3],
// with its descriptors and the algorithms chosen for it. precision: 0 = float32 FMA only, 1 = float32
// with TF32 tensor cores allowed, 2 = bfloat16 tensors and filters summed in float32; layout: 0 =
// NCDHW (W fastest), 1 = NDHWC (channels fastest, filters [cout, 3, 3, 3, cin]; bench --conv-sweep).
typedef struct ifcn_conv3 ifcn_conv3;
int ifcn_conv3_create_variant(ifcn_conv3 **conv, int cin, int cout, int d, int h, int w, int precision, int layout);
void ifcn_conv3_destroy(ifcn_conv3 *conv);
// One algorithm cudnnFind...Ex tried: its cuDNN status, measured time, workspace, whether it
// gives the same bits on every run, and the math type cuDNN ran it under (cudnnMathType_t), which
// need not be the one the descriptor was created with: the algorithm must run under it.
typedef struct {
    int algorithm;
    int status;
    float milliseconds;
    size_t workspace_bytes;
    int deterministic;
    int math_type;
} ifcn_conv3_candidate;
// Benchmarks the algorithms of one direction with cudnnFind...Ex on the given buffers (outputs are
// scratch: they are overwritten) and lists every one it tried, fastest first (at most `capacity`),
// without choosing one. direction: 0 forward, 1 backward data, 2 backward filter.
int ifcn_conv3_find_all(void *handle, ifcn_conv3 *conv, int direction,
                        ifcn_devptr x, ifcn_devptr w, ifcn_devptr y,
                        ifcn_devptr workspace, size_t workspace_bytes,
                        ifcn_conv3_candidate *out, int capacity, int *count);
// The most workspace any algorithm cuDNN's heuristics list for this direction needs, among those that are allowed
// (ifcn_conv3_allows), deterministic where asked, and need no more than `bound`: what Find...Ex should be given to
// time them all.
int ifcn_conv3_workspace_wanted(void *handle, ifcn_conv3 *conv, int direction, size_t bound, int deterministic_only,
                                size_t *bytes);
// Whether the convolution's precision allows algorithm `algorithm` of `direction` under math type `math_type`: float32
// math (precision 0) runs no FFT or Winograd algorithm, whose transforms round beyond float32 sums, and only under
// FMA math (no TF32 tensor cores); the tensor-core precisions run any.
int ifcn_conv3_allows(const ifcn_conv3 *conv, int direction, int algorithm, int math_type);
// y = conv(x, w) + beta * y
int ifcn_conv3_forward(void *handle, ifcn_conv3 *conv, ifcn_devptr x, ifcn_devptr w, float beta, ifcn_devptr y,
                       ifcn_devptr workspace, size_t workspace_bytes);
// dx = conv^T(dy, w) + beta * dx
int ifcn_conv3_backward_data(void *handle, ifcn_conv3 *conv, ifcn_devptr dy, ifcn_devptr w, float beta,
                             ifcn_devptr dx, ifcn_devptr workspace, size_t workspace_bytes);
// dw = corr(x, dy) + beta * dw
int ifcn_conv3_backward_filter(void *handle, ifcn_conv3 *conv, ifcn_devptr x, ifcn_devptr dy, float beta,
                               ifcn_devptr dw, ifcn_devptr workspace, size_t workspace_bytes);
// The algorithm chosen per direction (-1 until ifcn_conv3_set_algorithm sets one), and the math type it runs under
// (the candidate's math_type; -1: the descriptor's own). Each pass sets its direction's math type on the shared
// descriptor before it runs: cuDNN picks an algorithm's kernels by algorithm and math type together, and may refuse
// (CUDNN_STATUS_BAD_PARAM) an algorithm Find...Ex ran under another math type than the descriptor's.
int ifcn_conv3_algorithm(const ifcn_conv3 *conv, int direction);
int ifcn_conv3_math_type(const ifcn_conv3 *conv, int direction);
void ifcn_conv3_set_algorithm(ifcn_conv3 *conv, int direction, int algorithm, int math_type);

// ---- NCCL (ncclResult_t codes; 0 = ncclSuccess) ----
#define IFCN_NCCL_UNIQUE_ID_BYTES 128
const char *ifcn_nccl_error_string(int code);
// version = major * 10000 + minor * 100 + patch (NCCL >= 2.9)
int ifcn_nccl_version(int *version);
// Writes the 128-byte id rank 0 creates and every rank passes to ifcn_nccl_comm_init.
int ifcn_nccl_unique_id(unsigned char *id);
// Collective over the nranks ranks; the calling thread's current CUDA context picks the GPU.
int ifcn_nccl_comm_init(void **comm, int nranks, const unsigned char *id, int rank);
// In place: count float32 at buffer become their mean over the ranks (ncclAvg), queued on stream.
int ifcn_nccl_allreduce_average(void *comm, ifcn_devptr buffer, size_t count, void *stream);
// The communicator's asynchronous error (a failed peer or network), without waiting.
int ifcn_nccl_async_error(void *comm, int *error);
int ifcn_nccl_comm_destroy(void *comm);
int ifcn_nccl_comm_abort(void *comm);

// The value this shim declares for an NVIDIA constant, by its name in NVIDIA's headers (for the
// test that checks them against the headers); 0 if known, -1 if not.
int ifcn_cuda_declared_constant(const char *name, long long *value);

#endif
