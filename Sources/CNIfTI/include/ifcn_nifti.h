#pragma once
// Small, Swift-friendly wrapper over nifticlib (nifti2_io, reads NIfTI-1 and NIfTI-2) and zlib.
// No nifticlib types cross this boundary: Swift sees only plain integers, doubles and buffers.
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/// Header facts of an opened NIfTI file (all matrices 4x4 row-major, NIfTI RAS world).
typedef struct {
    int64_t dim[8];        ///< dim[0] = number of dimensions, dim[1..7] sizes
    double pixdim[8];      ///< pixdim[1..3] voxel spacing
    int datatype;          ///< NIfTI DT_* code
    int bytes_per_voxel;
    int qform_code;
    int sform_code;
    double qto_xyz[16];    ///< qform index->world (pixdim scaling when qform_code == 0)
    double sto_xyz[16];    ///< sform index->world
    double scl_slope;
    double scl_inter;
    int64_t data_offset;   ///< byte offset of the voxel data in the file
    int compressed;        ///< 1 when the data is gzip-compressed (.nii.gz)
    int nifti_version;     ///< 1 or 2 (0 = ANALYZE)
} ifcn_nifti_header;

/// Opaque handle to a NIfTI file whose header has been read.
typedef struct ifcn_nifti_file ifcn_nifti_file;

/// Reads the header only. Returns NULL and fills `err` on failure.
ifcn_nifti_file *ifcn_nifti_open(const char *path, ifcn_nifti_header *header, char *err, size_t errlen);

/// Reads the voxel data of the file asked for (non-finite values are kept, unlike nifti_image_load) and converts
/// it to float, applying scl_slope/scl_inter when the slope is finite and non-zero. `count` must equal the
/// number of voxels. Memory grows with the data actually read, so a header that claims a huge image cannot
/// force a huge allocation. Returns a malloc'd buffer of `count` floats (release with ifcn_free), or NULL on
/// failure (message in `err`).
float *ifcn_nifti_load_float(ifcn_nifti_file *file, int64_t count, char *err, size_t errlen);

/// Releases a buffer returned by this shim.
void ifcn_free(void *p);

/// Frees the handle (and any loaded data).
void ifcn_nifti_close(ifcn_nifti_file *file);

/// Writes a 3-D NIfTI-1 file (.nii or .nii.gz by the name's extension) with both sform and qform
/// (code 1, scanner) set from `affine` (4x4 row-major, RAS world). `data` holds nx*ny*nz voxels of `datatype`.
/// Returns 0 on success, -1 on failure (message in `err`).
int ifcn_nifti_write(const char *path, const void *data, int datatype, const int64_t size[3],
                     const double affine[16], char *err, size_t errlen);

/// NIfTI DT_* codes for the voxel types ifcn writes.
enum {
    IFCN_DT_UINT8 = 2, IFCN_DT_INT16 = 4, IFCN_DT_INT32 = 8, IFCN_DT_FLOAT32 = 16, IFCN_DT_FLOAT64 = 64,
    IFCN_DT_INT8 = 256, IFCN_DT_UINT16 = 512, IFCN_DT_UINT32 = 768
};

/// zlib-inflates `src` (zlib or gzip stream) into `dst`. Returns the number of bytes produced, or -1 on
/// a corrupt stream, -2 when the stream holds more than `dstlen` bytes.
int64_t ifcn_zlib_inflate(const uint8_t *src, size_t srclen, uint8_t *dst, size_t dstlen);

/// Upper bound of the compressed size of `len` bytes.
size_t ifcn_zlib_bound(size_t len);

/// zlib-deflates `src` into `dst` (capacity `dstcap`, at least ifcn_zlib_bound). Returns bytes written or -1.
int64_t ifcn_zlib_deflate(const uint8_t *src, size_t srclen, uint8_t *dst, size_t dstcap);

#ifdef __cplusplus
}
#endif
