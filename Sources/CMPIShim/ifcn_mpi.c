#include "ifcn_mpi.h"

#include <limits.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

// Values cached by ifcn_mpi_init. All MPI calls come from the thread that initialised MPI
// (MPI_THREAD_FUNNELED), so plain statics are enough.
static int g_rank = 0;
static int g_size = 1;
static int g_local_rank = 0;
static int g_local_size = 1;
static int64_t g_max_chunk = INT_MAX;

static int is_ready(void) {
    int initialized = 0, finalized = 0;
    MPI_Initialized(&initialized);
    MPI_Finalized(&finalized);
    return initialized && !finalized;
}

static int parse_env_int(const char *name, int fallback) {
    const char *text = getenv(name);
    if (text == NULL || *text == '\0') return fallback;
    char *end = NULL;
    long value = strtol(text, &end, 10);
    if (end == text || *end != '\0' || value < 0 || value > INT_MAX) return fallback;
    return (int)value;
}

// Node-local rank and size from a shared-memory split of COMM_WORLD (collective: every rank calls
// it from ifcn_mpi_init). Falls back to Open MPI's launcher environment if the split fails.
static void compute_local_rank(void) {
    MPI_Comm node = MPI_COMM_NULL;
    int rc = MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &node);
    if (rc == MPI_SUCCESS && node != MPI_COMM_NULL) {
        MPI_Comm_rank(node, &g_local_rank);
        MPI_Comm_size(node, &g_local_size);
        MPI_Comm_free(&node);
        return;
    }
    g_local_rank = parse_env_int("OMPI_COMM_WORLD_LOCAL_RANK", 0);
    g_local_size = parse_env_int("OMPI_COMM_WORLD_LOCAL_SIZE", 1);
}

int ifcn_mpi_init(void) {
    int initialized = 0, finalized = 0;
    MPI_Finalized(&finalized);
    if (finalized) return IFCN_MPI_ERR_FINALIZED;
    MPI_Initialized(&initialized);
    if (initialized) return IFCN_MPI_SUCCESS;

    int provided = MPI_THREAD_SINGLE;
    int rc = MPI_Init_thread(NULL, NULL, MPI_THREAD_FUNNELED, &provided);
    if (rc != MPI_SUCCESS) return rc;
    rc = MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    if (rc != MPI_SUCCESS) return rc;
    if ((rc = MPI_Comm_rank(MPI_COMM_WORLD, &g_rank)) != MPI_SUCCESS) return rc;
    if ((rc = MPI_Comm_size(MPI_COMM_WORLD, &g_size)) != MPI_SUCCESS) return rc;
    compute_local_rank();
    if (provided < MPI_THREAD_FUNNELED) return IFCN_MPI_ERR_THREAD_LEVEL;
    return IFCN_MPI_SUCCESS;
}

int ifcn_mpi_finalize(void) {
    if (!is_ready()) return IFCN_MPI_SUCCESS;
    return MPI_Finalize();
}

int ifcn_mpi_is_initialized(void) {
    int initialized = 0;
    MPI_Initialized(&initialized);
    return initialized ? 1 : 0;
}

int ifcn_mpi_is_finalized(void) {
    int finalized = 0;
    MPI_Finalized(&finalized);
    return finalized ? 1 : 0;
}

int ifcn_mpi_rank(int *rank) {
    if (rank == NULL) return IFCN_MPI_ERR_ARGUMENT;
    if (!is_ready()) return IFCN_MPI_ERR_NOT_INITIALIZED;
    *rank = g_rank;
    return IFCN_MPI_SUCCESS;
}

int ifcn_mpi_size(int *size) {
    if (size == NULL) return IFCN_MPI_ERR_ARGUMENT;
    if (!is_ready()) return IFCN_MPI_ERR_NOT_INITIALIZED;
    *size = g_size;
    return IFCN_MPI_SUCCESS;
}

int ifcn_mpi_local_rank(int *local_rank) {
    if (local_rank == NULL) return IFCN_MPI_ERR_ARGUMENT;
    if (!is_ready()) return IFCN_MPI_ERR_NOT_INITIALIZED;
    *local_rank = g_local_rank;
    return IFCN_MPI_SUCCESS;
}

int ifcn_mpi_local_size(int *local_size) {
    if (local_size == NULL) return IFCN_MPI_ERR_ARGUMENT;
    if (!is_ready()) return IFCN_MPI_ERR_NOT_INITIALIZED;
    *local_size = g_local_size;
    return IFCN_MPI_SUCCESS;
}

static int chunk_len(int64_t remaining) {
    int64_t limit = g_max_chunk;
    return (int)(remaining < limit ? remaining : limit);
}

