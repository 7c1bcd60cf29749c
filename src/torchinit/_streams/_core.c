/* The compiled CPU sampling core of torchinit.
 *
 * It evaluates the stream defined by torchinit/streams/reference.py with exactly the same
 * float64 operations in the same order (built with -ffp-contract=off and without fast-math, so
 * no fused multiply-adds and no reassociation), which makes its float32/float64 results
 * bit-identical to the reference backend for every distribution, region and thread count:
 *
 *   block j = i >> 1 of Philox4x32-10 (Salmon et al., SC 2011), counter (j lo, j hi, 0, 0);
 *   even i takes the words (x0, x1), odd i (x2, x3);
 *   u = ((hi >> 5) 2^26 + (lo >> 6) + 1/2) 2^-53;
 *   uniform: low + (high - low) u;   normal: loc + scale ndtri(u);
 *   truncated normal: loc + scale' clamp(ndtri(pa + (pb - pa) u), a, b), then clamped into the
 *   largest interval of target-dtype values inside the bounds;
 *   ndtri = Wichura's AS 241 (PPND16) with log and sqrt built from exactly rounded operations.
 *
 * The work: the region is a set of runs of flat indices (the caller merges whole trailing
 * dimensions, so a contiguous tensor is one run); the output positions are split evenly over
 * worker threads (POSIX threads started per call, the GIL released), and each thread works in
 * blocks of BLOCK elements whose loops are simple enough for the compiler to vectorize: Philox for
 * every block, the central branch of AS 241 for every element, the tails (about 15%) compacted and
 * evaluated with the exponent split on the bits. Inputs outside what those vector loops handle
 * (zero or subnormal tail arguments, the far tail beyond r = 5) are recomputed by the scalar
 * reference-order functions. On x86-64 the kernel is compiled three times, for AVX-512, AVX2 and
 * baseline SSE2 (with Philox and the tail compaction in intrinsics for the first two); the best
 * one the CPU supports is used, and tests run every one of them against the reference.
 *
 * No state outlives a call: any number of Python threads may call it at once.
 */

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <string.h>


#if defined(__GNUC__)
#define TI_INLINE static inline __attribute__((always_inline))
#else
#define TI_INLINE static inline
#endif

#if (defined(__GNUC__) || defined(__clang__)) && defined(__x86_64__)
#define TI_X86_INTRINSICS 1
#include <immintrin.h>
#else
#define TI_X86_INTRINSICS 0
#endif

#define BLOCK 512
#define MAX_DIMS 64

enum { KIND_UNIFORM = 0, KIND_NORMAL = 1, KIND_TRUNC = 2 };
enum { OUT_F64 = 0, OUT_F32 = 1, OUT_BF16 = 2, OUT_F16 = 3 };

static const uint64_t M0 = 0xD2511F53u, M1 = 0xCD9E8D57u;
static const uint64_t W0 = 0x9E3779B9u, W1 = 0xBB67AE85u;

static const double SPLIT1 = 0.425, SPLIT2 = 5.0, CONST1 = 0.180625, CONST2 = 1.6;
static const double LN2_HI = 6.93147180369123816490e-01, LN2_LO = 1.90821492927058770002e-10;
static const double SQRT_HALF = 0.70710678118654757; /* math.sqrt(0.5) */
static const double TWO_M53 = 1.1102230246251565e-16;  /* 2^-53 */
static const double SMALLEST_NORMAL = 2.2250738585072014e-308;

/* AS 241 coefficients, lowest degree first (Wichura 1988, Table 1). */
static const double AS_A[8] = {3.3871328727963666080e0, 1.3314166789178437745e+2,
    1.9715909503065514427e+3, 1.3731693765509461125e+4, 4.5921953931549871457e+4,
    6.7265770927008700853e+4, 3.3430575583588128105e+4, 2.5090809287301226727e+3};
static const double AS_B[8] = {1.0, 4.2313330701600911252e+1, 6.8718700749205790830e+2,
    5.3941960214247511077e+3, 2.1213794301586595867e+4, 3.9307895800092710610e+4,
    2.8729085735721942674e+4, 5.2264952788528545610e+3};
static const double AS_C[8] = {1.42343711074968357734e0, 4.63033784615654529590e0,
    5.76949722146069140550e0, 3.64784832476320460504e0, 1.27045825245236838258e0,
    2.41780725177450611770e-1, 2.27238449892691845833e-2, 7.74545014278341407640e-4};
static const double AS_D[8] = {1.0, 2.05319162663775882187e0, 1.67638483018380384940e0,
    6.89767334985100004550e-1, 1.48103976427480074590e-1, 1.51986665636164571966e-2,
    5.47593808499534494600e-4, 1.05075007164441684324e-9};
