#include "ifcn_nifti.h"
#include <nifti2_io.h>
#include <zlib.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct ifcn_nifti_file {
    nifti_image *nim;
    char *path; /* the file asked for: nifticlib may pick x.nii over x.nii.gz when both exist */
};

static void set_err(char *err, size_t errlen, const char *msg) {
    if (err && errlen > 0) {
        snprintf(err, errlen, "%s", msg);
    }
}

/* nifticlib's debug level is a global: set once, so that a scan read on one thread and a label map written on
   another (segment with scans in flight) do not both write it. */
static pthread_once_t quiet_once = PTHREAD_ONCE_INIT;
static void set_quiet(void) { nifti_set_debug_level(0); }
static void quiet(void) { pthread_once(&quiet_once, set_quiet); }

static void copy_mat(const nifti_dmat44 *m, double out[16]) {
    for (int r = 0; r < 4; r++)
        for (int c = 0; c < 4; c++) out[r * 4 + c] = m->m[r][c];
}

static void swap4(unsigned char *b) {
    unsigned char t = b[0]; b[0] = b[3]; b[3] = t; t = b[1]; b[1] = b[2]; b[2] = t;
}

static void swap8(unsigned char *b) {
    for (int i = 0; i < 4; i++) { unsigned char t = b[i]; b[i] = b[7 - i]; b[7 - i] = t; }
}

/* The magic of a single-file NIfTI-`version` header ("n+1" / "n+2"); "ni1" / "ni2" (voxels in a separate
   .img file) and anything else (e.g. ANALYZE 7.5) are refused. */
static int check_magic(const unsigned char *magic, int version, char *err, size_t errlen) {
    char single[4] = {'n', '+', (char)('0' + version), 0}, pair[4] = {'n', 'i', (char)('0' + version), 0};
    char msg[160];
    if (memcmp(magic, single, 4) == 0) return 0;
    if (memcmp(magic, pair, 4) == 0)
        snprintf(msg, sizeof(msg), "NIfTI-%d header of a two-file (.hdr/.img) pair: its voxels are not in this file", version);
    else
        snprintf(msg, sizeof(msg), "no NIfTI-%d magic 'n+%d' (ANALYZE 7.5 and other headers are not supported)", version, version);
    set_err(err, errlen, msg);
    return -1;
}

/* Checks what nifticlib quietly repairs: a single-file header must keep its voxels at or after byte 352
   (NIfTI-1) or 544 (NIfTI-2); nifticlib reads a smaller or NaN vox_offset as the header size, which shifts
   the image. A .nii whose magic says "voxels in a separate .img file" (ni1/ni2), or that has no NIfTI magic
   (ANALYZE 7.5), is refused too: its voxels are not in the file asked for. Returns 0 when the header is fine. */
static int check_raw_header(const char *path, char *err, size_t errlen) {
    unsigned char h[548];
    memset(h, 0, sizeof(h));
    znzFile fp = znzopen(path, "rb", nifti_is_gzfile(path));
    if (znz_isnull(fp)) {
        set_err(err, errlen, "cannot open the file");
        return -1;
    }
    size_t n = znzread(h, 1, sizeof(h), fp);
    znzclose(fp);
    int32_t sizeof_hdr;
    memcpy(&sizeof_hdr, h, 4);
    int swapped = 0;
    if (sizeof_hdr != 348 && sizeof_hdr != 540) {
        swap4(h);
        memcpy(&sizeof_hdr, h, 4);
        swapped = 1;
    }
    char msg[200];
    if (sizeof_hdr == 348 && n >= 348) {
        if (check_magic(h + 344, 1, err, errlen) != 0) return -1;
        unsigned char b[4];
        memcpy(b, h + 108, 4);
        if (swapped) swap4(b);
        float vox_offset;
        memcpy(&vox_offset, b, 4);
        if (!isfinite(vox_offset) || vox_offset < 352.0f || vox_offset != floorf(vox_offset) || vox_offset > 1e15f) {
            snprintf(msg, sizeof(msg), "vox_offset %g is not a valid start of the voxel data "
                     "(a .nii file's voxels start at a whole byte offset of 352 or more)", (double)vox_offset);
            set_err(err, errlen, msg);
            return -1;
        }
        return 0;
    }
    if (sizeof_hdr == 540 && n >= 540) {
        if (check_magic(h + 4, 2, err, errlen) != 0) return -1;
        unsigned char b[8];
        memcpy(b, h + 168, 8);
        if (swapped) swap8(b);
        int64_t vox_offset;
        memcpy(&vox_offset, b, 8);
        if (vox_offset < 544) {
            snprintf(msg, sizeof(msg), "vox_offset %lld is not a valid start of the voxel data "
                     "(a NIfTI-2 .nii file's voxels start at byte 544 or later)", (long long)vox_offset);
            set_err(err, errlen, msg);
            return -1;
        }
        return 0;
    }
    set_err(err, errlen, "not a NIfTI file (header size field is neither 348 nor 540)");
    return -1;
}

