// See include/ifcn_cuda.h. Prototypes and constants below are declared from NVIDIA's published
// API documentation (CUDA driver API, NVRTC, cuDNN 9 legacy convolution API); the test
// CUDAConstantsTests checks them against pip's nvidia-* headers where those are installed.
#define _GNU_SOURCE
#include "ifcn_cuda.h"

#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <stddef.h>
#include <string.h>

// ---- driver API types ----
typedef int CUresult;
typedef int CUdevice;
typedef void *CUcontext;
typedef void *CUmodule;
typedef void *CUfunction;
typedef void *CUstream;
typedef void *CUevent;
enum { CU_EVENT_DEFAULT = 0, CU_EVENT_DISABLE_TIMING = 2, CUDA_ERROR_NOT_FOUND = 500 };
typedef unsigned long long CUdeviceptr;

// ---- cuDNN types and constants ----
typedef int cudnnStatus_t;
typedef void *cudnnHandle_t;
typedef void *cudnnTensorDescriptor_t;
typedef void *cudnnFilterDescriptor_t;
typedef void *cudnnConvolutionDescriptor_t;
enum { CUDNN_DATA_FLOAT = 0, CUDNN_DATA_BFLOAT16 = 9, CUDNN_TENSOR_NCHW = 0, CUDNN_TENSOR_NHWC = 1,
       CUDNN_CROSS_CORRELATION = 1 };
enum { CUDNN_DEFAULT_MATH = 0, CUDNN_TENSOR_OP_MATH = 1, CUDNN_FMA_MATH = 3 };
enum { CUDNN_DETERMINISTIC = 1 };
// cudnnConvolution{Fwd,BwdData,BwdFilter}AlgoPerf_t share one layout.
typedef struct {
    int algo;
    cudnnStatus_t status;
    float time;
    size_t memory;
    int determinism;
    int mathType;
    int reserved[3];
} ifcn_algo_perf;
#define IFCN_MAX_ALGOS 16

// ---- NCCL types and constants (nccl.h) ----
typedef int ncclResult_t;
typedef void *ncclComm_t;
typedef struct { char internal[IFCN_NCCL_UNIQUE_ID_BYTES]; } ncclUniqueId;
enum { ncclFloat32 = 7, ncclAvg = 4 };

// ---- NVRTC types ----
typedef int nvrtcResult;
typedef void *nvrtcProgram;

#define FN(ret, name, args) static ret(*p_##name) args
// driver
FN(CUresult, cuGetErrorString, (CUresult, const char **));
FN(CUresult, cuInit, (unsigned));
FN(CUresult, cuDriverGetVersion, (int *));
FN(CUresult, cuDeviceGetCount, (int *));
FN(CUresult, cuDeviceGet, (CUdevice *, int));
FN(CUresult, cuDeviceGetName, (char *, int, CUdevice));
FN(CUresult, cuDeviceGetAttribute, (int *, int, CUdevice));
FN(CUresult, cuDeviceTotalMem_v2, (size_t *, CUdevice));
FN(CUresult, cuDevicePrimaryCtxRetain, (CUcontext *, CUdevice));
FN(CUresult, cuCtxSetCurrent, (CUcontext));
FN(CUresult, cuMemGetInfo_v2, (size_t *, size_t *));
FN(CUresult, cuMemAlloc_v2, (CUdeviceptr *, size_t));
FN(CUresult, cuMemFree_v2, (CUdeviceptr));
FN(CUresult, cuMemAllocHost_v2, (void **, size_t));
FN(CUresult, cuMemFreeHost, (void *));
FN(CUresult, cuMemcpyHtoDAsync_v2, (CUdeviceptr, const void *, size_t, CUstream));
FN(CUresult, cuMemcpyDtoHAsync_v2, (void *, CUdeviceptr, size_t, CUstream));
FN(CUresult, cuMemcpyDtoDAsync_v2, (CUdeviceptr, CUdeviceptr, size_t, CUstream));
FN(CUresult, cuMemsetD32Async, (CUdeviceptr, unsigned, size_t, CUstream));
FN(CUresult, cuStreamCreate, (CUstream *, unsigned));
FN(CUresult, cuStreamSynchronize, (CUstream));
FN(CUresult, cuEventCreate, (CUevent *, unsigned));
FN(CUresult, cuEventRecord, (CUevent, CUstream));
FN(CUresult, cuEventDestroy_v2, (CUevent));
FN(CUresult, cuEventSynchronize, (CUevent));
FN(CUresult, cuStreamWaitEvent, (CUstream, CUevent, unsigned));
// Resolved at open but optional: cuEventElapsedTime_v2 (CUDA 12.8 and later), else the original symbol.
static CUresult (*p_event_elapsed)(float *, CUevent, CUevent);
FN(CUresult, cuModuleLoadData, (CUmodule *, const void *));
FN(CUresult, cuModuleGetFunction, (CUfunction *, CUmodule, const char *));
FN(CUresult, cuLaunchKernel, (CUfunction, unsigned, unsigned, unsigned, unsigned, unsigned, unsigned, unsigned,
                              CUstream, void **, void **));
// NVRTC
FN(const char *, nvrtcGetErrorString, (nvrtcResult));
FN(nvrtcResult, nvrtcVersion, (int *, int *));
FN(nvrtcResult, nvrtcCreateProgram, (nvrtcProgram *, const char *, const char *, int, const char *const *,
                                     const char *const *));