static const double AS_E[8] = {6.65790464350110377720e0, 5.46378491116411436990e0,
    1.78482653991729133580e0, 2.96560571828504891230e-1, 2.65321895265761230930e-2,
    1.24266094738807843860e-3, 2.71155556874348757815e-5, 2.01033439929228813265e-7};
static const double AS_F[8] = {1.0, 5.99832206555887937690e-1, 1.36929880922735805310e-1,
    1.48753612908506148525e-2, 7.86869131145613259100e-4, 1.84631831751005468180e-5,
    1.42151175831644588870e-7, 2.04426310338993978564e-15};
/* 1 / (2k + 1), k = 0..11: the compiler rounds each quotient exactly, as Python does. */
static const double LOG_SERIES[12] = {1.0, 1.0 / 3.0, 1.0 / 5.0, 1.0 / 7.0, 1.0 / 9.0,
    1.0 / 11.0, 1.0 / 13.0, 1.0 / 15.0, 1.0 / 17.0, 1.0 / 19.0, 1.0 / 21.0, 1.0 / 23.0};

TI_INLINE double horner8(const double *c, double x) {
    double acc = c[7];
    acc = acc * x + c[6];
    acc = acc * x + c[5];
    acc = acc * x + c[4];
    acc = acc * x + c[3];
    acc = acc * x + c[2];
    acc = acc * x + c[1];
    acc = acc * x + c[0];
    return acc;
}

TI_INLINE double horner_log(double x) {
    double acc = LOG_SERIES[11];
    acc = acc * x + LOG_SERIES[10];
    acc = acc * x + LOG_SERIES[9];
    acc = acc * x + LOG_SERIES[8];
    acc = acc * x + LOG_SERIES[7];
    acc = acc * x + LOG_SERIES[6];
    acc = acc * x + LOG_SERIES[5];
    acc = acc * x + LOG_SERIES[4];
    acc = acc * x + LOG_SERIES[3];
    acc = acc * x + LOG_SERIES[2];
    acc = acc * x + LOG_SERIES[1];
    acc = acc * x + LOG_SERIES[0];
    return acc;
}

TI_INLINE double bits_to_double(uint64_t b) {
    double d;
    memcpy(&d, &b, sizeof d);
    return d;
}

TI_INLINE uint64_t double_to_bits(double d) {
    uint64_t b;
    memcpy(&b, &d, sizeof b);
    return b;
}

/* ---- scalar functions in the reference's order (any input the reference accepts) ---------- */

static double ref_log(double x) {
    int e;
    double m = frexp(x, &e);
    int small = m < SQRT_HALF;
    m = small ? m * 2.0 : m;
    double ef = (double)(e - small);
    double s = (m - 1.0) / (m + 1.0);
    double series = horner_log(s * s);
    return ef * LN2_HI + (2.0 * s * series + ef * LN2_LO);
}

static double ref_sqrt(double x) {
    int e;
    double m = frexp(x, &e);
    int odd = e & 1;
    m = odd ? m * 2.0 : m;
    int64_t half = (int64_t)((e - odd) >> 1);
    double y = (m + 1.0) * 0.5;
    for (int k = 0; k < 5; k++) y = (y + m / y) * 0.5;
    return y * bits_to_double((uint64_t)(half + 1023) << 52);
}

static double ref_ndtri(double p) {
    double q = p - 0.5;
    double r = CONST1 - q * q;
    double out = q * horner8(AS_A, r) / horner8(AS_B, r);
    if (fabs(q) > SPLIT1) {
        double rt = ref_sqrt(-ref_log(q < 0 ? p : 1.0 - p));
        double z;
        if (rt <= SPLIT2) {
            double mid = rt - CONST2;
            z = horner8(AS_C, mid) / horner8(AS_D, mid);
        } else {
            double far = rt - SPLIT2;
            z = horner8(AS_E, far) / horner8(AS_F, far);
        }
        out = q < 0 ? -z : z;
    }
    return out;
}

/* ---- conversions to the target dtype (round to nearest even, as torch's casts) ------------- */

TI_INLINE uint16_t float_to_bf16(float f) {
    uint32_t x;
    memcpy(&x, &f, sizeof x);
    if ((x & 0x7FFFFFFFu) > 0x7F800000u) return 0x7FC0;
    return (uint16_t)((x + 0x7FFFu + ((x >> 16) & 1u)) >> 16);
}