ifcn_nifti_file *ifcn_nifti_open(const char *path, ifcn_nifti_header *h, char *err, size_t errlen) {
    quiet();
    nifti_image *nim = nifti_image_read(path, 0);
    if (!nim) {
        set_err(err, errlen, "not a readable NIfTI file (bad or truncated header)");
        return NULL;
    }
    if (check_raw_header(path, err, errlen) != 0) {
        nifti_image_free(nim);
        return NULL;
    }
    memset(h, 0, sizeof(*h));
    for (int i = 0; i < 8; i++) {
        h->dim[i] = nim->dim[i];
        h->pixdim[i] = nim->pixdim[i];
    }
    h->datatype = nim->datatype;
    h->bytes_per_voxel = nim->nbyper;
    h->qform_code = nim->qform_code;
    h->sform_code = nim->sform_code;
    copy_mat(&nim->qto_xyz, h->qto_xyz);
    copy_mat(&nim->sto_xyz, h->sto_xyz);
    h->scl_slope = nim->scl_slope;
    h->scl_inter = nim->scl_inter;
    h->data_offset = nim->iname_offset;
    h->compressed = nifti_is_gzfile(path) ? 1 : 0;
    switch (nim->nifti_type) {
        case NIFTI_FTYPE_NIFTI1_1: case NIFTI_FTYPE_NIFTI1_2: h->nifti_version = 1; break;
        case NIFTI_FTYPE_NIFTI2_1: case NIFTI_FTYPE_NIFTI2_2: h->nifti_version = 2; break;
        default: h->nifti_version = 0; break;
    }
    ifcn_nifti_file *f = (ifcn_nifti_file *)calloc(1, sizeof(*f));
    if (!f) {
        nifti_image_free(nim);
        set_err(err, errlen, "out of memory");
        return NULL;
    }
    f->nim = nim;
    f->path = nifti_strdup(path);
    if (!f->path) {
        ifcn_nifti_close(f);
        set_err(err, errlen, "out of memory");
        return NULL;
    }
    return f;
}

#define CONVERT(T)                                                        \
    do {                                                                  \
        const T *src = (const T *)data;                              \
        for (int64_t i = 0; i < count; i++) out[i] = (float)src[i];       \
    } while (0)