FN(nvrtcResult, nvrtcCompileProgram, (nvrtcProgram, int, const char *const *));
FN(nvrtcResult, nvrtcGetProgramLogSize, (nvrtcProgram, size_t *));
FN(nvrtcResult, nvrtcGetProgramLog, (nvrtcProgram, char *));
FN(nvrtcResult, nvrtcGetCUBINSize, (nvrtcProgram, size_t *));
FN(nvrtcResult, nvrtcGetCUBIN, (nvrtcProgram, char *));
FN(nvrtcResult, nvrtcDestroyProgram, (nvrtcProgram *));
// cuDNN
FN(size_t, cudnnGetVersion, (void));
FN(const char *, cudnnGetErrorString, (cudnnStatus_t));
FN(cudnnStatus_t, cudnnCreate, (cudnnHandle_t *));
FN(cudnnStatus_t, cudnnSetStream, (cudnnHandle_t, CUstream));
FN(cudnnStatus_t, cudnnCreateTensorDescriptor, (cudnnTensorDescriptor_t *));
FN(cudnnStatus_t, cudnnSetTensorNdDescriptor, (cudnnTensorDescriptor_t, int, int, const int *, const int *));
FN(cudnnStatus_t, cudnnDestroyTensorDescriptor, (cudnnTensorDescriptor_t));
FN(cudnnStatus_t, cudnnCreateFilterDescriptor, (cudnnFilterDescriptor_t *));
FN(cudnnStatus_t, cudnnSetFilterNdDescriptor, (cudnnFilterDescriptor_t, int, int, int, const int *));
FN(cudnnStatus_t, cudnnDestroyFilterDescriptor, (cudnnFilterDescriptor_t));
FN(cudnnStatus_t, cudnnCreateConvolutionDescriptor, (cudnnConvolutionDescriptor_t *));
FN(cudnnStatus_t, cudnnSetConvolutionNdDescriptor, (cudnnConvolutionDescriptor_t, int, const int *, const int *,
                                                    const int *, int, int));
FN(cudnnStatus_t, cudnnSetConvolutionMathType, (cudnnConvolutionDescriptor_t, int));
FN(cudnnStatus_t, cudnnDestroyConvolutionDescriptor, (cudnnConvolutionDescriptor_t));
FN(cudnnStatus_t, cudnnFindConvolutionForwardAlgorithmEx,
   (cudnnHandle_t, cudnnTensorDescriptor_t, const void *, cudnnFilterDescriptor_t, const void *,
    cudnnConvolutionDescriptor_t, cudnnTensorDescriptor_t, void *, int, int *, ifcn_algo_perf *, void *, size_t));
FN(cudnnStatus_t, cudnnFindConvolutionBackwardDataAlgorithmEx,
   (cudnnHandle_t, cudnnFilterDescriptor_t, const void *, cudnnTensorDescriptor_t, const void *,
    cudnnConvolutionDescriptor_t, cudnnTensorDescriptor_t, void *, int, int *, ifcn_algo_perf *, void *, size_t));
FN(cudnnStatus_t, cudnnFindConvolutionBackwardFilterAlgorithmEx,
   (cudnnHandle_t, cudnnTensorDescriptor_t, const void *, cudnnTensorDescriptor_t, const void *,
    cudnnConvolutionDescriptor_t, cudnnFilterDescriptor_t, void *, int, int *, ifcn_algo_perf *, void *, size_t));
FN(cudnnStatus_t, cudnnGetConvolutionForwardAlgorithm_v7,
   (cudnnHandle_t, cudnnTensorDescriptor_t, cudnnFilterDescriptor_t, cudnnConvolutionDescriptor_t,
    cudnnTensorDescriptor_t, int, int *, ifcn_algo_perf *));
FN(cudnnStatus_t, cudnnGetConvolutionBackwardDataAlgorithm_v7,
   (cudnnHandle_t, cudnnFilterDescriptor_t, cudnnTensorDescriptor_t, cudnnConvolutionDescriptor_t,
    cudnnTensorDescriptor_t, int, int *, ifcn_algo_perf *));
FN(cudnnStatus_t, cudnnGetConvolutionBackwardFilterAlgorithm_v7,
   (cudnnHandle_t, cudnnTensorDescriptor_t, cudnnTensorDescriptor_t, cudnnConvolutionDescriptor_t,
    cudnnFilterDescriptor_t, int, int *, ifcn_algo_perf *));
FN(cudnnStatus_t, cudnnConvolutionForward,
   (cudnnHandle_t, const void *, cudnnTensorDescriptor_t, const void *, cudnnFilterDescriptor_t, const void *,
    cudnnConvolutionDescriptor_t, int, void *, size_t, const void *, cudnnTensorDescriptor_t, void *));
FN(cudnnStatus_t, cudnnConvolutionBackwardData,
   (cudnnHandle_t, const void *, cudnnFilterDescriptor_t, const void *, cudnnTensorDescriptor_t, const void *,
    cudnnConvolutionDescriptor_t, int, void *, size_t, const void *, cudnnTensorDescriptor_t, void *));
FN(cudnnStatus_t, cudnnConvolutionBackwardFilter,
   (cudnnHandle_t, const void *, cudnnTensorDescriptor_t, const void *, cudnnTensorDescriptor_t, const void *,
    cudnnConvolutionDescriptor_t, int, void *, size_t, const void *, cudnnFilterDescriptor_t, void *));