// In-place allreduce over `count` elements of `element_size` bytes, in chunks of at most g_max_chunk.
static int allreduce_chunked(void *buf, int64_t count, size_t element_size, MPI_Datatype type, MPI_Op op) {
    if (count < 0 || (buf == NULL && count > 0)) return IFCN_MPI_ERR_ARGUMENT;
    if (!is_ready()) return IFCN_MPI_ERR_NOT_INITIALIZED;
    char *bytes = (char *)buf;
    int64_t done = 0;
    while (done < count) {
        int n = chunk_len(count - done);
        int rc = MPI_Allreduce(MPI_IN_PLACE, bytes + (size_t)done * element_size, n, type, op, MPI_COMM_WORLD);
        if (rc != MPI_SUCCESS) return rc;
        done += n;
    }
    return IFCN_MPI_SUCCESS;
}

int ifcn_mpi_allreduce_sum_float(float *buf, int64_t count) {
    return allreduce_chunked(buf, count, sizeof(float), MPI_FLOAT, MPI_SUM);
}

int ifcn_mpi_allreduce_double(double *buf, int64_t count, ifcn_mpi_op op) {
    MPI_Op mpi_op;
    switch (op) {
    case IFCN_MPI_OP_SUM: mpi_op = MPI_SUM; break;
    case IFCN_MPI_OP_MAX: mpi_op = MPI_MAX; break;
    case IFCN_MPI_OP_MIN: mpi_op = MPI_MIN; break;
    default: return IFCN_MPI_ERR_ARGUMENT;
    }
    return allreduce_chunked(buf, count, sizeof(double), MPI_DOUBLE, mpi_op);
}

int ifcn_mpi_bcast_bytes(void *buf, int64_t bytes, int root) {
    if (bytes < 0 || (buf == NULL && bytes > 0)) return IFCN_MPI_ERR_ARGUMENT;
    if (!is_ready()) return IFCN_MPI_ERR_NOT_INITIALIZED;
    if (root < 0 || root >= g_size) return IFCN_MPI_ERR_ARGUMENT;
    char *data = (char *)buf;
    int64_t done = 0;
    while (done < bytes) {
        int n = chunk_len(bytes - done);
        int rc = MPI_Bcast(data + done, n, MPI_BYTE, root, MPI_COMM_WORLD);
        if (rc != MPI_SUCCESS) return rc;
        done += n;
    }
    return IFCN_MPI_SUCCESS;
}

int ifcn_mpi_barrier(void) {
    if (!is_ready()) return IFCN_MPI_ERR_NOT_INITIALIZED;
    return MPI_Barrier(MPI_COMM_WORLD);
}

int ifcn_mpi_abort(int code) {
    fflush(stdout);
    fflush(stderr);
    if (!is_ready()) exit(code);
    return MPI_Abort(MPI_COMM_WORLD, code);
}

int ifcn_mpi_processor_name(char *buf, int capacity) {
    if (buf == NULL || capacity < 1) return IFCN_MPI_ERR_ARGUMENT;
    if (!is_ready()) return IFCN_MPI_ERR_NOT_INITIALIZED;
    char name[MPI_MAX_PROCESSOR_NAME + 1];
    int length = 0;
    memset(name, 0, sizeof name);
    int rc = MPI_Get_processor_name(name, &length);
    if (rc != MPI_SUCCESS) return rc;
    snprintf(buf, (size_t)capacity, "%s", name);
    return IFCN_MPI_SUCCESS;
}

void ifcn_mpi_error_string(int code, char *buf, int capacity) {
    if (buf == NULL || capacity < 1) return;
    const char *fixed = NULL;
    switch (code) {
    case IFCN_MPI_SUCCESS: fixed = "success"; break;
    case IFCN_MPI_ERR_NOT_INITIALIZED: fixed = "MPI is not initialized (or already finalized)"; break;
    case IFCN_MPI_ERR_ARGUMENT: fixed = "invalid argument (negative count, null buffer or root out of range)"; break;
    case IFCN_MPI_ERR_FINALIZED: fixed = "MPI was already finalized and cannot be initialized again"; break;
    case IFCN_MPI_ERR_THREAD_LEVEL: fixed = "the MPI library does not provide MPI_THREAD_FUNNELED"; break;
    default: break;
    }
    if (fixed != NULL) {
        snprintf(buf, (size_t)capacity, "%s", fixed);
        return;
    }
    char message[MPI_MAX_ERROR_STRING + 1];
    int length = 0;
    memset(message, 0, sizeof message);
    if (MPI_Error_string(code, message, &length) == MPI_SUCCESS && length > 0) {
        snprintf(buf, (size_t)capacity, "%s", message);
    } else {
        snprintf(buf, (size_t)capacity, "unknown MPI error %d", code);
    }
}

void ifcn_mpi_set_max_chunk(int64_t elements) {
    g_max_chunk = (elements < 1 || elements > INT_MAX) ? INT_MAX : elements;
}

int64_t ifcn_mpi_max_chunk(void) {
    return g_max_chunk;
}