float *ifcn_nifti_load_float(ifcn_nifti_file *f, int64_t count, char *err, size_t errlen) {
    if (!f || !f->nim) {
        set_err(err, errlen, "file is not open");
        return NULL;
    }
    nifti_image *nim = f->nim;
    if (nim->nvox != count) {
        set_err(err, errlen, "voxel count does not match the header");
        return NULL;
    }
    /* Read the raw voxel bytes ourselves: nifti_image_load silently replaces NaN/inf with 0, and the
       caller must be able to reject such images. */
    size_t nbytes = (size_t)count * (size_t)nim->nbyper;
    znzFile fp = znzopen(f->path, "rb", nifti_is_gzfile(f->path));
    if (znz_isnull(fp)) {
        set_err(err, errlen, "cannot open the voxel data");
        return NULL;
    }
    int ok = znzseek(fp, (znz_off_t)nim->iname_offset, SEEK_SET) >= 0; /* gzseek returns the offset */
    /* The buffer grows with the data actually present (at most 64 MiB ahead of it), so a compressed file
       whose header claims a huge image cannot make us allocate that much up front. */
    size_t cap = nbytes < ((size_t)64 << 20) ? nbytes : ((size_t)64 << 20);
    void *raw = malloc(cap > 0 ? cap : 1);
    size_t got = 0;
    while (ok && raw && got < nbytes) {
        if (got == cap) {
            size_t next = cap * 2 < nbytes ? cap * 2 : nbytes;
            void *grown = realloc(raw, next);
            if (!grown) { free(raw); raw = NULL; break; }
            raw = grown;
            cap = next;
        }
        size_t want = cap - got > ((size_t)1 << 30) ? ((size_t)1 << 30) : cap - got;
        size_t n = znzread((char *)raw + got, 1, want, fp);
        if (n == 0) break;
        got += n;
    }
    znzclose(fp);
    if (!raw) {
        set_err(err, errlen, "out of memory reading the voxel data");
        return NULL;
    }
    if (!ok || got != nbytes) {
        free(raw);
        set_err(err, errlen, "could not read the voxel data (file truncated or corrupt)");
        return NULL;
    }
    if (nim->swapsize > 1 && nim->byteorder != nifti_short_order())
        nifti_swap_Nbytes((int64_t)count, nim->swapsize, raw);
    const void *data = raw;
    float *out = (float *)malloc((size_t)count * sizeof(float) + 1);
    if (!out) {
        free(raw);
        set_err(err, errlen, "out of memory converting the voxel data");
        return NULL;
    }
    switch (nim->datatype) {
        case DT_UINT8: CONVERT(uint8_t); break;
        case DT_INT8: CONVERT(int8_t); break;
        case DT_UINT16: CONVERT(uint16_t); break;
        case DT_INT16: CONVERT(int16_t); break;
        case DT_UINT32: CONVERT(uint32_t); break;
        case DT_INT32: CONVERT(int32_t); break;
        case DT_UINT64: CONVERT(uint64_t); break;
        case DT_INT64: CONVERT(int64_t); break;
        case DT_FLOAT32: CONVERT(float); break;
        case DT_FLOAT64: CONVERT(double); break;
        default:
            free(raw);
            free(out);
            set_err(err, errlen, "unsupported NIfTI datatype (only real scalar types are supported)");
            return NULL;
    }
    free(raw);
    double slope = nim->scl_slope, inter = nim->scl_inter;
    if (isfinite(slope) && slope != 0.0 && isfinite(inter) && !(slope == 1.0 && inter == 0.0)) {
        for (int64_t i = 0; i < count; i++) out[i] = (float)((double)out[i] * slope + inter);
    }
    return out;
}

void ifcn_free(void *p) { free(p); }

void ifcn_nifti_close(ifcn_nifti_file *f) {
    if (!f) return;
    if (f->nim) nifti_image_free(f->nim);
    free(f->path);
    free(f);
}