// NCCL
FN(ncclResult_t, ncclGetVersion, (int *));
FN(const char *, ncclGetErrorString, (ncclResult_t));
FN(ncclResult_t, ncclGetUniqueId, (ncclUniqueId *));
FN(ncclResult_t, ncclCommInitRank, (ncclComm_t *, int, ncclUniqueId, int));
FN(ncclResult_t, ncclAllReduce, (const void *, void *, size_t, int, int, ncclComm_t, CUstream));
FN(ncclResult_t, ncclCommDestroy, (ncclComm_t));
FN(ncclResult_t, ncclCommAbort, (ncclComm_t));
FN(ncclResult_t, ncclCommGetAsyncError, (ncclComm_t, ncclResult_t *));
#undef FN

typedef struct { const char *name; void **slot; } symbol;
#define SYM(name) { #name, (void **)&p_##name }

static const symbol driver_symbols[] = {
    SYM(cuGetErrorString), SYM(cuInit), SYM(cuDriverGetVersion), SYM(cuDeviceGetCount), SYM(cuDeviceGet),
    SYM(cuDeviceGetName), SYM(cuDeviceGetAttribute), SYM(cuDeviceTotalMem_v2), SYM(cuDevicePrimaryCtxRetain),
    SYM(cuCtxSetCurrent), SYM(cuMemGetInfo_v2), SYM(cuMemAlloc_v2), SYM(cuMemFree_v2), SYM(cuMemAllocHost_v2),
    SYM(cuMemFreeHost), SYM(cuMemcpyHtoDAsync_v2), SYM(cuMemcpyDtoHAsync_v2), SYM(cuMemcpyDtoDAsync_v2),
    SYM(cuMemsetD32Async), SYM(cuStreamCreate), SYM(cuStreamSynchronize), SYM(cuModuleLoadData),
    SYM(cuEventCreate), SYM(cuEventRecord), SYM(cuEventDestroy_v2), SYM(cuEventSynchronize),
    SYM(cuStreamWaitEvent), SYM(cuModuleGetFunction), SYM(cuLaunchKernel),
};
static const symbol nvrtc_symbols[] = {
    SYM(nvrtcGetErrorString), SYM(nvrtcVersion), SYM(nvrtcCreateProgram), SYM(nvrtcCompileProgram),
    SYM(nvrtcGetProgramLogSize), SYM(nvrtcGetProgramLog), SYM(nvrtcGetCUBINSize), SYM(nvrtcGetCUBIN),
    SYM(nvrtcDestroyProgram),
};
static const symbol cudnn_symbols[] = {
    SYM(cudnnGetVersion), SYM(cudnnGetErrorString), SYM(cudnnCreate), SYM(cudnnSetStream),
    SYM(cudnnCreateTensorDescriptor), SYM(cudnnSetTensorNdDescriptor), SYM(cudnnDestroyTensorDescriptor),
    SYM(cudnnCreateFilterDescriptor), SYM(cudnnSetFilterNdDescriptor), SYM(cudnnDestroyFilterDescriptor),
    SYM(cudnnCreateConvolutionDescriptor), SYM(cudnnSetConvolutionNdDescriptor), SYM(cudnnSetConvolutionMathType),
    SYM(cudnnDestroyConvolutionDescriptor), SYM(cudnnFindConvolutionForwardAlgorithmEx),
    SYM(cudnnFindConvolutionBackwardDataAlgorithmEx), SYM(cudnnFindConvolutionBackwardFilterAlgorithmEx),
    SYM(cudnnConvolutionForward), SYM(cudnnConvolutionBackwardData), SYM(cudnnConvolutionBackwardFilter),
    SYM(cudnnGetConvolutionForwardAlgorithm_v7), SYM(cudnnGetConvolutionBackwardDataAlgorithm_v7),
    SYM(cudnnGetConvolutionBackwardFilterAlgorithm_v7),
};
static const symbol nccl_symbols[] = {
    SYM(ncclGetVersion), SYM(ncclGetErrorString), SYM(ncclGetUniqueId), SYM(ncclCommInitRank), SYM(ncclAllReduce),
    SYM(ncclCommDestroy), SYM(ncclCommAbort), SYM(ncclCommGetAsyncError),
};
#undef SYM

#define LIBRARIES 4
static void *handles[LIBRARIES];
static char resolved[LIBRARIES][4096];

// cuDNN 9's libcudnn.so.9 is a dispatcher: its functions load the sub-libraries on first use, and
// when one is missing it prints "Invalid handle. Cannot load symbol ..." and aborts the process. So
// the sub-libraries ifcn's calls reach are loaded here first, from the dispatcher's folder or the
// loader's paths; one that does not load makes cuDNN unusable, with the reason, instead of a crash.
static int cudnn_sublibraries_missing(const char *dispatcher, char *msg, int msg_len) {
    static const char *const needed[] = {"libcudnn_graph.so.9", "libcudnn_ops.so.9", "libcudnn_cnn.so.9"};
    char folder[4096];
    snprintf(folder, sizeof folder, "%s", dispatcher);
    char *slash = strrchr(folder, '/');
    if (slash) *slash = 0; else folder[0] = 0;
    for (size_t i = 0; i < sizeof needed / sizeof *needed; i++) {
        char beside[4352];
        void *h = NULL;
        if (folder[0]) {
            snprintf(beside, sizeof beside, "%s/%s", folder, needed[i]);
            h = dlopen(beside, RTLD_NOW | RTLD_GLOBAL);
        }
        if (!h) h = dlopen(needed[i], RTLD_NOW | RTLD_GLOBAL);
        if (!h) {
            const char *e = dlerror();
            snprintf(msg, msg_len, "%s loads, but its sub-library %s does not (%s): cuDNN would abort at its first call",
                     dispatcher, needed[i], e ? e : "not found");
            return 1;
        }
    }
    return 0;
}

