#include "ifcn_mpi.h"

#include <limits.h>
#include <mpi.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

// Values cached by ifcn_mpi_init. All MPI calls come from the thread that initialised MPI
// (MPI_THREAD_FUNNELED), so plain statics are enough.
static int g_rank = 0;
static int g_size = 1;
static int g_local_rank = 0;
static int g_local_size = 1;
static int64_t g_max_chunk = INT_MAX;

// Collective timeout (see ifcn_mpi_set_timeout): the limit, the number of collectives entered so far
// (the same on every rank, since all call them in the same order), a duplicate of COMM_WORLD that
// carries only the arrival messages, and the last timeout's report.
static double g_timeout = 0;
static int64_t g_sequence = 0;
static MPI_Comm g_arrivals = MPI_COMM_NULL;
static char g_report[2048];
enum { TAG_ARRIVE = 1, TAG_GO = 2 };

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
    if ((rc = MPI_Comm_dup(MPI_COMM_WORLD, &g_arrivals)) != MPI_SUCCESS) return rc;
    if ((rc = MPI_Comm_set_errhandler(g_arrivals, MPI_ERRORS_RETURN)) != MPI_SUCCESS) return rc;
    if (provided < MPI_THREAD_FUNNELED) return IFCN_MPI_ERR_THREAD_LEVEL;
    return IFCN_MPI_SUCCESS;
}

