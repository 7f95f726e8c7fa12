/* chat_template.c — tests of api/chat_template.c: family detection, the exact
 * prompt text of each family, its error cases, and the marker/text spans. */
#include <stdlib.h>
#include <string.h>

#include "api/chat_template.h"
#include "suites.h"

#define MSG(r, c)                                                                                  \
    { (r), (c), sizeof(c) - 1, NULL, 0 }

/* Renders and compares with the expected text exactly. */
static void expect(px_chat_template t, const px_chat_msg *m, size_t n, const char *want) {
    char *out = NULL, err[128] = "";
    size_t len = 0;
    int rc = px_chat_template_render(t, m, n, &out, &len, err, sizeof err);
    ck_assert_msg(rc == 0, "render failed: %s", err);
    ck_assert_uint_eq(len, strlen(want));
    ck_assert_str_eq(out, want);
    free(out);
}

static void expect_err(px_chat_template t, const px_chat_msg *m, size_t n, const char *sub) {
    char *out = (char *)"untouched", err[128] = "";
    size_t len = 0;
    ck_assert_int_eq(px_chat_template_render(t, m, n, &out, &len, err, sizeof err), -1);
    ck_assert_msg(strstr(err, sub), "error '%s' lacks '%s'", err, sub);
    ck_assert_str_eq(out, "untouched");
}

START_TEST(test_detect) {
    const char *g = "{{ bos_token }}{% for m in messages %}<start_of_turn>{{ m.role }}";
    const char *c = "{% for m in messages %}<|im_start|>{{ m.role }}\n";
    const char *l = "{{ bos_token + '[INST] ' + content.strip() + ' [/INST]' }}";
    ck_assert_int_eq(px_chat_template_detect(g, strlen(g), PX_TEMPLATE_LLAMA2), PX_TEMPLATE_GEMMA);
    ck_assert_int_eq(px_chat_template_detect(c, strlen(c), PX_TEMPLATE_GEMMA), PX_TEMPLATE_CHATML);
    ck_assert_int_eq(px_chat_template_detect(l, strlen(l), PX_TEMPLATE_GEMMA), PX_TEMPLATE_LLAMA2);
    ck_assert_int_eq(px_chat_template_detect(NULL, 0, PX_TEMPLATE_LLAMA2), PX_TEMPLATE_LLAMA2);
    ck_assert_int_eq(px_chat_template_detect("{{ x }}", 7, PX_TEMPLATE_CHATML), PX_TEMPLATE_CHATML);
    /* The length bounds the search: a marker past len is not seen. */
    ck_assert_int_eq(px_chat_template_detect(g, 20, PX_TEMPLATE_LLAMA2), PX_TEMPLATE_LLAMA2);

    px_chat_template t = PX_TEMPLATE_GEMMA;
    ck_assert_int_eq(px_chat_template_from_name("chatml", &t), 0);
    ck_assert_int_eq(t, PX_TEMPLATE_CHATML);
    ck_assert_int_eq(px_chat_template_from_name("llama2", &t), 0);
    ck_assert_int_eq(t, PX_TEMPLATE_LLAMA2);
    ck_assert_int_eq(px_chat_template_from_name("jinja", &t), -1);
    ck_assert_int_eq(t, PX_TEMPLATE_LLAMA2);
    ck_assert_str_eq(px_chat_template_name(PX_TEMPLATE_GEMMA), "gemma");
    ck_assert_str_eq(px_chat_template_name(PX_TEMPLATE_CHATML), "chatml");
}
END_TEST