int ifcn_cuda_symbol_count(int library) {
    switch (library) {
    case 0: return (int)(sizeof driver_symbols / sizeof *driver_symbols);
    case 1: return (int)(sizeof cudnn_symbols / sizeof *cudnn_symbols);
    case 2: return (int)(sizeof nvrtc_symbols / sizeof *nvrtc_symbols);
    case 3: return (int)(sizeof nccl_symbols / sizeof *nccl_symbols);
    default: return 0;
    }
}

const char *ifcn_cuda_symbol_name(int library, int index) {
    const symbol *table = library == 0 ? driver_symbols : library == 1 ? cudnn_symbols
                        : library == 2 ? nvrtc_symbols : library == 3 ? nccl_symbols : NULL;
    return table && index >= 0 && index < ifcn_cuda_symbol_count(library) ? table[index].name : NULL;
}

int ifcn_cuda_open(int library, const char *path, char *msg, int msg_len) {
    const symbol *table;
    size_t n;
    switch (library) {
    case 0: table = driver_symbols; n = sizeof driver_symbols / sizeof *table; break;
    case 1: table = cudnn_symbols; n = sizeof cudnn_symbols / sizeof *table; break;
    case 2: table = nvrtc_symbols; n = sizeof nvrtc_symbols / sizeof *table; break;
    case 3: table = nccl_symbols; n = sizeof nccl_symbols / sizeof *table; break;
    default: snprintf(msg, msg_len, "unknown library %d", library); return -1;
    }
    if (handles[library]) return 0;
    void *h = dlopen(path, RTLD_NOW | RTLD_GLOBAL);
    if (!h) {
        const char *e = dlerror();
        snprintf(msg, msg_len, "%s", e ? e : "dlopen failed");
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        void *f = dlsym(h, table[i].name);
        if (!f) {
            snprintf(msg, msg_len, "%s has no symbol %s", path, table[i].name);
            for (size_t j = 0; j < i; j++) *table[j].slot = NULL;
            dlclose(h);
            return -1;
        }
        *table[i].slot = f;
    }
    Dl_info info;
    if (dladdr(*table[0].slot, &info) && info.dli_fname) snprintf(resolved[library], sizeof resolved[library], "%s", info.dli_fname);
    else snprintf(resolved[library], sizeof resolved[library], "%s", path);
    if (library == 1 && cudnn_sublibraries_missing(resolved[library], msg, msg_len)) {
        for (size_t j = 0; j < n; j++) *table[j].slot = NULL;
        dlclose(h);
        return -1;
    }
    if (library == 0) {
        p_event_elapsed = (CUresult(*)(float *, CUevent, CUevent))dlsym(h, "cuEventElapsedTime_v2");
        if (!p_event_elapsed) p_event_elapsed = (CUresult(*)(float *, CUevent, CUevent))dlsym(h, "cuEventElapsedTime");
    }
    handles[library] = h;
    return 0;
}

int ifcn_cuda_is_open(int library) { return library >= 0 && library < LIBRARIES && handles[library] != NULL; }

void ifcn_cuda_resolved_path(int library, char *out, int len) {
    snprintf(out, len, "%s", ifcn_cuda_is_open(library) ? resolved[library] : "");
}

void ifcn_cuda_free(void *pointer) { free(pointer); }

// ---- driver ----
#define NEED(lib) do { if (!handles[lib]) return -1; } while (0)