TI_INLINE uint16_t float_to_f16(float f) {
    uint32_t x;
    memcpy(&x, &f, sizeof x);
    uint16_t sign = (uint16_t)((x >> 16) & 0x8000u);
    uint32_t ax = x & 0x7FFFFFFFu;
    if (ax > 0x7F800000u) return (uint16_t)(sign | 0x7E00u);
    if (ax >= 0x477FF000u) return (uint16_t)(sign | 0x7C00u); /* rounds to infinity */
    if (ax >= 0x38800000u) {                                  /* a normal half */
        uint32_t r = ax + 0x0FFFu + ((ax >> 13) & 1u);
        return (uint16_t)(sign | ((r - 0x38000000u) >> 13));
    }
    float a;
    memcpy(&a, &ax, sizeof a);
    return (uint16_t)(sign | (uint16_t)nearbyintf(a * 16777216.0f)); /* units of 2^-24 */
}

TI_INLINE void store(void *out, int out_kind, int64_t pos, const double *v, int n) {
    switch (out_kind) {
    case OUT_F64:
        memcpy((double *)out + pos, v, (size_t)n * sizeof(double));
        break;
    case OUT_F32: {
        float *o = (float *)out + pos;
        for (int k = 0; k < n; k++) o[k] = (float)v[k];
        break;
    }
    case OUT_BF16: {
        uint16_t *o = (uint16_t *)out + pos;
        for (int k = 0; k < n; k++) o[k] = float_to_bf16((float)v[k]);
        break;
    }
    default: {
        uint16_t *o = (uint16_t *)out + pos;
        for (int k = 0; k < n; k++) o[k] = float_to_f16((float)v[k]);
        break;
    }
    }
}

/* ---- the job ------------------------------------------------------------------------------- */

typedef struct Job Job;
struct Job {
    void (*kernel)(const Job *, int64_t, int64_t); /* the kernel of the chosen instruction set */
    void *out;
    int out_kind;
    int kind;
    double p[8]; /* loc, scale', pa, pb - pa, a, b, low clamp, high clamp */
    uint32_t k0, k1;
    int64_t base;            /* flat index of the region's first element */
    int ndims;               /* outer dimensions (row-major, slowest first) */
    int64_t counts[MAX_DIMS];
    int64_t strides[MAX_DIMS]; /* flat-index step of each outer dimension */
    int64_t run_len, run_step;
    int64_t total;
};

typedef struct {
    const Job *job;
    int64_t begin, end;
} Slice;

/* The words are held in 64-bit lanes (a 32-bit value each), so the 32 x 32 -> 64-bit products
 * vectorize as plain lane multiplies; the high halves of c1/c3 may carry garbage through the
 * rounds (they reach only the ignored high halves of c0/c2) and are masked at the end. */
#define LO32 0xFFFFFFFFull
#define PHILOX_ROUNDS(c0, c1, c2, c3, k0, k1)                                                  \
    do {                                                                                      \
        uint64_t a0_ = (k0), a1_ = (k1);                                                      \
        for (int r_ = 0; r_ < 10; r_++) {                                                     \
            uint64_t p0_ = ((c0) & LO32) * M0, p1_ = ((c2) & LO32) * M1;                      \
            uint64_t n0_ = (p1_ >> 32) ^ (c1) ^ a0_, n2_ = (p0_ >> 32) ^ (c3) ^ a1_;          \
            (c1) = p1_;                                                                       \
            (c3) = p0_;                                                                       \
            (c0) = n0_;                                                                       \
            (c2) = n2_;                                                                       \
            a0_ = (a0_ + W0) & LO32;                                                          \
            a1_ = (a1_ + W1) & LO32;                                                          \
        }                                                                                     \
        (c0) &= LO32;                                                                         \
        (c1) &= LO32;                                                                         \
        (c2) &= LO32;                                                                         \
        (c3) &= LO32;                                                                         \
    } while (0)

/* An integer below 2^52 as a double, exactly, without a conversion instruction. */
TI_INLINE double small_int(uint64_t v) {
    return bits_to_double(v | 0x4330000000000000ull) - 4503599627370496.0;
}

/* The stream's uniform from the words (hi, lo): ((hi >> 5) 2^26 + (lo >> 6) + 1/2) 2^-53. */
TI_INLINE double uniform53(uint64_t hi, uint64_t lo) {
    return (small_int(hi >> 5) * 67108864.0 + small_int(lo >> 6) + 0.5) * TWO_M53;
}

/* Philox4x32-10 of blocks j0 .. j0 + n - 1 (consecutive), uniforms of the even and odd element
 * of each block: the portable version (vectorized by the compiler). */
static void philox_pairs_generic(uint64_t j0, int n, uint32_t k0, uint32_t k1, double *ue,
                                 double *uo) {
    for (int q = 0; q < n; q++) {
        uint64_t j = j0 + (uint64_t)q;
        uint64_t c0 = j & LO32, c1 = j >> 32, c2 = 0, c3 = 0;
        PHILOX_ROUNDS(c0, c1, c2, c3, k0, k1);
        ue[q] = uniform53(c0, c1);
        uo[q] = uniform53(c2, c3);
    }
}