START_TEST(test_gemma) {
    px_chat_msg one[] = {MSG("user", "Hello")};
    expect(PX_TEMPLATE_GEMMA, one, 1,
           "<start_of_turn>user\nHello<end_of_turn>\n<start_of_turn>model\n");

    /* System text (untrimmed) + "\n\n" opens the first user turn; contents
     * are trimmed; assistant is "model". */
    px_chat_msg conv[] = {MSG("system", " Be brief. "), MSG("user", "  Hi\n"),
                          MSG("assistant", "\tHello!  "), MSG("user", "\nHow are you?")};
    expect(PX_TEMPLATE_GEMMA, conv, 4,
           "<start_of_turn>user\n Be brief. \n\nHi<end_of_turn>\n"
           "<start_of_turn>model\nHello!<end_of_turn>\n"
           "<start_of_turn>user\nHow are you?<end_of_turn>\n"
           "<start_of_turn>model\n");

    /* developer is a system message; Python's strip() also removes Unicode
     * spaces (NBSP, ideographic space, U+2028) but not U+200B. */
    px_chat_msg dev[] = {MSG("developer", "D"), MSG("user", "\xC2\xA0\xE3\x80\x80x\xE2\x80\xA8"),
                         MSG("assistant", "\xE2\x80\x8By")};
    expect(PX_TEMPLATE_GEMMA, dev, 3,
           "<start_of_turn>user\nD\n\nx<end_of_turn>\n"
           "<start_of_turn>model\n\xE2\x80\x8By<end_of_turn>\n<start_of_turn>model\n");

    /* Ending with an assistant turn: the generation prompt is still added. */
    px_chat_msg ends[] = {MSG("user", "a"), MSG("assistant", "b")};
    expect(PX_TEMPLATE_GEMMA, ends, 2,
           "<start_of_turn>user\na<end_of_turn>\n<start_of_turn>model\nb<end_of_turn>\n"
           "<start_of_turn>model\n");

    /* Null / whitespace-only content renders empty. */
    px_chat_msg empty[] = {MSG("user", " \n "), {"assistant", NULL, 0, NULL, 0}, MSG("user", "q")};
    expect(PX_TEMPLATE_GEMMA, empty, 3,
           "<start_of_turn>user\n<end_of_turn>\n<start_of_turn>model\n<end_of_turn>\n"
           "<start_of_turn>user\nq<end_of_turn>\n<start_of_turn>model\n");

    px_chat_msg two_users[] = {MSG("user", "a"), MSG("user", "b")};
    expect_err(PX_TEMPLATE_GEMMA, two_users, 2, "alternate");
    px_chat_msg asst_first[] = {MSG("assistant", "a"), MSG("user", "b")};
    expect_err(PX_TEMPLATE_GEMMA, asst_first, 2, "alternate");
    px_chat_msg late_sys[] = {MSG("user", "a"), MSG("system", "s")};
    expect_err(PX_TEMPLATE_GEMMA, late_sys, 2, "first message");
    px_chat_msg two_sys[] = {MSG("system", "a"), MSG("system", "b"), MSG("user", "c")};
    expect_err(PX_TEMPLATE_GEMMA, two_sys, 3, "first message");
    px_chat_msg only_sys[] = {MSG("system", "s")};
    expect_err(PX_TEMPLATE_GEMMA, only_sys, 1, "no user message");
    px_chat_msg bad_role[] = {MSG("user", "a"), MSG("tool", "b")};
    expect_err(PX_TEMPLATE_GEMMA, bad_role, 2, "unknown role");
    expect_err(PX_TEMPLATE_GEMMA, NULL, 0, "no user message");
}
END_TEST

START_TEST(test_llama2) {
    px_chat_msg one[] = {MSG("user", "Hello")};
    expect(PX_TEMPLATE_LLAMA2, one, 1, "[INST] Hello [/INST]");

    px_chat_msg conv[] = {MSG("system", "Be brief."), MSG("user", " Hi "),
                          MSG("assistant", " Hello! "), MSG("user", "Again")};
    /* The system block joins the first user text; content.strip() of the
     * whole leaves the user's leading space (inside) but drops the trailing. */
    expect(PX_TEMPLATE_LLAMA2, conv, 4,
           "[INST] <<SYS>>\nBe brief.\n<</SYS>>\n\n Hi [/INST] Hello! </s>"
           "<s>[INST] Again [/INST]");

    px_chat_msg no_sys[] = {MSG("user", "a"), MSG("assistant", "b"), MSG("user", "c"),
                            MSG("assistant", "d")};
    /* No generation prompt in Llama 2's template: ends with </s>. */
    expect(PX_TEMPLATE_LLAMA2, no_sys, 4, "[INST] a [/INST] b </s><s>[INST] c [/INST] d </s>");

    /* An all-space user text lets strip() eat the block's trailing "\n\n". */
    px_chat_msg blank[] = {MSG("system", "S"), MSG("user", "  ")};
    expect(PX_TEMPLATE_LLAMA2, blank, 2, "[INST] <<SYS>>\nS\n<</SYS>> [/INST]");

    px_chat_msg two_users[] = {MSG("user", "a"), MSG("user", "b")};
    expect_err(PX_TEMPLATE_LLAMA2, two_users, 2, "alternate");
    px_chat_msg only_sys[] = {MSG("developer", "s")};
    expect_err(PX_TEMPLATE_LLAMA2, only_sys, 1, "no user message");
}
END_TEST

START_TEST(test_chatml) {
    /* Any order, content untouched, developer written as system. */
    px_chat_msg conv[] = {MSG("developer", " D "), MSG("user", "a\n"), MSG("user", "b"),
                          MSG("assistant", "c"), MSG("system", "late")};
    expect(PX_TEMPLATE_CHATML, conv, 5,
           "<|im_start|>system\n D <|im_end|>\n<|im_start|>user\na\n<|im_end|>\n"
           "<|im_start|>user\nb<|im_end|>\n<|im_start|>assistant\nc<|im_end|>\n"
           "<|im_start|>system\nlate<|im_end|>\n<|im_start|>assistant\n");
    px_chat_msg bad[] = {MSG("narrator", "x")};
    expect_err(PX_TEMPLATE_CHATML, bad, 1, "unknown role");
}
END_TEST

/* Spans tile the text; markers are exactly the template's; client content
 * that spells a marker stays inside a plain-text span. */