const char *ifcn_cu_error_string(int code) {
    const char *s = NULL;
    if (code == -1) return "library not loaded";
    if (p_cuGetErrorString && p_cuGetErrorString(code, &s) == 0 && s) return s;
    return "unknown CUDA error";
}
int ifcn_cu_init(void) { NEED(0); return p_cuInit(0); }
int ifcn_cu_driver_version(int *v) { NEED(0); return p_cuDriverGetVersion(v); }
int ifcn_cu_device_count(int *c) { NEED(0); return p_cuDeviceGetCount(c); }
int ifcn_cu_device_name(int ordinal, char *name, int len) {
    NEED(0);
    CUdevice d;
    int r = p_cuDeviceGet(&d, ordinal);
    return r ? r : p_cuDeviceGetName(name, len, d);
}
int ifcn_cu_device_attribute(int attribute, int ordinal, int *value) {
    NEED(0);
    CUdevice d;
    int r = p_cuDeviceGet(&d, ordinal);
    return r ? r : p_cuDeviceGetAttribute(value, attribute, d);
}
int ifcn_cu_device_total_mem(int ordinal, size_t *bytes) {
    NEED(0);
    CUdevice d;
    int r = p_cuDeviceGet(&d, ordinal);
    return r ? r : p_cuDeviceTotalMem_v2(bytes, d);
}
static __thread void *bound_context;
int ifcn_cu_primary_context(int ordinal, void **context) {
    NEED(0);
    CUdevice d;
    int r = p_cuDeviceGet(&d, ordinal);
    if (r) return r;
    if ((r = p_cuDevicePrimaryCtxRetain(context, d))) return r;
    return ifcn_cu_bind(*context);
}
int ifcn_cu_bind(void *context) {
    NEED(0);
    if (bound_context == context) return 0;
    int r = p_cuCtxSetCurrent(context);
    if (!r) bound_context = context;
    return r;
}
int ifcn_cu_mem_get_info(size_t *f, size_t *t) { NEED(0); return p_cuMemGetInfo_v2(f, t); }
int ifcn_cu_mem_alloc(ifcn_devptr *p, size_t bytes) { NEED(0); return p_cuMemAlloc_v2(p, bytes); }
int ifcn_cu_mem_free(ifcn_devptr p) { NEED(0); return p_cuMemFree_v2(p); }
int ifcn_cu_mem_alloc_host(void **p, size_t bytes) { NEED(0); return p_cuMemAllocHost_v2(p, bytes); }
int ifcn_cu_mem_free_host(void *p) { NEED(0); return p_cuMemFreeHost(p); }
int ifcn_cu_memcpy_htod(ifcn_devptr dst, const void *src, size_t bytes, void *stream) {
    NEED(0); return p_cuMemcpyHtoDAsync_v2(dst, src, bytes, stream);
}
int ifcn_cu_memcpy_dtoh(void *dst, ifcn_devptr src, size_t bytes, void *stream) {
    NEED(0); return p_cuMemcpyDtoHAsync_v2(dst, src, bytes, stream);
}
int ifcn_cu_memcpy_dtod(ifcn_devptr dst, ifcn_devptr src, size_t bytes, void *stream) {
    NEED(0); return p_cuMemcpyDtoDAsync_v2(dst, src, bytes, stream);
}
int ifcn_cu_memset_d32(ifcn_devptr dst, uint32_t value, size_t count, void *stream) {
    NEED(0); return p_cuMemsetD32Async(dst, value, count, stream);
}
int ifcn_cu_stream_create(void **stream) { NEED(0); return p_cuStreamCreate(stream, 0); }
int ifcn_cu_stream_synchronize(void *stream) { NEED(0); return p_cuStreamSynchronize(stream); }
int ifcn_cu_event_create(void **event) { NEED(0); return p_cuEventCreate(event, CU_EVENT_DEFAULT); }  // timing on
int ifcn_cu_event_record(void *event, void *stream) { NEED(0); return p_cuEventRecord(event, stream); }
int ifcn_cu_event_create_untimed(void **event) { NEED(0); return p_cuEventCreate(event, CU_EVENT_DISABLE_TIMING); }
int ifcn_cu_event_synchronize(void *event) { NEED(0); return p_cuEventSynchronize(event); }
int ifcn_cu_stream_wait_event(void *stream, void *event) { NEED(0); return p_cuStreamWaitEvent(stream, event, 0); }
int ifcn_cu_event_destroy(void *event) { NEED(0); return p_cuEventDestroy_v2(event); }
int ifcn_cu_event_elapsed(float *milliseconds, void *start, void *end) {
    NEED(0);
    if (!p_event_elapsed) return CUDA_ERROR_NOT_FOUND;  // the driver exports neither elapsed-time symbol
    return p_event_elapsed(milliseconds, start, end);
}
int ifcn_cu_module_load_data(void **module, const void *image) { NEED(0); return p_cuModuleLoadData(module, image); }
int ifcn_cu_module_get_function(void **function, void *module, const char *name) {
    NEED(0); return p_cuModuleGetFunction(function, module, name);
}
int ifcn_cu_launch(void *function, unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned by, unsigned bz,
                   unsigned shared_bytes, void *stream, void **params) {
    NEED(0); return p_cuLaunchKernel(function, gx, gy, gz, bx, by, bz, shared_bytes, stream, params, NULL);
}

// ---- NVRTC ----
const char *ifcn_nvrtc_error_string(int code) {
    if (code == -1) return "NVRTC not loaded";
    return p_nvrtcGetErrorString ? p_nvrtcGetErrorString(code) : "unknown NVRTC error";
}
int ifcn_nvrtc_version(int *major, int *minor) { NEED(2); return p_nvrtcVersion(major, minor); }
int ifcn_nvrtc_compile(const char *source, const char *name, const char *const *options, int option_count,
                       void **cubin, size_t *cubin_size, char **log) {
    *cubin = NULL; *cubin_size = 0; *log = NULL;
    NEED(2);
    nvrtcProgram prog;
    int r = p_nvrtcCreateProgram(&prog, source, name, 0, NULL, NULL);
    if (r) return r;
    int compiled = p_nvrtcCompileProgram(prog, option_count, options);
    size_t log_size = 0;
    if (p_nvrtcGetProgramLogSize(prog, &log_size) == 0 && (*log = calloc(log_size + 1, 1)) != NULL && log_size > 0)
        p_nvrtcGetProgramLog(prog, *log);
    if (compiled == 0) {
        if ((r = p_nvrtcGetCUBINSize(prog, cubin_size)) == 0) {
            *cubin = malloc(*cubin_size ? *cubin_size : 1);
            r = *cubin ? p_nvrtcGetCUBIN(prog, *cubin) : 5;  // NVRTC_ERROR_OUT_OF_MEMORY-like
        }
    } else {
        r = compiled;
    }
    p_nvrtcDestroyProgram(&prog);
    return r;
}

// ---- cuDNN ----
const char *ifcn_cudnn_error_string(int code) {
    switch (code) {
    case -1: return "cuDNN not loaded";
    case IFCN_CUDNN_BAD_DIRECTION: return "unknown convolution direction";
    case IFCN_CUDNN_HOST_OUT_OF_MEMORY: return "out of host memory";
    case IFCN_CUDNN_BAD_VARIANT: return "unknown convolution precision or layout";
    default: break;
    }
    return p_cudnnGetErrorString ? p_cudnnGetErrorString(code) : "unknown cuDNN error";
}
size_t ifcn_cudnn_version(void) { return p_cudnnGetVersion ? p_cudnnGetVersion() : 0; }
int ifcn_cudnn_create(void **handle, void *stream) {
    NEED(1);
    int r = p_cudnnCreate(handle);
    return r ? r : p_cudnnSetStream(*handle, stream);
}