int ifcn_nifti_write(const char *path, const void *data, int datatype, const int64_t size[3],
                     const double affine[16], char *err, size_t errlen) {
    quiet();
    int64_t dims[8] = {3, size[0], size[1], size[2], 1, 1, 1, 1};
    nifti_image *nim = nifti_make_new_nim(dims, datatype, 0);
    if (!nim) {
        set_err(err, errlen, "could not create a NIfTI image (bad size or datatype)");
        return -1;
    }
    nifti_dmat44 m;
    for (int r = 0; r < 4; r++)
        for (int c = 0; c < 4; c++) m.m[r][c] = affine[r * 4 + c];
    m.m[3][0] = m.m[3][1] = m.m[3][2] = 0.0;
    m.m[3][3] = 1.0;
    double qb, qc, qd, qx, qy, qz, dx, dy, dz, qfac;
    nifti_dmat44_to_quatern(m, &qb, &qc, &qd, &qx, &qy, &qz, &dx, &dy, &dz, &qfac);
    nim->quatern_b = qb; nim->quatern_c = qc; nim->quatern_d = qd;
    nim->qoffset_x = qx; nim->qoffset_y = qy; nim->qoffset_z = qz;
    nim->qfac = qfac;
    nim->qform_code = NIFTI_XFORM_SCANNER_ANAT;
    nim->qto_xyz = nifti_quatern_to_dmat44(qb, qc, qd, qx, qy, qz, dx, dy, dz, qfac);
    nim->qto_ijk = nifti_dmat44_inverse(nim->qto_xyz);
    nim->sform_code = NIFTI_XFORM_SCANNER_ANAT;
    nim->sto_xyz = m;
    nim->sto_ijk = nifti_dmat44_inverse(m);
    nim->dx = nim->pixdim[1] = dx;
    nim->dy = nim->pixdim[2] = dy;
    nim->dz = nim->pixdim[3] = dz;
    nim->pixdim[0] = qfac;
    nim->xyz_units = NIFTI_UNITS_MM;
    nim->scl_slope = 1.0;
    nim->scl_inter = 0.0;
    nim->nifti_type = NIFTI_FTYPE_NIFTI1_1;
    if (nifti_set_filenames(nim, path, 0, 1) != 0) {
        nim->data = NULL;
        nifti_image_free(nim);
        set_err(err, errlen, "unusable NIfTI file name (must end in .nii or .nii.gz)");
        return -1;
    }
    nim->nifti_type = NIFTI_FTYPE_NIFTI1_1;
    nifti_set_iname_offset(nim, 1); /* vox_offset = 352 for a single-file NIfTI-1 */
    nim->data = (void *)data;
    znzFile fp = nifti_image_write_hdr_img2(nim, 3, "wb1", NULL, NULL); /* gzip level 1: fast */
    int rc = 0;
    if (znz_isnull(fp)) {
        set_err(err, errlen, "could not write the NIfTI file");
        rc = -1;
    } else if (znzclose(fp) != 0) {
        set_err(err, errlen, "could not finish writing the NIfTI file (disk full?)");
        rc = -1;
    }
    nim->data = NULL;
    nifti_image_free(nim);
    return rc;
}

int64_t ifcn_zlib_inflate(const uint8_t *src, size_t srclen, uint8_t *dst, size_t dstlen) {
    z_stream s;
    memset(&s, 0, sizeof(s));
    if (inflateInit2(&s, 15 + 32) != Z_OK) return -1; /* auto-detect zlib or gzip */
    s.next_in = (Bytef *)src;
    s.avail_in = (uInt)(srclen > 0x7fffffffu ? 0x7fffffffu : srclen);
    size_t in_left = srclen - s.avail_in;
    s.next_out = dst;
    s.avail_out = (uInt)(dstlen > 0x7fffffffu ? 0x7fffffffu : dstlen);
    size_t out_left = dstlen - s.avail_out;
    int64_t result = -1;
    for (;;) {
        int r = inflate(&s, Z_NO_FLUSH);
        if (r == Z_STREAM_END) { result = (int64_t)s.total_out; break; }
        if (r != Z_OK && r != Z_BUF_ERROR) { result = -1; break; }
        int progressed = 0;
        if (s.avail_in == 0 && in_left > 0) {
            uInt n = (uInt)(in_left > 0x7fffffffu ? 0x7fffffffu : in_left);
            s.avail_in = n; in_left -= n; progressed = 1;
        }
        if (s.avail_out == 0) {
            if (out_left == 0) {
                /* Output full: a well-formed stream must end exactly here. */
                uint8_t probe;
                s.next_out = &probe; s.avail_out = 1;
                int r2 = inflate(&s, Z_NO_FLUSH);
                result = (r2 == Z_STREAM_END && s.avail_out == 1) ? (int64_t)s.total_out : -2;
                break;
            }
            uInt n = (uInt)(out_left > 0x7fffffffu ? 0x7fffffffu : out_left);
            s.avail_out = n; out_left -= n; progressed = 1;
        }
        if (r == Z_BUF_ERROR && !progressed) { result = -1; break; } /* truncated stream */
    }
    inflateEnd(&s);
    return result;
}

size_t ifcn_zlib_bound(size_t len) { return (size_t)compressBound((uLong)len); }

int64_t ifcn_zlib_deflate(const uint8_t *src, size_t srclen, uint8_t *dst, size_t dstcap) {
    uLongf outlen = (uLongf)dstcap;
    if (compress2(dst, &outlen, src, (uLong)srclen, 6) != Z_OK) return -1;
    return (int64_t)outlen;
}
