#pragma once
// A small, Swift-friendly C interface over Open MPI.
//
// MPI's handles and constants (MPI_COMM_WORLD, MPI_FLOAT, MPI_SUM, MPI_IN_PLACE, ...) are macros
// that do not import into Swift, so this shim hides them. Every function works on MPI_COMM_WORLD,
// returns an int error code (IFCN_MPI_SUCCESS == 0 on success; MPI error codes or the negative
// IFCN_MPI_ERR_* codes below otherwise) and never aborts by itself: COMM_WORLD uses MPI_ERRORS_RETURN.
// The header deliberately does not include <mpi.h>, so users only see plain C types.

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/// Success (same value as MPI_SUCCESS).
#define IFCN_MPI_SUCCESS 0
/// MPI has not been initialised (or was already finalised).
#define IFCN_MPI_ERR_NOT_INITIALIZED (-1)
/// An argument is invalid (negative count, NULL buffer with a non-zero count, bad root, ...).
#define IFCN_MPI_ERR_ARGUMENT (-2)
/// MPI was already finalised and cannot be initialised again.
#define IFCN_MPI_ERR_FINALIZED (-3)
/// The MPI library granted a lower thread level than MPI_THREAD_FUNNELED.
#define IFCN_MPI_ERR_THREAD_LEVEL (-4)
/// A collective did not complete within the timeout (`ifcn_mpi_set_timeout`); `ifcn_mpi_timeout_report`
/// says which ranks did not answer. The collective is left half done: the job must be aborted.
#define IFCN_MPI_ERR_TIMEOUT (-5)
/// With a timeout set, ranks were found in different collectives (a program error: collectives must be
/// called in the same order everywhere); `ifcn_mpi_timeout_report` says which.
#define IFCN_MPI_ERR_ORDER (-6)

/// Reduction operations for `ifcn_mpi_allreduce_double`.
typedef enum {
    IFCN_MPI_OP_SUM = 0,
    IFCN_MPI_OP_MAX = 1,
    IFCN_MPI_OP_MIN = 2,
} ifcn_mpi_op;

/// Initialises MPI with MPI_THREAD_FUNNELED (only the thread that initialised MPI makes MPI calls),
/// sets MPI_ERRORS_RETURN on MPI_COMM_WORLD and caches rank, size and node-local rank.
/// Idempotent: returns success if MPI is already initialised. Works without mpirun (singleton: one rank).
int ifcn_mpi_init(void);

/// Finalises MPI. A no-op (success) if MPI was never initialised or is already finalised.
int ifcn_mpi_finalize(void);

/// 1 if MPI_Init has been called, else 0.
int ifcn_mpi_is_initialized(void);

/// 1 if MPI_Finalize has been called, else 0.
int ifcn_mpi_is_finalized(void);

/// Rank of this process in MPI_COMM_WORLD.
int ifcn_mpi_rank(int *rank);

/// Number of processes in MPI_COMM_WORLD.
int ifcn_mpi_size(int *size);

/// Rank of this process among the processes on the same node (shared-memory domain).
int ifcn_mpi_local_rank(int *local_rank);

/// Number of processes on this node (shared-memory domain).
int ifcn_mpi_local_size(int *local_size);

/// In-place sum of `count` floats over all ranks (MPI_IN_PLACE); counts above the chunk limit are
/// reduced in chunks, so any count that fits in int64_t works.
int ifcn_mpi_allreduce_sum_float(float *buf, int64_t count);

/// In-place reduction (sum, max or min) of `count` doubles over all ranks, chunked like the float version.
int ifcn_mpi_allreduce_double(double *buf, int64_t count, ifcn_mpi_op op);

/// Broadcasts `bytes` bytes at `buf` from rank `root` to all ranks (chunked for large buffers).
int ifcn_mpi_bcast_bytes(void *buf, int64_t bytes, int root);

/// Blocks until all ranks have reached the barrier.
int ifcn_mpi_barrier(void);

/// Aborts all ranks of the job with `code` (MPI_Abort on COMM_WORLD). Without MPI it exits the process.
/// Does not return on success.
int ifcn_mpi_abort(int code);

/// Writes this node's processor name (NUL-terminated, truncated to `capacity`) into `buf`.
int ifcn_mpi_processor_name(char *buf, int capacity);

/// Writes a message for `code` (an MPI error code or an IFCN_MPI_ERR_* code) into `buf`.
void ifcn_mpi_error_string(int code, char *buf, int capacity);

/// The largest number of elements (or bytes for broadcasts) sent in one MPI call. Defaults to INT_MAX;
/// lowering it (tests) exercises the chunking path with small buffers. Values < 1 restore the default.
void ifcn_mpi_set_max_chunk(int64_t elements);

/// The current chunk limit (see `ifcn_mpi_set_max_chunk`).
int64_t ifcn_mpi_max_chunk(void);

/// Limits how long every following collective waits for the other ranks, in seconds (<= 0: no limit,
/// the default, with MPI's blocking collectives). With a limit, each collective starts with an arrival
/// round: every rank tells rank 0 it has arrived and waits for rank 0's go, polling with short sleeps
/// (a waiting rank does not spin a core); then the data moves in a non-blocking collective polled until
/// it completes. Either phase past the limit returns IFCN_MPI_ERR_TIMEOUT. Rank 0 names the ranks that
/// never arrived; other ranks wait a grace period longer (rank 0, if alive, aborts the job first) and
/// then report that rank 0 did not answer. Collective: set the same value on every rank.
void ifcn_mpi_set_timeout(double seconds);

/// The current limit in seconds (0: none).
double ifcn_mpi_timeout(void);

/// The message of the last IFCN_MPI_ERR_TIMEOUT or IFCN_MPI_ERR_ORDER (NUL-terminated, truncated to `capacity`).
void ifcn_mpi_timeout_report(char *buf, int capacity);

#ifdef __cplusplus
}
#endif