struct ifcn_conv3 {
    cudnnTensorDescriptor_t x, y;
    cudnnFilterDescriptor_t w;
    cudnnConvolutionDescriptor_t conv;
    int algorithm[3];
    int math[3];       // the math type each direction's algorithm runs under
    int descriptor_math;  // the math type the precision asks for
    int precision;
};

// [1, C, D, H, W] in the layout's order of memory: NCDHW (W fastest) or NDHWC (C fastest).
static int set_tensor(cudnnTensorDescriptor_t t, int type, int layout, int c, int d, int h, int w) {
    int dims[5] = {1, c, d, h, w};
    int ncdhw[5] = {c * d * h * w, d * h * w, h * w, w, 1};
    int ndhwc[5] = {c * d * h * w, 1, h * w * c, w * c, c};
    return p_cudnnSetTensorNdDescriptor(t, type, 5, dims, layout ? ndhwc : ncdhw);
}

int ifcn_conv3_create_variant(ifcn_conv3 **out, int cin, int cout, int d, int h, int w, int precision, int layout) {
    NEED(1);
    if (precision < 0 || precision > 2 || layout < 0 || layout > 1) return IFCN_CUDNN_BAD_VARIANT;
    ifcn_conv3 *c = calloc(1, sizeof *c);
    if (!c) return IFCN_CUDNN_HOST_OUT_OF_MEMORY;
    c->algorithm[0] = c->algorithm[1] = c->algorithm[2] = -1;
    c->precision = precision;
    int r;
    int mathType = precision == 0 ? CUDNN_FMA_MATH : precision == 1 ? CUDNN_DEFAULT_MATH : CUDNN_TENSOR_OP_MATH;
    c->descriptor_math = c->math[0] = c->math[1] = c->math[2] = mathType;
    int fdims[5] = {cout, cin, 3, 3, 3};
    int pad[3] = {1, 1, 1}, stride[3] = {1, 1, 1}, dilation[3] = {1, 1, 1};
    // bf16 tensors and filters with float32 accumulation (cuDNN's BFLOAT16 configuration); the
    // convolution's compute type is float32 in every precision.
    int type = precision == 2 ? CUDNN_DATA_BFLOAT16 : CUDNN_DATA_FLOAT;
    if ((r = p_cudnnCreateTensorDescriptor(&c->x)) || (r = p_cudnnCreateTensorDescriptor(&c->y)) ||
        (r = p_cudnnCreateFilterDescriptor(&c->w)) || (r = p_cudnnCreateConvolutionDescriptor(&c->conv)) ||
        (r = set_tensor(c->x, type, layout, cin, d, h, w)) || (r = set_tensor(c->y, type, layout, cout, d, h, w)) ||
        (r = p_cudnnSetFilterNdDescriptor(c->w, type, layout ? CUDNN_TENSOR_NHWC : CUDNN_TENSOR_NCHW, 5, fdims)) ||
        (r = p_cudnnSetConvolutionNdDescriptor(c->conv, 3, pad, stride, dilation, CUDNN_CROSS_CORRELATION,
                                               CUDNN_DATA_FLOAT)) ||
        (r = p_cudnnSetConvolutionMathType(c->conv, mathType))) {
        ifcn_conv3_destroy(c);
        return r;
    }
    *out = c;
    return 0;
}

void ifcn_conv3_destroy(ifcn_conv3 *c) {
    if (!c) return;
    if (c->x) p_cudnnDestroyTensorDescriptor(c->x);
    if (c->y) p_cudnnDestroyTensorDescriptor(c->y);
    if (c->w) p_cudnnDestroyFilterDescriptor(c->w);
    if (c->conv) p_cudnnDestroyConvolutionDescriptor(c->conv);
    free(c);
}

// float32 math sums plain float32 products, under FMA math only (cuDNN lists each algorithm with the math type it ran
// under): no TF32 tensor cores, and no FFT or Winograd algorithm, whose transforms round more (cuDNN 9's
// numbering: forward 4 FFT, 5 FFT tiling, 6 Winograd, 7 Winograd non-fused; backward data 2 FFT, 3 FFT tiling,
// 4 Winograd, 5 Winograd non-fused; backward filter 2 FFT, 4 Winograd, 5 Winograd non-fused, 6 FFT tiling).
int ifcn_conv3_allows(const ifcn_conv3 *c, int direction, int algorithm, int math_type) {
    if (c->precision != 0) return 1;
    if (math_type != CUDNN_FMA_MATH) return 0;
    switch (direction) {
    case 0: return algorithm < 4;
    case 1: return algorithm < 2;
    case 2: return algorithm == 0 || algorithm == 1 || algorithm == 3;
    default: return 0;
    }
}

// Whether a listed algorithm ran (or would run), is allowed, and gives the same bits on every run where asked.
static int usable(const ifcn_conv3 *c, int direction, const ifcn_algo_perf *p, int deterministic_only) {
    return p->status == 0 && ifcn_conv3_allows(c, direction, p->algo, p->mathType) &&
           (!deterministic_only || p->determinism == CUDNN_DETERMINISTIC);
}

// A search (Find...Ex, the heuristics) runs under the math type the precision asks for: a pass run before it may have
// left the shared descriptor under its own algorithm's math type (use_math), and cuDNN then lists only what that
// math type allows (on an H200, bf16 searches left under CUDNN_DEFAULT_MATH by the forward pass's choice chose
// backward algorithms without tensor cores: the step's weight gradients 6.9 -> 43.8 ms).
static int search_math(ifcn_conv3 *c) { return p_cudnnSetConvolutionMathType(c->conv, c->descriptor_math); }