#if TI_X86_INTRINSICS
/* The same with x86 vector intrinsics: 32 x 32 -> 64-bit lane products (pmuludq), and the high
 * half of each product moved down by a shuffle instead of a shift (the shifted-out half lands in
 * the ignored high half of the lane), which balances the vector ports. Bit-identical to the
 * portable version. `n` is a multiple of the vector width. */
#define PHILOX_VECTOR(NAME, TARGET, VEC, PD, SET1, ADD, AND, SRLI, MUL, SHUF, XOR3, OR, SUBPD,   \
                      MULPD, ADDPD, SET1PD, CASTPD, STORE, LANES, WIDTH)                        \
    __attribute__((target(TARGET))) static void NAME(uint64_t j0, int n, uint32_t k0,         \
                                                     uint32_t k1, double *ue, double *uo) {     \
        VEC keys0[10], keys1[10];                                                             \
        uint64_t a0 = k0, a1 = k1;                                                            \
        for (int r = 0; r < 10; r++) {                                                        \
            keys0[r] = SET1((long long)a0);                                                   \
            keys1[r] = SET1((long long)a1);                                                   \
            a0 = (a0 + W0) & LO32;                                                            \
            a1 = (a1 + W1) & LO32;                                                            \
        }                                                                                     \
        const VEC lane = LANES, m32 = SET1((long long)LO32), mul0 = SET1((long long)M0);      \
        const VEC mul1 = SET1((long long)M1), magic = SET1(0x4330000000000000ll);             \
        const PD big = SET1PD(4503599627370496.0), two26 = SET1PD(67108864.0);                \
        const PD half = SET1PD(0.5), scale = SET1PD(TWO_M53);                                \
        for (int q = 0; q < n; q += WIDTH) {                                                  \
            VEC j = ADD(SET1((long long)(j0 + (uint64_t)q)), lane);                           \
            VEC c0 = AND(j, m32), c1 = SRLI(j, 32), c2 = SET1(0), c3 = SET1(0);               \
            for (int r = 0; r < 10; r++) {                                                    \
                VEC p0 = MUL(c0, mul0), p1 = MUL(c2, mul1);                                   \
                VEC n0 = XOR3(SHUF(p1), c1, keys0[r]), n2 = XOR3(SHUF(p0), c3, keys1[r]);     \
                c1 = p1;                                                                      \
                c3 = p0;                                                                      \
                c0 = n0;                                                                      \
                c2 = n2;                                                                      \
            }                                                                                 \
            PD hi0 = SUBPD(CASTPD(OR(SRLI(AND(c0, m32), 5), magic)), big);                    \
            PD lo0 = SUBPD(CASTPD(OR(SRLI(AND(c1, m32), 6), magic)), big);                    \
            PD hi1 = SUBPD(CASTPD(OR(SRLI(AND(c2, m32), 5), magic)), big);                    \
            PD lo1 = SUBPD(CASTPD(OR(SRLI(AND(c3, m32), 6), magic)), big);                    \
            STORE(ue + q, MULPD(ADDPD(ADDPD(MULPD(hi0, two26), lo0), half), scale));          \
            STORE(uo + q, MULPD(ADDPD(ADDPD(MULPD(hi1, two26), lo1), half), scale));          \
        }                                                                                     \
    }

#define SHUF512(x) _mm512_shuffle_epi32((x), _MM_PERM_CDAB)
#define XOR3_512(a, b, c) _mm512_ternarylogic_epi64((a), (b), (c), 0x96)
PHILOX_VECTOR(philox_pairs_avx512, "avx512f", __m512i, __m512d, _mm512_set1_epi64,
              _mm512_add_epi64, _mm512_and_si512, _mm512_srli_epi64, _mm512_mul_epu32, SHUF512,
              XOR3_512, _mm512_or_si512, _mm512_sub_pd, _mm512_mul_pd, _mm512_add_pd,
              _mm512_set1_pd, _mm512_castsi512_pd, _mm512_storeu_pd,
              _mm512_set_epi64(7, 6, 5, 4, 3, 2, 1, 0), 8)

#define SHUF256(x) _mm256_shuffle_epi32((x), 0xB1)
#define XOR3_256(a, b, c) _mm256_xor_si256(_mm256_xor_si256((a), (b)), (c))
PHILOX_VECTOR(philox_pairs_avx2, "avx2", __m256i, __m256d, _mm256_set1_epi64x,
              _mm256_add_epi64, _mm256_and_si256, _mm256_srli_epi64, _mm256_mul_epu32, SHUF256,
              XOR3_256, _mm256_or_si256, _mm256_sub_pd, _mm256_mul_pd, _mm256_add_pd,
              _mm256_set1_pd, _mm256_castsi256_pd, _mm256_storeu_pd,
              _mm256_set_epi64x(3, 2, 1, 0), 4)