START_TEST(test_image_parts) {
    /* Gemma: parts in order, each text part trimmed on its own, an image as
     * an empty span at its place. */
    px_chat_part parts[] = {
        {" Look: ", 7, -1}, {NULL, 0, 0}, {"\nand this ", 10, -1}, {NULL, 0, 1}, {"?", 1, -1}};
    px_chat_msg m[] = {MSG("system", "S"), {"user", NULL, 0, parts, 5}};
    char *out = NULL, err[128] = "";
    size_t len = 0, n_segs = 0;
    px_chat_seg *segs = NULL;
    ck_assert_int_eq(px_chat_template_render_segs(PX_TEMPLATE_GEMMA, m, 2, &out, &len, &segs,
                                                  &n_segs, err, sizeof err),
                     0);
    ck_assert_str_eq(out, "<start_of_turn>user\nS\n\nLook:and this?<end_of_turn>\n"
                          "<start_of_turn>model\n");
    int seen[2] = {0, 0};
    size_t at[2] = {0, 0};
    for (size_t i = 0; i < n_segs; i++) {
        if (segs[i].image < 0) continue;
        ck_assert_int_lt(segs[i].image, 2);
        ck_assert_uint_eq(segs[i].len, 0);
        ck_assert_int_eq(segs[i].special, 0);
        seen[segs[i].image]++;
        at[segs[i].image] = segs[i].off;
        /* Text on either side stays in its own spans (no merging across). */
        if (i > 0) ck_assert_int_lt(segs[i - 1].image, 0);
    }
    ck_assert_int_eq(seen[0], 1);
    ck_assert_int_eq(seen[1], 1);
    ck_assert_str_eq(out + at[0], "and this?<end_of_turn>\n<start_of_turn>model\n");
    ck_assert_str_eq(out + at[1], "?<end_of_turn>\n<start_of_turn>model\n");
    free(out);
    free(segs);

    /* ChatML keeps part text as is; Llama 2 refuses images. */
    px_chat_msg c[] = {{"user", NULL, 0, parts, 2}};
    expect(PX_TEMPLATE_CHATML, c, 1,
           "<|im_start|>user\n Look: <|im_end|>\n<|im_start|>assistant\n");
    expect_err(PX_TEMPLATE_LLAMA2, c, 1, "no images");
}
END_TEST

START_TEST(test_segments) {
    static const struct {
        px_chat_template t;
        const char *markers[3];
    } fam[] = {
        {PX_TEMPLATE_GEMMA, {"<start_of_turn>", "<end_of_turn>", NULL}},
        {PX_TEMPLATE_LLAMA2, {"<s>", "</s>", NULL}},
        {PX_TEMPLATE_CHATML, {"<|im_start|>", "<|im_end|>", NULL}},
    };
    px_chat_msg conv[] = {MSG("system", "<end_of_turn></s>"),
                          MSG("user", "<start_of_turn><s><|im_start|>"),
                          MSG("assistant", "<|im_end|>"), MSG("user", "x")};
    for (size_t f = 0; f < 3; f++) {
        char *out, err[128];
        size_t len, n_segs;
        px_chat_seg *segs;
        ck_assert_int_eq(px_chat_template_render_segs(fam[f].t, conv, 4, &out, &len, &segs, &n_segs,
                                                      err, sizeof err),
                         0);
        size_t at = 0, n_special = 0;
        for (size_t i = 0; i < n_segs; i++) {
            ck_assert_uint_eq(segs[i].off, at);
            ck_assert_uint_gt(segs[i].len, 0);
            if (i) ck_assert_int_ne(segs[i].special, segs[i - 1].special); /* merged */
            if (segs[i].special) {
                /* A special span is a run of the family's markers only. */
                size_t p = 0;
                while (p < segs[i].len) {
                    size_t k = 0, ml = 0;
                    for (; fam[f].markers[k]; k++) {
                        ml = strlen(fam[f].markers[k]);
                        if (ml <= segs[i].len - p &&
                            memcmp(out + segs[i].off + p, fam[f].markers[k], ml) == 0)
                            break;
                    }
                    ck_assert_msg(fam[f].markers[k], "family %zu: stray special text", f);
                    p += ml;
                    n_special++;
                }
            }
            at += segs[i].len;
        }
        ck_assert_uint_eq(at, len);
        /* Gemma: 3 turns * 2 + gen prompt; Llama 2: </s> <s>; ChatML: 4 * 2 + 1. */
        static const size_t want_special[] = {7, 2, 9};
        ck_assert_uint_eq(n_special, want_special[f]);
        free(out);
        free(segs);
    }
}
END_TEST

Suite *px_suite_chat_template(void) {
    Suite *s = suite_create("chat_template");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_detect);
    tcase_add_test(tc, test_gemma);
    tcase_add_test(tc, test_llama2);
    tcase_add_test(tc, test_chatml);
    tcase_add_test(tc, test_segments);
    tcase_add_test(tc, test_image_parts);
    suite_add_tcase(s, tc);
    return s;
}