// cudnnFind...Ex for one direction: every algorithm cuDNN could run, fastest first.
static int find_ranked(void *handle, ifcn_conv3 *c, int direction, ifcn_devptr x, ifcn_devptr w, ifcn_devptr y,
                       ifcn_devptr ws, size_t ws_bytes, ifcn_algo_perf *perf, int *count) {
    NEED(1);
    memset(perf, 0, IFCN_MAX_ALGOS * sizeof *perf);
    *count = 0;
    int r = search_math(c);
    if (r) return r;
    void *X = (void *)(uintptr_t)x, *W = (void *)(uintptr_t)w, *Y = (void *)(uintptr_t)y, *WS = (void *)(uintptr_t)ws;
    // Direction 0 writes y from (x, w); 1 writes x (dx) from (y (dy), w); 2 writes w (dw) from (x, y (dy)).
    switch (direction) {
    case 0: return p_cudnnFindConvolutionForwardAlgorithmEx(handle, c->x, X, c->w, W, c->conv, c->y, Y, IFCN_MAX_ALGOS,
                                                            count, perf, WS, ws_bytes);
    case 1: return p_cudnnFindConvolutionBackwardDataAlgorithmEx(handle, c->w, W, c->y, Y, c->conv, c->x, X,
                                                                 IFCN_MAX_ALGOS, count, perf, WS, ws_bytes);
    case 2: return p_cudnnFindConvolutionBackwardFilterAlgorithmEx(handle, c->x, X, c->y, Y, c->conv, c->w, W,
                                                                   IFCN_MAX_ALGOS, count, perf, WS, ws_bytes);
    default: return IFCN_CUDNN_BAD_DIRECTION;
    }
}

int ifcn_conv3_find_all(void *handle, ifcn_conv3 *c, int direction, ifcn_devptr x, ifcn_devptr w, ifcn_devptr y,
                        ifcn_devptr ws, size_t ws_bytes, ifcn_conv3_candidate *out, int capacity, int *count) {
    ifcn_algo_perf perf[IFCN_MAX_ALGOS];
    int n = 0;
    *count = 0;
    int r = find_ranked(handle, c, direction, x, w, y, ws, ws_bytes, perf, &n);
    if (r) return r;
    for (int i = 0; i < n && *count < capacity; i++) {
        ifcn_conv3_candidate *o = &out[(*count)++];
        o->algorithm = perf[i].algo;
        o->status = perf[i].status;
        o->milliseconds = perf[i].time;
        o->workspace_bytes = perf[i].memory;
        o->deterministic = perf[i].determinism == CUDNN_DETERMINISTIC;
        o->math_type = perf[i].mathType;
    }
    return 0;
}

// cudnnGet...Algorithm_v7 for one direction: every algorithm, ranked by cuDNN's heuristics, untimed.
static int heuristic_ranked(void *handle, ifcn_conv3 *c, int direction, ifcn_algo_perf *perf, int *count) {
    memset(perf, 0, IFCN_MAX_ALGOS * sizeof *perf);
    *count = 0;
    int r = search_math(c);
    if (r) return r;
    switch (direction) {
    case 0: return p_cudnnGetConvolutionForwardAlgorithm_v7(handle, c->x, c->w, c->conv, c->y, IFCN_MAX_ALGOS, count, perf);
    case 1: return p_cudnnGetConvolutionBackwardDataAlgorithm_v7(handle, c->w, c->y, c->conv, c->x, IFCN_MAX_ALGOS, count, perf);
    case 2: return p_cudnnGetConvolutionBackwardFilterAlgorithm_v7(handle, c->x, c->y, c->conv, c->w, IFCN_MAX_ALGOS, count, perf);
    default: return IFCN_CUDNN_BAD_DIRECTION;
    }
}

int ifcn_conv3_workspace_wanted(void *handle, ifcn_conv3 *c, int direction, size_t bound, int deterministic_only,
                                size_t *bytes) {
    NEED(1);
    ifcn_algo_perf perf[IFCN_MAX_ALGOS];
    int count = 0;
    *bytes = 0;
    int r = heuristic_ranked(handle, c, direction, perf, &count);
    if (r) return r;
    for (int i = 0; i < count; i++)
        if (usable(c, direction, &perf[i], deterministic_only) && perf[i].memory <= bound && perf[i].memory > *bytes)
            *bytes = perf[i].memory;
    return 0;
}

int ifcn_conv3_algorithm(const ifcn_conv3 *c, int direction) {
    return direction >= 0 && direction < 3 ? c->algorithm[direction] : -1;
}

int ifcn_conv3_math_type(const ifcn_conv3 *c, int direction) {
    return direction >= 0 && direction < 3 ? c->math[direction] : -1;
}

void ifcn_conv3_set_algorithm(ifcn_conv3 *c, int direction, int algorithm, int math_type) {
    if (direction < 0 || direction > 2) return;
    c->algorithm[direction] = algorithm;
    c->math[direction] = math_type < 0 ? c->descriptor_math : math_type;
}

// The descriptor's math type for one pass (a host-side field of the descriptor; no device work).
static int use_math(ifcn_conv3 *c, int direction) {
    return p_cudnnSetConvolutionMathType(c->conv, c->math[direction]);
}

