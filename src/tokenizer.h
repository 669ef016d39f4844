/* Byte-level BPE tokenizer read from a Hugging Face tokenizer.json (DeepSeek
 * V3 / V4 / V4.1; spec: docs/tokenizer-and-chat.md section 1-2 and
 * v4-architecture.md 7.1), with ids identical to HF `tokenizers`.
 *
 * Pipeline of lt_tokenizer_encode, in the order HF applies it:
 *   1. added tokens are cut out of the text first: the tokens with
 *      normalized=false over the whole text, then those with normalized=true
 *      over the gaps (leftmost-longest; lstrip / rstrip / single_word honoured);
 *   2. each gap goes through the pre-tokenizer steps of the file (Split
 *      regexes with behaviour Isolated, PCRE2 with full Unicode semantics);
 *   3. each piece is BPE-merged over its bytes (byte-to-unicode alphabet,
 *      merge ranks from the file).
 *
 * Invalid UTF-8 input: HF only ever sees valid text (Python str), so every
 * maximal invalid subsequence is replaced by U+FFFD first, exactly like
 * Python's bytes.decode("utf-8", errors="replace"); the ids are then those HF
 * gives for that decoded string. Decoding returns the token bytes, which for
 * any encoded valid text are the original text byte for byte.
 *
 * Thread safety: a loaded tokenizer is read-only except for its word cache,
 * which is guarded by a mutex, so one tokenizer may serve many threads. */
#ifndef LT_TOKENIZER_H
#define LT_TOKENIZER_H

#include "lantern.h"

#include <stddef.h>
#include <stdint.h>

typedef struct lt_tokenizer lt_tokenizer;

/* A growable array of token ids; zero-initialise it, release with
 * lt_token_vec_free. Encoding appends to it. */
typedef struct {
    int32_t *ids;
    size_t n, cap;
} lt_token_vec;

lt_status lt_token_vec_push(lt_token_vec *v, int32_t id, lt_error *err);
void lt_token_vec_free(lt_token_vec *v);

/* Loads path, which is either a tokenizer.json file or a folder holding one
 * (a model folder, or a folder with only tokenizer.json and optionally
 * tokenizer_config.json, whose bos_token / eos_token name the BOS and EOS).
 * Unsupported pipeline steps fail with LT_ERR_UNSUPPORTED naming the field. */
lt_status lt_tokenizer_load(lt_tokenizer **out, const char *path, lt_error *err);
void lt_tokenizer_free(lt_tokenizer *t);

/* Encodes len bytes of text and appends the ids to out. With parse_special
 * nonzero, added tokens written in the text ("<｜User｜>") become their ids,
 * as HF encode does; with 0 the whole text is ordinary text (use this for
 * untrusted content that must not inject control tokens). */
lt_status lt_tokenizer_encode(lt_tokenizer *t, const char *text, size_t len, int parse_special,
                              lt_token_vec *out, lt_error *err);

/* Decodes n ids into a malloc'd, NUL-terminated buffer (*len bytes, without
 * the NUL). skip_special drops added tokens flagged special. The bytes are
 * the concatenated token bytes; they are valid UTF-8 whenever the ids came
 * from encoding text. An id outside the vocabulary fails with LT_ERR_ARG. */
lt_status lt_tokenizer_decode(const lt_tokenizer *t, const int32_t *ids, size_t n, int skip_special,
                              char **text, size_t *len, lt_error *err);

/* The bytes of one token (not NUL-terminated), or NULL for an unknown id. */
const char *lt_tokenizer_token_bytes(const lt_tokenizer *t, int32_t id, size_t *len);

/* The token's stored spelling, as HF's id_to_token returns it: a vocabulary
 * entry's byte-level form (e.g. "Ġthe"), an added token's content; NULL for
 * an unknown id. Not NUL-terminated. */
const char *lt_tokenizer_token_spelling(const lt_tokenizer *t, int32_t id, size_t *len);

/* The id of a token given by its exact text (an added token's content, or a
 * vocabulary entry in its byte-level spelling such as "Ġthe"); -1 if none. */
int32_t lt_tokenizer_token_id(const lt_tokenizer *t, const char *text);

int lt_tokenizer_is_special(const lt_tokenizer *t, int32_t id);
int32_t lt_tokenizer_vocab_size(const lt_tokenizer *t); /* highest id + 1 */
int32_t lt_tokenizer_bos(const lt_tokenizer *t);        /* -1 when unknown */
int32_t lt_tokenizer_eos(const lt_tokenizer *t);        /* -1 when unknown */

/* Streaming detokenizer: feeds ids one at a time and hands out only whole
 * UTF-8 characters, holding back the bytes of a character split across
 * tokens. Bytes that can never form a valid character come out as U+FFFD
 * (one per maximal invalid subsequence, as Python's errors="replace"). */
#define LT_DETOK_MAX_TOKEN 1024 /* longest token the loader accepts, bytes */

typedef struct {
    unsigned char pend[4]; /* start of an incomplete character */
    int n_pend;
    char out[3 * (LT_DETOK_MAX_TOKEN + 4)]; /* worst case: every byte becomes U+FFFD */
} lt_detok;

void lt_detok_init(lt_detok *d);

/* Appends the bytes of id; returns the text that is now complete (in d->out,
 * valid until the next call) and its length in *len. skip_special as above.
 * Returns NULL and fills err for an unknown id. */
const char *lt_detok_push(lt_detok *d, const lt_tokenizer *t, int32_t id, int skip_special, size_t *len,
                          lt_error *err);

/* Ends the stream: the held-back bytes of an unfinished character come out
 * as U+FFFD (empty when nothing is pending). */
const char *lt_detok_flush(lt_detok *d, size_t *len);

#endif