int ifcn_mpi_finalize(void) {
    if (!is_ready()) return IFCN_MPI_SUCCESS;
    if (g_arrivals != MPI_COMM_NULL) MPI_Comm_free(&g_arrivals);
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

// MARK: collective timeout

static double now_seconds(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

// Polls `count` requests until all complete (returns 1), `deadline` passes (0) or MPI fails (-1, *rc set).
// Patient polling (waiting for other ranks to arrive) sleeps between polls, backing off from 20 us to
// 1 ms after the first 200 polls, so a rank that waits long costs next to no CPU; impatient polling
// (data moving between ranks that all arrived) spins, since Open MPI progresses transfers only inside
// MPI calls.
static int poll_all(int count, MPI_Request *requests, double deadline, int patient, int *rc) {
    long pause_ns = 0;
    for (long polls = 0;; polls++) {
        int done = 0;
        int r = MPI_Testall(count, requests, &done, MPI_STATUSES_IGNORE);
        if (r != MPI_SUCCESS) { *rc = r; return -1; }
        if (done) return 1;
        if (now_seconds() > deadline) return 0;
        if (patient && polls > 200) {
            pause_ns = pause_ns == 0 ? 20000 : (pause_ns >= 500000 ? 1000000 : pause_ns * 2);
            struct timespec pause = {0, pause_ns};
            nanosleep(&pause, NULL);
        }
    }
}

// Appends printf-style text to g_report.
static void report_append(const char *format, ...) __attribute__((format(printf, 1, 2)));
static void report_append(const char *format, ...) {
    size_t used = strlen(g_report);
    if (used + 1 >= sizeof g_report) return;
    va_list args;
    va_start(args, format);
    vsnprintf(g_report + used, sizeof g_report - used, format, args);
    va_end(args);
}

// The arrival round that starts every collective when a timeout is set: each rank sends the collective's
// sequence number to rank 0 and waits for rank 0's go, which rank 0 sends once every rank arrived. So rank 0
// knows who is missing when the time runs out. Without a timeout it only counts the collective.
static int arrive(const char *what) {
    int64_t sequence = ++g_sequence;
    if (g_timeout <= 0 || g_size == 1) return IFCN_MPI_SUCCESS;
    double deadline = now_seconds() + g_timeout;
    int rc = MPI_SUCCESS;
    g_report[0] = '\0';
    if (g_rank == 0) {
        // Buffers stay allocated on failure: the job is aborted next and MPI may still touch them.
        int others = g_size - 1;
        int64_t *arrived = malloc(sizeof(int64_t) * (size_t)others + sizeof(int64_t));
        MPI_Request *requests = malloc(sizeof(MPI_Request) * 2 * (size_t)others);
        if (arrived == NULL || requests == NULL) return IFCN_MPI_ERR_ARGUMENT;
        int64_t *go = arrived + others;
        *go = sequence;
        for (int i = 0; i < others; i++) {
            rc = MPI_Irecv(&arrived[i], 1, MPI_INT64_T, i + 1, TAG_ARRIVE, g_arrivals, &requests[i]);
            if (rc != MPI_SUCCESS) return rc;
        }
        int status = poll_all(others, requests, deadline, 1, &rc);
        if (status < 0) return rc;
        if (status == 0) {
            int missing = 0;
            report_append("rank(s) ");
            for (int i = 0; i < others; i++) {
                // MPI_Testall completes nothing unless everything completed: ask each request alone.
                int arrivedInTime = 0;
                MPI_Test(&requests[i], &arrivedInTime, MPI_STATUS_IGNORE);
                if (arrivedInTime) continue;
                if (missing < 32) report_append("%s%d", missing ? ", " : "", i + 1);
                missing++;
            }
            if (missing > 32) report_append(" and %d more", missing - 32);
            report_append(" did not reach collective #%lld (%s) within %g s: stopped, hung or dead",
                          (long long)sequence, what, g_timeout);
            return IFCN_MPI_ERR_TIMEOUT;
        }
        for (int i = 0; i < others; i++) {
            if (arrived[i] != sequence) {
                report_append("rank %d is at collective #%lld while rank 0 is at #%lld (%s): ranks call collectives in different orders",
                              i + 1, (long long)arrived[i], (long long)sequence, what);
                return IFCN_MPI_ERR_ORDER;
            }
        }
        for (int i = 0; i < others; i++) {
            rc = MPI_Isend(go, 1, MPI_INT64_T, i + 1, TAG_GO, g_arrivals, &requests[others + i]);
            if (rc != MPI_SUCCESS) return rc;
        }
        status = poll_all(others, requests + others, deadline, 1, &rc);
        if (status < 0) return rc;
        if (status == 0) {
            report_append("rank 0 could not hand the go of collective #%lld (%s) to every rank within %g s",
                          (long long)sequence, what, g_timeout);
            return IFCN_MPI_ERR_TIMEOUT;
        }
        free(requests);
        free(arrived);
        return IFCN_MPI_SUCCESS;
    }
    // Static buffers: on a timeout the job is aborted while these requests are still pending.
    static int64_t mine, go;
    MPI_Request requests[2];
    mine = sequence;
    go = -1;
    if ((rc = MPI_Isend(&mine, 1, MPI_INT64_T, 0, TAG_ARRIVE, g_arrivals, &requests[0])) != MPI_SUCCESS) return rc;
    if ((rc = MPI_Irecv(&go, 1, MPI_INT64_T, 0, TAG_GO, g_arrivals, &requests[1])) != MPI_SUCCESS) return rc;
    // A grace period longer than rank 0's limit, so that a living rank 0 reports the missing ranks first.
    double grace = g_timeout / 4 < 2 ? 2 : (g_timeout / 4 > 30 ? 30 : g_timeout / 4);
    int status = poll_all(2, requests, deadline + grace, 1, &rc);
    if (status < 0) return rc;
    if (status == 0) {
        report_append("no go from rank 0 for collective #%lld (%s) within %g s: rank 0 did not reach it (stopped, hung or dead)",
                      (long long)sequence, what, g_timeout + grace);
        return IFCN_MPI_ERR_TIMEOUT;
    }
    if (go != sequence) {
        report_append("rank 0 is at collective #%lld while rank %d is at #%lld (%s): ranks call collectives in different orders",
                      (long long)go, g_rank, (long long)sequence, what);
        return IFCN_MPI_ERR_ORDER;
    }
    return IFCN_MPI_SUCCESS;
}

// Waits for a started non-blocking collective (every rank has arrived) within the timeout.
static int finish(MPI_Request *request, const char *what) {
    int rc = MPI_SUCCESS;
    int status = poll_all(1, request, now_seconds() + g_timeout, 0, &rc);
    if (status < 0) return rc;
    if (status == 0) {
        g_report[0] = '\0';
        report_append("collective #%lld (%s) did not complete within %g s although every rank arrived: a rank stopped while data was moving",
                      (long long)g_sequence, what, g_timeout);
        return IFCN_MPI_ERR_TIMEOUT;
    }
    return IFCN_MPI_SUCCESS;
}

void ifcn_mpi_set_timeout(double seconds) { g_timeout = seconds > 0 ? seconds : 0; }

double ifcn_mpi_timeout(void) { return g_timeout; }

void ifcn_mpi_timeout_report(char *buf, int capacity) {
    if (buf == NULL || capacity < 1) return;
    snprintf(buf, (size_t)capacity, "%s", g_report);
}

// In-place allreduce over `count` elements of `element_size` bytes, in chunks of at most g_max_chunk.
static int allreduce_chunked(void *buf, int64_t count, size_t element_size, MPI_Datatype type, MPI_Op op) {
    if (count < 0 || (buf == NULL && count > 0)) return IFCN_MPI_ERR_ARGUMENT;
    if (!is_ready()) return IFCN_MPI_ERR_NOT_INITIALIZED;
    int rc = arrive("allreduce");
    if (rc != MPI_SUCCESS) return rc;
    char *bytes = (char *)buf;
    int64_t done = 0;
    while (done < count) {
        int n = chunk_len(count - done);
        void *chunk = bytes + (size_t)done * element_size;
        if (g_timeout > 0) {
            MPI_Request request;
            rc = MPI_Iallreduce(MPI_IN_PLACE, chunk, n, type, op, MPI_COMM_WORLD, &request);
            if (rc == MPI_SUCCESS) rc = finish(&request, "allreduce");
        } else {
            rc = MPI_Allreduce(MPI_IN_PLACE, chunk, n, type, op, MPI_COMM_WORLD);
        }
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
    int rc = arrive("broadcast");
    if (rc != MPI_SUCCESS) return rc;
    char *data = (char *)buf;
    int64_t done = 0;
    while (done < bytes) {
        int n = chunk_len(bytes - done);
        if (g_timeout > 0) {
            MPI_Request request;
            rc = MPI_Ibcast(data + done, n, MPI_BYTE, root, MPI_COMM_WORLD, &request);
            if (rc == MPI_SUCCESS) rc = finish(&request, "broadcast");
        } else {
            rc = MPI_Bcast(data + done, n, MPI_BYTE, root, MPI_COMM_WORLD);
        }
        if (rc != MPI_SUCCESS) return rc;
        done += n;
    }
    return IFCN_MPI_SUCCESS;
}

int ifcn_mpi_barrier(void) {
    if (!is_ready()) return IFCN_MPI_ERR_NOT_INITIALIZED;
    // With a timeout the arrival round is itself a barrier: rank 0 says go once everyone arrived.
    if (g_timeout > 0) return arrive("barrier");
    ++g_sequence;
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
    case IFCN_MPI_ERR_TIMEOUT: fixed = "collective timed out"; break;
    case IFCN_MPI_ERR_ORDER: fixed = "ranks are in different collectives"; break;
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