#endif

/* Positions k < n with |u[k] - 1/2| > 0.425 (the tails of AS 241), in order, into `where`
 * (which has room for 16 more entries); returns their count. */
static int compact_tails_generic(const double *u, int n, int32_t *where) {
    int m = 0;
    for (int k = 0; k < n; k++) { /* branch-free: the tails are unpredictable */
        where[m] = k;
        m += fabs(u[k] - 0.5) > SPLIT1;
    }
    return m;
}

#if TI_X86_INTRINSICS
__attribute__((target("avx512f"))) static int compact_tails_avx512(const double *u, int n,
                                                                   int32_t *where) {
    const __m512d half = _mm512_set1_pd(0.5), split = _mm512_set1_pd(SPLIT1);
    const __m512i step = _mm512_set1_epi32(16);
    __m512i index = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    int m = 0, k = 0;
    for (; k + 16 <= n; k += 16) {
        __m512d a = _mm512_abs_pd(_mm512_sub_pd(_mm512_loadu_pd(u + k), half));
        __m512d b = _mm512_abs_pd(_mm512_sub_pd(_mm512_loadu_pd(u + k + 8), half));
        __mmask16 tail = (__mmask16)(_mm512_cmp_pd_mask(a, split, _CMP_GT_OQ) |
                                     (_mm512_cmp_pd_mask(b, split, _CMP_GT_OQ) << 8));
        /* compress in a register, then a plain store: fast on every AVX-512 CPU */
        _mm512_storeu_si512((void *)(where + m), _mm512_maskz_compress_epi32(tail, index));
        m += __builtin_popcount((unsigned)tail);
        index = _mm512_add_epi32(index, step);
    }
    for (; k < n; k++) {
        where[m] = k;
        m += fabs(u[k] - 0.5) > SPLIT1;
    }
    return m;
}
#endif

typedef int (*CompactFn)(const double *, int, int32_t *);
typedef void (*PairsFn)(uint64_t, int, uint32_t, uint32_t, double *, double *);

/* The vector version for the head of `n` (a multiple of `width`), the portable one for the rest. */
TI_INLINE void philox_pairs(PairsFn vector, int width, uint64_t j0, int n, uint32_t k0,
                            uint32_t k1, double *ue, double *uo) {
    int head = n - n % width;
    if (head) vector(j0, head, k0, k1, ue, uo);
    if (head < n) philox_pairs_generic(j0 + (uint64_t)head, n - head, k0, k1, ue + head, uo + head);
}

/* Uniforms of arbitrary flat indices. */
TI_INLINE void philox_gather(const int64_t *idx, int n, uint32_t k0, uint32_t k1, double *u) {
    for (int q = 0; q < n; q++) {
        uint64_t i = (uint64_t)idx[q], j = i >> 1;
        uint64_t c0 = j & LO32, c1 = j >> 32, c2 = 0, c3 = 0;
        PHILOX_ROUNDS(c0, c1, c2, c3, k0, k1);
        uint64_t odd = i & 1;
        u[q] = uniform53(odd ? c2 : c0, odd ? c3 : c1);
    }
}