int ifcn_conv3_forward(void *handle, ifcn_conv3 *c, ifcn_devptr x, ifcn_devptr w, float beta, ifcn_devptr y,
                       ifcn_devptr ws, size_t ws_bytes) {
    NEED(1);
    const float alpha = 1;
    int r = use_math(c, 0);
    if (r) return r;
    return p_cudnnConvolutionForward(handle, &alpha, c->x, (void *)(uintptr_t)x, c->w, (void *)(uintptr_t)w, c->conv,
                                     c->algorithm[0], (void *)(uintptr_t)ws, ws_bytes, &beta, c->y,
                                     (void *)(uintptr_t)y);
}

int ifcn_conv3_backward_data(void *handle, ifcn_conv3 *c, ifcn_devptr dy, ifcn_devptr w, float beta, ifcn_devptr dx,
                             ifcn_devptr ws, size_t ws_bytes) {
    NEED(1);
    const float alpha = 1;
    int r = use_math(c, 1);
    if (r) return r;
    return p_cudnnConvolutionBackwardData(handle, &alpha, c->w, (void *)(uintptr_t)w, c->y, (void *)(uintptr_t)dy,
                                          c->conv, c->algorithm[1], (void *)(uintptr_t)ws, ws_bytes, &beta, c->x,
                                          (void *)(uintptr_t)dx);
}

int ifcn_conv3_backward_filter(void *handle, ifcn_conv3 *c, ifcn_devptr x, ifcn_devptr dy, float beta, ifcn_devptr dw,
                               ifcn_devptr ws, size_t ws_bytes) {
    NEED(1);
    const float alpha = 1;
    int r = use_math(c, 2);
    if (r) return r;
    return p_cudnnConvolutionBackwardFilter(handle, &alpha, c->x, (void *)(uintptr_t)x, c->y, (void *)(uintptr_t)dy,
                                            c->conv, c->algorithm[2], (void *)(uintptr_t)ws, ws_bytes, &beta, c->w,
                                            (void *)(uintptr_t)dw);
}

int ifcn_cuda_declared_constant(const char *name, long long *value) {
    static const struct { const char *name; long long value; } table[] = {
        {"CU_EVENT_DEFAULT", CU_EVENT_DEFAULT},
        {"CU_EVENT_DISABLE_TIMING", CU_EVENT_DISABLE_TIMING},
        {"CUDA_ERROR_NOT_FOUND", CUDA_ERROR_NOT_FOUND},
        {"CUDNN_DATA_FLOAT", CUDNN_DATA_FLOAT},
        {"CUDNN_DATA_BFLOAT16", CUDNN_DATA_BFLOAT16},
        {"CUDNN_TENSOR_NCHW", CUDNN_TENSOR_NCHW},
        {"CUDNN_TENSOR_NHWC", CUDNN_TENSOR_NHWC},
        {"CUDNN_CROSS_CORRELATION", CUDNN_CROSS_CORRELATION},
        {"CUDNN_DEFAULT_MATH", CUDNN_DEFAULT_MATH},
        {"CUDNN_TENSOR_OP_MATH", CUDNN_TENSOR_OP_MATH},
        {"CUDNN_FMA_MATH", CUDNN_FMA_MATH},
        {"CUDNN_DETERMINISTIC", CUDNN_DETERMINISTIC},
        {"ncclFloat32", ncclFloat32},
        {"ncclAvg", ncclAvg},
        {"NCCL_UNIQUE_ID_BYTES", IFCN_NCCL_UNIQUE_ID_BYTES},
        {"sizeof(cudnnConvolutionFwdAlgoPerf_t)", (long long)sizeof(ifcn_algo_perf)},
        {"offsetof(cudnnConvolutionFwdAlgoPerf_t, memory)", (long long)offsetof(ifcn_algo_perf, memory)},
        {"offsetof(cudnnConvolutionFwdAlgoPerf_t, determinism)", (long long)offsetof(ifcn_algo_perf, determinism)},
    };
    for (size_t i = 0; i < sizeof table / sizeof *table; i++) {
        if (strcmp(table[i].name, name) == 0) { *value = table[i].value; return 0; }
    }
    return -1;
}

// ---- NCCL ----
const char *ifcn_nccl_error_string(int code) {
    if (code == -1) return "library not loaded";
    return p_ncclGetErrorString ? p_ncclGetErrorString(code) : "unknown NCCL error";
}
int ifcn_nccl_version(int *version) { NEED(3); return p_ncclGetVersion(version); }
int ifcn_nccl_unique_id(unsigned char *id) {
    NEED(3);
    ncclUniqueId u;
    int r = p_ncclGetUniqueId(&u);
    if (!r) memcpy(id, u.internal, IFCN_NCCL_UNIQUE_ID_BYTES);
    return r;
}
int ifcn_nccl_comm_init(void **comm, int nranks, const unsigned char *id, int rank) {
    NEED(3);
    ncclUniqueId u;
    memcpy(u.internal, id, IFCN_NCCL_UNIQUE_ID_BYTES);
    return p_ncclCommInitRank(comm, nranks, u, rank);
}
int ifcn_nccl_allreduce_average(void *comm, ifcn_devptr buffer, size_t count, void *stream) {
    NEED(3);
    return p_ncclAllReduce((const void *)(uintptr_t)buffer, (void *)(uintptr_t)buffer, count, ncclFloat32, ncclAvg, comm, stream);
}
int ifcn_nccl_async_error(void *comm, int *error) { NEED(3); return p_ncclCommGetAsyncError(comm, error); }
int ifcn_nccl_comm_destroy(void *comm) { NEED(3); return p_ncclCommDestroy(comm); }
int ifcn_nccl_comm_abort(void *comm) { NEED(3); return p_ncclCommAbort(comm); }
