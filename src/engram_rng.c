/* numpy's default_rng (SeedSequence + PCG64) and Generator.integers for
 * int64, bit-exact, so the Engram multipliers (spec 5.3 Hashing 3) follow
 * any layer id without embedded constants. */
#include "engram.h"

typedef __uint128_t u128;


/* SeedSequence (numpy/random/bit_generator.pyx): a pool of four 32-bit
 * words mixed from the seed's 32-bit words, then expanded into the state. */
#define SS_INIT_A 0x43b0d7e5u
#define SS_MULT_A 0x931e8875u
#define SS_INIT_B 0x8b51f9ddu
#define SS_MULT_B 0x58f38dedu
#define SS_MIX_L 0xca01f9ddu
#define SS_MIX_R 0x4973f715u
#define SS_POOL 4

static uint32_t ss_hashmix(uint32_t value, uint32_t *hash_const) {
    value ^= *hash_const;
    *hash_const *= SS_MULT_A;
    value *= *hash_const;
    return value ^ value >> 16;
}

static uint32_t ss_mix(uint32_t x, uint32_t y) {
    uint32_t r = SS_MIX_L * x - SS_MIX_R * y;
    return r ^ r >> 16;
}

/* SeedSequence(seed).generate_state(4, np.uint64). A Python int seed is its
 * 32-bit words, least significant first (0 is one word); two fit the pool. */
static void seed_sequence(uint64_t seed, uint64_t out[4]) {
    uint32_t entropy[2] = {(uint32_t)seed, (uint32_t)(seed >> 32)};
    int n_entropy = seed >> 32 ? 2 : 1;
    uint32_t pool[SS_POOL], hash_const = SS_INIT_A;
    for (int i = 0; i < SS_POOL; i++) pool[i] = ss_hashmix(i < n_entropy ? entropy[i] : 0, &hash_const);
    for (int src = 0; src < SS_POOL; src++)
        for (int dst = 0; dst < SS_POOL; dst++)
            if (src != dst) pool[dst] = ss_mix(pool[dst], ss_hashmix(pool[src], &hash_const));
    uint32_t words[8], hash_b = SS_INIT_B;
    for (int i = 0; i < 8; i++) {
        uint32_t v = pool[i % SS_POOL] ^ hash_b;
        hash_b *= SS_MULT_B;
        v *= hash_b;
        words[i] = v ^ v >> 16;
    }
    for (int i = 0; i < 4; i++) out[i] = words[2 * i] | (uint64_t)words[2 * i + 1] << 32;
}

#define PCG_MULT (((u128)2549297995355413924ULL << 64) | 4865540595714422341ULL)

static u128 pcg_state(const lt_pcg64 *g) { return (u128)g->state_hi << 64 | g->state_lo; }

static void pcg_step(lt_pcg64 *g) {
    u128 s = pcg_state(g) * PCG_MULT + ((u128)g->inc_hi << 64 | g->inc_lo);
    g->state_hi = (uint64_t)(s >> 64);
    g->state_lo = (uint64_t)s;
}

void lt_pcg64_seed(lt_pcg64 *g, uint64_t seed) {
    uint64_t v[4];
    seed_sequence(seed, v);
    /* pcg64_set_seed: state = v[0]:v[1], sequence = v[2]:v[3]; srandom_r */
    u128 inc = ((u128)v[2] << 64 | v[3]) << 1 | 1;
    *g = (lt_pcg64){.inc_hi = (uint64_t)(inc >> 64), .inc_lo = (uint64_t)inc};
    pcg_step(g);
    u128 s = pcg_state(g) + ((u128)v[0] << 64 | v[1]);
    g->state_hi = (uint64_t)(s >> 64);
    g->state_lo = (uint64_t)s;
    pcg_step(g);
}

/* XSL-RR output of the stepped state */
static uint64_t pcg_next64(lt_pcg64 *g) {
    pcg_step(g);
    uint64_t x = g->state_hi ^ g->state_lo;
    unsigned rot = (unsigned)(g->state_hi >> 58);
    return x >> rot | x << ((64 - rot) & 63);
}

/* numpy pcg64_next32: the low half of a draw, the high half kept for the next call */
static uint32_t pcg_next32(lt_pcg64 *g) {
    if (g->has_u32) {
        g->has_u32 = 0;
        return g->u32;
    }
    uint64_t x = pcg_next64(g);
    g->has_u32 = 1;
    g->u32 = (uint32_t)(x >> 32);
    return (uint32_t)x;
}

/* numpy bounded_lemire_uint64: a draw in [0, rng] */
static uint64_t lemire64(lt_pcg64 *g, uint64_t rng) {
    uint64_t excl = rng + 1;
    u128 m = (u128)pcg_next64(g) * excl;
    if ((uint64_t)m < excl) {
        uint64_t threshold = (UINT64_MAX - rng) % excl;
        while ((uint64_t)m < threshold) m = (u128)pcg_next64(g) * excl;
    }
    return (uint64_t)(m >> 64);
}

/* numpy buffered_bounded_lemire_uint32: a draw in [0, rng], rng < 2^32 - 1 */
static uint32_t lemire32(lt_pcg64 *g, uint32_t rng) {
    uint32_t excl = rng + 1;
    uint64_t m = (uint64_t)pcg_next32(g) * excl;
    if ((uint32_t)m < excl) {
        uint32_t threshold = (UINT32_MAX - rng) % excl;
        while ((uint32_t)m < threshold) m = (uint64_t)pcg_next32(g) * excl;
    }
    return (uint32_t)(m >> 32);
}

/* numpy random_bounded_uint64_fill (use_masked false) over [low, high - 1] */
void lt_pcg64_integers(lt_pcg64 *g, int64_t low, int64_t high, int64_t n, int64_t *out) {
    uint64_t off = (uint64_t)low, rng = (uint64_t)high - 1 - (uint64_t)low;
    for (int64_t i = 0; i < n; i++) {
        uint64_t v;
        if (rng == 0) v = 0;
        else if (rng == UINT32_MAX) v = pcg_next32(g);
        else if (rng < UINT32_MAX) v = lemire32(g, (uint32_t)rng);
        else if (rng == UINT64_MAX) v = pcg_next64(g);
        else v = lemire64(g, rng);
        out[i] = (int64_t)(off + v);
    }
}