/* v[k] = the value of uniform u[k] (u is overwritten for the truncated normal). */
TI_INLINE void transform(const Job *job, double *u, double *v, int n, CompactFn compact_tails) {
    const double *p = job->p;
    if (job->kind == KIND_UNIFORM) {
        for (int k = 0; k < n; k++) v[k] = p[0] + p[1] * u[k];
        return;
    }
    int trunc = job->kind == KIND_TRUNC;
    double lo = trunc ? p[4] : -INFINITY, hi = trunc ? p[5] : INFINITY;
    if (trunc)
        for (int k = 0; k < n; k++) u[k] = p[2] + p[3] * u[k];
    double z[BLOCK];
    for (int k = 0; k < n; k++) {
        double q = u[k] - 0.5;
        double r = CONST1 - q * q;
        z[k] = q * horner8(AS_A, r) / horner8(AS_B, r);
    }
    /* The tails: compact, then -log and sqrt with the exponent split on the bits. */
    int32_t where[BLOCK + 16];
    int m = compact_tails(u, n, where);
    /* Every step below computes both sides of each choice and selects, so the loops vectorize. */
    double x[BLOCK], t[BLOCK], special[BLOCK];
    for (int j = 0; j < m; j++) {
        double uj = u[where[j]];
        double lower = uj, upper = 1.0 - uj;
        double xj = uj - 0.5 < 0 ? lower : upper;
        int bad = !(xj >= SMALLEST_NORMAL); /* zero or subnormal: the scalar path below */
        special[j] = bad ? 1.0 : 0.0;
        x[j] = bad ? 0.25 : xj;
    }
    for (int j = 0; j < m; j++) { /* t = -log(x) */
        uint64_t b = double_to_bits(x[j]);
        double mj = bits_to_double((b & 0x000FFFFFFFFFFFFFull) | 0x3FE0000000000000ull);
        double e = (double)(int32_t)((b >> 52) & 0x7FF) - 1022.0; /* exact */
        double twice = mj * 2.0;
        int small = mj < SQRT_HALF;
        mj = small ? twice : mj;
        double ef = small ? e - 1.0 : e; /* exact: small integers */
        double s = (mj - 1.0) / (mj + 1.0);
        t[j] = -(ef * LN2_HI + (2.0 * s * horner_log(s * s) + ef * LN2_LO));
    }
    for (int j = 0; j < m; j++) { /* x = sqrt(t), t >= 2.5 */
        uint64_t b = double_to_bits(t[j]);
        double mj = bits_to_double((b & 0x000FFFFFFFFFFFFFull) | 0x3FE0000000000000ull);
        uint64_t e = ((b >> 52) & 0x7FF) - 1022; /* t >= 2.5: the exponent is positive */
        uint64_t odd = e & 1;
        double twice = mj * 2.0;
        mj = odd ? twice : mj;
        uint64_t scale = (((e - odd) >> 1) + 1023) << 52;
        double y = (mj + 1.0) * 0.5;
        y = (y + mj / y) * 0.5;
        y = (y + mj / y) * 0.5;
        y = (y + mj / y) * 0.5;
        y = (y + mj / y) * 0.5;
        y = (y + mj / y) * 0.5;
        x[j] = y * bits_to_double(scale);
    }
    for (int j = 0; j < m; j++) {
        double rt = x[j];
        double mid = rt - CONST2;
        double zt = horner8(AS_C, mid) / horner8(AS_D, mid);
        int far = !(rt <= SPLIT2); /* the far tail (p < 1e-11): the scalar path below */
        special[j] = far ? 1.0 : special[j];
        double neg = -zt;
        t[j] = u[where[j]] - 0.5 < 0 ? neg : zt;
    }
    for (int j = 0; j < m; j++) {
        int k = where[j];
        z[k] = special[j] != 0.0 ? ref_ndtri(u[k]) : t[j];
    }
    double lo_out = p[6], hi_out = p[7];
    for (int k = 0; k < n; k++) {
        double zk = z[k];
        zk = zk < lo ? lo : zk; /* torch's clamp for the finite values that occur here */
        zk = zk > hi ? hi : zk;
        double vk = p[0] + p[1] * zk;
        vk = vk < lo_out ? lo_out : vk;
        v[k] = vk > hi_out ? hi_out : vk;
    }
}

/* Flat index of output position `pos` (its run and the offset inside it). */
TI_INLINE int64_t flat_of(const Job *job, int64_t pos, int64_t *offset_in_run) {
    int64_t run = pos / job->run_len, off = pos - run * job->run_len;
    int64_t flat = job->base + off * job->run_step;
    for (int d = job->ndims - 1; d >= 0; d--) {
        int64_t c = job->counts[d];
        flat += (run % c) * job->strides[d];
        run /= c;
    }
    *offset_in_run = off;
    return flat;
}

/* The kernel, compiled once per instruction set by the wrappers below. */
TI_INLINE void fill_range_body(const Job *job, int64_t begin, int64_t end, PairsFn pairs_fn,
                               int pairs_width, CompactFn compact_tails) {
    double u[BLOCK + 2], v[BLOCK], ue[BLOCK / 2 + 1], uo[BLOCK / 2 + 1];
    int64_t idx[BLOCK];
    int contiguous = job->run_step == 1 && job->run_len >= 64;
    int64_t pos = begin;
    while (pos < end) {
        int64_t off;
        int64_t flat = flat_of(job, pos, &off);
        int n;
        if (contiguous) {
            int64_t left = job->run_len - off;
            n = (int)(end - pos < BLOCK ? end - pos : BLOCK);
            if (left < n) n = (int)left;
            uint64_t j0 = (uint64_t)flat >> 1;
            int shift = (int)(flat & 1);
            int pairs = (shift + n + 1) >> 1;
            philox_pairs(pairs_fn, pairs_width, j0, pairs, job->k0, job->k1, ue, uo);
            for (int q = 0; q < pairs; q++) {
                u[2 * q] = ue[q];
                u[2 * q + 1] = uo[q];
            }
            transform(job, u + shift, v, n, compact_tails);
        } else {
            n = (int)(end - pos < BLOCK ? end - pos : BLOCK);
            int64_t f = flat, o = off;
            for (int k = 0; k < n; k++) {
                idx[k] = f;
                if (++o == job->run_len) {
                    int64_t dummy;
                    if (k + 1 < n) f = flat_of(job, pos + k + 1, &dummy);
                    o = 0;
                } else {
                    f += job->run_step;
                }
            }
            philox_gather(idx, n, job->k0, job->k1, u);
            transform(job, u, v, n, compact_tails);
        }
        store(job->out, job->out_kind, pos, v, n);
        pos += n;
    }
}

