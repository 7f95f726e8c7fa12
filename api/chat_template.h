/* chat_template.h — renders chat messages into the prompt text a model was
 * trained on. Three families: Gemma (<start_of_turn>user ... <end_of_turn>;
 * system text is prepended to the first user turn), Llama 2 ([INST] ...
 * [/INST] with <<SYS>> blocks) and ChatML (<|im_start|>role ... <|im_end|>).
 * The family is recognised from the GGUF's tokenizer.chat_template text
 * (markers it contains), with a config override.
 * Owns: nothing (pure functions). Any thread. */
#ifndef PX_CHAT_TEMPLATE_H
#define PX_CHAT_TEMPLATE_H

#include <stddef.h>

typedef enum px_chat_template {
    PX_TEMPLATE_GEMMA = 0,
    PX_TEMPLATE_LLAMA2 = 1,
    PX_TEMPLATE_CHATML = 2,
} px_chat_template;

/* Recognises the family from a Jinja template text (NULL or unknown: Gemma
 * for gemma3 models, Llama 2 for llama, given by `fallback`). */
px_chat_template px_chat_template_detect(const char *jinja, size_t len, px_chat_template fallback);
/* "gemma", "llama2", "chatml" -> 0 and *out; otherwise -1. */
int px_chat_template_from_name(const char *name, px_chat_template *out);
const char *px_chat_template_name(px_chat_template t);

/* One part of a multi-part message: text, or an image of the request. */
typedef struct px_chat_part {
    const char *text; /* text parts */
    size_t len;
    int image; /* -1: a text part; >= 0: the request's image #image */
} px_chat_part;

typedef struct px_chat_msg {
    const char *role;    /* "system", "developer" (as system), "user", "assistant" */
    const char *content; /* text, when parts is NULL */
    size_t content_len;
    const px_chat_part *parts; /* NULL, or (n_parts) parts in order (content ignored) */
    size_t n_parts;
} px_chat_msg;

/* Renders msgs (ending with the generation prompt for the assistant) into a
 * malloc'd string in *out (*out_len bytes, NUL-terminated). Special tokens
 * appear as their text (e.g. "<start_of_turn>"); BOS is not included (the
 * tokenizer adds it). Tokenizing this string with PX_TOK_PARSE_SPECIAL would
 * also turn marker text typed by a client into control tokens: prompts use
 * px_chat_template_render_segs instead.
 * Returns 0, or -1 for an unknown role or bad order with a message in err.
 *
 * What each family does with odd conversations (as its Jinja template does):
 * - Gemma and Llama 2: an optional first system/developer message, then
 *   roles must alternate user/assistant starting with user; anything else
 *   (two users in a row, a system message later on) is an error, as the
 *   templates raise_exception. A conversation of only a system message is an
 *   error (the templates would silently drop it).
 * - Gemma: the system text plus "\n\n" is put at the start of the first user
 *   turn (not trimmed); message contents are trimmed like Jinja's `| trim`
 *   (Python str.strip: Unicode whitespace); the generation prompt
 *   "<start_of_turn>model\n" is always added, also after an assistant turn.
 * - Llama 2: "[INST] <<SYS>>\n{sys}\n<</SYS>>\n\n{user} [/INST]", assistant
 *   turns " {text} </s>", each later user turn opens with "<s>"; the
 *   template's content.strip() applies to the whole (system block + user)
 *   text. There is no generation prompt: a conversation ending with an
 *   assistant turn ends with "</s>".
 * - ChatML: every message "<|im_start|>{role}\n{content}<|im_end|>\n" in
 *   any order (developer is written as system), content untouched, then
 *   "<|im_start|>assistant\n". */
int px_chat_template_render(px_chat_template t, const px_chat_msg *msgs, size_t n, char **out,
                            size_t *out_len, char *err, size_t errlen);

/* One span of rendered text. Spans tile the text in order. */
typedef struct px_chat_seg {
    size_t off, len; /* bytes of the rendered text */
    int special;     /* 1: a template marker ("<start_of_turn>", "<s>"), to be
                      * tokenized with PX_TOK_PARSE_SPECIAL; 0: plain text
                      * (template words and message content), to be tokenized
                      * WITHOUT it so typed markers stay text */
    int image;       /* >= 0: an empty span standing for image part #image
                      * (special is then 0); -1 otherwise */
} px_chat_seg;

/* As px_chat_template_render, and also returns the spans (malloc'd array in
 * *segs, *n_segs entries; adjacent spans of one kind are merged). The caller
 * frees *out and *segs. Tokenizing each span on its own gives the same ids
 * as tokenizing the whole string with PX_TOK_PARSE_SPECIAL when the content
 * holds no marker text, because the tokenizer splits at special tokens
 * before BPE anyway. */
int px_chat_template_render_segs(px_chat_template t, const px_chat_msg *msgs, size_t n, char **out,
                                 size_t *out_len, px_chat_seg **segs, size_t *n_segs, char *err,
                                 size_t errlen);

#endif