static void fill_range_portable(const Job *job, int64_t begin, int64_t end) {
    fill_range_body(job, begin, end, philox_pairs_generic, 1, compact_tails_generic);
}

#if TI_X86_INTRINSICS
__attribute__((target("avx2"))) static void fill_range_avx2(const Job *job, int64_t begin,
                                                             int64_t end) {
    fill_range_body(job, begin, end, philox_pairs_avx2, 4, compact_tails_generic);
}

__attribute__((target("avx512f"))) static void fill_range_avx512(const Job *job, int64_t begin,
                                                                 int64_t end) {
    fill_range_body(job, begin, end, philox_pairs_avx512, 8, compact_tails_avx512);
}
#endif

typedef void (*KernelFn)(const Job *, int64_t, int64_t);

typedef struct {
    const char *name;
    KernelFn kernel;
} Isa;

/* The instruction sets this build has kernels for, best last. */
static const Isa ISAS[] = {
    {"portable", fill_range_portable},
#if TI_X86_INTRINSICS
    {"avx2", fill_range_avx2},
    {"avx512f", fill_range_avx512},
#endif
};
#define N_ISAS ((int)(sizeof ISAS / sizeof ISAS[0]))
static int best_isa = 0; /* set once at import */

static int isa_supported(int k) {
#if TI_X86_INTRINSICS
    if (strcmp(ISAS[k].name, "avx2") == 0) return __builtin_cpu_supports("avx2");
    if (strcmp(ISAS[k].name, "avx512f") == 0) return __builtin_cpu_supports("avx512f");
#endif
    return k == 0;
}

static void *worker(void *arg) {
    const Slice *s = (const Slice *)arg;
    s->job->kernel(s->job, s->begin, s->end);
    return NULL;
}

/* Split [0, total) over `threads` workers, the calling thread being one of them; a part whose
 * thread could not be started is done by the calling thread. */
static void run_job(const Job *job, int threads) {
    if (threads < 1) threads = 1;
    if (threads > 256) threads = 256;
    int64_t per_thread_min = 1 << 14;
    if (job->total / per_thread_min < threads) threads = (int)(job->total / per_thread_min);
    if (threads < 1) threads = 1;
    Slice slices[256];
    pthread_t ids[256];
    int started[256];
    for (int t = 0; t < threads; t++) {
        slices[t].job = job;
        slices[t].begin = job->total * t / threads;
        slices[t].end = job->total * (t + 1) / threads;
        started[t] = 0;
    }
    for (int t = 1; t < threads; t++)
        started[t] = pthread_create(&ids[t], NULL, worker, &slices[t]) == 0;
    job->kernel(job, slices[0].begin, slices[0].end);
    for (int t = 1; t < threads; t++) {
        if (started[t])
            pthread_join(ids[t], NULL);
        else
            job->kernel(job, slices[t].begin, slices[t].end);
    }
}

/* ---- Python entry point -------------------------------------------------------------------- */

static int read_int64_tuple(PyObject *seq, int64_t *dst, int max, const char *what) {
    PyObject *fast = PySequence_Fast(seq, what);
    if (!fast) return -1;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(fast);
    if (n > max) {
        Py_DECREF(fast);
        PyErr_Format(PyExc_ValueError, "%s: at most %d entries", what, max);
        return -1;
    }
    for (Py_ssize_t k = 0; k < n; k++) {
        dst[k] = PyLong_AsLongLong(PySequence_Fast_GET_ITEM(fast, k));
        if (dst[k] == -1 && PyErr_Occurred()) {
            Py_DECREF(fast);
            return -1;
        }
    }
    Py_DECREF(fast);
    return (int)n;
}

PyDoc_STRVAR(fill_doc,
"fill(address, out_kind, kind, params, k0, k1, base, counts, strides, run_len, run_step, threads,\n"
"     isa=None)\n"
"\n"
"Write the stream's values of a region into the contiguous buffer at `address`.\n"
"out_kind: 0 float64, 1 float32, 2 bfloat16, 3 float16. kind: 0 uniform, 1 normal,\n"
"2 truncated normal. params: 8 floats (see _core.c). The region is the runs\n"
"base + sum(i_d * strides[d]) + t * run_step, t < run_len, over the outer index (i_d < counts[d]).\n"
"isa: one of ISAS (default ISA, the best this CPU runs); every one gives the same bits.");

static PyObject *core_fill(PyObject *self, PyObject *args) {
    (void)self;
    unsigned long long address;
    unsigned long k0, k1;
    int out_kind, kind, threads;
    long long base, run_len, run_step;
    PyObject *params, *counts, *strides;
    const char *isa = NULL;
    if (!PyArg_ParseTuple(args, "KiiOkkLOOLLi|z", &address, &out_kind, &kind, &params, &k0, &k1,
                          &base, &counts, &strides, &run_len, &run_step, &threads, &isa))
        return NULL;
    KernelFn kernel = ISAS[best_isa].kernel;
    if (isa != NULL) {
        kernel = NULL;
        for (int k = 0; k < N_ISAS; k++)
            if (strcmp(ISAS[k].name, isa) == 0 && isa_supported(k)) kernel = ISAS[k].kernel;
        if (kernel == NULL) {
            PyErr_Format(PyExc_ValueError, "instruction set %s is not available (see ISAS)", isa);
            return NULL;
        }
    }
    if (out_kind < OUT_F64 || out_kind > OUT_F16 || kind < KIND_UNIFORM || kind > KIND_TRUNC) {
        PyErr_SetString(PyExc_ValueError, "unknown output dtype or distribution code");
        return NULL;
    }
    Job job;
    memset(&job, 0, sizeof job);
    job.kernel = kernel;
    job.out = (void *)(uintptr_t)address;
    job.out_kind = out_kind;
    job.kind = kind;
    job.k0 = (uint32_t)k0;
    job.k1 = (uint32_t)k1;
    job.base = base;
    job.run_len = run_len;
    job.run_step = run_step;
    PyObject *pf = PySequence_Fast(params, "params must be a sequence of 8 floats");
    if (!pf) return NULL;
    if (PySequence_Fast_GET_SIZE(pf) != 8) {
        Py_DECREF(pf);
        PyErr_SetString(PyExc_ValueError, "params must be a sequence of 8 floats");
        return NULL;
    }
    for (int k = 0; k < 8; k++) {
        job.p[k] = PyFloat_AsDouble(PySequence_Fast_GET_ITEM(pf, k));
        if (job.p[k] == -1.0 && PyErr_Occurred()) {
            Py_DECREF(pf);
            return NULL;
        }
    }
    Py_DECREF(pf);
    int nc = read_int64_tuple(counts, job.counts, MAX_DIMS, "counts");
    if (nc < 0) return NULL;
    int ns = read_int64_tuple(strides, job.strides, MAX_DIMS, "strides");
    if (ns < 0) return NULL;
    if (nc != ns || run_len <= 0) {
        PyErr_SetString(PyExc_ValueError, "counts and strides differ in length, or run_len <= 0");
        return NULL;
    }
    job.ndims = nc;
    job.total = run_len;
    for (int d = 0; d < nc; d++) {
        if (job.counts[d] <= 0) {
            PyErr_SetString(PyExc_ValueError, "counts must be positive");
            return NULL;
        }
        job.total *= job.counts[d];
    }
    Py_BEGIN_ALLOW_THREADS
    run_job(&job, threads);
    Py_END_ALLOW_THREADS
    Py_RETURN_NONE;
}

static PyMethodDef core_methods[] = {
    {"fill", core_fill, METH_VARARGS, fill_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef core_module = {
    PyModuleDef_HEAD_INIT, "_core",
    "The compiled CPU sampling core (bit-identical to the reference backend).", -1, core_methods,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__core(void) {
#if TI_X86_INTRINSICS
    __builtin_cpu_init();
#endif
    PyObject *module = PyModule_Create(&core_module);
    if (!module) return NULL;
    PyObject *names = PyList_New(0);
    for (int k = 0; names && k < N_ISAS; k++) {
        if (!isa_supported(k)) continue;
        best_isa = k;
        PyObject *name = PyUnicode_FromString(ISAS[k].name);
        if (!name || PyList_Append(names, name) < 0) Py_CLEAR(names);
        Py_XDECREF(name);
    }
    PyObject *tuple = names ? PyList_AsTuple(names) : NULL;
    Py_XDECREF(names);
    if (!tuple || PyModule_AddObject(module, "ISAS", tuple) < 0 ||
        PyModule_AddStringConstant(module, "ISA", ISAS[best_isa].name) < 0) {
        Py_XDECREF(tuple);
        Py_DECREF(module);
        return NULL;
    }
    return module;
}
